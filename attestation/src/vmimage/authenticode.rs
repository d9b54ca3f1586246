//! Authenticode SHA-256 of a PE/COFF image (Microsoft "Windows Authenticode Portable Executable
//! Signature Format"): the headers up to `SizeOfHeaders` without the `CheckSum` field and the
//! Certificate Table directory entry, then each section's raw data sorted by `PointerToRawData`,
//! then any data after the last section except the attribute certificate table.
//!
//! The input is untrusted: every offset is bounds-checked, errors are values, nothing panics.

use sha2::{Digest, Sha256};

/// Why an image has no Authenticode digest.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthenticodeError {
    #[error("not a PE image: {0}")]
    NotPe(&'static str),
    #[error("PE image truncated or inconsistent: {0}")]
    Malformed(&'static str),
}

fn le16(b: &[u8], off: usize) -> Result<u16, AuthenticodeError> {
    b.get(
        off..off
            .checked_add(2)
            .ok_or(AuthenticodeError::Malformed("offset"))?,
    )
    .map(|s| u16::from_le_bytes([s[0], s[1]]))
    .ok_or(AuthenticodeError::Malformed("field beyond end of file"))
}

fn le32(b: &[u8], off: usize) -> Result<u32, AuthenticodeError> {
    b.get(
        off..off
            .checked_add(4)
            .ok_or(AuthenticodeError::Malformed("offset"))?,
    )
    .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
    .ok_or(AuthenticodeError::Malformed("field beyond end of file"))
}

fn range(b: &[u8], start: usize, end: usize) -> Result<&[u8], AuthenticodeError> {
    if start > end {
        return Err(AuthenticodeError::Malformed("range"));
    }
    b.get(start..end)
        .ok_or(AuthenticodeError::Malformed("range beyond end of file"))
}

/// At most this many sections (the PE format's own limit is 96).
const MAX_SECTIONS: usize = 96;

/// The Authenticode SHA-256 of `image`, as `pesign -h` and OVMF compute it.
pub fn authenticode_sha256(image: &[u8]) -> Result<[u8; 32], AuthenticodeError> {
    if image.get(0..2) != Some(b"MZ") {
        return Err(AuthenticodeError::NotPe("no MZ signature"));
    }
    let pe = le32(image, 0x3c)? as usize;
    if image.get(pe..pe.saturating_add(4)) != Some(b"PE\0\0") {
        return Err(AuthenticodeError::NotPe("no PE signature"));
    }
    let coff = pe + 4;
    let nsections = le16(image, coff + 2)? as usize;
    let opt_size = le16(image, coff + 16)? as usize;
    let opt = coff + 20;
    let magic = le16(image, opt)?;
    // Offsets within the optional header of NumberOfRvaAndSizes and the data directories.
    let (nrva_off, dd_off) = match magic {
        0x10b => (92, 96),
        0x20b => (108, 112),
        _ => return Err(AuthenticodeError::NotPe("unknown optional header magic")),
    };
    let checksum = opt + 64;
    let size_of_headers = le32(image, opt + 60)? as usize;
    let nrva = le32(image, opt + nrva_off)? as usize;
    if dd_off + nrva.min(16) * 8 > opt_size {
        return Err(AuthenticodeError::Malformed(
            "data directories beyond optional header",
        ));
    }
    // Certificate Table: data directory 4 (file offset + size, not an RVA).
    let (cert_entry, cert_off, cert_size) = if nrva > 4 {
        let e = opt + dd_off + 4 * 8;
        (
            Some(e),
            le32(image, e)? as usize,
            le32(image, e + 4)? as usize,
        )
    } else {
        (None, 0, 0)
    };
    if size_of_headers > image.len() || size_of_headers < checksum + 4 {
        return Err(AuthenticodeError::Malformed("SizeOfHeaders"));
    }

    let mut h = Sha256::new();
    h.update(range(image, 0, checksum)?);
    match cert_entry {
        Some(e) => {
            if e + 8 > size_of_headers {
                return Err(AuthenticodeError::Malformed(
                    "certificate entry beyond headers",
                ));
            }
            h.update(range(image, checksum + 4, e)?);
            h.update(range(image, e + 8, size_of_headers)?);
        }
        None => h.update(range(image, checksum + 4, size_of_headers)?),
    }

    if nsections > MAX_SECTIONS {
        return Err(AuthenticodeError::Malformed("too many sections"));
    }
    let table = opt + opt_size;
    let mut sections = Vec::with_capacity(nsections);
    for i in 0..nsections {
        let s = table + i * 40;
        let raw_size = le32(image, s + 16)? as usize;
        let raw_ptr = le32(image, s + 20)? as usize;
        if raw_size != 0 {
            sections.push((raw_ptr, raw_size));
        }
    }
    sections.sort_unstable();
    let mut sum_of_bytes = size_of_headers;
    for &(ptr, size) in &sections {
        let end = ptr
            .checked_add(size)
            .ok_or(AuthenticodeError::Malformed("section size"))?;
        h.update(range(image, ptr, end)?);
        sum_of_bytes = sum_of_bytes
            .checked_add(size)
            .ok_or(AuthenticodeError::Malformed("section size"))?;
    }

    if image.len() > sum_of_bytes {
        let extra_end = if cert_size != 0 {
            let cert_end = cert_off
                .checked_add(cert_size)
                .ok_or(AuthenticodeError::Malformed("certificate table size"))?;
            if cert_off < sum_of_bytes || cert_end > image.len() {
                return Err(AuthenticodeError::Malformed(
                    "certificate table out of range",
                ));
            }
            image.len() - cert_size
        } else {
            image.len()
        };
        if extra_end > sum_of_bytes {
            h.update(range(image, sum_of_bytes, extra_end)?);
        }
    }
    Ok(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_garbage_without_panicking() {
        assert!(matches!(
            authenticode_sha256(b""),
            Err(AuthenticodeError::NotPe(_))
        ));
        assert!(authenticode_sha256(b"MZ").is_err());
        let mut img = vec![0u8; 0x100];
        img[0..2].copy_from_slice(b"MZ");
        img[0x3c] = 0x80;
        img[0x80..0x84].copy_from_slice(b"PE\0\0");
        assert!(authenticode_sha256(&img).is_err());
        img[0x3c] = 0xff;
        img[0x3d] = 0xff;
        img[0x3e] = 0xff;
        img[0x3f] = 0xff;
        assert!(authenticode_sha256(&img).is_err());
    }
}
