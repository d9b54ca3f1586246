//! A small attested HTTPS server for SDK tests: serves a given certificate chain, answers
//! `POST /v1/attestation` through a pluggable session-evidence function that sees this
//! connection's exporter, and stubs the OpenAI routes. It counts every byte that reaches an
//! inference route.
// Test scaffolding: a failure to build a fixture is a test failure.
#![allow(clippy::unwrap_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use confidant_attestation::binding::SESSION_EXPORTER_LABEL;
use confidant_wire::attest::{SessionAttestationRequest, SessionAttestationResponse};
use confidant_wire::openai::{
    ChatChoice, ChatChunk, ChatChunkChoice, ChatDelta, ChatMessage, ChatRequest, ChatResponse,
    CompletionChoice, CompletionRequest, CompletionResponse, FinishReason, Role,
};
use confidant_wire::routes;

/// Answers `POST /v1/attestation` given (nonce, this connection's exporter).
pub type SessionFn =
    Arc<dyn Fn(&[u8; 32], &[u8; 32]) -> Option<SessionAttestationResponse> + Send + Sync>;

/// What the test server presents and how it answers.
pub struct ServerSpec {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    pub session: SessionFn,
}

/// Counters the tests read.
#[derive(Debug, Default)]
pub struct Hits {
    /// Requests on `/v1/attestation`.
    pub attestation: AtomicUsize,
    /// Requests on inference routes.
    pub inference: AtomicUsize,
    /// Body bytes received on inference routes.
    pub inference_bytes: AtomicUsize,
    /// TLS handshakes completed.
    pub handshakes: AtomicUsize,
}

/// A running server; stops when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub hits: Arc<Hits>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    /// `https://localhost:PORT`.
    pub fn url(&self) -> String {
        format!("https://localhost:{}", self.addr.port())
    }

    pub fn inference_bytes(&self) -> usize {
        self.hits.inference_bytes.load(Ordering::SeqCst)
    }

    pub fn inference_requests(&self) -> usize {
        self.hits.inference.load(Ordering::SeqCst)
    }

    pub fn attestation_requests(&self) -> usize {
        self.hits.attestation.load(Ordering::SeqCst)
    }

    pub fn handshakes(&self) -> usize {
        self.hits.handshakes.load(Ordering::SeqCst)
    }

    pub async fn start(spec: ServerSpec) -> TestServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(spec.chain, spec.key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(Hits::default());
        let session = spec.session;
        let task_hits = Arc::clone(&hits);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let hits = Arc::clone(&task_hits);
                let session = Arc::clone(&session);
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    hits.handshakes.fetch_add(1, Ordering::SeqCst);
                    let mut exporter = [0u8; 32];
                    tls.get_ref()
                        .1
                        .export_keying_material(&mut exporter, SESSION_EXPORTER_LABEL, None)
                        .unwrap();
                    let service = hyper::service::service_fn(move |req| {
                        let hits = Arc::clone(&hits);
                        let session = Arc::clone(&session);
                        async move { Ok::<_, Infallible>(route(req, &hits, &session, &exporter).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TestServer { addr, hits, task }
    }
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body).unwrap())))
        .unwrap()
}

fn error(status: StatusCode, code: &str) -> Response<Full<Bytes>> {
    json(
        status,
        &serde_json::json!({"error": {"code": code, "message": code}}),
    )
}

async fn route(
    req: Request<Incoming>,
    hits: &Hits,
    session: &SessionFn,
    exporter: &[u8; 32],
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.unwrap().to_bytes();
    match path.as_str() {
        routes::enclave::SESSION_ATTESTATION => {
            hits.attestation.fetch_add(1, Ordering::SeqCst);
            let Ok(request) = serde_json::from_slice::<SessionAttestationRequest>(&body) else {
                return error(StatusCode::BAD_REQUEST, "bad_request");
            };
            let Some(nonce) = hex::decode(&request.nonce)
                .ok()
                .and_then(|n| <[u8; 32]>::try_from(n).ok())
            else {
                return error(StatusCode::BAD_REQUEST, "bad_nonce");
            };
            match session(&nonce, exporter) {
                Some(reply) => json(StatusCode::OK, &reply),
                None => error(StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            }
        }
        routes::enclave::CHAT_COMPLETIONS => {
            hits.inference.fetch_add(1, Ordering::SeqCst);
            hits.inference_bytes.fetch_add(body.len(), Ordering::SeqCst);
            let Ok(request) = serde_json::from_slice::<ChatRequest>(&body) else {
                return error(StatusCode::BAD_REQUEST, "bad_request");
            };
            let answer = echo(&request);
            if request.stream == Some(true) {
                sse(chat_chunks(&request.model, &answer))
            } else {
                json(
                    StatusCode::OK,
                    &ChatResponse {
                        id: "chatcmpl-test".into(),
                        object: "chat.completion".into(),
                        created: 1,
                        model: request.model,
                        choices: vec![ChatChoice {
                            index: 0,
                            message: ChatMessage::assistant(answer),
                            finish_reason: Some(FinishReason::Stop),
                        }],
                        usage: None,
                    },
                )
            }
        }
        routes::enclave::COMPLETIONS => {
            hits.inference.fetch_add(1, Ordering::SeqCst);
            hits.inference_bytes.fetch_add(body.len(), Ordering::SeqCst);
            let Ok(request) = serde_json::from_slice::<CompletionRequest>(&body) else {
                return error(StatusCode::BAD_REQUEST, "bad_request");
            };
            json(
                StatusCode::OK,
                &CompletionResponse {
                    id: "cmpl-test".into(),
                    object: "text_completion".into(),
                    created: 1,
                    model: request.model,
                    choices: vec![CompletionChoice {
                        index: 0,
                        text: format!("{} ...", request.prompt),
                        finish_reason: Some(FinishReason::Length),
                    }],
                    usage: None,
                },
            )
        }
        _ => error(StatusCode::NOT_FOUND, "not_found"),
    }
}

/// The stub's answer: "echo: " and the last user message.
pub fn echo(request: &ChatRequest) -> String {
    let last = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
        .unwrap_or("");
    format!("echo: {last}")
}

fn chat_chunks(model: &str, answer: &str) -> Vec<String> {
    let chunk = |delta: ChatDelta, finish: Option<FinishReason>| {
        serde_json::to_string(&ChatChunk {
            id: "chatcmpl-test".into(),
            object: "chat.completion.chunk".into(),
            created: 1,
            model: model.into(),
            choices: vec![ChatChunkChoice {
                index: 0,
                delta,
                finish_reason: finish,
            }],
            usage: None,
        })
        .unwrap()
    };
    let mut out = vec![chunk(
        ChatDelta {
            role: Some(Role::Assistant),
            content: None,
        },
        None,
    )];
    for word in answer.split_inclusive(' ') {
        out.push(chunk(
            ChatDelta {
                role: None,
                content: Some(word.to_string()),
            },
            None,
        ));
    }
    out.push(chunk(ChatDelta::default(), Some(FinishReason::Stop)));
    out.push("[DONE]".to_string());
    out
}

fn sse(payloads: Vec<String>) -> Response<Full<Bytes>> {
    let mut body = String::new();
    for p in payloads {
        body.push_str("data: ");
        body.push_str(&p);
        body.push_str("\n\n");
    }
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/event-stream")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
