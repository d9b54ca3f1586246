//! The buffer the quantised weights live in.

use zeroize::Zeroize;

/// Anonymous memory for the weights, filled once at load and read on every token.
///
/// - Backed by transparent huge pages where the kernel offers them (`MADV_HUGEPAGE`, asked before
///   the first write): decode streams every weight once per token, and with 4 KiB pages each
///   token walks the page tables ~37,000 times for a 150 MB model.
/// - `MADV_DONTDUMP`: a core dump of the enclave does not carry the weights.
/// - Zeroized when dropped (the part written).
///
/// The mapping reserves `capacity` bytes (the GGUF file's size, an upper bound); pages past what
/// is written are never touched, so they cost address space, not memory.
pub(super) struct WeightBuf {
    map: memmap2::MmapMut,
    len: usize,
}

impl WeightBuf {
    pub(super) fn with_capacity(capacity: usize) -> std::io::Result<Self> {
        let map = memmap2::MmapOptions::new()
            .len(capacity.max(1))
            .map_anon()?;
        #[cfg(target_os = "linux")]
        {
            // Best effort: without transparent huge pages the weights still work, on 4 KiB pages.
            let _ = map.advise(memmap2::Advice::HugePage);
            map.advise(memmap2::Advice::DontDump)?;
        }
        Ok(Self { map, len: 0 })
    }

    /// Appends `data`; `None` if it does not fit in the capacity.
    pub(super) fn push(&mut self, data: &[u8]) -> Option<usize> {
        let at = self.len;
        let end = at.checked_add(data.len())?;
        self.map.get_mut(at..end)?.copy_from_slice(data);
        self.len = end;
        Some(at)
    }
}

impl std::ops::Deref for WeightBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[..self.len]
    }
}

impl Drop for WeightBuf {
    fn drop(&mut self) {
        self.map[..self.len].zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_within_capacity_and_refuses_beyond() {
        let mut b = WeightBuf::with_capacity(10).unwrap();
        assert_eq!(b.push(&[1, 2, 3]), Some(0));
        assert_eq!(b.push(&[4; 7]), Some(3));
        assert_eq!(&b[..4], &[1, 2, 3, 4]);
        assert_eq!(b.len(), 10);
        assert_eq!(b.push(&[5]), None);
        assert_eq!(b.len(), 10);
    }
}
