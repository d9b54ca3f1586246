//! Start-up: load everything, then serve the API over TLS 1.3.

use std::sync::Arc;

use confidant_service::ServerHandle;
use confidant_service::server::ServeOptions;
use confidant_service::tls::{CertResolver, certified_key_from_pem, server_config};

use crate::config::Config;
use crate::state::{StartError, Verifier};

/// A running verifier.
#[derive(Debug)]
pub struct Running {
    pub handle: ServerHandle,
    pub verifier: Arc<Verifier>,
}

/// Loads the configuration's secrets and state and starts serving on `config.server.listen`.
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
    let app = crate::api::router(verifier.clone(), config.server.max_body_bytes);
    let handle = confidant_service::serve(
        config.server.listen,
        Arc::new(tls),
        app,
        ServeOptions::default(),
    )
    .await?;
    tracing::info!(addr = %handle.local_addr(), "confidant-verifier listening");
    Ok(Running { handle, verifier })
}
