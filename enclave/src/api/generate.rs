//! `POST /v1/chat/completions` and `POST /v1/completions`, plain JSON or server-sent events.
//!
//! Admission, in order: bearer token and role (401/403) → request budget (429) → body shape and
//! caps (400, 404 for an unknown model) → token budget, reserving `max_tokens` (429) → prompt
//! length (400) → a generation slot (503 when the queue is full). Generation runs on a blocking
//! thread; it stops as soon as the client is gone (the SSE receiver or the request future is
//! dropped). Unused reserved tokens are refunded. Logs carry counts and timings, never text.

use std::convert::Infallible;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use confidant_service::{ApiError, Principal, RequireAuth};
use confidant_wire::openai::{
    self, ChatChoice, ChatChunk, ChatChunkChoice, ChatDelta, ChatRequest, ChatResponse,
    CompletionChoice, CompletionRequest, CompletionResponse, Stop, Usage,
};
use serde::Serialize;
use tracing::Instrument;

use super::{ApiContext, AppState};
use crate::limits::Overloaded;
use confidant_engine::{
    ChatMessage, FinishReason, GenerateRequest, GenerationOutput, ModelError, Prompt, Role,
    SamplingParams,
};

/// Buffered SSE events per stream (bounded: a slow reader slows generation down).
const STREAM_BUFFER: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Chat,
    Completion,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Completion => "completion",
        }
    }
}

/// A validated request.
struct Job {
    kind: Kind,
    request: GenerateRequest,
    stream: bool,
    include_usage: bool,
    model: String,
}

pub(super) async fn chat(
    State(AppState(s)): State<AppState>,
    auth: Result<RequireAuth, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let p = s.admit(auth, true)?;
    let req: ChatRequest = parse_body(&s, &p, body)?;
    let job = chat_job(&s, req).map_err(|e| s.refuse(Some(&p), e))?;
    run(s, p, job).await
}

pub(super) async fn completions(
    State(AppState(s)): State<AppState>,
    auth: Result<RequireAuth, ApiError>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let p = s.admit(auth, true)?;
    let req: CompletionRequest = parse_body(&s, &p, body)?;
    let job = completion_job(&s, req).map_err(|e| s.refuse(Some(&p), e))?;
    run(s, p, job).await
}

/// Parses a JSON body. Error messages carry positions only, never the input.
fn parse_body<T: serde::de::DeserializeOwned>(
    s: &ApiContext,
    p: &Principal,
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body = body.map_err(|rej| {
        let err = if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large()
        } else {
            ApiError::bad_request("invalid_body", "request body could not be read")
        };
        s.refuse(Some(p), err)
    })?;
    serde_json::from_slice(&body).map_err(|e| {
        s.refuse(
            Some(p),
            ApiError::bad_request(
                "invalid_body",
                format!(
                    "request body is not valid JSON of the expected shape (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            ),
        )
    })
}

fn check_model(s: &ApiContext, model: &str) -> Result<(), ApiError> {
    if model == s.model.model_id || model == s.model.engine.model_name() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "model_not_found",
            format!("this enclave serves the model {:?}", s.model.model_id),
        ))
    }
}

struct Common {
    max_tokens: Option<u32>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    seed: Option<u64>,
    stop: Option<Stop>,
    n: Option<u32>,
}

fn sampling(s: &ApiContext, c: Common) -> Result<SamplingParams, ApiError> {
    if c.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "n must be 1 (one choice per request)",
        ));
    }
    let cap = s.limits.max_tokens;
    let max_tokens = match c.max_tokens {
        Some(0) => {
            return Err(ApiError::bad_request(
                "invalid_parameter",
                "max_tokens must be at least 1",
            ));
        }
        Some(n) if n as usize > cap => {
            return Err(ApiError::bad_request(
                "max_tokens_too_large",
                format!("max_tokens must be at most {cap}"),
            ));
        }
        Some(n) => n as usize,
        None => s.limits.default_max_tokens.min(cap),
    };
    let params = SamplingParams {
        max_tokens,
        temperature: c.temperature.unwrap_or(1.0),
        top_p: c.top_p.unwrap_or(1.0),
        seed: c.seed,
        stop: c.stop.map(Stop::into_vec).unwrap_or_default(),
    };
    params.validate().map_err(model_error)?;
    Ok(params)
}

