//! Evidence producers for the enclave.
