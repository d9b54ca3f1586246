//! Figure 5: generation through the enclave over attested TLS vs in-process, and vs llama.cpp.

use crate::Opts;
use crate::report::Report;

/// Runs the figure and adds its rows to `report`.
pub fn run(_opts: &Opts, _report: &mut Report) -> anyhow::Result<()> {
    Ok(())
}
