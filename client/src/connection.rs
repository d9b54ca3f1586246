//! A verified connection: the only value that can send a request.
//!
//! [`Connection`] is built by [`establish`] from a [`VerifiedPeer`] (certificate appraised during
//! the handshake) and, in `fresh` mode, a [`VerifiedSession`] (session evidence over this
//! connection's exporter). Its fields are private and it has no other constructor, so request code
//! cannot run on a channel whose checks have not all passed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use http::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{HeaderValue, Method, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;

use confidant_wire::error::ErrorBody;
use confidant_wire::routes;

use crate::appraise::{AttestationClaims, VerifiedPeer, VerifiedSession};
use crate::config::{Config, FreshWaived, SessionRequirement};
use crate::error::ClientError;
use crate::sse::SseDecoder;
use crate::{session, tls};
use confidant_wire::openai::{
    self, ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, FinishReason,
    ModelList, Role,
};

/// Largest non-streamed reply body read.
pub const MAX_RESPONSE_BYTES: usize = 16 * 1024 * 1024;

/// An attested connection to one enclave. Every check (certificate, result, policy, and in
/// `fresh` mode the session evidence) passed before this value existed.
pub struct Connection {
    sender: SendRequest<Full<Bytes>>,
    claims: Arc<AttestationClaims>,
    config: Arc<Config>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

/// Connects, appraises and (in `fresh` mode) binds the session, within the connect timeout.
pub(crate) async fn establish(config: &Arc<Config>) -> Result<Connection, ClientError> {
    tokio::time::timeout(config.connect_timeout, establish_inner(config))
        .await
        .map_err(|_| ClientError::Timeout("connect and attest"))?
}

async fn establish_inner(config: &Arc<Config>) -> Result<Connection, ClientError> {
    let attested = tls::handshake(&config.tls, &config.appraiser, &config.target).await?;
    let tls::AttestedTls {
        stream,
        peer,
        exporter,
    } = attested;
    let (mut sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ClientError::Http)?;
    tokio::spawn(async move {
        if let Err(e) = driver.await {
            tracing::debug!(error = %e, "connection closed");
        }
    });
    let session = match config.session_requirement() {
        SessionRequirement::Required => SessionProof::Verified(Box::new(
            session::attest(&mut sender, config, &peer, &exporter).await?,
        )),
        SessionRequirement::Waived(waiver) => SessionProof::Waived(waiver),
    };
    Ok(Connection::new(sender, peer, session, config))
}

/// What stands for the session check of a connection: verified session evidence, or the
/// configuration's explicit waiver.
#[derive(Debug)]
enum SessionProof {
    Verified(Box<VerifiedSession>),
    Waived(FreshWaived),
}

impl Connection {
    fn new(
        sender: SendRequest<Full<Bytes>>,
        peer: VerifiedPeer,
        session: SessionProof,
        config: &Arc<Config>,
    ) -> Self {
        let session = match session {
            SessionProof::Verified(s) => Some(*s),
            SessionProof::Waived(_) => None,
        };
        Connection {
            sender,
            claims: Arc::new(AttestationClaims::new(peer, session)),
            config: Arc::clone(config),
        }
    }

    /// The verified attestation claims of this connection.
    pub fn claims(&self) -> &AttestationClaims {
        &self.claims
    }

    /// True while the connection is open and its attestation result has not expired.
    pub fn is_usable(&self, now_unix: u64) -> bool {
        !self.sender.is_closed() && self.claims.valid_at(now_unix)
    }

    /// `POST /v1/chat/completions` (not streamed).
    pub async fn chat(&mut self, mut request: ChatRequest) -> Result<ChatResponse, ClientError> {
        request.stream = Some(false);
        self.call_json(
            Method::POST,
            routes::enclave::CHAT_COMPLETIONS,
            Some(&request),
        )
        .await
    }

    /// `POST /v1/completions` (not streamed).
    pub async fn complete(
        &mut self,
        mut request: CompletionRequest,
    ) -> Result<CompletionResponse, ClientError> {
        request.stream = Some(false);
        self.call_json(Method::POST, routes::enclave::COMPLETIONS, Some(&request))
            .await
    }

    /// `GET /v1/models`.
    pub async fn models(&mut self) -> Result<ModelList, ClientError> {
        self.call_json::<(), _>(Method::GET, routes::enclave::MODELS, None)
            .await
    }

    /// `POST /v1/chat/completions` with `stream: true`: a stream of deltas.
    pub async fn chat_stream(&mut self, request: ChatRequest) -> Result<DeltaStream, ClientError> {
        let (body, kind) = self.open(StreamRequest::Chat(request)).await?;
        Ok(delta_stream(body, kind, self.config.request_timeout, None))
    }

    /// `POST /v1/completions` with `stream: true`: a stream of deltas.
    pub async fn complete_stream(
        &mut self,
        request: CompletionRequest,
    ) -> Result<DeltaStream, ClientError> {
        let (body, kind) = self.open(StreamRequest::Completion(request)).await?;
        Ok(delta_stream(body, kind, self.config.request_timeout, None))
    }

