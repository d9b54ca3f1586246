//! The inference engine: one set of weights, any number of concurrent generations.
//!
//! Two backends compute the forward pass:
//! - [`Backend::Native`] (default): the engine's own Llama forward pass (`native.rs`): GGUF
//!   weights used in place, `f32` activations, products split across the engine's thread pool.
//!   Each generation owns a KV cache; the weights are shared.
//! - [`Backend::Candle`]: candle's `quantized_llama`, kept as the reference the native engine is
//!   tested against. Its `ModelWeights` keeps the KV cache inside the struct, so each generation
//!   works on a shallow clone (every weight is `Arc`-backed).

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::quantized_llama::{MAX_SEQ_LEN, ModelWeights};
use tokenizers::Tokenizer;

use crate::bundle::{load_tokenizer, load_weights, read_gguf};
use crate::chat::{ChatEncoder, ChatMessage};
use crate::config::ModelConfig;
use crate::error::ModelError;
use crate::native::{KvCache, Model};
use crate::sampling::{Sampler, SamplingParams};
use crate::stream::TextAssembler;

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

/// Which implementation runs the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The engine's own kernels (default).
    Native,
    /// candle's `quantized_llama` (the reference).
    Candle,
}

/// How to load the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    pub backend: Backend,
    /// Worker threads of the native backend (candle uses rayon's global pool).
    pub threads: usize,
    /// Native backend with several threads: decode steps by a thread team meeting at spinning
    /// barriers (`true`, the default) or as parallel regions on the rayon pool (`false`; the
    /// reference the team is tested and benchmarked against). Results are bit-identical.
    pub team_decode: bool,
}

impl EngineOptions {
    /// The native backend on all available cores, unless the environment says otherwise:
    /// `CONFIDANT_ENGINE=candle|native` picks the backend, `CONFIDANT_ENGINE_THREADS=N` the
    /// thread count. Debug builds too: the root manifest optimises the kernels crate in the dev
    /// profile.
    pub fn from_env() -> Self {
        let backend = match std::env::var("CONFIDANT_ENGINE").as_deref() {
            Ok("candle") => Backend::Candle,
            Ok("native") => Backend::Native,
            _ => Backend::Native,
        };
        let threads = std::env::var("CONFIDANT_ENGINE_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(default_threads);
        Self {
            backend,
            threads,
            team_decode: true,
        }
    }
}

/// The machine's available cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

enum Weights {
    Native(Box<Model>),
    Candle(Box<ModelWeights>),
}

/// A loaded model. Share it as `Arc<Engine>`; [`Engine::generate`] takes `&self`, is
/// synchronous and CPU-bound (run it on a blocking thread).
pub struct Engine {
    weights: Weights,
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
            .field("backend", &self.backend())
            .field("threads", &self.threads())
            .field("context_length", &self.context_length)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Loads a model from the bundle's three files, all in memory, with
    /// [`EngineOptions::from_env`].
    pub fn load(
        weights: &[u8],
        tokenizer_json: &[u8],
        config_json: &[u8],
    ) -> Result<Self, ModelError> {
        Self::load_with(
            weights,
            tokenizer_json,
            config_json,
            EngineOptions::from_env(),
        )
    }

    /// Loads a model from the bundle's three files with the given backend and threads.
    pub fn load_with(
        weights: &[u8],
        tokenizer_json: &[u8],
        config_json: &[u8],
        options: EngineOptions,
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
        let weights = match options.backend {
            Backend::Candle => Weights::Candle(Box::new(load_weights(weights, &config)?)),
            Backend::Native => {
                let content = read_gguf(weights, &config)?;
                Weights::Native(Box::new(Model::load(
                    &content,
                    weights,
                    &config,
                    options.threads,
                    options.team_decode,
                )?))
            }
        };
        // candle's llama precomputes RoPE tables for MAX_SEQ_LEN positions only; the native
        // backend keeps the same limit (the KV cache of a full context is ~190 MB).
        let context_length = config.max_position_embeddings.min(MAX_SEQ_LEN);
        let threads = match &weights {
            Weights::Native(m) => m.threads(),
            Weights::Candle(_) => rayon::current_num_threads(),
        };
        tracing::info!(
            model = %config.confidant.model_name,
            weights_format = %config.confidant.weights_format,
            backend = ?options.backend,
            threads,
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

    pub fn backend(&self) -> Backend {
        match self.weights {
            Weights::Native(_) => Backend::Native,
            Weights::Candle(_) => Backend::Candle,
        }
    }

    /// Threads a forward pass uses (candle: rayon's global pool).
    pub fn threads(&self) -> usize {
        match &self.weights {
            Weights::Native(m) => m.threads(),
            Weights::Candle(_) => rayon::current_num_threads(),
        }
    }

    /// A fresh generation state (KV cache) with room for `positions` positions.
    pub fn session(&self, positions: usize) -> Session<'_> {
        let state = match &self.weights {
            Weights::Native(m) => State::Native(m.new_cache(positions)),
            Weights::Candle(w) => State::Candle(w.clone()),
        };
        Session {
            engine: self,
            state,
            pos: 0,
        }
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
        let mut session = self.session(prompt.len() + params.max_tokens);
        let mut sampler = Sampler::new(params);
        let mut text_out = TextAssembler::new(&self.tokenizer, &params.stop);
        let stop_ids = &self.config.confidant.stop_token_ids;
        let mut text = String::new();
        let mut completion_tokens = 0;

        let mut logits = session.feed(&prompt)?;
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
            logits = session.feed(&[id])?;
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

/// One generation's state: the positions fed so far and their keys and values.
pub struct Session<'e> {
    engine: &'e Engine,
    state: State,
    pos: usize,
}

enum State {
    Native(KvCache),
    Candle(Box<ModelWeights>),
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl Session<'_> {
    /// Positions fed so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Feeds `tokens` (one forward pass over all of them); returns the logits of the last one.
    pub fn feed(&mut self, tokens: &[u32]) -> Result<Vec<f32>, ModelError> {
        if self.pos + tokens.len() > self.engine.context_length {
            return Err(ModelError::ContextOverflow {
                prompt_tokens: self.pos + tokens.len(),
                max_tokens: 0,
                context_length: self.engine.context_length,
            });
        }
        let logits = match (&mut self.state, &self.engine.weights) {
            (State::Native(cache), Weights::Native(model)) => model.forward(tokens, cache)?,
            (State::Candle(model), _) => candle_forward(model, tokens, self.pos)?,
            (State::Native(_), Weights::Candle(_)) => {
                return Err(ModelError::Inconsistent(
                    "session of another backend".into(),
                ));
            }
        };
        self.pos += tokens.len();
        Ok(logits)
    }
}

/// Runs `tokens` (at positions `pos..`) through candle's model; returns the last position's
/// logits.
fn candle_forward(
    model: &mut ModelWeights,
    tokens: &[u32],
    pos: usize,
) -> Result<Vec<f32>, ModelError> {
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
