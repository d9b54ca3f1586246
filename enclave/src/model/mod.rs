//! The language model: bundle loading, chat formatting, sampling and the inference engine.
//!
//! Nothing in this module logs prompt or output text.

pub mod bundle;
pub mod chat;
pub mod config;
pub mod engine;
pub mod error;
mod gguf_tokenizer;
pub mod prepare;
pub mod sampling;
mod stream;

pub use bundle::BundleFiles;
pub use chat::{ChatMessage, Role};
pub use config::ModelConfig;
pub use engine::{
    Engine, EngineLimits, FinishReason, GenerateRequest, GenerationOutput, Prompt, TokenEvent,
};
pub use error::ModelError;
pub use sampling::SamplingParams;