    /// Starts a stream that owns this connection and hands it to `give_back` once the stream ended
    /// cleanly (so a pool can reuse it).
    pub(crate) async fn into_stream(
        mut self,
        request: StreamRequest,
        give_back: impl FnOnce(Connection) + Send + 'static,
    ) -> Result<DeltaStream, ClientError> {
        let (body, kind) = self.open(request).await?;
        let timeout = self.config.request_timeout;
        let on_clean: OnClean = Box::new(move || give_back(self));
        Ok(delta_stream(body, kind, timeout, Some(on_clean)))
    }

    async fn open(
        &mut self,
        request: StreamRequest,
    ) -> Result<(Incoming, StreamKind), ClientError> {
        match request {
            StreamRequest::Chat(mut r) => {
                r.stream = Some(true);
                let body = self
                    .open_stream(routes::enclave::CHAT_COMPLETIONS, &r)
                    .await?;
                Ok((body, StreamKind::Chat))
            }
            StreamRequest::Completion(mut r) => {
                r.stream = Some(true);
                let body = self.open_stream(routes::enclave::COMPLETIONS, &r).await?;
                Ok((body, StreamKind::Completion))
            }
        }
    }

    /// Sends an arbitrary request over the attested connection and returns the raw response
    /// (used by the proxy). The `Host` and `Authorization` headers are set by the client; hop-by-hop
    /// headers of `request` are not forwarded.
    pub async fn forward(
        &mut self,
        request: Request<Bytes>,
    ) -> Result<Response<Incoming>, ClientError> {
        let (parts, body) = request.into_parts();
        let path = self
            .config
            .target
            .path(parts.uri.path_and_query().map_or("/", |p| p.as_str()));
        let mut req = self.request_builder(parts.method, &path)?;
        for (name, value) in &parts.headers {
            if is_forwardable(name) {
                req = req.header(name, value);
            }
        }
        let req = req
            .body(Full::new(body))
            .map_err(|_| ClientError::Config(crate::error::ConfigError::BadUrl))?;
        self.send(req).await
    }

    pub(crate) async fn call_json<B: Serialize, T: DeserializeOwned>(
        &mut self,
        method: Method,
        api_path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let timeout = self.config.request_timeout;
        let fut = async {
            let response = self.send_json(method, api_path, body).await?;
            let response = check_status(response).await?;
            let bytes = read_limited(response.into_body(), MAX_RESPONSE_BYTES).await?;
            serde_json::from_slice(&bytes).map_err(ClientError::Decode)
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout("request"))?
    }

    async fn open_stream<B: Serialize>(
        &mut self,
        api_path: &str,
        body: &B,
    ) -> Result<Incoming, ClientError> {
        let timeout = self.config.request_timeout;
        let fut = async {
            let response = self.send_json(Method::POST, api_path, Some(body)).await?;
            Ok::<_, ClientError>(check_status(response).await?.into_body())
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout("request"))?
    }

    async fn send_json<B: Serialize>(
        &mut self,
        method: Method,
        api_path: &str,
        body: Option<&B>,
    ) -> Result<Response<Incoming>, ClientError> {
        let path = self.config.target.path(api_path);
        let mut builder = self.request_builder(method, &path)?;
        let bytes = match body {
            Some(b) => {
                builder = builder.header(CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(b).map_err(ClientError::Decode)?)
            }
            None => Bytes::new(),
        };
        let req = builder
            .body(Full::new(bytes))
            .map_err(|_| ClientError::Config(crate::error::ConfigError::BadUrl))?;
        self.send(req).await
    }

    fn request_builder(
        &self,
        method: Method,
        path: &str,
    ) -> Result<http::request::Builder, ClientError> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, self.config.target.authority.as_str())
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(token) = &self.config.token {
            builder = builder.header(AUTHORIZATION, bearer_header(token.expose())?);
        }
        Ok(builder)
    }

    async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Response<Incoming>, ClientError> {
        self.sender.ready().await.map_err(ClientError::Http)?;
        self.sender
            .send_request(req)
            .await
            .map_err(ClientError::Http)
    }
}

/// Request headers a proxy passes on (end-to-end, not connection-specific, not credentials).
fn is_forwardable(name: &http::HeaderName) -> bool {
    use http::header::*;
    !matches!(
        *name,
        HOST | AUTHORIZATION
            | CONNECTION
            | TRANSFER_ENCODING
            | TE
            | TRAILER
            | UPGRADE
            | PROXY_AUTHORIZATION
            | PROXY_AUTHENTICATE
            | CONTENT_LENGTH
            | ACCEPT_ENCODING
    ) && name.as_str() != "keep-alive"
}

async fn check_status(response: Response<Incoming>) -> Result<Response<Incoming>, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = read_limited(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let parsed: Option<ErrorBody> = serde_json::from_slice(&body).ok();
    Err(ClientError::Api {
        status: status.as_u16(),
        code: parsed.as_ref().map(|b| b.error.code.clone()),
        message: parsed.map(|b| b.error.message),
    })
}

