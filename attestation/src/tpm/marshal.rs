//! Bounded big-endian reader for TPM 2.0 marshalled structures (TPM 2.0 Part 1, §18 "Data
//! Marshalling": integers are big-endian; a `TPM2B_*` is a 16-bit size followed by that many bytes).
//!
//! Every read checks the remaining length first, so truncated or hostile input yields
//! [`TpmError::Truncated`] and never a panic.

use super::TpmError;

/// A cursor over untrusted bytes.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Reader { rest: bytes }
    }

    /// Takes exactly `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], TpmError> {
        if n > self.rest.len() {
            return Err(TpmError::Truncated { what });
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], TpmError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, TpmError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, TpmError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, TpmError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, TpmError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A `TPM2B_*`: 16-bit size, then the buffer, which may hold at most `max` bytes (the size
    /// of the union the TPM2B wraps, Part 2 §10.4).
    pub(crate) fn tpm2b(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], TpmError> {
        let size = usize::from(self.u16(what)?);
        if size > max {
            return Err(TpmError::Malformed { what });
        }
        self.bytes(size, what)
    }

    /// Ends parsing: the structure must have consumed every byte.
    pub(crate) fn finish(self, what: &'static str) -> Result<(), TpmError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(TpmError::TrailingBytes {
                what,
                count: self.rest.len(),
            })
        }
    }
}

/// Rejects inputs over `max` bytes before parsing starts.
pub(crate) fn bounded(bytes: &[u8], max: usize, what: &'static str) -> Result<(), TpmError> {
    if bytes.len() > max {
        Err(TpmError::TooLarge {
            what,
            len: bytes.len(),
        })
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_big_endian_and_stops_at_the_end() {
        let mut r = Reader::new(&[0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
        assert_eq!(r.u16("a").unwrap(), 0x0102);
        assert_eq!(r.u32("b").unwrap(), 0x0304_0506);
        assert!(matches!(r.u16("c"), Err(TpmError::Truncated { what: "c" })));
        // A failed read consumes nothing.
        assert_eq!(r.u8("d").unwrap(), 0x07);
        r.finish("e").unwrap();
    }

    #[test]
    fn tpm2b_is_bounded() {
        let mut r = Reader::new(&[0x00, 0x03, 1, 2, 3]);
        assert!(matches!(r.tpm2b(2, "x"), Err(TpmError::Malformed { .. })));
        let mut r = Reader::new(&[0x00, 0x03, 1, 2]);
        assert!(matches!(r.tpm2b(8, "x"), Err(TpmError::Truncated { .. })));
        let mut r = Reader::new(&[0x00, 0x02, 1, 2, 9]);
        assert_eq!(r.tpm2b(8, "x").unwrap(), &[1, 2]);
        assert!(matches!(
            r.finish("x"),
            Err(TpmError::TrailingBytes { count: 1, .. })
        ));
    }
}
