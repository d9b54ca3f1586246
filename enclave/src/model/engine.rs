//! The inference engine: one set of weights, any number of concurrent generations.
//!
//! candle's `quantized_llama::ModelWeights` keeps its KV cache inside the struct, so each
//! generation works on its own clone. The clone is shallow: every weight is an `Arc`-backed
//! `QTensor`/`Tensor`, so clones share the weights and only the per-request KV cache and mask
//! cache are new (the `clone_shares_weights` test checks the process does not grow).

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use tokenizers::Tokenizer;

use super::bundle::{load_tokenizer, load_weights};
use super::chat::{ChatEncoder, ChatMessage};
use super::config::ModelConfig;
use super::error::ModelError;
use super::sampling::{Sampler, SamplingParams};
use super::stream::TextAssembler;

/// What to complete.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// A conversation, rendered with the ChatML template and the assistant's generation prompt.
    Chat(Vec<ChatMessage>),
    /// Raw text, continued as is. Control-token markup in it is treated as plain text.
    Text(String),
}

/// One generation request.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateRequest {
    pub prompt: Prompt,
    pub params: SamplingParams,
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn or a stop string was reached.
    Stop,
    /// `max_tokens` were generated.
    Length,
    /// The token callback asked to stop (e.g. the client went away).
    Cancelled,
}

impl FinishReason {
    /// The OpenAI API's name (`cancelled` never reaches a client).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Cancelled => "cancelled",
        }
    }
}

/// Streamed to the caller after every generated token.
///
/// `text` is valid UTF-8 and may be empty (while a multi-byte character or a possible stop
/// string is incomplete). The concatenation of all `text`s equals [`GenerationOutput::text`];
/// after the last token one more event may deliver held-back text (its return value is
/// ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenEvent<'a> {
    pub text: &'a str,
    /// Tokens generated so far.
    pub completion_tokens: usize,
}

/// The result of a generation.
#[derive(Clone, PartialEq, Eq)]
pub struct GenerationOutput {
    pub text: String,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    pub finish_reason: FinishReason,
}

impl std::fmt::Debug for GenerationOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GenerationOutput")
            .field("text_len", &self.text.len())
            .field("prompt_tokens", &self.prompt_tokens)
            .field("completion_tokens", &self.completion_tokens)
            .field("finish_reason", &self.finish_reason)
            .finish()
    }
}

/// Per-request caps, on top of the model's context length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineLimits {
    pub max_prompt_tokens: usize,
    pub max_tokens: usize,
}

/// A loaded model. Share it as `Arc<Engine>`; [`Engine::generate`] takes `&self`, is
/// synchronous and CPU-bound (run it on a blocking thread).
pub struct Engine {
    weights: ModelWeights,
    tokenizer: Tokenizer,
    chat: ChatEncoder,
    config: ModelConfig,
    context_length: usize,
    limits: EngineLimits,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model", &self.config.confidant.model_name)
            .field("context_length", &self.context_length)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads a model from the bundle's three files, all in memory.
    pub fn load(
        weights: &[u8],
        tokenizer_json: &[u8],
        config_json: &[u8],
    ) -> Result<Self, ModelError> {
        let started = Instant::now();
        let config = ModelConfig::from_json(config_json)?;
        let tokenizer = load_tokenizer(tokenizer_json)?;
        let vocab = tokenizer.get_vocab_size(true);
        if vocab != config.vocab_size {
            return Err(ModelError::Inconsistent(format!(
                "tokenizer has {vocab} tokens, config says {}",
                config.vocab_size
            )));
        }
        let vocab_u32 = u32::try_from(vocab).unwrap_or(u32::MAX);
        if config
            .confidant
            .stop_token_ids
            .iter()
            .any(|&id| id >= vocab_u32)
        {
            return Err(ModelError::Inconsistent(
                "stop token outside the vocabulary".into(),
            ));
        }
        let chat = ChatEncoder::new(&tokenizer)?;
        let weights = load_weights(weights, &config)?;
        // candle's llama precomputes RoPE tables for MAX_SEQ_LEN positions only.
        let context_length = config.max_position_embeddings.min(MAX_SEQ_LEN);
        tracing::info!(
            model = %config.confidant.model_name,
            weights_format = %config.confidant.weights_format,
            context_length,
            load_ms = started.elapsed().as_millis() as u64,
            "model loaded"
        );
        Ok(Self {
            weights,
            tokenizer,
            chat,
            limits: EngineLimits {
                max_prompt_tokens: context_length - 1,
                max_tokens: context_length - 1,
            },
            context_length,
            config,
        })
    }

