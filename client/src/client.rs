//! [`Client`]: a handle on one enclave with a small pool of attested connections. Each pooled
//! connection was fully attested when it was opened; it is reused while it stays open and its
//! attestation result has not expired, and a new one is attested otherwise.

use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{ClientBuilder, Config};
use crate::connection::{self, Connection, DeltaStream, StreamRequest};
use crate::error::ClientError;
use crate::openai::{ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, ModelList};

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
        let mut conn = self.checkout().await?;
        let out = conn.chat(request).await;
        self.give_back(conn, out.is_ok());
        out
    }

    /// `POST /v1/completions`.
    pub async fn complete(
        &self,
        request: CompletionRequest,
    ) -> Result<CompletionResponse, ClientError> {
        let mut conn = self.checkout().await?;
        let out = conn.complete(request).await;
        self.give_back(conn, out.is_ok());
        out
    }

    /// `GET /v1/models`.
    pub async fn models(&self) -> Result<ModelList, ClientError> {
        let mut conn = self.checkout().await?;
        let out = conn.models().await;
        self.give_back(conn, out.is_ok());
        out
    }

    /// Streams a chat reply as deltas. The connection returns to the pool when the stream ends
    /// cleanly.
    pub async fn chat_stream(&self, request: ChatRequest) -> Result<DeltaStream, ClientError> {
        let conn = self.checkout().await?;
        let pool = Arc::downgrade(&self.inner);
        conn.into_stream(StreamRequest::Chat(request), move |c| {
            return_to(&pool, c);
        })
        .await
    }

    /// Streams a text completion as deltas.
    pub async fn complete_stream(
        &self,
        request: CompletionRequest,
    ) -> Result<DeltaStream, ClientError> {
        let conn = self.checkout().await?;
        let pool = Arc::downgrade(&self.inner);
        conn.into_stream(StreamRequest::Completion(request), move |c| {
            return_to(&pool, c);
        })
        .await
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

    pub(crate) fn give_back(&self, conn: Connection, ok: bool) {
        if ok {
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
