//! Strict DER (ITU-T X.690 §10, the Distinguished Encoding Rules) for certificates received from
//! outside: the AMD chain in SEV-SNP evidence (VCEK/VLEK, ASK/ASVK, ARK), TPM EK certificates and
//! the EK CAs a policy lists.
//!
//! `x509-parser` accepts some BER (non-minimal lengths and integers, among others), and a
//! certificate's outer wrapper — the `signatureAlgorithm` and `signatureValue` around the signed
//! `TBSCertificate` — is not covered by its signature. A lenient parser therefore lets anyone turn
//! one valid certificate into many valid byte strings, each a different evidence digest, and
//! invites parser differentials with the tools a relying party checks the same bytes with. Every
//! certificate is walked here first, and refused unless every element is in DER form:
//!
//! - definite lengths in their shortest form, tags in their shortest form, no trailing bytes at
//!   any level, nesting at most [`MAX_DEPTH`] deep;
//! - `SEQUENCE` and `SET` constructed, every other universal type primitive (DER forbids
//!   constructed strings), `SET OF` elements in ascending order (X.690 §11.6);
//! - `BOOLEAN` is one byte `00` or `FF`; `INTEGER` and `ENUMERATED` are minimal; `BIT STRING`
//!   declares at most 7 unused bits and they are zero; `NULL` is empty; object identifiers have
//!   minimal sub-identifiers; `UTCTime` is `YYMMDDHHMMSSZ` and `GeneralizedTime`
//!   `YYYYMMDDHHMMSSZ` (RFC 5280 §4.1.2.5);
//! - the certificate is `SEQUENCE { TBSCertificate, AlgorithmIdentifier, BIT STRING }` and its
//!   outer `signatureAlgorithm` is byte-for-byte the `TBSCertificate.signature` it signed
//!   (RFC 5280 §4.1.1.2).
//!
//! The contents of `OCTET STRING`s (extension values) are not walked: the code that decodes an
//! extension checks its encoding.

/// Deepest nesting accepted (certificates nest about 8 deep).
pub const MAX_DEPTH: usize = 32;

/// Why bytes are not a DER certificate. `offset` is from the start of the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DerError {
    #[error("truncated at byte {0}")]
    Truncated(usize),
    #[error("indefinite length at byte {0}")]
    IndefiniteLength(usize),
    #[error("length not in its shortest form at byte {0}")]
    NonMinimalLength(usize),
    #[error("tag not in its shortest form at byte {0}")]
    NonMinimalTag(usize),
    #[error("{0} trailing bytes")]
    Trailing(usize),
    #[error("{what} at byte {offset} is not in DER form")]
    BadValue { what: &'static str, offset: usize },
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("not an X.509 certificate: {0}")]
    Shape(&'static str),
    #[error("the outer signatureAlgorithm is not the TBSCertificate.signature it signed")]
    AlgorithmMismatch,
}

const UNIVERSAL: u8 = 0;
const BOOLEAN: u32 = 1;
const INTEGER: u32 = 2;
const BIT_STRING: u32 = 3;
const NULL: u32 = 5;
const OID: u32 = 6;
const ENUMERATED: u32 = 10;
const RELATIVE_OID: u32 = 13;
const SEQUENCE: u32 = 16;
const SET: u32 = 17;
const UTC_TIME: u32 = 23;
const GENERALIZED_TIME: u32 = 24;

/// One decoded tag-length-value.
#[derive(Debug, Clone, Copy)]
struct Tlv<'a> {
    class: u8,
    constructed: bool,
    number: u32,
    /// Offset of the tag in the certificate.
    offset: usize,
    /// Offset of the content in the certificate.
    content_offset: usize,
    content: &'a [u8],
    /// The whole encoding (tag, length, content).
    raw: &'a [u8],
}

impl Tlv<'_> {
    fn is(&self, class: u8, constructed: bool, number: u32) -> bool {
        self.class == class && self.constructed == constructed && self.number == number
    }
}

