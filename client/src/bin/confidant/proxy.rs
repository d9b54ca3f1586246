//! `confidant proxy --listen 127.0.0.1:PORT --upstream URL`: a plain-HTTP, loopback-only,
//! OpenAI-compatible endpoint that forwards to an attested enclave. Every upstream connection is
//! attested (certificate, policy, session evidence) before anything is forwarded on it; when
//! attestation fails the request is answered `502 attestation_failed` and nothing is sent. Any
//! OpenAI SDK works by pointing its base URL at `http://127.0.0.1:PORT/v1`.
//!
//! The proxy lends the user's token to whatever reaches it, so it answers only requests addressed
//! to its own loopback address and port, and refuses browser requests made for another site
//! ([`crate::proxy_guard`]).

use std::convert::Infallible;
use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use clap::Args;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use confidant_client::{Client, ClientError};

use crate::clientconf::ClientArgs;
use crate::proxy_guard;

/// `confidant proxy --help`.
pub const LONG_ABOUT: &str = "\
Local plain-HTTP OpenAI-compatible endpoint that forwards only to an attested enclave.

Every upstream connection is attested (certificate, policy, session evidence) before anything is
forwarded on it; while attestation fails, requests are answered 502 attestation_failed and nothing
is sent. Point any OpenAI SDK at http://127.0.0.1:PORT/v1.

The proxy adds YOUR token to every request it forwards. So that no one else can spend it, it
listens only on a loopback address and answers only requests whose Host is that address and port
(or localhost:PORT); it refuses, with 403, requests a web browser makes on behalf of a web page:
an Origin header other than its own, or Sec-Fetch-Site other than same-origin/none. A web page
(or a DNS-rebinding attack) cannot make it spend your token.";

/// Largest request body forwarded.
const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Loopback address to listen on (plain HTTP), e.g. 127.0.0.1:8080.
    #[arg(long, env = "CONFIDANT_PROXY_LISTEN")]
    listen: SocketAddr,
    /// Enclave base URL, `https://host:port`.
    #[arg(long, env = "CONFIDANT_UPSTREAM")]
    upstream: String,
    #[command(flatten)]
    client: ClientArgs,
}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

pub fn run(args: ProxyArgs) -> Result<()> {
    if !args.listen.ip().is_loopback() {
        bail!(
            "refusing to listen on {}: the proxy speaks plain HTTP and must stay on loopback",
            args.listen
        );
    }
    let client = args.client.builder(&args.upstream)?.build()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the runtime")?;
    runtime.block_on(serve(client, args.listen, args.upstream))
}

async fn serve(client: Client, listen: SocketAddr, upstream: String) -> Result<()> {
    eprintln!("attesting {upstream} …");
    match client.attest().await {
        Ok(claims) => eprintln!(
            "attested {upstream}: model {}{}",
            claims.result.model_id,
            if claims.is_dev() {
                " — DEVELOPMENT evidence"
            } else {
                ""
            }
        ),
        // Keep serving: every request attests its own upstream connection and is refused while
        // attestation fails (the enclave may be restarting).
        Err(e) => {
            eprintln!("attesting {upstream} failed: {e}; requests are refused until it passes")
        }
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    let local = listener.local_addr()?;
    eprintln!("listening on http://{local}/v1 (forwarding to {upstream})");
    let allowed: std::sync::Arc<[String]> = proxy_guard::allowed_hosts(local).into();
    loop {
        let (tcp, _) = tokio::select! {
            accepted = listener.accept() => accepted.context("accepting")?,
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let client = client.clone();
        let allowed = allowed.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let client = client.clone();
                let allowed = allowed.clone();
                async move { Ok::<_, Infallible>(handle(&client, &allowed, req).await) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .await
            {
                tracing::debug!(error = %e, "proxy connection ended");
            }
        });
    }
}

async fn handle(
    client: &Client,
    allowed: &[String],
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if let Err(refusal) = proxy_guard::check(req.headers(), allowed) {
        eprintln!("refused a request: {}", refusal.code());
        return error(StatusCode::FORBIDDEN, refusal.code(), refusal.message());
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                "request body too large",
            );
        }
    };
    let forwarded = Request::from_parts(parts, body);
    match client.forward(forwarded).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            for name in ["connection", "keep-alive", "transfer-encoding", "upgrade"] {
                parts.headers.remove(name);
            }
            Response::from_parts(parts, body.boxed())
        }
        Err(ClientError::Attestation(e)) => {
            eprintln!("refused upstream: {e}");
            error(
                StatusCode::BAD_GATEWAY,
                "attestation_failed",
                &e.to_string(),
            )
        }
        Err(e) => {
            eprintln!("upstream error: {e}");
            error(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "upstream unavailable",
            )
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut response = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    if let Ok(v) = "application/json".parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}
