//! `confidant-verifier`: the service that decides which enclave may have which model key.
//!
//! Flow of `POST /v1/attest` ([`appraise::decide`]): nonce ([`nonce`]) → evidence verification
//! and binding (`confidant_attestation::verify`) → policy appraisal ([`policy_store`]) → signed
//! result, leaf certificate, HPKE-wrapped model key ([`keys`]) → durable audit entry
//! ([`audit_log`] over [`audit_store`]) → reply. Routes in [`api`], state in [`state`], start-up
//! in [`server`], configuration in [`config`], `init` in [`init`], the public key document
//! (`GET /v1/keys`) in [`public_keys`].
#![forbid(unsafe_code)]

pub mod activation;
pub mod api;
pub mod appraise;
pub mod audit_log;
pub mod audit_store;
pub mod config;
pub mod error;
pub mod init;
pub mod keys;
pub mod nonce;
pub mod policy_store;
pub mod public_keys;
pub mod server;
pub mod state;

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix() -> u64 {
    now_unix_ms() / 1000
}

/// Milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
