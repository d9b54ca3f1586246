//! `confidant_attestation`: the verification core every Confidant program reads alike.
//!
//! The flow, in the order the types enforce it:
//!
//! 1. [`evidence::Evidence`] arrives as CBOR bytes ([`evidence::Evidence::from_cbor`], size-bounded).
//! 2. [`verify::verify_evidence`] checks it cryptographically against [`verify::TrustAnchors`]
//!    (one module per TEE: [`snp`], [`tpm`]) and yields [`verify::VerifiedEvidence`] — the only way
//!    to obtain one.
//! 3. [`verify::VerifiedEvidence::bind`] checks `report_data` / `extraData` against the
//!    [`binding::Binding`] the caller expects and yields [`verify::BoundEvidence`].
//! 4. [`policy::Policy::appraise`] checks the bound evidence against reference values for one model
//!    and yields [`policy::Appraisal`], which is what key release, certificate issuance and a client's
//!    first request accept.
//! 5. [`result`] signs the appraisal as a CWT in COSE_Sign1; clients verify it.
//!
//! No I/O, no clock reads: callers pass bytes and the current time.
#![forbid(unsafe_code)]

pub mod audit;
pub mod binding;
pub mod certext;
pub mod der_writer;
pub mod evidence;
pub mod keywrap;
pub mod leafcert;
pub mod modelkey;
pub mod policy;
pub mod result;
pub mod snp;
pub mod tpm;
pub mod verify;
pub mod vmimage;
