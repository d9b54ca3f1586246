//! [`Client`]: a handle on one enclave with a small pool of attested connections. Each pooled
//! connection was fully attested when it was opened; it is reused while it stays open and its
//! attestation result has not expired, and a new one is attested otherwise.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::appraise::AttestationClaims;
use crate::config::{ClientBuilder, Config};
use crate::connection::{self, Connection, DeltaStream, StreamRequest};
use crate::error::ClientError;
use confidant_wire::openai::{
    ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, ModelList,
};

/// Runs `$call` on a pooled connection; if that connection turned out closed before anything was
/// sent, runs it once more on a newly attested one.
macro_rules! retry_closed {
    ($self:ident, $conn:ident, $call:expr) => {{
        let mut $conn = $self.checkout().await?;
        let mut out = $call.await;
        if matches!(out, Err(ClientError::ConnectionClosed)) {
            $conn = $self.connect().await?;
            out = $call.await;
        }
        $self.give_back($conn, &out);
        out
    }};
}

/// An attesting client for one enclave. Cheap to clone; clones share the connection pool.
#[derive(Clone, Debug)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Arc<Config>,
    idle: Mutex<Vec<Connection>>,
}

pub(crate) fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Client {
    /// A builder for the enclave at `url`.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    pub(crate) fn from_config(config: Arc<Config>) -> Self {
        Client {
            inner: Arc::new(Inner {
                config,
                idle: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Opens a new, dedicated attested connection (not taken from or returned to the pool). Fails
    /// with [`ClientError::Attestation`] naming the check if the server is refused.
    pub async fn connect(&self) -> Result<Connection, ClientError> {
        connection::establish(&self.inner.config).await
    }

    /// `POST /v1/chat/completions`.
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ClientError> {
        retry_closed!(self, conn, conn.chat(request.clone()))
    }

    /// `POST /v1/completions`.
    pub async fn complete(
        &self,
        request: CompletionRequest,
    ) -> Result<CompletionResponse, ClientError> {
        retry_closed!(self, conn, conn.complete(request.clone()))
    }

    /// `GET /v1/models`.
    pub async fn models(&self) -> Result<ModelList, ClientError> {
        retry_closed!(self, conn, conn.models())
    }

    /// Streams a chat reply as deltas. The connection returns to the pool when the stream ends
    /// cleanly.
    pub async fn chat_stream(&self, request: ChatRequest) -> Result<DeltaStream, ClientError> {
        self.stream(StreamRequest::Chat(request)).await
    }

    /// Streams a text completion as deltas.
    pub async fn complete_stream(
        &self,
        request: CompletionRequest,
    ) -> Result<DeltaStream, ClientError> {
        self.stream(StreamRequest::Completion(request)).await
    }

    async fn stream(&self, request: StreamRequest) -> Result<DeltaStream, ClientError> {
        let give_back = |pool: Weak<Inner>| move |c| return_to(&pool, c);
        let conn = self.checkout().await?;
        match conn
            .into_stream(request.clone(), give_back(Arc::downgrade(&self.inner)))
            .await
        {
            Err(ClientError::ConnectionClosed) => {
                self.connect()
                    .await?
                    .into_stream(request, give_back(Arc::downgrade(&self.inner)))
                    .await
            }
            other => other,
        }
    }

    /// Attests a connection (reusing a pooled one while its result is valid) and returns its
    /// verified claims; the connection stays in the pool.
    pub async fn attest(&self) -> Result<AttestationClaims, ClientError> {
        let conn = self.checkout().await?;
        let claims = conn.claims().clone();
        return_to(&Arc::downgrade(&self.inner), conn);
        Ok(claims)
    }

    /// Forwards a raw request over an attested connection (for proxies). The connection returns
    /// to the pool once the response body has been read to its end.
    pub async fn forward(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<PooledBody>, ClientError> {
        let mut conn = self.checkout().await?;
        let response = match conn.forward(request.clone()).await {
            Err(ClientError::ConnectionClosed) => {
                conn = self.connect().await?;
                conn.forward(request).await?
            }
            other => other?,
        };
        let pool = Arc::downgrade(&self.inner);
        Ok(response.map(|body| PooledBody {
            body,
            conn: Some((conn, pool)),
        }))
    }

    /// An idle connection that is still usable, or a newly attested one.
    pub(crate) async fn checkout(&self) -> Result<Connection, ClientError> {
        let now = now_unix();
        loop {
            let candidate = self
                .inner
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match candidate {
                Some(conn) if conn.is_usable(now) => return Ok(conn),
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    /// Returns a connection after a request that left it in a clean state (a reply or an API
    /// error, whose body was read in full).
    fn give_back<T>(&self, conn: Connection, outcome: &Result<T, ClientError>) {
        if matches!(outcome, Ok(_) | Err(ClientError::Api { .. })) {
            return_to(&Arc::downgrade(&self.inner), conn);
        }
    }
}

fn return_to(pool: &Weak<Inner>, conn: Connection) {
    let Some(inner) = pool.upgrade() else { return };
    if !conn.is_usable(now_unix()) {
        return;
    }
    let mut idle = inner.idle.lock().unwrap_or_else(PoisonError::into_inner);
    if idle.len() < inner.config.max_idle {
        idle.push(conn);
    }
}

/// A response body that hands its connection back to the pool when it ends.
#[derive(Debug)]
pub struct PooledBody {
    body: hyper::body::Incoming,
    conn: Option<(Connection, Weak<Inner>)>,
}

impl PooledBody {
    /// The body was read to its end: the connection is clean and may serve another request.
    fn release(&mut self) {
        if let Some((conn, pool)) = self.conn.take() {
            return_to(&pool, conn);
        }
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        if hyper::body::Body::is_end_stream(&self.body) {
            self.release();
        }
    }
}

impl hyper::body::Body for PooledBody {
    type Data = bytes::Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.body).poll_frame(cx);
        match &polled {
            std::task::Poll::Ready(Some(Err(_))) => self.conn = None,
            std::task::Poll::Ready(_) if self.body.is_end_stream() => self.release(),
            std::task::Poll::Ready(None) => self.release(),
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}
