//! `confidant-bench`: what attestation costs, each figure against a baseline measured in the same
//! process and run, reported as ratios (absolute times on shared machines drift).
//!
//! ```text
//! confidant-bench [--quick] [--json] [--bundle DIR] [--only verify,unseal,attest,handshake,generate,coldstart]
//! ```
//!
//! Figures: `verify` (SNP report and TPM quote verification vs one bare ECDSA verification),
//! `unseal` (sealed-model decryption vs raw AES-256-GCM; peak RSS of a child process vs the model
//! size), `attest` (in-process verifier `/v1/attest` at 1, 8 and 64 concurrent attesters).
//! `child-unseal` / `child-raw` are internal: one measurement per child process so that VmHWM
//! is that measurement's own peak.
#![forbid(unsafe_code)]

mod attest;
mod coldstart;
mod generate;
mod handshake;
mod report;
mod unseal;
mod verify;

use std::path::PathBuf;

use anyhow::{Context, bail};

use report::Report;

/// Options shared by every figure.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Shorter runs (the whole `--quick` suite stays under two minutes).
    pub quick: bool,
    /// Prepared model bundle directory (`model.gguf`, `tokenizer.json`, `config.json`).
    pub bundle: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut opts = Opts {
        quick: false,
        bundle: None,
    };
    let mut json = false;
    let mut only: Option<Vec<String>> = None;
    let first = args.next();
    match first.as_deref() {
        Some("child-unseal") => return unseal::child(args.collect(), false),
        Some("child-raw") => return unseal::child(args.collect(), true),
        _ => {}
    }
    let mut rest: Vec<String> = first.into_iter().collect();
    rest.extend(args);
    let mut it = rest.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => opts.quick = true,
            "--json" => json = true,
            "--bundle" => opts.bundle = Some(PathBuf::from(it.next().context("--bundle DIR")?)),
            "--only" => {
                only = Some(
                    it.next()
                        .context("--only LIST")?
                        .split(',')
                        .map(str::to_owned)
                        .collect(),
                )
            }
            other => bail!(
                "unknown argument {other:?}; usage: confidant-bench [--quick] [--json] \
                 [--bundle DIR] [--only verify,unseal,attest,handshake,generate,coldstart]"
            ),
        }
    }
    let wants = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == name));

    let mut report = Report::default();
    if wants("verify") {
        verify::run(&opts, &mut report)?;
    }
    if wants("unseal") {
        unseal::run(&opts, &mut report)?;
    }
    if wants("attest") {
        attest::run(&opts, &mut report)?;
    }
    if wants("handshake") {
        handshake::run(&opts, &mut report)?;
    }
    if wants("generate") {
        generate::run(&opts, &mut report)?;
    }
    if wants("coldstart") {
        coldstart::run(&opts, &mut report)?;
    }
    if json {
        println!("{}", report.to_json());
    }
    Ok(())
}
