//! `confidant_fuzz`: the bodies of Confidant's fuzz targets, one function per decoder of
//! untrusted bytes, and [`TARGETS`], their list.
//!
//! Each `fuzz_targets/<name>.rs` is one line calling the function of the same name here, so the
//! same code runs under libFuzzer (`scripts/fuzz.sh`, `cargo fuzz run <name>`) and in ordinary
//! tests (`confidant-fuzz-seeds` replays every seed and every saved crash through [`TARGETS`]).
//! A target must never panic on any input: decoders answer `Err`. Where a decoder promises more
//! (canonical re-encoding, sizes), the target asserts that too, so a broken promise is a crash.
//!
//! Inputs that carry several byte strings (a report and its certificates, a checkpoint and its
//! key) use the framing of [`frame`]. See `fuzz/README.md` for running, seeds, crashes and how
//! to add a target.
#![forbid(unsafe_code)]

pub mod frame;

use confidant_attestation::evidence::{Evidence, ReceivedEvidence};
use confidant_attestation::time::UnixTime;
use confidant_attestation::verify::{TrustAnchors, verify_evidence};

/// The time fuzz targets verify at (2025-06-01, inside the validity of the real certificates the
/// seeds are made from), fixed so that a result does not depend on when the fuzzer runs.
pub(crate) const FUZZ_NOW: UnixTime = UnixTime::from_secs(1_748_736_000);

/// Verifies `evidence` the way the services do: its canonical encoding through the one decoding
/// gate, then [`verify_evidence`] at [`FUZZ_NOW`]. The result is ignored: only a panic matters.
pub(crate) fn verify_built(evidence: &Evidence, anchors: &TrustAnchors) {
    if let Ok(received) = ReceivedEvidence::decode(&evidence.to_cbor()) {
        let _ = verify_evidence(received, anchors, FUZZ_NOW);
    }
}

mod audit;
mod formats;
pub use formats::SEALED_MODEL_FUZZ_KEY;
mod snp;
mod tpm;
mod wire;

/// One fuzz target.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// The `fuzz_targets/<name>.rs` file and `cargo fuzz` target name.
    pub name: &'static str,
    /// What it decodes.
    pub about: &'static str,
    /// The body: decode `data`, never panic.
    pub run: fn(&[u8]),
}

/// Every fuzz target (each has a `[[bin]]` in `fuzz/Cargo.toml` and seeds in
/// `confidant-fuzz-seeds`).
pub const TARGETS: &[Target] = &[
    Target {
        name: "snp_report",
        about: "SEV-SNP attestation report, verified against its VCEK/VLEK and AMD's roots",
        run: snp::report,
    },
    Target {
        name: "snp_certs",
        about: "VCEK/VLEK certificate and ASK/ARK chain (DER), with their TCB extensions",
        run: snp::certs,
    },
    Target {
        name: "ovmf",
        about: "OVMF firmware image: footer table and SEV metadata, then the launch digest",
        run: snp::ovmf,
    },
    Target {
        name: "tpm_structures",
        about: "TPMS_ATTEST quote, TPMT_SIGNATURE, TPMT_PUBLIC / TPM2B_PUBLIC",
        run: tpm::structures,
    },
    Target {
        name: "tpm_quote",
        about: "a TPM quote with signature, AK, PCR values and event log, verified",
        run: tpm::quote,
    },
    Target {
        name: "tpm_tools",
        about: "tpm2-tools files: PCR list, PCR values file, AK PEM / TPM2B_PUBLIC",
        run: tpm::tools,
    },
    Target {
        name: "tpm_eventlog",
        about: "TCG PC Client crypto-agile event log, replayed, boot events extracted",
        run: tpm::eventlog,
    },
    Target {
        name: "tpm_ek_cert",
        about: "EK certificate against an EK CA, EK and AK publics (credential activation)",
        run: tpm::ek_cert,
    },
    Target {
        name: "evidence_cbor",
        about: "CBOR evidence (canonical only), then verified",
        run: formats::evidence_cbor,
    },
    Target {
        name: "cose_result",
        about: "COSE_Key / JWK result key and a COSE_Sign1 attestation result",
        run: formats::cose_result,
    },
    Target {
        name: "ratls_cert",
        about: "RA-TLS certificate extensions (evidence and result in an X.509 leaf)",
        run: formats::ratls_cert,
    },
    Target {
        name: "sealed_model",
        about: "sealed-model header, the sealed file under a known key, the bundle inside",
        run: formats::sealed_model,
    },
    Target {
        name: "audit_log",
        about: "audit-log records (canonical JSON lines) and whole logs",
        run: audit::log,
    },
    Target {
        name: "audit_checkpoint",
        about: "signed audit checkpoints, and a log verified against them",
        run: audit::checkpoint,
    },
    Target {
        name: "wire_cbor",
        about: "POST /v1/attest request and reply bodies (CBOR)",
        run: wire::cbor,
    },
    Target {
        name: "wire_json",
        about: "JSON bodies of the verifier and enclave APIs (attestation protocol, OpenAI API)",
        run: wire::json,
    },
    Target {
        name: "policy_toml",
        about: "verifier policy (TOML)",
        run: formats::policy_toml,
    },
];

/// The target named `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// Runs the target named `name` on `data` (what each `fuzz_targets/<name>.rs` does). An unknown
/// name panics: the binary and the list disagree.
pub fn run(name: &str, data: &[u8]) {
    match target(name) {
        Some(t) => (t.run)(data),
        None => panic!("fuzz target {name} is not in confidant_fuzz::TARGETS"),
    }
}