/// Reads one TLV at the start of `input` (which starts at certificate offset `base`); returns it
/// and the rest.
fn read_tlv(input: &[u8], base: usize) -> Result<(Tlv<'_>, &[u8]), DerError> {
    let at = |i: usize| input.get(i).copied().ok_or(DerError::Truncated(base + i));
    let first = at(0)?;
    let class = first >> 6;
    let constructed = first & 0x20 != 0;
    let mut number = u32::from(first & 0x1f);
    let mut pos = 1;
    if number == 0x1f {
        // High tag number form: base-128, no leading 0x80, and only for numbers above 30.
        number = 0;
        for i in 0.. {
            let b = at(pos)?;
            if i == 0 && b == 0x80 {
                return Err(DerError::NonMinimalTag(base));
            }
            if i == 4 {
                return Err(DerError::BadValue {
                    what: "tag number",
                    offset: base,
                });
            }
            number = (number << 7) | u32::from(b & 0x7f);
            pos += 1;
            if b & 0x80 == 0 {
                break;
            }
        }
        if number < 0x1f {
            return Err(DerError::NonMinimalTag(base));
        }
    }
    let l = at(pos)?;
    pos += 1;
    let len = if l < 0x80 {
        usize::from(l)
    } else if l == 0x80 {
        return Err(DerError::IndefiniteLength(base));
    } else {
        let n = usize::from(l & 0x7f);
        if n > 4 {
            return Err(DerError::BadValue {
                what: "length",
                offset: base,
            });
        }
        let mut len = 0usize;
        for i in 0..n {
            let b = at(pos + i)?;
            if i == 0 && b == 0 {
                return Err(DerError::NonMinimalLength(base));
            }
            len = (len << 8) | usize::from(b);
        }
        pos += n;
        if len < 0x80 {
            return Err(DerError::NonMinimalLength(base));
        }
        len
    };
    let end = pos
        .checked_add(len)
        .filter(|e| *e <= input.len())
        .ok_or(DerError::Truncated(base + input.len()))?;
    let (raw, rest) = input.split_at(end);
    Ok((
        Tlv {
            class,
            constructed,
            number,
            offset: base,
            content_offset: base + pos,
            content: &raw[pos..],
            raw,
        },
        rest,
    ))
}

/// The elements of a constructed value, in order.
fn children<'a>(tlv: &Tlv<'a>) -> Result<Vec<Tlv<'a>>, DerError> {
    let mut out = Vec::new();
    let mut rest = tlv.content;
    let mut offset = tlv.content_offset;
    while !rest.is_empty() {
        let (child, next) = read_tlv(rest, offset)?;
        offset += child.raw.len();
        rest = next;
        out.push(child);
    }
    Ok(out)
}

fn bad(what: &'static str, tlv: &Tlv<'_>) -> DerError {
    DerError::BadValue {
        what,
        offset: tlv.offset,
    }
}

fn all_digits(bytes: &[u8]) -> bool {
    bytes.iter().all(u8::is_ascii_digit)
}

/// Checks one primitive universal value.
fn check_primitive(tlv: &Tlv<'_>) -> Result<(), DerError> {
    let c = tlv.content;
    let ok = match tlv.number {
        BOOLEAN => matches!(c, [0x00] | [0xff]),
        INTEGER | ENUMERATED => match c {
            [] => false,
            [0x00, next, ..] => next & 0x80 != 0,
            [0xff, next, ..] => next & 0x80 == 0,
            _ => true,
        },
        BIT_STRING => match c {
            [] => false,
            [0] => true,
            [unused, .., last] => *unused <= 7 && last & ((1u8 << unused) - 1) == 0,
            [_] => false,
        },
        NULL => c.is_empty(),
        OID | RELATIVE_OID => {
            let starts_ok = c
                .iter()
                .enumerate()
                .all(|(i, b)| *b != 0x80 || (i > 0 && c[i - 1] & 0x80 != 0));
            c.last().is_some_and(|b| b & 0x80 == 0) && starts_ok
        }
        UTC_TIME => c.len() == 13 && all_digits(&c[..12]) && c[12] == b'Z',
        GENERALIZED_TIME => c.len() == 15 && all_digits(&c[..14]) && c[14] == b'Z',
        // SEQUENCE and SET are always constructed.
        SEQUENCE | SET => false,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(bad(
            match tlv.number {
                BOOLEAN => "BOOLEAN",
                INTEGER => "INTEGER",
                ENUMERATED => "ENUMERATED",
                BIT_STRING => "BIT STRING",
                NULL => "NULL",
                OID | RELATIVE_OID => "OBJECT IDENTIFIER",
                UTC_TIME => "UTCTime",
                GENERALIZED_TIME => "GeneralizedTime",
                _ => "primitive SEQUENCE or SET",
            },
            tlv,
        ))
    }
}

