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
//! - the certificate has the shape of RFC 5280 §4.1, element by element and nothing else:
//!   `SEQUENCE { TBSCertificate, AlgorithmIdentifier, BIT STRING }`, the `TBSCertificate` fields
//!   in order (an explicit version only when not v1, the DER default; optional unique ids and
//!   extensions), names as `SEQUENCE OF SET OF SEQUENCE { OID, value }`, a validity of two times,
//!   extensions as `SEQUENCE { OID, [BOOLEAN TRUE], OCTET STRING }` (DER omits a default
//!   `critical FALSE`); and its outer `signatureAlgorithm` is byte-for-byte the
//!   `TBSCertificate.signature` it signed (RFC 5280 §4.1.1.2).
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

const CONTEXT: u8 = 2;
const OCTET_STRING: u32 = 4;

fn shape(ok: bool, what: &'static str) -> Result<(), DerError> {
    if ok {
        Ok(())
    } else {
        Err(DerError::Shape(what))
    }
}

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OBJECT IDENTIFIER, parameters ANY OPTIONAL }`.
fn check_algorithm(alg: &Tlv<'_>) -> Result<(), DerError> {
    let parts = children(alg)?;
    shape(
        alg.is(UNIVERSAL, true, SEQUENCE)
            && matches!(parts.len(), 1 | 2)
            && parts[0].is(UNIVERSAL, false, OID),
        "AlgorithmIdentifier is not SEQUENCE { OID, [parameters] }",
    )
}

/// `Name ::= SEQUENCE OF SET OF SEQUENCE { type OBJECT IDENTIFIER, value ANY }`.
fn check_name(name: &Tlv<'_>) -> Result<(), DerError> {
    shape(name.is(UNIVERSAL, true, SEQUENCE), "Name is not a SEQUENCE")?;
    for rdn in children(name)? {
        shape(rdn.is(UNIVERSAL, true, SET), "RDN is not a SET")?;
        let atvs = children(&rdn)?;
        shape(!atvs.is_empty(), "RDN is empty")?;
        for atv in atvs {
            let parts = children(&atv)?;
            shape(
                atv.is(UNIVERSAL, true, SEQUENCE)
                    && parts.len() == 2
                    && parts[0].is(UNIVERSAL, false, OID),
                "AttributeTypeAndValue is not SEQUENCE { OID, value }",
            )?;
        }
    }
    Ok(())
}

/// `Validity ::= SEQUENCE { notBefore Time, notAfter Time }`.
fn check_validity(validity: &Tlv<'_>) -> Result<(), DerError> {
    let times = children(validity)?;
    let time =
        |t: &Tlv<'_>| t.is(UNIVERSAL, false, UTC_TIME) || t.is(UNIVERSAL, false, GENERALIZED_TIME);
    shape(
        validity.is(UNIVERSAL, true, SEQUENCE) && times.len() == 2 && times.iter().all(time),
        "Validity is not SEQUENCE { Time, Time }",
    )
}

/// `SubjectPublicKeyInfo ::= SEQUENCE { AlgorithmIdentifier, BIT STRING }`.
fn check_spki(spki: &Tlv<'_>) -> Result<(), DerError> {
    let parts = children(spki)?;
    shape(
        spki.is(UNIVERSAL, true, SEQUENCE)
            && parts.len() == 2
            && parts[1].is(UNIVERSAL, false, BIT_STRING),
        "SubjectPublicKeyInfo is not SEQUENCE { AlgorithmIdentifier, BIT STRING }",
    )?;
    check_algorithm(&parts[0])
}

/// `[3] EXPLICIT SEQUENCE SIZE (1..MAX) OF SEQUENCE { extnID OID, critical BOOLEAN DEFAULT
/// FALSE, extnValue OCTET STRING }`: DER omits the default, so a present `critical` is TRUE.
fn check_extensions(wrapper: &Tlv<'_>) -> Result<(), DerError> {
    let [list] = children(wrapper)?[..] else {
        return Err(DerError::Shape("[3] does not hold exactly one SEQUENCE"));
    };
    let extensions = children(&list)?;
    shape(
        list.is(UNIVERSAL, true, SEQUENCE) && !extensions.is_empty(),
        "Extensions is not a non-empty SEQUENCE",
    )?;
    for ext in extensions {
        let parts = children(&ext)?;
        let ok = ext.is(UNIVERSAL, true, SEQUENCE)
            && match parts.as_slice() {
                [oid, value] => {
                    oid.is(UNIVERSAL, false, OID) && value.is(UNIVERSAL, false, OCTET_STRING)
                }
                [oid, critical, value] => {
                    oid.is(UNIVERSAL, false, OID)
                        && critical.is(UNIVERSAL, false, BOOLEAN)
                        && critical.content == [0xff]
                        && value.is(UNIVERSAL, false, OCTET_STRING)
                }
                _ => false,
            };
        shape(
            ok,
            "Extension is not SEQUENCE { OID, [critical TRUE], OCTET STRING }",
        )?;
    }
    Ok(())
}

/// The `TBSCertificate` fields, in order, and nothing after them. Returns the `signature`
/// AlgorithmIdentifier's encoding.
fn check_tbs<'a>(tbs: &Tlv<'a>) -> Result<&'a [u8], DerError> {
    let fields = children(tbs)?;
    let mut rest = fields.as_slice();
    let mut take = |ok: &dyn Fn(&Tlv<'a>) -> bool| -> Option<Tlv<'a>> {
        let (first, tail) = rest.split_first()?;
        if ok(first) {
            rest = tail;
            Some(*first)
        } else {
            None
        }
    };
    if let Some(version) = take(&|f| f.is(CONTEXT, true, 0)) {
        // [0] EXPLICIT Version DEFAULT v1: present only for v2 (1) or v3 (2).
        let inner = children(&version)?;
        shape(
            matches!(inner.as_slice(), [v] if v.is(UNIVERSAL, false, INTEGER) && matches!(v.content, [1] | [2])),
            "version is not v2 or v3 (DER omits the v1 default)",
        )?;
    }
    let serial = take(&|f| f.is(UNIVERSAL, false, INTEGER));
    let signature = take(&|f| f.is(UNIVERSAL, true, SEQUENCE));
    let (Some(_), Some(signature)) = (serial, signature) else {
        return Err(DerError::Shape(
            "TBSCertificate does not start with serialNumber and signature",
        ));
    };
    check_algorithm(&signature)?;
    let issuer = take(&|_| true).ok_or(DerError::Shape("no issuer"))?;
    check_name(&issuer)?;
    let validity = take(&|_| true).ok_or(DerError::Shape("no validity"))?;
    check_validity(&validity)?;
    let subject = take(&|_| true).ok_or(DerError::Shape("no subject"))?;
    check_name(&subject)?;
    let spki = take(&|_| true).ok_or(DerError::Shape("no subjectPublicKeyInfo"))?;
    check_spki(&spki)?;
    let _issuer_unique_id = take(&|f| f.is(CONTEXT, false, 1));
    let _subject_unique_id = take(&|f| f.is(CONTEXT, false, 2));
    if let Some(extensions) = take(&|f| f.is(CONTEXT, true, 3)) {
        check_extensions(&extensions)?;
    }
    shape(
        rest.is_empty(),
        "TBSCertificate has elements after its extensions",
    )?;
    Ok(signature.raw)
}