/// Reads a whole body, refusing more than `limit` bytes.
pub(crate) async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, ClientError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) => match e.downcast::<hyper::Error>() {
            Ok(h) => Err(ClientError::Http(*h)),
            Err(_) => Err(ClientError::TooLarge(limit)),
        },
    }
}

/// One increment of a streamed reply, one per choice per chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The choice this delta belongs to.
    pub index: u32,
    /// Set on the first chat delta of a choice.
    pub role: Option<Role>,
    /// The new text (may be empty, e.g. on the final delta carrying `finish_reason`).
    pub content: String,
    pub finish_reason: Option<FinishReason>,
}

/// A stream of [`Delta`]s; ends after the server's `data: [DONE]`.
pub type DeltaStream = std::pin::Pin<Box<dyn Stream<Item = Result<Delta, ClientError>> + Send>>;

#[derive(Debug, Clone, Copy)]
enum StreamKind {
    Chat,
    Completion,
}

/// Called once when a stream ended cleanly (`[DONE]` and end of body): the connection may be
/// reused.
pub(crate) type OnClean = Box<dyn FnOnce() + Send>;

struct StreamState {
    body: Incoming,
    decoder: SseDecoder,
    queue: VecDeque<Delta>,
    kind: StreamKind,
    saw_done: bool,
    idle_timeout: Duration,
    on_clean: Option<OnClean>,
}

fn delta_stream(
    body: Incoming,
    kind: StreamKind,
    idle_timeout: Duration,
    on_clean: Option<OnClean>,
) -> DeltaStream {
    let state = StreamState {
        body,
        decoder: SseDecoder::new(),
        queue: VecDeque::new(),
        kind,
        saw_done: false,
        idle_timeout,
        on_clean,
    };
    Box::pin(futures_util::stream::unfold(
        Some(state),
        |state| async move {
            let mut st = state?;
            loop {
                if let Some(d) = st.queue.pop_front() {
                    return Some((Ok(d), Some(st)));
                }
                let frame = match tokio::time::timeout(st.idle_timeout, st.body.frame()).await {
                    Err(_) => return Some((Err(ClientError::Timeout("stream")), None)),
                    Ok(frame) => frame,
                };
                match frame {
                    None => {
                        let tail = match st.decoder.finish() {
                            Ok(t) => t,
                            Err(e) => return Some((Err(e.into()), None)),
                        };
                        if let Some(payload) = tail {
                            if let Err(e) = st.accept(&payload) {
                                return Some((Err(e), None));
                            }
                            if !st.queue.is_empty() {
                                continue;
                            }
                        }
                        if !st.saw_done {
                            return Some((Err(ClientError::Truncated), None));
                        }
                        if let Some(f) = st.on_clean.take() {
                            f();
                        }
                        return None;
                    }
                    Some(Err(e)) => return Some((Err(ClientError::Http(e)), None)),
                    Some(Ok(frame)) => {
                        let Ok(data) = frame.into_data() else {
                            continue;
                        };
                        let payloads = match st.decoder.feed(&data) {
                            Ok(p) => p,
                            Err(e) => return Some((Err(e.into()), None)),
                        };
                        for payload in payloads {
                            if let Err(e) = st.accept(&payload) {
                                return Some((Err(e), None));
                            }
                        }
                    }
                }
            }
        },
    ))
}

impl StreamState {
    fn accept(&mut self, payload: &str) -> Result<(), ClientError> {
        if payload.trim() == openai::STREAM_DONE {
            self.saw_done = true;
            return Ok(());
        }
        if self.saw_done {
            return Err(ClientError::Truncated);
        }
        match self.kind {
            StreamKind::Chat => {
                let chunk: openai::ChatChunk =
                    serde_json::from_str(payload).map_err(ClientError::Decode)?;
                self.queue.extend(chunk.choices.into_iter().map(|c| Delta {
                    index: c.index,
                    role: c.delta.role,
                    content: c.delta.content.unwrap_or_default(),
                    finish_reason: c.finish_reason,
                }));
            }
            StreamKind::Completion => {
                let chunk: CompletionResponse =
                    serde_json::from_str(payload).map_err(ClientError::Decode)?;
                self.queue.extend(chunk.choices.into_iter().map(|c| Delta {
                    index: c.index,
                    role: None,
                    content: c.text,
                    finish_reason: c.finish_reason,
                }));
            }
        }
        Ok(())
    }
}

/// What a stream is opened for.
#[derive(Debug, Clone)]
pub(crate) enum StreamRequest {
    Chat(ChatRequest),
    Completion(CompletionRequest),
}

/// Header value `Bearer <token>`, marked sensitive so hyper never logs it.
pub(crate) fn bearer_header(token: &str) -> Result<HeaderValue, ClientError> {
    let value = zeroize::Zeroizing::new(format!("Bearer {token}"));
    let mut header = HeaderValue::from_str(&value)
        .map_err(|_| ClientError::Config(crate::error::ConfigError::BadToken))?;
    header.set_sensitive(true);
    Ok(header)
}
