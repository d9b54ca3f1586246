//! OpenAI-compatible wire types, shared with the enclave (defined once in
//! [`confidant_attestation::openai`]).
pub use confidant_attestation::openai::*;