/// X.690 §11.6: the encodings of a SET OF's elements in ascending order, the shorter padded with
/// zero bytes at the end.
fn in_set_order(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().max(b.len());
    let pad = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    for i in 0..n {
        match pad(a, i).cmp(&pad(b, i)) {
            std::cmp::Ordering::Less => return true,
            std::cmp::Ordering::Greater => return false,
            std::cmp::Ordering::Equal => {}
        }
    }
    true
}

/// Checks `tlv` and everything inside it.
fn walk(tlv: &Tlv<'_>, depth: usize) -> Result<(), DerError> {
    if depth > MAX_DEPTH {
        return Err(DerError::TooDeep);
    }
    if !tlv.constructed {
        return if tlv.class == UNIVERSAL {
            check_primitive(tlv)
        } else {
            Ok(())
        };
    }
    if tlv.class == UNIVERSAL && tlv.number != SEQUENCE && tlv.number != SET {
        return Err(bad("constructed string", tlv));
    }
    let elements = children(tlv)?;
    if tlv.class == UNIVERSAL && tlv.number == SET {
        for pair in elements.windows(2) {
            if !in_set_order(pair[0].raw, pair[1].raw) {
                return Err(bad("SET OF order", &pair[1]));
            }
        }
    }
    for child in &elements {
        walk(child, depth + 1)?;
    }
    Ok(())
}

