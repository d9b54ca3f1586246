//! `confidant`: the Confidant command line.
//!
//! - `confidant evidence verify …`: check SEV-SNP or TPM evidence offline and print the claims.
#![forbid(unsafe_code)]

mod evidence;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "confidant", version, about = "Confidant: attested confidential inference")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check attestation evidence offline.
    #[command(subcommand)]
    Evidence(evidence::EvidenceCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Evidence(cmd) => evidence::run(cmd),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("confidant: {e:#}");
            ExitCode::FAILURE
        }
    }
}
