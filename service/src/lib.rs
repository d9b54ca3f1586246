//! Plumbing shared by the Confidant services (verifier and enclave): HTTPS serving with a
//! swappable certificate and per-connection TLS exporter, bearer JWT auth (ES256) with roles,
//! per-principal rate limits, JSON errors, secret loading and logging.
//!
//! Nothing here knows about attestation; the services plug their handlers into an axum
//! `Router`, pass it through [`app::harden`] and serve it with [`server::serve`].
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod config;
pub mod content_type;
pub mod deadline;
pub mod error;
pub mod jwt;
pub mod logsafe;
pub mod ratelimit;
pub mod secrets;
pub mod server;
pub mod telemetry;
pub mod tls;

pub use app::harden;
pub use auth::{Forbidden, Principal, RequireAuth, require_role};
pub use error::ApiError;
pub use jwt::{AuthError, JwtIssuer, JwtVerifier};
pub use ratelimit::{RateLimited, RateLimits};
pub use secrets::{Secret, SecretSource, load_secret, write_secret_file};
pub use server::{ConnectionInfo, ServeOptions, ServerHandle, ServerTimeouts, serve};
pub use tls::{CertResolver, server_config};
