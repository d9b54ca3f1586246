//! The buffer an unsealed model lives in.

use zeroize::Zeroize;

/// The plaintext buffer: anonymous memory of the model's exact size, backed by transparent huge
/// pages where the kernel offers them and populated up front, zeroized when dropped.
///
/// Populating up front matters: faulting fresh memory in one 4 KiB page at a time costs more
/// than decrypting it (on the VMs measured, about 0.5 GB/s for first-touch page faults; see
/// BENCHMARKS.md, figure 4). So the mapping asks for huge pages (`MADV_HUGEPAGE`, one fault and
/// one page-table entry per 2 MiB; also fewer TLB misses when the engine streams the weights)
/// and is then populated in one call (`MADV_POPULATE_WRITE`, Linux 5.14; on older kernels the
/// first writes fault the pages in). Both are best effort. The memory is private and anonymous,
/// exactly like a large heap allocation (which glibc also maps with `mmap`), and marked
/// `MADV_DONTDUMP` so a core dump of the enclave does not carry the weights.
pub(crate) struct PlainBuf(memmap2::MmapMut);

impl PlainBuf {
    /// A zeroed buffer of `len` bytes; fails (instead of aborting) if it cannot be mapped.
    pub fn new(len: usize) -> Result<Self, std::io::Error> {
        let map = memmap2::MmapOptions::new().len(len).map_anon()?;
        #[cfg(target_os = "linux")]
        if len > 0 {
            // Keep the plaintext weights out of core dumps.
            map.advise(memmap2::Advice::DontDump)?;
            // Huge pages, then populate: both only speed, so failures are ignored.
            let _ = map.advise(memmap2::Advice::HugePage);
            let _ = map.advise(memmap2::Advice::PopulateWrite);
        }
        Ok(PlainBuf(map))
    }
}

impl std::fmt::Debug for PlainBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PlainBuf({} bytes)", self.0.len())
    }
}

impl std::ops::Deref for PlainBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for PlainBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

impl Drop for PlainBuf {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plaintext mapping carries `dd` (don't dump) in its `VmFlags`.
    #[cfg(target_os = "linux")]
    #[test]
    fn excluded_from_core_dumps() {
        let b = PlainBuf::new(3 * 4096 + 5).unwrap();
        let start = format!("{:x}-", b.as_ptr() as usize);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&start));
        assert!(lines.next().is_some(), "mapping not found in smaps");
        let flags = lines
            .find(|l| l.starts_with("VmFlags:"))
            .expect("VmFlags line");
        assert!(
            flags.split_whitespace().any(|f| f == "dd"),
            "not marked MADV_DONTDUMP: {flags}"
        );
    }

    #[test]
    fn zeroed_and_writable() {
        for len in [0, 1, 4097] {
            let mut b = PlainBuf::new(len).unwrap();
            assert_eq!(b.len(), len);
            assert!(b.iter().all(|&x| x == 0));
            b.fill(7);
            assert!(b.iter().all(|&x| x == 7));
        }
    }
}