/// Checks that `der` is exactly one X.509 certificate in DER form and that its outer
/// `signatureAlgorithm` equals the `TBSCertificate.signature` it signed (see the module
/// documentation for every rule).
pub fn check_certificate(der: &[u8]) -> Result<(), DerError> {
    let (cert, rest) = read_tlv(der, 0)?;
    if !rest.is_empty() {
        return Err(DerError::Trailing(rest.len()));
    }
    if !cert.is(UNIVERSAL, true, SEQUENCE) {
        return Err(DerError::Shape("not a SEQUENCE"));
    }
    walk(&cert, 0)?;
    let [tbs, outer_alg, signature] = children(&cert)?[..] else {
        return Err(DerError::Shape("Certificate is not three elements"));
    };
    if !tbs.is(UNIVERSAL, true, SEQUENCE)
        || !outer_alg.is(UNIVERSAL, true, SEQUENCE)
        || !signature.is(UNIVERSAL, false, BIT_STRING)
    {
        return Err(DerError::Shape(
            "Certificate is not TBSCertificate, AlgorithmIdentifier, BIT STRING",
        ));
    }
    let fields = children(&tbs)?;
    // TBSCertificate: [0] EXPLICIT version (optional), serialNumber, signature, …
    let skip = usize::from(fields.first().is_some_and(|f| f.is(2, true, 0)));
    let (Some(serial), Some(inner_alg)) = (fields.get(skip), fields.get(skip + 1)) else {
        return Err(DerError::Shape("TBSCertificate is too short"));
    };
    if !serial.is(UNIVERSAL, false, INTEGER) || !inner_alg.is(UNIVERSAL, true, SEQUENCE) {
        return Err(DerError::Shape(
            "TBSCertificate does not start with serialNumber and signature",
        ));
    }
    if inner_alg.raw != outer_alg.raw {
        return Err(DerError::AlgorithmMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::der_writer as w;

    /// A minimal certificate-shaped value: what the walker checks, not a valid certificate.
    fn cert(tbs_extra: &[u8], outer_alg: &[u8]) -> Vec<u8> {
        let alg = w::seq(&[&w::oid(&[1, 2, 840, 10045, 4, 3, 2])]);
        let tbs = w::seq(&[
            &w::explicit(0, &w::uint(&[2])),
            &w::uint(&[5]),
            &alg,
            tbs_extra,
        ]);
        w::seq(&[&tbs, outer_alg, &w::bit_string(&[1, 2, 3])])
    }

    fn alg() -> Vec<u8> {
        w::seq(&[&w::oid(&[1, 2, 840, 10045, 4, 3, 2])])
    }

    #[test]
    fn a_der_certificate_shape_passes() {
        check_certificate(&cert(&w::boolean(true), &alg())).unwrap();
    }

    #[test]
    fn outer_algorithm_must_equal_the_signed_one() {
        let other = w::seq(&[&w::oid(&[1, 2, 840, 10045, 4, 3, 3])]);
        assert_eq!(
            check_certificate(&cert(&[], &other)),
            Err(DerError::AlgorithmMismatch)
        );
    }

    #[test]
    fn ber_forms_are_refused() {
        let good = cert(&[], &alg());
        // Non-minimal long-form length on the outer SEQUENCE.
        let mut long = vec![0x30, 0x81, good[1]];
        long.extend_from_slice(&good[2..]);
        assert!(matches!(
            check_certificate(&long),
            Err(DerError::NonMinimalLength(0))
        ));
        // Indefinite length.
        let mut indefinite = vec![0x30, 0x80];
        indefinite.extend_from_slice(&good[2..]);
        indefinite.extend_from_slice(&[0, 0]);
        assert!(matches!(
            check_certificate(&indefinite),
            Err(DerError::IndefiniteLength(0))
        ));
        // Trailing bytes after the certificate.
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(check_certificate(&trailing), Err(DerError::Trailing(1)));
    }

    #[test]
    fn primitive_values_must_be_canonical() {
        let cases: &[(&[u8], &str)] = &[
            (&[0x01, 0x01, 0x01], "BOOLEAN"),
            (&[0x02, 0x02, 0x00, 0x05], "INTEGER"),
            (&[0x02, 0x02, 0xff, 0x85], "INTEGER"),
            (&[0x02, 0x00], "INTEGER"),
            (&[0x03, 0x02, 0x08, 0x00], "BIT STRING"),
            (&[0x03, 0x02, 0x01, 0x01], "BIT STRING"),
            (&[0x03, 0x01, 0x01], "BIT STRING"),
            (&[0x05, 0x01, 0x00], "NULL"),
            (&[0x06, 0x02, 0x80, 0x01], "OBJECT IDENTIFIER"),
            (&[0x06, 0x01, 0x81], "OBJECT IDENTIFIER"),
            (b"\x17\x0b2501010000Z", "UTCTime"),
            (b"\x18\x1120250101000000.5Z", "GeneralizedTime"),
            (&[0x10, 0x00], "primitive SEQUENCE or SET"),
        ];
        for (value, what) in cases {
            let got = check_certificate(&cert(value, &alg()));
            assert!(
                matches!(got, Err(DerError::BadValue { what: w, .. }) if w == *what),
                "{value:02x?}: {got:?}"
            );
        }
        // A constructed OCTET STRING (BER only).
        let constructed = [0x24, 0x03, 0x04, 0x01, 0x00];
        assert!(matches!(
            check_certificate(&cert(&constructed, &alg())),
            Err(DerError::BadValue {
                what: "constructed string",
                ..
            })
        ));
        // SET OF out of order.
        let set = w::set(&[&w::uint(&[2]), &w::uint(&[1])]);
        assert!(matches!(
            check_certificate(&cert(&set, &alg())),
            Err(DerError::BadValue {
                what: "SET OF order",
                ..
            })
        ));
        let sorted = w::set(&[&w::uint(&[1]), &w::uint(&[2])]);
        check_certificate(&cert(&sorted, &alg())).unwrap();
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        let good = cert(&w::boolean(false), &alg());
        for n in 0..good.len() {
            assert!(check_certificate(&good[..n]).is_err(), "{n}");
        }
    }
}
