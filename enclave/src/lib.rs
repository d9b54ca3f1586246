//! Confidant's inference enclave: the model engine (and, once merged, the attested service).
#![forbid(unsafe_code)]

pub mod model;
