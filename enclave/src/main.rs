//! `confidant-enclave`: the inference service inside the confidential VM.
//!
//! ```text
//! confidant-enclave serve --config enclave.toml [--log-format json|text]
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use confidant_enclave::config::Config;
use confidant_enclave::supervisor::Enclave;
use confidant_service::config::shutdown_signal;

#[derive(Debug, Parser)]
#[command(name = "confidant-enclave", about = "Confidant inference service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attest to the verifier, unseal the model in memory and serve the API over attested TLS.
    Serve {
        /// Configuration file (see docs/enclave.example.toml).
        #[arg(long, env = "CONFIDANT_ENCLAVE_CONFIG")]
        config: PathBuf,
        /// Log format.
        #[arg(long, default_value = "json")]
        log_format: LogFormat,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Serve { config, log_format }) => serve(&config, log_format)?,
        None => println!("confidant-enclave"),
    }
    Ok(())
}

/// Boots on one runtime (attestation, unsealing: the only phase that reads files), ends that
/// runtime so that its threads are gone, locks the process down on the main thread, then serves
/// on a second runtime whose threads inherit the confinement.
fn serve(config: &std::path::Path, log_format: LogFormat) -> anyhow::Result<()> {
    confidant_service::telemetry::init_tracing(matches!(log_format, LogFormat::Json))
        .context("logging")?;
    let config = Config::load(config).context("configuration")?;
    let boot_runtime = runtime()?;
    let booted = boot_runtime.block_on(async move {
        let booting = Enclave::boot(config).await.context("start")?;
        let token = booting.shutdown_token();
        let signal = tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            token.cancel();
        });
        let booted = booting.wait().await.context("boot");
        signal.abort();
        booted
    })?;
    // Dropping the runtime joins its worker and blocking threads.
    drop(boot_runtime);
    let Some(booted) = booted else {
        return Ok(());
    };
    let lockdown = confidant_enclave::lockdown::lock_down(&booted);
    let serve_runtime = runtime()?;
    serve_runtime.block_on(async move {
        let enclave = Enclave::serve(booted, Some(lockdown));
        let token = enclave.shutdown_token();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutting down");
            token.cancel();
        });
        enclave.wait().await.context("serve")
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")
}
