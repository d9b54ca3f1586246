//! Start-up: load everything, then serve the attestation API and, on its own address, the admin
//! and auditor APIs, both over TLS 1.3 with the verifier's certificate.

use std::sync::Arc;

use confidant_service::ServerHandle;
use confidant_service::server::ServeOptions;
use confidant_service::tls::{CertResolver, certified_key_from_pem, server_config};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::state::{StartError, Verifier};

/// A running verifier.
#[derive(Debug)]
pub struct Running {
    /// The attestation API (`server.listen`).
    pub handle: ServerHandle,
    /// The admin and auditor APIs (`server.admin_listen`).
    pub admin: ServerHandle,
    pub verifier: Arc<Verifier>,
}

impl Running {
    /// A token that stops both listeners when cancelled (e.g. from a signal handler).
    pub fn shutdown_token(&self) -> CancellationToken {
        let both = CancellationToken::new();
        let (api, admin) = (self.handle.shutdown_token(), self.admin.shutdown_token());
        let trigger = both.clone();
        tokio::spawn(async move {
            trigger.cancelled().await;
            api.cancel();
            admin.cancel();
        });
        both
    }

    /// Stops both listeners and waits for them.
    pub async fn shutdown(self) {
        self.handle.shutdown_token().cancel();
        self.admin.shutdown().await;
        self.handle.stopped().await;
    }

    /// Waits until both listeners have stopped (after [`Running::shutdown_token`] was cancelled).
    pub async fn stopped(self) {
        self.handle.stopped().await;
        self.admin.stopped().await;
    }
}

/// Loads the configuration's secrets and state and starts serving on `config.server.listen`
/// (attestation API) and `config.server.admin_listen` (admin and auditor APIs).
pub async fn start(config: Config) -> Result<Running, StartError> {
    let cfg = config.clone();
    let (verifier, tls) = tokio::task::spawn_blocking(move || -> Result<_, StartError> {
        let cert_pem = std::fs::read(&cfg.server.tls_cert).map_err(|source| StartError::Io {
            path: cfg.server.tls_cert.clone(),
            source,
        })?;
        let key_pem = confidant_service::load_secret(&cfg.server.tls_key)?;
        let key = certified_key_from_pem(&cert_pem, key_pem.expose())?;
        let tls = server_config(Arc::new(CertResolver::new(key)))?;
        Ok((Verifier::open(&cfg)?, tls))
    })
    .await
    .map_err(|e| StartError::Io {
        path: "<start-up task>".into(),
        source: std::io::Error::other(e.to_string()),
    })??;
    let verifier = Arc::new(verifier);
    if config.server.admin_listen == config.server.listen && config.server.listen.port() != 0 {
        return Err(StartError::SameAddress(config.server.listen));
    }
    let tls = Arc::new(tls);
    let max_body = config.server.max_body_bytes;
    let app = crate::api::attestation_router(verifier.clone(), max_body);
    let handle = confidant_service::serve(
        config.server.listen,
        tls.clone(),
        app,
        ServeOptions::with_timeouts(&config.server.timeouts),
    )
    .await?;
    let admin_app = crate::api::admin_router(verifier.clone(), max_body);
    let admin = match confidant_service::serve(
        config.server.admin_listen,
        tls,
        admin_app,
        ServeOptions::with_timeouts(&config.server.timeouts),
    )
    .await
    {
        Ok(admin) => admin,
        Err(e) => {
            handle.shutdown().await;
            return Err(e.into());
        }
    };
    tracing::info!(addr = %handle.local_addr(), "confidant-verifier listening");
    tracing::info!(addr = %admin.local_addr(), "confidant-verifier admin listening");
    Ok(Running {
        handle,
        admin,
        verifier,
    })
}
