//! A blocking wrapper: the async [`crate::Client`] driven by its own current-thread runtime. Do not
//! use it from inside an async runtime.

use futures_util::StreamExt;

use crate::config::ClientBuilder;
use crate::connection::Delta;
use crate::error::{ClientError, ConfigError};
use crate::{AttestationClaims, Connection};
use confidant_wire::openai::{
    ChatRequest, ChatResponse, CompletionRequest, CompletionResponse, ModelList,
};

/// Blocking counterpart of [`crate::Client`].
#[derive(Debug)]
pub struct Client {
    inner: crate::Client,
    runtime: tokio::runtime::Runtime,
}

impl Client {
    /// Builds a blocking client from the same builder as the async one.
    pub fn new(builder: ClientBuilder) -> Result<Self, ClientError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Config(ConfigError::Runtime(e)))?;
        let inner = builder.build()?;
        Ok(Client { inner, runtime })
    }

    /// Attests a new connection and returns its verified claims (the connection is then closed).
    pub fn attest(&self) -> Result<AttestationClaims, ClientError> {
        self.runtime.block_on(async {
            let conn: Connection = self.inner.connect().await?;
            Ok(conn.claims().clone())
        })
    }

    /// See [`crate::Client::chat`].
    pub fn chat(&self, request: ChatRequest) -> Result<ChatResponse, ClientError> {
        self.runtime.block_on(self.inner.chat(request))
    }

    /// See [`crate::Client::complete`].
    pub fn complete(&self, request: CompletionRequest) -> Result<CompletionResponse, ClientError> {
        self.runtime.block_on(self.inner.complete(request))
    }

    /// See [`crate::Client::models`].
    pub fn models(&self) -> Result<ModelList, ClientError> {
        self.runtime.block_on(self.inner.models())
    }

    /// Streams a chat reply, calling `on_delta` for each delta as it arrives.
    pub fn chat_stream(
        &self,
        request: ChatRequest,
        mut on_delta: impl FnMut(&Delta),
    ) -> Result<(), ClientError> {
        self.runtime.block_on(async {
            let mut stream = self.inner.chat_stream(request).await?;
            while let Some(delta) = stream.next().await {
                on_delta(&delta?);
            }
            Ok(())
        })
    }
}
