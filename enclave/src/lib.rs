//! `confidant-enclave`: the inference service inside the confidential VM.
//!
//! Flow (read in this order): [`config`] → [`supervisor::Enclave::start`] generates the TLS key
//! ([`keys`]) and opens the TEE ([`tee`]) → [`boot::attest`] talks to the verifier
//! ([`verifier_client`]) and yields a verified [`boot::Attestation`] → [`boot::release_model`]
//! unwraps the key and unseals the model in memory → [`boot::load_engine`] loads it into the
//! inference engine (`confidant_engine`) → [`api`] serves the OpenAI-compatible routes over the attested certificate, with
//! admission control in [`limits`] and counters in [`metrics`] → the supervisor re-attests before
//! the certificate expires. A refusal by the verifier is logged with what to do about it
//! ([`hints`]). The binary splits the start at the point where the model is unsealed
//! in memory ([`supervisor::Enclave::boot`]) and confines the process there ([`lockdown`]) before
//! it serves ([`supervisor::Enclave::serve`]).
#![forbid(unsafe_code)]

pub mod api;
pub mod boot;
pub mod config;
pub mod hints;
pub mod keys;
pub mod limits;
pub mod lockdown;
pub mod metrics;
pub mod supervisor;
pub mod tee;
pub mod tee_gate;
pub mod verifier_client;
