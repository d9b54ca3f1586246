//! Seed corpora for Confidant's fuzz targets (`confidant_fuzz::TARGETS`), made at run time:
//! the real reports, certificates and quotes under `shared/testdata/attestation` (read in place,
//! never copied into the repository), the real boot event log in `attestation/tests/data`, a
//! swtpm's EK certificate and quotes, and values our own encoders write (evidence, results,
//! certificates, sealed models, audit logs, checkpoints, wire bodies).
//!
//! [`write_all`] writes `<out>/<target>/<seed>`; `scripts/fuzz.sh` gives each directory to
//! libFuzzer as a read-only corpus. [`replay`] runs seeds and the saved crash inputs
//! (`fuzz/regressions/<target>/`) through the targets' bodies without libFuzzer, which is what
//! the crate's tests do.
#![forbid(unsafe_code)]

mod formats;
mod snp;
mod tpm;

use std::path::{Path, PathBuf};

/// One seed: a file name (no directory) and its bytes.
pub type Seed = (String, Vec<u8>);

/// Why seeds could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SeedError(pub String);

/// Wraps any error with what was being done.
pub(crate) fn ctx<E: std::fmt::Display>(what: &'static str) -> impl FnOnce(E) -> SeedError {
    move |e| SeedError(format!("{what}: {e}"))
}

/// The seeds of the target named `target`, or an error if it has no seed source.
pub fn seeds(target: &str) -> Result<Vec<Seed>, SeedError> {
    match target {
        "snp_report" => snp::reports(),
        "snp_certs" => snp::certs(),
        "ovmf" => Ok(snp::ovmf()),
        "tpm_structures" => tpm::structures(),
        "tpm_quote" => tpm::quotes(),
        "tpm_tools" => tpm::tools(),
        "tpm_eventlog" => tpm::eventlogs(),
        "tpm_ek_cert" => tpm::ek_certs(),
        "evidence_cbor" => formats::evidence(),
        "cose_result" => formats::results(),
        "ratls_cert" => formats::certificates(),
        "sealed_model" => formats::sealed_models(),
        "audit_log" => formats::audit_logs(),
        "audit_checkpoint" => formats::checkpoints(),
        "wire_cbor" => formats::wire_cbor(),
        "wire_json" => Ok(formats::wire_json()),
        "policy_toml" => formats::policies(),
        other => Err(SeedError(format!("no seeds for fuzz target {other}"))),
    }
}

/// Writes every target's seeds to `out/<target>/`; returns how many each got.
pub fn write_all(out: &Path) -> Result<Vec<(&'static str, usize)>, SeedError> {
    let mut counts = Vec::new();
    for t in confidant_fuzz::TARGETS {
        let dir = out.join(t.name);
        std::fs::create_dir_all(&dir).map_err(ctx("creating the seed directory"))?;
        let seeds = seeds(t.name)?;
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).map_err(ctx("writing a seed"))?;
        }
        counts.push((t.name, seeds.len()));
    }
    Ok(counts)
}

/// `fuzz/regressions/<target>/`: the saved crash inputs of `target` (each has a regression test
/// named after it in the decoder's own test suite).
pub fn regressions_dir(target: &str) -> PathBuf {
    confidant_testkit::workspace_root()
        .join("fuzz/regressions")
        .join(target)
}

/// The saved crash inputs of `target`, by file name.
pub fn regressions(target: &str) -> Result<Vec<Seed>, SeedError> {
    let dir = regressions_dir(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(ctx("listing regressions"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        out.push((
            name,
            std::fs::read(entry.path()).map_err(ctx("reading a regression"))?,
        ));
    }
    out.sort();
    Ok(out)
}

/// Runs every input through the target's body (a panic propagates, naming the input).
pub fn replay(target: &confidant_fuzz::Target, inputs: &[Seed]) {
    for (name, bytes) in inputs {
        let outcome = std::panic::catch_unwind(|| (target.run)(bytes));
        if let Err(panic) = outcome {
            eprintln!("fuzz target {} panicked on {name}", target.name);
            std::panic::resume_unwind(panic);
        }
    }
}
