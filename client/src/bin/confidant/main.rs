//! `confidant`: the Confidant command line.
//!
//! - `confidant evidence verify …`: check SEV-SNP or TPM evidence offline and print the claims.
//! - `confidant attest URL`, `confidant chat URL "prompt"`, `confidant proxy --listen … --upstream …`:
//!   talk to an enclave only after attesting it (see `confidant_client`).
//! - `confidant model prepare | seal | inspect | register`: prepare a model bundle from the shipped
//!   GGUF, seal it, read its header, import its key.
//! - `confidant audit verify | export`: check the verifier's audit log offline, export it for a SIEM.
//! - `confidant measure sim --binary PATH`: the simulated TEE's launch measurement of an enclave build.
//! - `confidant measure snp --ovmf FILE --vcpus N …`: the SEV-SNP launch measurement of an OVMF image.
//! - `confidant vm build --out DIR …`, `confidant vm measure DIR`: a measured-boot VM image and its PCRs.
#![forbid(unsafe_code)]

mod at;
mod attest;
mod audit;
mod chat;
mod clientconf;
mod evidence;
mod measure;
mod model;
mod prepare;
mod proxy;
mod proxy_guard;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "confidant",
    version,
    about = "Confidant: attested confidential inference"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check attestation evidence offline.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
    /// Attest an enclave and print the verified claims (or the failed check).
    Attest(attest::AttestArgs),
    /// Attest an enclave, then stream the answer to a prompt.
    Chat(chat::ChatArgs),
    /// Local plain-HTTP OpenAI-compatible endpoint that forwards only to an attested enclave.
    #[command(long_about = proxy::LONG_ABOUT)]
    Proxy(proxy::ProxyArgs),
    /// Prepare a model bundle, seal it, inspect a sealed model, register its key with the verifier.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Verify the verifier's audit log offline, or export it as JSON Lines.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Compute reference values (launch measurements) for policies.
    #[command(subcommand)]
    Measure(measure::MeasureCommand),
    /// Build a measured-boot VM image (QEMU + OVMF + swtpm) and compute its PCR 4 / PCR 9.
    #[command(subcommand)]
    Vm(vm::VmCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Evidence(cmd) => evidence::run(cmd),
        Command::Attest(args) => attest::run(args),
        Command::Chat(args) => chat::run(args),
        Command::Proxy(args) => proxy::run(args),
        Command::Model(cmd) => model::run(cmd),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Measure(cmd) => measure::run(cmd),
        Command::Vm(cmd) => vm::run(cmd),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confidant: {}", describe(&e));
            if let Some(hint) = hint(&e) {
                eprintln!("confidant: hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once (error types that print their source
/// in their own message would otherwise repeat it).
fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// What to do about the refusals a first run meets.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    use confidant_attestation::snp::SnpError;
    use confidant_client::{AttestError, PolicyError};
    e.chain().find_map(|cause| {
        if let Some(SnpError::UntrustedRoot) = cause.downcast_ref::<SnpError>() {
            return Some(
                "the evidence chains to a root this client does not trust. An enclave on the \
                 simulated TEE is signed by the development root: pass --dev-ark DEV_PKI/ark.der \
                 --dev-ask DEV_PKI/ask.der (or dev_ark/dev_ask in --config; the client.toml of \
                 `confidant-verifier init --model` names them)",
            );
        }
        let policy = match cause.downcast_ref::<AttestError>() {
            Some(AttestError::Policy(e) | AttestError::SessionPolicy(e)) => e,
            _ => return None,
        };
        match policy {
            PolicyError::DevEvidenceNotAllowed | PolicyError::DevRootNotTrusted => Some(
                "the enclave runs on development (simulated) evidence: only for development, \
                 pin the development root (trust.dev_root_ark_sha256) and set allow_dev = true \
                 for the model in the client policy",
            ),
            PolicyError::UnknownModel
            | PolicyError::ModelDigestMismatch
            | PolicyError::MeasurementNotAllowed => Some(
                "the client policy (--policy, or `policy` in --config) must list the enclave's \
                 model id and digest and its launch measurement",
            ),
            _ => None,
        }
    })
}
