//! `confidant_attestation`: the verification core every Confidant program reads alike.
//!
//! The flow, in the order the types enforce it:
//!
//! 1. Evidence bytes from outside enter through one gate, [`evidence::ReceivedEvidence::decode`]
//!    (size-bounded, canonical CBOR only; the evidence digest is SHA-256 over the bytes received).
//! 2. [`verify::verify_evidence`] checks it cryptographically against [`verify::TrustAnchors`] at
//!    the time the caller passes ([`time::UnixTime`]) — one module per TEE ([`snp`], [`tpm`])
//!    behind one trait — and yields [`verify::VerifiedEvidence`], recording which root or key
//!    vouched for it. It is the only way to obtain one.
//! 3. [`verify::VerifiedEvidence::bind`] checks `report_data` / `extraData` against a
//!    [`binding::Binding`] computed from its inputs and yields [`verify::BoundEvidence`], which
//!    remembers them (nonce, TLS key, wrapping key or exporter, model digest) and carries the
//!    purpose in its type. Evidence checked against a raw value
//!    ([`verify::VerifiedEvidence::bind_exact`]) is a different type.
//! 4. [`policy::Policy::appraise`] checks the bound evidence — its model digest first — against
//!    reference values for one model and yields [`policy::Appraisal`]. Clients run the same
//!    engine on their own policy.
//! 5. [`result::ResultSigner::sign_appraisal`] signs a key-release appraisal as a CWT in
//!    COSE_Sign1; from that signed result, and nothing else, [`leafcert::CertificateAuthority::issue`]
//!    issues a certificate and [`keywrap::release`] wraps a model key.
//!
//! No I/O, no clock reads: callers pass bytes and the current time.
#![forbid(unsafe_code)]

pub mod audit;
pub mod binding;
pub mod certext;
pub mod der_strict;
pub mod der_writer;
pub mod digest;
pub mod evidence;
pub mod keywrap;
pub mod leafcert;
pub mod modelkey;
pub mod names;
pub mod policy;
pub mod result;
pub mod snp;
pub mod time;
pub mod tpm;
pub mod verify;
pub mod vmimage;