/// Checks that `der` is exactly one X.509 certificate in DER form, shaped as RFC 5280 says, and
/// that its outer `signatureAlgorithm` equals the `TBSCertificate.signature` it signed (see the
/// module documentation for every rule).
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
    check_algorithm(&outer_alg)?;
    let inner_alg = check_tbs(&tbs)?;
    if inner_alg != outer_alg.raw {
        return Err(DerError::AlgorithmMismatch);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::der_writer as w;

    /// A certificate-shaped value (unsigned): `value` sits in the subject's one attribute, where
    /// any type may appear.
    fn cert(value: &[u8], outer_alg: &[u8]) -> Vec<u8> {
        let alg = alg();
        let name = |v: &[u8]| w::seq(&[&w::set(&[&w::seq(&[&w::oid(&[2, 5, 4, 3]), v])])]);
        let tbs = w::seq(&[
            &w::explicit(0, &w::uint(&[2])),
            &w::uint(&[5]),
            &alg,
            &name(&w::utf8("issuer")),
            &w::seq(&[&w::time(1_700_000_000), &w::time(1_800_000_000)]),
            &name(value),
            &w::seq(&[&alg, &w::bit_string(&[4, 1, 2])]),
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
            check_certificate(&cert(&w::utf8("x"), &other)),
            Err(DerError::AlgorithmMismatch)
        );
    }

    #[test]
    fn ber_forms_are_refused() {
        let good = cert(&w::utf8("x"), &alg());
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
    fn the_x509_shape_is_checked() {
        let good = cert(&w::utf8("x"), &alg());
        check_certificate(&good).unwrap();
        // Rebuild with one field changed.
        let tbs_with = |fields: &[&[u8]]| w::seq(&[&w::seq(fields), &alg(), &w::bit_string(&[1])]);
        let name = w::seq(&[&w::set(&[&w::seq(&[
            &w::oid(&[2, 5, 4, 3]),
            &w::utf8("n"),
        ])])]);
        let validity = w::seq(&[&w::time(1_700_000_000), &w::time(1_800_000_000)]);
        let spki = w::seq(&[&alg(), &w::bit_string(&[4, 1, 2])]);
        let v3 = w::explicit(0, &w::uint(&[2]));
        let v1 = w::explicit(0, &w::uint(&[0]));
        let serial = w::uint(&[5]);
        let ext = |critical: Option<bool>| {
            let oid = w::oid(&[2, 5, 29, 19]);
            let value = w::octet_string(&w::seq(&[]));
            let mut parts: Vec<Vec<u8>> = vec![oid];
            if let Some(c) = critical {
                parts.push(w::boolean(c));
            }
            parts.push(value);
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            w::explicit(3, &w::seq(&[&w::seq(&refs)]))
        };
        let alg_bytes = alg();
        let base: Vec<&[u8]> = vec![&v3, &serial, &alg_bytes, &name, &validity, &name, &spki];
        let with_ext_true = ext(Some(true));
        let with_ext_false = ext(Some(false));
        let with_ext = ext(None);
        let extra = w::tlv(0x05, &[]);
        let ok_cases: Vec<Vec<&[u8]>> = vec![
            base.clone(),
            // v1: the version omitted.
            base[1..].to_vec(),
            [&base[..], &[with_ext.as_slice()]].concat(),
            [&base[..], &[with_ext_true.as_slice()]].concat(),
        ];
        for fields in ok_cases {
            check_certificate(&tbs_with(&fields)).unwrap();
        }
        let bad_cases: Vec<(Vec<&[u8]>, &str)> = vec![
            ([&base[..], &[extra.as_slice()]].concat(), "extra element"),
            (
                [&base[..], &[with_ext_false.as_slice()]].concat(),
                "critical FALSE",
            ),
            ([&[v1.as_slice()], &base[1..]].concat(), "explicit v1"),
            (base[2..].to_vec(), "no serial"),
            (
                vec![&v3, &serial, &alg_bytes, &name, &name, &name, &spki],
                "validity",
            ),
        ];
        for (fields, what) in bad_cases {
            assert!(
                matches!(
                    check_certificate(&tbs_with(&fields)),
                    Err(DerError::Shape(_))
                ),
                "{what}"
            );
        }
    }

    #[test]
    fn truncation_anywhere_is_refused() {
        let good = cert(&w::boolean(false), &alg());
        for n in 0..good.len() {
            assert!(check_certificate(&good[..n]).is_err(), "{n}");
        }
    }
}
