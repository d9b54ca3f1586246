//! The enclave's HTTP API (served only over the attested TLS listener).
//!
//! | route | who |
//! |---|---|
//! | `POST /v1/chat/completions`, `POST /v1/completions` | role `client` (configurable), rate-limited |
//! | `GET /v1/models` | role `client` |
//! | `POST /v1/attestation` | anyone: no token is sent before the session is proven; rate-limited per peer address |
//! | `GET /metrics` | role `metrics` (configurable; the operator's scraper, never clients) |
//! | `GET /healthz` | anyone (serving or not, and the lockdown status; nothing about requests) |
//!
//! `/metrics` needs its own credential because its counters, read before and after someone
//! else's request, would tell that request's token counts and timing: only the operator, who
//! already sees the traffic's sizes and timing on the network, may read them.
//!
//! The three `POST` routes take only bodies declared `application/json` (415 otherwise, before
//! anything else runs), so a web page cannot make a browser run them as a cross-site "simple
//! request".
//!
//! There is no route that returns keys, weights, other users' data or a shell. While the
//! certificate is expired and not renewed, every route except `/healthz` and `/metrics` answers
//! 503 `not_attested`.

mod generate;
mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRef, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use confidant_service::content_type::require_json;
use confidant_service::{ApiError, JwtVerifier, Principal, RateLimits, RequireAuth, require_role};
use confidant_wire::attest::LockdownStatus;
use confidant_wire::openai::{Model, ModelList};
use confidant_wire::routes::enclave::{
    CHAT_COMPLETIONS, COMPLETIONS, HEALTHZ, METRICS, MODELS, SESSION_ATTESTATION,
};

use crate::boot::ServingModel;
use crate::config::LimitsConfig;
use crate::limits::{AnomalyDetector, GenerationQueue};
use crate::metrics::Metrics;
use crate::tee::Tee;
use crate::tee_gate::TeeGate;

/// Shared state of every handler.
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<ApiContext>);

/// What the handlers need.
#[derive(Debug)]
pub struct ApiContext {
    pub jwt: Arc<JwtVerifier>,
    pub client_role: String,
    pub metrics_role: String,
    pub rate: RateLimits,
    pub queue: GenerationQueue,
    pub anomalies: AnomalyDetector,
    pub metrics: Arc<Metrics>,
    pub model: Arc<ServingModel>,
    pub tee: Arc<Tee>,
    /// Session attestations wait here for the TEE, behind the enclave's own.
    pub tee_gate: Arc<TeeGate>,
    /// DER SPKI of the TLS key (session evidence binds it).
    pub tls_spki: Vec<u8>,
    pub limits: LimitsConfig,
    /// False while the certificate is expired and not renewed.
    pub serving: Arc<AtomicBool>,
    /// Unix seconds the model was loaded (`created` of `GET /v1/models`).
    pub loaded_at: u64,
    /// How the process confined itself after unsealing (`None`: it did not).
    pub lockdown: Option<LockdownStatus>,
}

impl FromRef<AppState> for Arc<JwtVerifier> {
    fn from_ref(state: &AppState) -> Self {
        state.0.jwt.clone()
    }
}

impl ApiContext {
    /// Records a refusal (metrics; anomaly tracking when the caller is known) and returns it.
    pub(crate) fn refuse(&self, principal: Option<&Principal>, err: ApiError) -> ApiError {
        self.metrics.rejection(err.code);
        if let Some(p) = principal {
            self.anomalies.rejected(&p.subject, err.code);
        }
        tracing::debug!(
            code = err.code,
            status = err.status.as_u16(),
            "request refused"
        );
        err
    }

    /// Authentication, role and the request budget: the common gate of client routes.
    pub(crate) fn admit(
        &self,
        auth: Result<RequireAuth, ApiError>,
        rate_limited: bool,
    ) -> Result<Principal, ApiError> {
        let RequireAuth(p) = auth.map_err(|e| self.refuse(None, e))?;
        if let Err(e) = require_role(&p, &self.client_role) {
            return Err(self.refuse(Some(&p), e.into()));
        }
        if rate_limited && let Err(e) = self.rate.check_request(&p.subject) {
            return Err(self.refuse(Some(&p), e.into()));
        }
        Ok(p)
    }
}

/// All routes, hardened (JSON errors, body cap, request ids), with metrics and the serving gate.
pub fn router(state: AppState) -> Router {
    let max_body = state.0.limits.max_body_bytes;
    let app = Router::new()
        .route(
            CHAT_COMPLETIONS,
            post(generate::chat).route_layer(from_fn(require_json)),
        )
        .route(
            COMPLETIONS,
            post(generate::completions).route_layer(from_fn(require_json)),
        )
        .route(MODELS, get(models))
        .route(
            SESSION_ATTESTATION,
            post(session::attestation).route_layer(from_fn(require_json)),
        )
        .route(HEALTHZ, get(healthz))
        .route(METRICS, get(metrics))
        .route_layer(from_fn_with_state(state.clone(), gate))
        .with_state(state);
    confidant_service::harden(app, max_body)
}

/// A fixed label for a matched route (no route has path parameters, so the path is the route).
fn route_label(path: &str) -> &'static str {
    match path {
        CHAT_COMPLETIONS => CHAT_COMPLETIONS,
        COMPLETIONS => COMPLETIONS,
        MODELS => MODELS,
        SESSION_ATTESTATION => SESSION_ATTESTATION,
        HEALTHZ => HEALTHZ,
        METRICS => METRICS,
        _ => "other",
    }
}

/// Metrics for every matched route, and 503 while not attested.
async fn gate(State(AppState(s)): State<AppState>, req: Request, next: Next) -> Response {
    let route = route_label(req.uri().path());
    let started = Instant::now();
    let open = matches!(route, HEALTHZ | METRICS);
    let resp = if !open && !s.serving.load(Ordering::Acquire) {
        s.refuse(
            None,
            ApiError::unavailable("not_attested", "the enclave's attestation has lapsed"),
        )
        .into_response()
    } else {
        next.run(req).await
    };
    if route != METRICS {
        s.metrics
            .request(route, resp.status().as_u16(), started.elapsed());
    }
    resp
}

async fn models(
    State(AppState(s)): State<AppState>,
    auth: Result<RequireAuth, ApiError>,
) -> Result<axum::Json<ModelList>, ApiError> {
    s.admit(auth, false)?;
    Ok(axum::Json(ModelList {
        object: "list".into(),
        data: vec![Model {
            id: s.model.model_id.clone(),
            object: "model".into(),
            created: s.loaded_at,
            owned_by: "confidant".into(),
            digest: Some(s.model.digest.to_hex()),
        }],
    }))
}

/// `GET /healthz`: serving or not, and how the process is confined.
#[derive(serde::Serialize)]
struct Health<'a> {
    status: &'static str,
    lockdown: Option<&'a LockdownStatus>,
}

async fn healthz(State(AppState(s)): State<AppState>) -> Response {
    let serving = s.serving.load(Ordering::Acquire);
    let status = if serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Health {
        status: if serving { "serving" } else { "not_attested" },
        lockdown: s.lockdown.as_ref(),
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(
    State(AppState(s)): State<AppState>,
    auth: Result<RequireAuth, ApiError>,
) -> Result<Response, ApiError> {
    let RequireAuth(p) = auth.map_err(|e| s.refuse(None, e))?;
    require_role(&p, &s.metrics_role).map_err(|e| s.refuse(Some(&p), e.into()))?;
    let mut resp = s.metrics.render().into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(resp)
}
