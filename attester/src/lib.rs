//! Evidence producers for the enclave.
pub mod error;
pub mod snp_device;
pub mod snp_sim;
pub mod tpm;
