//! `confidant-verifier`: the attestation service (appraisal, key broker, CA, audit log).
//!
//! ```text
//! confidant-verifier init DIR [--dev-pki DIR] [--model ID --digest HEX --measurement HEX...]
//!                         [--listen ADDR] [--admin-listen ADDR] [--tls-name NAME]... [--force]
//! confidant-verifier serve --config DIR/verifier.toml [--log-format json|text]
//! ```
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use confidant_attestation::digest::Blake3Digest;
use confidant_service::config::shutdown_signal;
use confidant_verifier::config::Config;
use confidant_verifier::init::{DEV_ENCLAVE_NAMES, InitModel, InitOptions, init};

#[derive(Debug, Parser)]
#[command(name = "confidant-verifier", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a fresh development configuration and secrets (0600) into DIR.
    Init(Box<InitArgs>),
    /// Run the service.
    Serve {
        #[arg(long, env = "CONFIDANT_VERIFIER_CONFIG")]
        config: PathBuf,
        /// Log format.
        #[arg(long, default_value = "json")]
        log_format: LogFormat,
    },
}

/// `confidant-verifier init` (boxed in [`Command`]: it is much larger than `serve`).
#[derive(Debug, clap::Args)]
struct InitArgs {
    dir: PathBuf,
    /// Output directory of `scripts/dev-pki.sh` (run it first): the development policy
    /// trusts its SNP root.
    #[arg(long, value_name = "DIR")]
    dev_pki: Option<PathBuf>,
    /// A model id to allow in the policy (with --digest and --measurement). Also writes
    /// DIR/client.toml, the settings `confidant attest|chat|proxy --config` needs.
    #[arg(long, value_name = "ID", requires_all = ["digest", "measurement"])]
    model: Option<String>,
    /// The model's digest: BLAKE3-256 of the plaintext bundle, 64 hex digits (`confidant
    /// model inspect FILE.sealed --digest`).
    #[arg(long, value_name = "HEX", requires = "model", value_parser = hex_array::<32>)]
    digest: Option<[u8; 32]>,
    /// A SEV-SNP launch measurement allowed to run the model, 96 hex digits (simulated TEE:
    /// `confidant measure sim --binary $(command -v confidant-enclave)`). Repeatable.
    #[arg(long, value_name = "HEX", requires = "model", value_parser = hex_array::<48>)]
    measurement: Vec<[u8; 48]>,
    /// A name (DNS or IP address) an enclave serving the model may have in its certificate:
    /// the model's `tls_names` (repeatable; default `localhost` and `127.0.0.1`). An enclave
    /// asking for any other name is refused.
    #[arg(long = "enclave-name", value_name = "NAME", requires = "model")]
    enclave_names: Vec<String>,
    /// Listen address written into the configuration.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: String,
    /// Address of the admin and auditor APIs written into the configuration (default:
    /// loopback, the port after --listen's; port 0 when --listen uses port 0).
    #[arg(long)]
    admin_listen: Option<String>,
    /// A further DNS name or IP address for the verifier's TLS certificate (repeatable; it
    /// always names `localhost` and `127.0.0.1`). A VM guest reaching the verifier through a
    /// forwarded address needs that address here.
    #[arg(long = "tls-name", value_name = "NAME")]
    tls_names: Vec<String>,
    /// Overwrite an existing configuration.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Json,
    Text,
}

/// `N` bytes from hex, for clap.
fn hex_array<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let bytes = hex::decode(s.trim()).map_err(|_| format!("not hex: {s:?}"))?;
    let len = bytes.len();
    bytes
        .try_into()
        .map_err(|_| format!("{len} bytes, expected {N} ({} hex digits)", 2 * N))
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confidant-verifier: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => {
            let InitArgs {
                dir,
                dev_pki,
                model,
                digest,
                measurement,
                enclave_names,
                listen,
                admin_listen,
                tls_names,
                force,
            } = *args;
            let mut opts = InitOptions::new(dir);
            opts.dev_pki = dev_pki;
            let enclave_names = if enclave_names.is_empty() {
                DEV_ENCLAVE_NAMES.map(String::from).to_vec()
            } else {
                enclave_names
            };
            opts.model = model.zip(digest).map(|(id, digest)| InitModel {
                id,
                digest: Blake3Digest::from_bytes(digest),
                snp_measurements: measurement,
                tls_names: enclave_names,
            });
            opts.listen = listen;
            opts.admin_listen = admin_listen;
            opts.force = force;
            opts.tls_names = tls_names;
            let out = init(&opts, confidant_verifier::now_unix()).context("init")?;
            println!("wrote {}", out.config.display());
            for (role, path) in out.tokens {
                println!("token for role {role}: {}", path.display());
            }
            match out.client {
                Some(client) => println!("client settings: {}", client.display()),
                None => println!(
                    "no model allowed yet: add a [models.\"ID\"] table to {} (its comments say how)",
                    opts.dir.join("policy.toml").display()
                ),
            }
            Ok(())
        }
        Command::Serve { config, log_format } => {
            confidant_service::telemetry::init_tracing(matches!(log_format, LogFormat::Json))
                .context("logging")?;
            if !config.exists() {
                anyhow::bail!(
                    "configuration {} does not exist (`confidant-verifier init DIR` writes \
                     DIR/{})",
                    config.display(),
                    confidant_verifier::init::CONFIG_FILE
                );
            }
            let config = Config::load(&config).context("configuration")?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("tokio runtime")?;
            runtime.block_on(async move {
                let running = confidant_verifier::server::start(config)
                    .await
                    .context("start")?;
                let token = running.shutdown_token();
                tokio::spawn(async move {
                    shutdown_signal().await;
                    tracing::info!("shutting down");
                    token.cancel();
                });
                running.stopped().await;
                Ok(())
            })
        }
    }
}
