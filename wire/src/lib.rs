//! `confidant_wire`: what the Confidant programs send each other over HTTP, defined once for
//! both ends.
//!
//! - [`routes`]: every route path of the verifier and the enclave, used by the servers' routers
//!   and by every client.
//! - [`attest`]: the attestation protocol's bodies (challenge, attest, TPM credential, session
//!   evidence).
//! - [`openai`]: the OpenAI-compatible request and reply types the enclave serves.
//! - [`error`]: the JSON error body of every API.
//! - [`admin`]: the verifier's admin, auditor and public-key replies.
//!
//! Pure data: serde types and constants, no I/O.
#![forbid(unsafe_code)]

pub mod admin;
pub mod attest;
pub mod error;
pub mod openai;
pub mod routes;
