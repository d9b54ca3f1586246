//! The language model: bundle loading, chat formatting, sampling and the inference engine.
//!
//! Nothing in this module logs prompt or output text.

pub mod bundle;
pub mod chat;
pub mod config;
pub mod engine;
pub mod error;
mod gguf_tokenizer;
mod native;
pub mod prepare;
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
