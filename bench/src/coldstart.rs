//! Figure 6: enclave cold start, split into attestation, unsealing, model load and first token.

use crate::Opts;
use crate::report::Report;

/// Runs the figure and adds its rows to `report`.
pub fn run(_opts: &Opts, _report: &mut Report) -> anyhow::Result<()> {
    Ok(())
}
