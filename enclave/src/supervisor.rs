//! The enclave's life: attest (retrying with backoff, serving nothing), release and load the
//! model, serve over the attested certificate, re-attest before the certificate expires, and stop
//! serving (503) if it lapses.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use confidant_service::ratelimit::{RateLimitConfigError, SystemClock};
use confidant_service::secrets::SecretError;
use confidant_service::server::{ServeError, ServeOptions};
use confidant_service::tls::{CertResolver, TlsError, server_config};
use confidant_service::{JwtVerifier, RateLimits};
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiContext, AppState};
use confidant_wire::attest::LockdownStatus;

use crate::boot::{
    Attestation, AttestationSummary, Attestor, BootError, ReleasedModel, attest, load_engine,
    now_unix, read_sealed_header, release_model,
};
use crate::config::{BootConfig, Config};
use crate::keys::{KeyGenError, TlsIdentity};
use crate::limits::{AnomalyDetector, GenerationQueue};
use crate::metrics::{BootTimings, Metrics};
use crate::tee::{Tee, TeeError};
use crate::tee_gate::TeeGate;
use crate::verifier_client::{VerifierClient, VerifierError};

/// Why the enclave could not start at all (configuration, local files, devices).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("secret: {0}")]
    Secret(#[from] SecretError),
    #[error("client token keys: {0}")]
    JwtKeys(#[from] confidant_service::jwt::KeyError),
    #[error("rate limits: {0}")]
    RateLimit(#[from] RateLimitConfigError),
    #[error("TEE: {0}")]
    Tee(#[from] TeeError),
    #[error("verifier client: {0}")]
    Verifier(#[from] VerifierError),
    #[error("verifier trust anchor {path}: {source}")]
    Anchor {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("sealed model: {0}")]
    Sealed(#[from] BootError),
    #[error("{0}")]
    KeyGen(#[from] KeyGenError),
    #[error("start-up task failed: {0}")]
    Task(String),
}

/// Where the enclave is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a key release (nothing listens).
    Attesting,
    /// Key released; unsealing and loading the model.
    Loading,
    /// Attested and serving.
    Serving,
    /// The certificate expired without renewal: every API route answers 503.
    Lapsed,
    /// Boot failed for good (see the task's error).
    Failed,
    /// Shut down.
    Stopped,
}

/// State shared between the supervisor and whoever watches it.
#[derive(Debug)]
pub struct Shared {
    phase: Mutex<Phase>,
    metrics: Arc<Metrics>,
    serving: Arc<AtomicBool>,
    local_addr: OnceLock<SocketAddr>,
    attempts: AtomicU64,
    last_failure: Mutex<Option<&'static str>>,
}

impl Shared {
    fn set_phase(&self, phase: Phase) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }
}

/// A running enclave.
#[derive(Debug)]
pub struct Enclave {
    shared: Arc<Shared>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), BootError>>,
}

impl Enclave {
    /// Prepares everything local (keys, TEE, verifier client, sealed header, auth) and starts the
    /// supervisor. Returns once the supervisor runs; serving starts after key release. Nothing is
    /// locked down: for a process that confines itself after unsealing, use [`Enclave::boot`],
    /// then [`Enclave::serve`].
    pub async fn start(config: Config) -> Result<Self, StartError> {
        let booting = Self::boot(config).await?;
        let Booting {
            shared,
            token,
            task,
        } = booting;
        let serve_token = token.clone();
        let serve_shared = shared.clone();
        let task = tokio::spawn(async move {
            let booted = task.await.map_err(|e| BootError::Task(e.to_string()))??;
            match booted {
                Some(b) => supervise_serving(b, None, serve_shared, serve_token).await,
                None => Ok(()),
            }
        });
        Ok(Self {
            shared,
            token,
            task,
        })
    }

    /// The first half of [`Enclave::start`]: prepares everything local and runs the boot
    /// attestation and the unsealing of the model into memory. [`Booting::wait`] yields the
    /// [`Booted`] enclave, which reads no file any more: the caller may confine the process
    /// (see `crate::lockdown`) and then [`Enclave::serve`] it, also on another runtime.
    pub async fn boot(config: Config) -> Result<Booting, StartError> {
        let started = Instant::now();
        let config = Arc::new(config);
        let cfg = config.clone();
        let prepared = tokio::task::spawn_blocking(move || prepare(&cfg))
            .await
            .map_err(|e| StartError::Task(e.to_string()))??;
        let metrics = Arc::new(Metrics::default());
        let shared = Arc::new(Shared {
            phase: Mutex::new(Phase::Attesting),
            metrics,
            serving: Arc::new(AtomicBool::new(false)),
            local_addr: OnceLock::new(),
            attempts: AtomicU64::new(0),
            last_failure: Mutex::new(None),
        });
        let token = CancellationToken::new();
        let clock = BootClock {
            started,
            prepared: started.elapsed(),
        };
        let task = tokio::spawn(supervise_boot(
            config,
            prepared,
            clock,
            shared.clone(),
            token.clone(),
        ));
        Ok(Booting {
            shared,
            token,
            task,
        })
    }

    /// The second half of [`Enclave::start`]: builds the engine from the unsealed model, serves
    /// over the attested certificate and renews it. `lockdown` is how the process confined
    /// itself after unsealing (reported by `/healthz` and session attestation). Call within a
    /// Tokio runtime.
    pub fn serve(booted: Booted, lockdown: Option<LockdownStatus>) -> Self {
        let shared = booted.shared.clone();
        let token = booted.token.clone();
        let task = tokio::spawn(supervise_serving(
            booted,
            lockdown,
            shared.clone(),
            token.clone(),
        ));
        Self {
            shared,
            token,
            task,
        }
    }

    pub fn phase(&self) -> Phase {
        *self.shared.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The listener's address, once serving started.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.shared.local_addr.get().copied()
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.shared.metrics.clone()
    }

    /// How long each boot phase took, once serving started.
    pub fn boot_timings(&self) -> Option<BootTimings> {
        self.shared.metrics.boot()
    }

    /// Attestation attempts so far (boot and renewals).
    pub fn attempts(&self) -> u64 {
        self.shared.attempts.load(Ordering::Relaxed)
    }

    /// Label of the last failed attempt (`verifier_unreachable`, `verifier_refused`, …).
    pub fn last_failure(&self) -> Option<&'static str> {
        *self
            .shared
            .last_failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the supervisor has ended (failed or stopped).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// A token that stops the enclave when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Waits for the supervisor to end; its error if boot failed for good.
    pub async fn wait(self) -> Result<(), BootError> {
        self.task
            .await
            .map_err(|e| BootError::Task(e.to_string()))?
    }

    /// Stops serving and waits.
    pub async fn shutdown(self) -> Result<(), BootError> {
        self.token.cancel();
        self.wait().await
    }
}

/// When boot started, and how long local preparation took.
#[derive(Debug, Clone, Copy)]
struct BootClock {
    started: Instant,
    prepared: Duration,
}

struct Prepared {
    attestor: Attestor,
    tls: Arc<TlsIdentity>,
    tee: Arc<Tee>,
    gate: Arc<TeeGate>,
    jwt: Arc<JwtVerifier>,
    rate: RateLimits,
}

fn prepare(config: &Arc<Config>) -> Result<Prepared, StartError> {
    let header = read_sealed_header(&config.sealed_model)?;
    tracing::info!(
        model_id = %config.model_id,
        key_id = %header.key_id,
        model_digest = %header.model_digest,
        "sealed model header read (body untouched until key release)"
    );
    let anchors = std::fs::read(&config.verifier.tls_ca).map_err(|source| StartError::Anchor {
        path: config.verifier.tls_ca.clone(),
        source,
    })?;
    let token = confidant_service::load_secret(&config.verifier.token)?;
    let verifier = VerifierClient::new(
        &config.verifier.url,
        &anchors,
        token,
        Duration::from_secs(config.verifier.timeout_secs.max(1)),
    )?;
    let keys = confidant_service::load_secret(&config.auth.verification_keys)?;
    let jwt = JwtVerifier::new(
        config.auth.issuer.clone(),
        config.auth.audience.clone(),
        confidant_service::jwt::parse_keys(keys.expose(), None)?,
    )?
    .with_leeway(config.auth.leeway_secs);
    let rate = RateLimits::new(&config.rate_limit, Arc::new(SystemClock))?;
    let tee = Arc::new(Tee::open(&config.tee)?);
    let tls = Arc::new(TlsIdentity::generate()?);
    let gate = Arc::new(TeeGate::new(
        config.limits.session_attestation_queue,
        Duration::from_millis(config.limits.session_attestation_wait_ms),
    ));
    Ok(Prepared {
        attestor: Attestor {
            config: config.clone(),
            tee: tee.clone(),
            gate: gate.clone(),
            verifier,
            tls: tls.clone(),
            header,
        },
        tls,
        tee,
        gate,
        jwt: Arc::new(jwt),
        rate,
    })
}

/// An enclave whose boot attestation and unsealing are under way ([`Enclave::boot`]).
#[derive(Debug)]
pub struct Booting {
    shared: Arc<Shared>,
    token: CancellationToken,
    task: tokio::task::JoinHandle<Result<Option<Booted>, BootError>>,
}

impl Booting {
    /// A token that stops the boot when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Waits for the boot: the booted enclave, `None` if it was stopped first, or its error.
    pub async fn wait(self) -> Result<Option<Booted>, BootError> {
        self.task
            .await
            .map_err(|e| BootError::Task(e.to_string()))?
    }
}

/// An attested enclave with its model unsealed in memory, not yet serving ([`Enclave::boot`]).
/// It needs no file any more.
pub struct Booted {
    config: Arc<Config>,
    prepared: Prepared,
    clock: BootClock,
    released: ReleasedModel,
    summary: AttestationSummary,
    attestation_time: Duration,
    unseal_time: Duration,
    shared: Arc<Shared>,
    token: CancellationToken,
}

impl std::fmt::Debug for Booted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Booted")
            .field("model", &self.released)
            .finish_non_exhaustive()
    }
}

impl Booted {
    /// The configuration the enclave runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The TEE (its worker thread, if any, exists since before the lockdown).
    pub fn tee(&self) -> &Arc<Tee> {
        &self.prepared.tee
    }
}

async fn supervise_boot(
    config: Arc<Config>,
    prepared: Prepared,
    clock: BootClock,
    shared: Arc<Shared>,
    token: CancellationToken,
) -> Result<Option<Booted>, BootError> {
    let result = boot_phase(config, prepared, clock, &shared, &token).await;
    match &result {
        Ok(Some(_)) => {}
        Ok(None) => shared.set_phase(Phase::Stopped),
        Err(e) => {
            shared.set_phase(Phase::Failed);
            tracing::error!(error = %e, "enclave boot failed; not serving");
        }
    }
    result
}

async fn supervise_serving(
    booted: Booted,
    lockdown: Option<LockdownStatus>,
    shared: Arc<Shared>,
    token: CancellationToken,
) -> Result<(), BootError> {
    let result = serve_phase(booted, lockdown, &shared, &token).await;
    match &result {
        Ok(()) => shared.set_phase(Phase::Stopped),
        Err(e) => {
            shared.set_phase(Phase::Failed);
            shared.serving.store(false, Ordering::Release);
            tracing::error!(error = %e, "enclave boot failed; not serving");
        }
    }
    result
}

/// Attestation (with retries) and unsealing: everything that reads files or needs the key.
async fn boot_phase(
    config: Arc<Config>,
    prepared: Prepared,
    clock: BootClock,
    shared: &Arc<Shared>,
    token: &CancellationToken,
) -> Result<Option<Booted>, BootError> {
    let boot = config.boot;
    let attest_started = Instant::now();
    let Some(first) = attest_until(&prepared.attestor, shared, &boot, None, token).await else {
        return Ok(None);
    };
    let attestation_time = attest_started.elapsed();

    shared.set_phase(Phase::Loading);
    shared.metrics.unsealed();
    let sealed_path = config.sealed_model.clone();
    let ((released, summary), unseal_time) =
        timed_blocking(move || release_model(first, &sealed_path)).await?;
    tracing::info!(
        model_id = %config.model_id,
        model_digest = %summary.model_digest,
        dev = summary.dev,
        "model key released, model unsealed in memory"
    );
    Ok(Some(Booted {
        config,
        prepared,
        clock,
        released,
        summary,
        attestation_time,
        unseal_time,
        shared: shared.clone(),
        token: token.clone(),
    }))
}

/// Engine, listener and renewals: reads no file.
async fn serve_phase(
    booted: Booted,
    lockdown: Option<LockdownStatus>,
    shared: &Arc<Shared>,
    token: &CancellationToken,
) -> Result<(), BootError> {
    let Booted {
        config,
        prepared,
        clock,
        released,
        summary,
        attestation_time,
        unseal_time,
        ..
    } = booted;
    let Prepared {
        attestor,
        tls,
        tee,
        gate,
        jwt,
        rate,
    } = prepared;
    let boot = config.boot;
    let limits = config.limits;
    let (model, load_time) = timed_blocking(move || load_engine(released, &limits)).await?;
    tracing::info!(
        model_id = %model.model_id,
        model_digest = %model.digest,
        dev = summary.dev,
        "model loaded"
    );
    // Loading can take a while: never open the listener with a certificate already past its
    // renewal point.
    let (mut certified, mut received, mut not_after) =
        (summary.certified, summary.received_at, summary.not_after);
    if now_unix() >= renewal_time(received, not_after, boot.renew_at) {
        tracing::info!(
            not_after,
            "certificate aged while loading the model; renewing first"
        );
        let Some(renewed) = attest_until(&attestor, shared, &boot, None, token).await else {
            return Ok(());
        };
        certified = renewed.certified_key();
        (received, not_after) = renewed.validity();
    }
    let resolver = Arc::new(CertResolver::new(certified));
    let tls_config = server_config(resolver.clone()).map_err(tls_task)?;
    let metrics = shared.metrics.clone();
    let state = AppState(Arc::new(ApiContext {
        jwt,
        client_role: config.auth.client_role.clone(),
        metrics_role: config.auth.metrics_role.clone(),
        rate,
        queue: GenerationQueue::new(
            config.limits.max_concurrent,
            config.limits.max_queue,
            Duration::from_millis(config.limits.queue_timeout_ms),
            metrics.clone(),
        ),
        anomalies: AnomalyDetector::default(),
        metrics: metrics.clone(),
        model: Arc::new(model),
        tee,
        tee_gate: gate,
        tls_spki: tls.spki_der().to_vec(),
        limits: config.limits,
        serving: shared.serving.clone(),
        loaded_at: now_unix(),
        lockdown,
    }));
    let options = ServeOptions {
        max_connections: config.server.max_connections,
        ..ServeOptions::with_timeouts(&config.server.timeouts)
    };
    shared.serving.store(true, Ordering::Release);
    let listen_started = Instant::now();
    let handle = confidant_service::serve(
        config.server.listen,
        Arc::new(tls_config),
        api::router(state),
        options,
    )
    .await
    .map_err(serve_task)?;
    let timings = BootTimings {
        prepare: clock.prepared,
        attestation: attestation_time,
        unseal: unseal_time,
        model_load: load_time,
        listen: listen_started.elapsed(),
        total: clock.started.elapsed(),
    };
    metrics.set_boot(timings);
    let _ = shared.local_addr.set(handle.local_addr());
    metrics.set_serving(true, not_after);
    shared.set_phase(Phase::Serving);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    tracing::info!(
        addr = %handle.local_addr(),
        not_after,
        prepare_ms = ms(timings.prepare),
        attestation_ms = ms(timings.attestation),
        unseal_ms = ms(timings.unseal),
        model_load_ms = ms(timings.model_load),
        listen_ms = ms(timings.listen),
        boot_ms = ms(timings.total),
        "serving"
    );

    loop {
        let renew_at = renewal_time(received, not_after, boot.renew_at);
        let wait = Duration::from_secs(renew_at.saturating_sub(now_unix()));
        tokio::select! {
            () = token.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
        tracing::info!(
            not_after,
            "renewing the attestation before the certificate expires"
        );
        let Some(renewed) = attest_until(&attestor, shared, &boot, Some(not_after), token).await
        else {
            break;
        };
        resolver.set(renewed.certified_key());
        (received, not_after) = renewed.validity();
        // The released key in `renewed` is dropped unopened; its wrapping key is zeroized.
        drop(renewed);
        metrics.set_serving(true, not_after);
        if !shared.serving.swap(true, Ordering::AcqRel) {
            tracing::info!("attestation renewed: serving again");
        }
        shared.set_phase(Phase::Serving);
    }
    shared.serving.store(false, Ordering::Release);
    metrics.set_serving(false, not_after);
    handle.shutdown().await;
    Ok(())
}

/// Runs `f` on the blocking pool; its result and how long it took.
async fn timed_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BootError> + Send + 'static,
) -> Result<(T, Duration), BootError> {
    tokio::task::spawn_blocking(move || {
        let t = Instant::now();
        f().map(|v| (v, t.elapsed()))
    })
    .await
    .map_err(|e| BootError::Task(e.to_string()))?
}

/// When a certificate received at `received` and valid until `not_after` is renewed.
fn renewal_time(received: u64, not_after: u64, fraction: f64) -> u64 {
    let life = not_after.saturating_sub(received) as f64;
    received.saturating_add((life * fraction) as u64)
}

fn tls_task(e: TlsError) -> BootError {
    BootError::Task(format!("TLS configuration: {e}"))
}

fn serve_task(e: ServeError) -> BootError {
    BootError::Task(format!("listener: {e}"))
}

/// Attests until it succeeds (backoff with jitter) or the token is cancelled. With `expires`
/// (renewals), flips the API to 503 once that moment passes without success.
async fn attest_until(
    attestor: &Attestor,
    shared: &Shared,
    boot: &BootConfig,
    expires: Option<u64>,
    token: &CancellationToken,
) -> Option<Attestation> {
    let mut delay = boot.retry_initial();
    loop {
        shared.attempts.fetch_add(1, Ordering::Relaxed);
        let attempt = tokio::select! {
            () = token.cancelled() => return None,
            r = attest(attestor) => r,
        };
        match attempt {
            Ok(a) => {
                shared.metrics.attestation("accepted");
                let (_, not_after) = a.validity();
                tracing::info!(
                    not_after,
                    "attestation accepted: key released, certificate issued"
                );
                return Some(a);
            }
            Err(e) => {
                shared.metrics.attestation(e.label());
                *shared
                    .last_failure
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = Some(e.label());
                let subject = crate::hints::Subject {
                    model_id: &attestor.config.model_id,
                    model_digest: &attestor.header.model_digest,
                    key_id: &attestor.header.key_id,
                    tee: attestor.tee.name(),
                    sim_measurement: attestor.tee.sim_measurement(),
                };
                match crate::hints::for_error(&e, &subject) {
                    Some(hint) => tracing::warn!(
                        error = %e,
                        hint = %hint,
                        retry_in_ms = delay.as_millis() as u64,
                        "attestation failed; retrying (nothing is served on a failed attestation)"
                    ),
                    None => tracing::warn!(
                        error = %e,
                        retry_in_ms = delay.as_millis() as u64,
                        "attestation failed; retrying (nothing is served on a failed attestation)"
                    ),
                }
            }
        }
        let mut sleep = delay.mul_f64(rand::thread_rng().gen_range(0.8..1.2));
        if let Some(exp) = expires {
            let now = now_unix();
            if now >= exp {
                if shared.serving.swap(false, Ordering::AcqRel) {
                    shared.set_phase(Phase::Lapsed);
                    shared.metrics.set_serving(false, exp);
                    tracing::error!(
                        "certificate expired without a renewed attestation: API answers 503 \
                         until the verifier attests this enclave again"
                    );
                }
            } else {
                sleep = sleep.min(Duration::from_secs(exp - now));
            }
        }
        tokio::select! {
            () = token.cancelled() => return None,
            () = tokio::time::sleep(sleep) => {}
        }
        delay = (delay * 2).min(boot.retry_max());
    }
}
