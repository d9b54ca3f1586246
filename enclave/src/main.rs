//! confidant-enclave
#![forbid(unsafe_code)]

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use confidant_enclave::model::prepare::{WeightsFormat, prepare};

#[derive(Debug, Parser)]
#[command(name = "confidant-enclave", about = "Confidant inference service")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Turns the shipped GGUF into a bundle directory (model.gguf, tokenizer.json, config.json).
    PrepareModel {
        /// The verified SmolLM2 GGUF (see scripts/fetch-model.sh).
        #[arg(long)]
        gguf: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Matrix weight format: q8_0 (default, fastest) or q4_1 (as shipped).
        #[arg(long, default_value = "q8_0")]
        weights: WeightsFormat,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::PrepareModel { gguf, out, weights }) => {
            let report = prepare(&gguf, &out, weights)
                .with_context(|| format!("preparing {} from {}", out.display(), gguf.display()))?;
            println!(
                "prepared {}: {} tensors ({} re-quantised to {}), weights {} bytes, vocab {}",
                out.display(),
                report.tensors,
                report.requantized,
                weights.name(),
                report.weights_bytes,
                report.vocab_size
            );
        }
        None => println!("confidant-enclave"),
    }
    Ok(())
}
