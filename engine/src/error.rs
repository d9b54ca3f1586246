//! Errors of the model layer. Variants never carry prompt or output text.

use thiserror::Error;

/// Boxed error of the `tokenizers` crate.
pub type TokenizerError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why loading the model or running a generation failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The weights buffer is not a GGUF file candle's llama loader accepts.
    #[error("model weights unreadable")]
    Weights(#[source] candle_core::Error),
    /// `tokenizer.json` did not parse.
    #[error("tokenizer unreadable")]
    Tokenizer(#[source] TokenizerError),
    /// `config.json` did not parse.
    #[error("model config unreadable")]
    Config(#[source] serde_json::Error),
    /// The bundle's parts disagree with each other or with what the engine supports.
    #[error("model bundle inconsistent: {0}")]
    Inconsistent(String),
    /// A chat message used a role other than system, user or assistant.
    #[error("unknown chat role")]
    UnknownRole,
    /// A chat request without messages, or a text prompt that encodes to no tokens.
    #[error("empty prompt")]
    EmptyPrompt,
    /// The prompt has more tokens than the configured cap.
    #[error("prompt has {tokens} tokens, more than the limit of {limit}")]
    PromptTooLong { tokens: usize, limit: usize },
    /// Prompt plus requested completion do not fit in the context window.
    #[error(
        "prompt ({prompt_tokens} tokens) plus max_tokens ({max_tokens}) exceeds the context length \
         of {context_length}"
    )]
    ContextOverflow {
        prompt_tokens: usize,
        max_tokens: usize,
        context_length: usize,
    },
    /// `max_tokens` above the configured cap.
    #[error("max_tokens {requested} exceeds the limit of {limit}")]
    MaxTokensTooLarge { requested: usize, limit: usize },
    /// A sampling parameter is out of range.
    #[error("invalid sampling parameter: {0}")]
    InvalidParams(&'static str),
    /// Encoding the prompt failed.
    #[error("prompt encoding failed")]
    Encode(#[source] TokenizerError),
    /// Decoding generated tokens failed.
    #[error("output decoding failed")]
    Decode(#[source] TokenizerError),
    /// The engine's worker threads could not be started.
    #[error("engine threads: {0}")]
    Threads(String),
    /// The forward pass failed.
    #[error("inference failed")]
    Inference(#[source] candle_core::Error),
}
