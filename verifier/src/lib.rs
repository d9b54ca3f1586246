//! `confidant-verifier`: the service that decides which enclave may have which model key.
//!
//! Flow of `POST /v1/attest` (see [`appraise`]): nonce ([`nonce`]) → evidence verification and
//! binding (`confidant_attestation::verify`) → policy appraisal ([`policy_store`]) → durable audit
//! entry (`audit_store`) → signed result, leaf certificate, HPKE-wrapped model key ([`keys`]).
#![forbid(unsafe_code)]

pub mod config;
pub mod init;
pub mod keys;
pub mod nonce;
pub mod policy_store;
