//! `confidant measure …`: compute reference values, for whoever maintains the policies.
//!
//! - `confidant measure sim --binary PATH`: the launch measurement the simulated SEV-SNP attester
//!   reports for that `confidant-enclave` build (SHA-384 of the executable file, as
//!   `enclave/src/tee.rs` computes it), as 96 hex digits.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum MeasureCommand {
    /// Launch measurement of a `confidant-enclave` executable under the simulated SEV-SNP TEE.
    Sim(SimArgs),
}

#[derive(Debug, Args)]
pub struct SimArgs {
    /// The `confidant-enclave` executable the enclave will run.
    #[arg(long, value_name = "PATH")]
    binary: PathBuf,
}

pub fn run(cmd: MeasureCommand) -> Result<()> {
    match cmd {
        MeasureCommand::Sim(args) => {
            println!("{}", hex::encode(sim_measurement(&args.binary)?));
            Ok(())
        }
    }
}

/// SHA-384 of the file: what the simulated attester puts in the report's MEASUREMENT field.
fn sim_measurement(binary: &std::path::Path) -> Result<[u8; 48]> {
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let digest = ring::digest::digest(&ring::digest::SHA384, &bytes);
    let mut out = [0u8; 48];
    out.copy_from_slice(digest.as_ref());
    Ok(out)
}