fn chat_job(s: &ApiContext, req: ChatRequest) -> Result<Job, ApiError> {
    check_model(s, &req.model)?;
    if req.messages.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            "messages must not be empty",
        ));
    }
    let messages = req
        .messages
        .into_iter()
        .map(|m| {
            let role = match m.role {
                openai::Role::System | openai::Role::Developer => Role::System,
                openai::Role::User => Role::User,
                openai::Role::Assistant => Role::Assistant,
                openai::Role::Tool => {
                    return Err(ApiError::bad_request(
                        "unsupported_role",
                        "tool messages are not supported",
                    ));
                }
            };
            Ok(ChatMessage::new(role, m.content))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let params = sampling(
        s,
        Common {
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            seed: req.seed,
            stop: req.stop,
            n: req.n,
        },
    )?;
    Ok(Job {
        kind: Kind::Chat,
        request: GenerateRequest {
            prompt: Prompt::Chat(messages),
            params,
        },
        stream: req.stream.unwrap_or(false),
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
        model: req.model,
    })
}

fn completion_job(s: &ApiContext, req: CompletionRequest) -> Result<Job, ApiError> {
    check_model(s, &req.model)?;
    let params = sampling(
        s,
        Common {
            max_tokens: req.max_tokens,
            temperature: req.temperature,
            top_p: req.top_p,
            seed: req.seed,
            stop: req.stop,
            n: req.n,
        },
    )?;
    Ok(Job {
        kind: Kind::Completion,
        request: GenerateRequest {
            prompt: Prompt::Text(req.prompt),
            params,
        },
        stream: req.stream.unwrap_or(false),
        include_usage: req.stream_options.is_some_and(|o| o.include_usage),
        model: req.model,
    })
}

/// Client-safe mapping of engine errors (their messages carry numbers, never text).
fn model_error(e: ModelError) -> ApiError {
    match e {
        ModelError::PromptTooLong { .. } => ApiError::bad_request("prompt_too_long", e.to_string()),
        ModelError::ContextOverflow { .. } => {
            ApiError::bad_request("context_length_exceeded", e.to_string())
        }
        ModelError::MaxTokensTooLarge { .. } => {
            ApiError::bad_request("max_tokens_too_large", e.to_string())
        }
        ModelError::InvalidParams(_) => ApiError::bad_request("invalid_parameter", e.to_string()),
        ModelError::EmptyPrompt => ApiError::bad_request("empty_prompt", e.to_string()),
        ModelError::UnknownRole => ApiError::bad_request("unsupported_role", e.to_string()),
        other => ApiError::internal(other),
    }
}

fn finish_reason(f: FinishReason) -> Option<openai::FinishReason> {
    match f {
        FinishReason::Stop => Some(openai::FinishReason::Stop),
        FinishReason::Length => Some(openai::FinishReason::Length),
        FinishReason::Cancelled => None,
    }
}

fn usage(out: &GenerationOutput) -> Usage {
    let p = u32::try_from(out.prompt_tokens).unwrap_or(u32::MAX);
    let c = u32::try_from(out.completion_tokens).unwrap_or(u32::MAX);
    Usage {
        prompt_tokens: p,
        completion_tokens: c,
        total_tokens: p.saturating_add(c),
    }
}

fn new_id(kind: Kind) -> String {
    let mut b = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    match kind {
        Kind::Chat => format!("chatcmpl-{}", hex::encode(b)),
        Kind::Completion => format!("cmpl-{}", hex::encode(b)),
    }
}

/// Sets a flag when dropped: the non-streaming handler's future being dropped means the client
/// went away, and the generation callback then stops.
struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

async fn run(s: Arc<ApiContext>, p: Principal, job: Job) -> Result<Response, ApiError> {
    let reserved = job.request.params.max_tokens as u64;
    if let Err(e) = s.rate.tokens.try_take(&p.subject, reserved) {
        return Err(s.refuse(Some(&p), e.into()));
    }
    let subject = p.subject.clone();
    let refund = move |s: &ApiContext, used: usize| {
        s.rate
            .tokens
            .refund(&subject, reserved.saturating_sub(used as u64));
    };

    // Prompt length, before taking a slot (tokenising is cheap next to generating).
    let engine_model = s.model.clone();
    let prompt = job.request.prompt.clone();
    let span = tracing::Span::current();
    let encoded = tokio::task::spawn_blocking(move || {
        let _e = span.enter();
        engine_model
            .engine
            .encode_prompt(&prompt)
            .map(|ids| ids.len())
    })
    .await
    .map_err(ApiError::internal)?;
    match encoded {
        Ok(n) if n > s.limits.max_prompt_tokens => {
            refund(&s, 0);
            s.anomalies.oversized_prompt(&p.subject, n);
            return Err(s.refuse(
                Some(&p),
                model_error(ModelError::PromptTooLong {
                    tokens: n,
                    limit: s.limits.max_prompt_tokens,
                }),
            ));
        }
        Ok(_) => {}
        Err(e) => {
            refund(&s, 0);
            return Err(s.refuse(Some(&p), model_error(e)));
        }
    }

    let queued = Instant::now();
    let slot = match s.queue.acquire().await {
        Ok(slot) => slot,
        Err(e) => {
            refund(&s, 0);
            let msg = match e {
                Overloaded::QueueFull => "too many requests are waiting; retry later",
                Overloaded::Timeout => "no generation slot became free in time; retry later",
            };
            return Err(s.refuse(Some(&p), ApiError::unavailable("overloaded", msg)));
        }
    };
    let queue_ms = queued.elapsed().as_millis() as u64;
    let created = crate::boot::now_unix();
    let id = new_id(job.kind);
    let span = tracing::Span::current();
    let principal = p.subject.clone();

    if job.stream {
        let refund = refund.clone();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(STREAM_BUFFER);
        let ctx = s.clone();
        tokio::task::spawn_blocking(move || {
            let _e = span.enter();
            let _slot = slot;
            let started = Instant::now();
            let sse = SseWriter {
                tx,
                id,
                created,
                model: job.model.clone(),
                kind: job.kind,
            };
            if job.kind == Kind::Chat {
                sse.chat_delta(
                    ChatDelta {
                        role: Some(openai::Role::Assistant),
                        content: Some(String::new()),
                    },
                    None,
                    None,
                );
            }
            let result = ctx.model.engine.generate(&job.request, |ev| {
                if sse.tx.is_closed() {
                    return ControlFlow::Break(());
                }
                if !ev.text.is_empty() && !sse.text(ev.text) {
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            });
            finish(&ctx, &principal, &job, &result, queue_ms, started, true);
            match result {
                Ok(out) => {
                    refund(&ctx, out.completion_tokens);
                    if let Some(reason) = finish_reason(out.finish_reason) {
                        sse.finish(reason, usage(&out), job.include_usage);
                    }
                }
                Err(e) => {
                    refund(&ctx, 0);
                    sse.error(&model_error(e));
                }
            }
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, Infallible>(b), rx))
        });
        let mut resp = Body::from_stream(stream).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        h.insert("x-accel-buffering", HeaderValue::from_static("no"));
        return Ok(resp);
    }

    let cancelled = Arc::new(AtomicBool::new(false));
    let _guard = CancelOnDrop(cancelled.clone());
    let ctx = s.clone();
    let request = job.request.clone();
    let result = tokio::task::spawn_blocking(move || {
        let _e = span.enter();
        let _slot = slot;
        let started = Instant::now();
        let result = ctx.model.engine.generate(&request, |_| {
            if cancelled.load(Ordering::Acquire) {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        (result, started)
    })
    .instrument(tracing::Span::current())
    .await
    .map_err(ApiError::internal)?;
    let (result, started) = result;
    finish(&s, &principal, &job, &result, queue_ms, started, false);
    let out = match result {
        Ok(out) => out,
        Err(e) => {
            refund(&s, 0);
            return Err(s.refuse(Some(&p), model_error(e)));
        }
    };
    refund(&s, out.completion_tokens);
    let reason = finish_reason(out.finish_reason);
    let body = match job.kind {
        Kind::Chat => serde_json::to_vec(&ChatResponse {
            id,
            object: "chat.completion".into(),
            created,
            model: job.model,
            usage: Some(usage(&out)),
            choices: vec![ChatChoice {
                index: 0,
                message: openai::ChatMessage::assistant(out.text),
                finish_reason: reason,
            }],
        }),
        Kind::Completion => serde_json::to_vec(&CompletionResponse {
            id,
            object: "text_completion".into(),
            created,
            model: job.model,
            usage: Some(usage(&out)),
            choices: vec![CompletionChoice {
                index: 0,
                text: out.text,
                finish_reason: reason,
            }],
        }),
    }
    .map_err(ApiError::internal)?;
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// Metrics and the one log line of a generation: counts and timings only.
fn finish(
    s: &ApiContext,
    principal: &str,
    job: &Job,
    result: &Result<GenerationOutput, ModelError>,
    queue_ms: u64,
    started: Instant,
    stream: bool,
) {
    let generation_ms = started.elapsed().as_millis() as u64;
    match result {
        Ok(out) => {
            let reason = out.finish_reason.as_str();
            s.metrics
                .generation(reason, out.prompt_tokens, out.completion_tokens);
            tracing::info!(
                principal,
                kind = job.kind.as_str(),
                stream,
                prompt_tokens = out.prompt_tokens,
                completion_tokens = out.completion_tokens,
                finish_reason = reason,
                queue_ms,
                generation_ms,
                "generation finished"
            );
        }
        Err(e) => {
            s.metrics.generation("error", 0, 0);
            tracing::warn!(
                principal,
                kind = job.kind.as_str(),
                stream,
                error = %e,
                queue_ms,
                generation_ms,
                "generation failed"
            );
        }
    }
}

/// Writes OpenAI-format SSE events into the response channel (blocking; from the generation
/// thread). Every write reports whether the client is still there.
struct SseWriter {
    tx: tokio::sync::mpsc::Sender<Bytes>,
    id: String,
    created: u64,
    model: String,
    kind: Kind,
}

impl SseWriter {
    fn send_raw(&self, payload: &[u8]) -> bool {
        let mut event = Vec::with_capacity(payload.len() + 8);
        event.extend_from_slice(b"data: ");
        event.extend_from_slice(payload);
        event.extend_from_slice(b"\n\n");
        self.tx.blocking_send(Bytes::from(event)).is_ok()
    }

    fn send<T: Serialize>(&self, value: &T) -> bool {
        match serde_json::to_vec(value) {
            Ok(v) => self.send_raw(&v),
            Err(_) => false,
        }
    }

    fn chat_delta(
        &self,
        delta: ChatDelta,
        finish: Option<openai::FinishReason>,
        usage: Option<Usage>,
    ) -> bool {
        self.send(&ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChatChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
            }],
            usage,
        })
    }

    fn completion_chunk(
        &self,
        text: String,
        finish: Option<openai::FinishReason>,
        usage: Option<Usage>,
    ) -> bool {
        self.send(&CompletionResponse {
            id: self.id.clone(),
            object: "text_completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![CompletionChoice {
                index: 0,
                text,
                finish_reason: finish,
            }],
            usage,
        })
    }

    fn text(&self, text: &str) -> bool {
        match self.kind {
            Kind::Chat => self.chat_delta(
                ChatDelta {
                    role: None,
                    content: Some(text.to_owned()),
                },
                None,
                None,
            ),
            Kind::Completion => self.completion_chunk(text.to_owned(), None, None),
        }
    }

    /// The last chunk (finish reason; `usage` on it unless the client asked for OpenAI's separate
    /// usage chunk), then `[DONE]`.
    fn finish(&self, reason: openai::FinishReason, usage: Usage, separate_usage: bool) {
        let inline = (!separate_usage).then_some(usage);
        let ok = match self.kind {
            Kind::Chat => self.chat_delta(ChatDelta::default(), Some(reason), inline),
            Kind::Completion => self.completion_chunk(String::new(), Some(reason), inline),
        };
        if !ok {
            return;
        }
        if separate_usage {
            let sent = match self.kind {
                Kind::Chat => self.send(&ChatChunk {
                    id: self.id.clone(),
                    object: "chat.completion.chunk".into(),
                    created: self.created,
                    model: self.model.clone(),
                    choices: Vec::new(),
                    usage: Some(usage),
                }),
                Kind::Completion => self.send(&CompletionResponse {
                    id: self.id.clone(),
                    object: "text_completion".into(),
                    created: self.created,
                    model: self.model.clone(),
                    choices: Vec::new(),
                    usage: Some(usage),
                }),
            };
            if !sent {
                return;
            }
        }
        self.send_raw(openai::STREAM_DONE.as_bytes());
    }

    /// An error event (OpenAI's shape); the stream ends without `[DONE]`.
    fn error(&self, e: &ApiError) {
        self.send(&serde_json::json!({ "error": { "code": e.code, "message": e.message } }));
    }
}
