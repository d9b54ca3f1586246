//! `confidant model prepare`: turns the shipped GGUF into a model bundle directory
//! (`confidant_modelprep`), ready for `confidant model seal`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use confidant_modelprep::{DEFAULT_MODEL_NAME, WeightsFormat, prepare};

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// The verified SmolLM2 GGUF (see scripts/fetch-model.sh).
    #[arg(long)]
    gguf: PathBuf,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
    /// Weight format: q8_0-qk-f16 (default: fastest that keeps the reference answers, see
    /// docs/model.md), q8_0, q4_1 (as shipped), q4_0, f16 or f32.
    #[arg(long, default_value = "q8_0-qk-f16")]
    weights: WeightsFormat,
    /// Model name the API reports.
    #[arg(long, default_value = DEFAULT_MODEL_NAME)]
    name: String,
}

/// Writes the bundle and prints one summary line.
pub fn run(args: PrepareArgs) -> Result<()> {
    let PrepareArgs {
        gguf,
        out,
        weights,
        name,
    } = args;
    let report = prepare(&gguf, &out, weights, &name)
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
    Ok(())
}
