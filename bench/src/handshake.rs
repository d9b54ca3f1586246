//! Figure 1: attested connection set-up (passport, direct, fresh) vs a plain rustls TLS 1.3 handshake.

use crate::Opts;
use crate::report::Report;

/// Runs the figure and adds its rows to `report`.
pub fn run(_opts: &Opts, _report: &mut Report) -> anyhow::Result<()> {
    Ok(())
}