    /// Lowers the per-request caps (they never exceed the context length).
    pub fn with_limits(mut self, limits: EngineLimits) -> Self {
        self.limits = EngineLimits {
            max_prompt_tokens: limits.max_prompt_tokens.min(self.context_length - 1),
            max_tokens: limits.max_tokens.min(self.context_length - 1),
        };
        self
    }

    pub fn limits(&self) -> EngineLimits {
        self.limits
    }

    /// Positions one generation can use: prompt plus completion.
    pub fn context_length(&self) -> usize {
        self.context_length
    }

    pub fn model_name(&self) -> &str {
        &self.config.confidant.model_name
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The tokens `prompt` is fed to the model as.
    pub fn encode_prompt(&self, prompt: &Prompt) -> Result<Vec<u32>, ModelError> {
        let ids = match prompt {
            Prompt::Chat(messages) => self.chat.encode_chat(messages)?,
            Prompt::Text(text) => self.chat.encode_literal(text)?,
        };
        if ids.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        Ok(ids)
    }

    /// Generates a completion, calling `on_token` after every token; returning
    /// `ControlFlow::Break` from it cancels the generation.
    pub fn generate(
        &self,
        request: &GenerateRequest,
        mut on_token: impl FnMut(TokenEvent<'_>) -> ControlFlow<()>,
    ) -> Result<GenerationOutput, ModelError> {
        let params = &request.params;
        params.validate()?;
        if params.max_tokens > self.limits.max_tokens {
            return Err(ModelError::MaxTokensTooLarge {
                requested: params.max_tokens,
                limit: self.limits.max_tokens,
            });
        }
        let prompt = self.encode_prompt(&request.prompt)?;
        if prompt.len() > self.limits.max_prompt_tokens {
            return Err(ModelError::PromptTooLong {
                tokens: prompt.len(),
                limit: self.limits.max_prompt_tokens,
            });
        }
        if prompt.len() + params.max_tokens > self.context_length {
            return Err(ModelError::ContextOverflow {
                prompt_tokens: prompt.len(),
                max_tokens: params.max_tokens,
                context_length: self.context_length,
            });
        }

        let started = Instant::now();
        let mut model = self.weights.clone();
        let mut sampler = Sampler::new(params);
        let mut text_out = TextAssembler::new(&self.tokenizer, &params.stop);
        let stop_ids = &self.config.confidant.stop_token_ids;
        let mut text = String::new();
        let mut completion_tokens = 0;

        let mut logits = forward(&mut model, &prompt, 0)?;
        let prefill = started.elapsed();
        let finish_reason = loop {
            let id = sampler.sample(&logits)?;
            if stop_ids.contains(&id) {
                break FinishReason::Stop;
            }
            completion_tokens += 1;
            let step = text_out.push(id)?;
            text.push_str(&step.delta);
            let flow = on_token(TokenEvent {
                text: &step.delta,
                completion_tokens,
            });
            if step.stopped {
                break FinishReason::Stop;
            }
            if flow.is_break() {
                break FinishReason::Cancelled;
            }
            if completion_tokens >= params.max_tokens {
                break FinishReason::Length;
            }
            logits = forward(&mut model, &[id], prompt.len() + completion_tokens - 1)?;
        };
        let rest = text_out.finish();
        if !rest.is_empty() {
            text.push_str(&rest);
            let _ = on_token(TokenEvent {
                text: &rest,
                completion_tokens,
            });
        }

        tracing::debug!(
            prompt_tokens = prompt.len(),
            completion_tokens,
            finish_reason = finish_reason.as_str(),
            prefill_ms = prefill.as_millis() as u64,
            total_ms = started.elapsed().as_millis() as u64,
            "generation finished"
        );
        Ok(GenerationOutput {
            text,
            prompt_tokens: prompt.len(),
            completion_tokens,
            finish_reason,
        })
    }
}

/// Runs `tokens` (at positions `pos..`) through the model; returns the last position's logits.
fn forward(model: &mut ModelWeights, tokens: &[u32], pos: usize) -> Result<Vec<f32>, ModelError> {
    let input = Tensor::new(tokens, &Device::Cpu)
        .and_then(|t| t.unsqueeze(0))
        .map_err(ModelError::Inference)?;
    model
        .forward(&input, pos)
        .and_then(|l| l.squeeze(0))
        .and_then(|l| l.to_dtype(DType::F32))
        .and_then(|l| l.to_vec1::<f32>())
        .map_err(ModelError::Inference)
}
