//! `confidant_engine`: Confidant's inference engine — bundle loading, chat formatting, sampling,
//! and the forward pass.
//!
//! Two backends run the same bundle: the native engine ([`Backend::Native`], this crate's own
//! transformer over the SIMD kernels of `confidant_kernels`), which the enclave serves with, and
//! candle's `quantized_llama` ([`Backend::Candle`]), kept as the reference the native engine is
//! compared against.
//!
//! Everything takes bytes (the enclave holds the model only as its unsealed in-memory buffer);
//! [`BundleFiles::read_dir`] exists for tools and tests. Nothing in this crate logs prompt or
//! output text.
#![forbid(unsafe_code)]

pub mod bundle;
pub mod chat;
pub mod config;
pub mod engine;
pub mod error;
mod native;
pub mod sampling;
mod stream;

pub use bundle::BundleFiles;
pub use chat::{ChatMessage, Role};
pub use config::ModelConfig;
pub use engine::{
    Backend, Engine, EngineLimits, EngineOptions, FinishReason, GenerateRequest, GenerationOutput,
    Prompt, Session, TokenEvent, default_threads,
};
pub use error::ModelError;
pub use sampling::SamplingParams;
