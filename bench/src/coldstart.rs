//! Figure 6: enclave cold start, split into attestation, unsealing, model load and first token.
//!
//! Each boot is a fresh real stack (`confidant_e2e::Stack`, release binaries from
//! `CONFIDANT_BIN_DIR`, simulated SEV-SNP). The enclave measures its own boot phases from
//! `Enclave::start` to serving and logs them on its `serving` line (also `/metrics`:
//! `confidant_boot_phase_seconds`, `confidant_boot_seconds`): `prepare` (config files, TLS key,
//! TEE device), `attestation` (challenge → evidence → `/v1/attest` → result and certificate
//! checked), `unseal` (HPKE key unwrap, read, decrypt, digest check), `model_load` (engine built
//! from the unsealed bundle), `listen`. The bench then attests one connection (passport mode) and
//! sends the first request (a streamed greedy chat): `first_token` is request sent → first
//! content. Total = boot + connect + first token (the harness's own work between the enclave
//! serving and the first request is not counted).
//!
//! Baseline: what serving the same bundle without confidentiality takes in this process: read the
//! plaintext bundle from disk, [`Engine::load`], first token of the same request.
//! `coldstart.total_ms` is against it; each phase row's baseline is the enclave's total (ratio =
//! share of the cold start); `coldstart.model_load_vs_inproc_ms` compares the enclave's model
//! load with the in-process one. Medians over the boots (1 with `--quick`, 3 otherwise).

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use confidant_client::Mode;
use confidant_e2e::{CAPITAL_PROMPT, MODEL_ID, Stack};
use confidant_engine::{
    BundleFiles, ChatMessage, Engine, GenerateRequest, Prompt, Role, SamplingParams,
};
use confidant_wire::openai::{ChatMessage as ApiMessage, ChatRequest};
use futures_util::StreamExt;

use crate::Opts;
use crate::report::{Report, median};

/// The enclave's boot phases as logged on its `serving` line (milliseconds).
const PHASES: [&str; 6] = [
    "prepare_ms",
    "attestation_ms",
    "unseal_ms",
    "model_load_ms",
    "listen_ms",
    "boot_ms",
];

/// One boot's measurements, milliseconds: the six logged fields, then connect and first token.
type Boot = [f64; 8];

/// Runs the figure and adds its rows to `report`.
pub fn run(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    if std::env::var_os("CONFIDANT_BIN_DIR").is_none() {
        bail!(
            "coldstart: set CONFIDANT_BIN_DIR to the directory of the release binaries \
             (scripts/bench.sh does)"
        );
    }
    let boots = if opts.quick { 1 } else { 3 };
    let bundle = opts
        .bundle
        .clone()
        .unwrap_or_else(confidant_testkit::model::model_bundle);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;

    let mut enclave: Vec<Boot> = Vec::new();
    let mut inproc_total = Vec::new();
    let mut inproc_load = Vec::new();
    for i in 0..boots {
        eprintln!(
            "coldstart: boot {}/{boots} (verifier + enclave, release binaries)",
            i + 1
        );
        let stack = Stack::start();
        let mut boot = [0.0; 8];
        let logged = serving_fields(&stack.enclave.lines())?;
        boot[..6].copy_from_slice(&logged);
        let (connect, first) = rt.block_on(first_token(&stack))?;
        boot[6] = connect.as_secs_f64() * 1e3;
        boot[7] = first.as_secs_f64() * 1e3;
        eprintln!(
            "coldstart: enclave prepare {:.1} ms, attestation {:.1} ms, unseal {:.1} ms, model \
             load {:.1} ms, listen {:.1} ms, start → serving {:.1} ms; connect {:.1} ms, first \
             token {:.1} ms",
            boot[0], boot[1], boot[2], boot[3], boot[4], boot[5], boot[6], boot[7]
        );
        drop(stack);
        enclave.push(boot);

        // The baseline, alternating with the boots.
        let (load, total) = inproc_cold(&bundle)?;
        inproc_load.push(load.as_secs_f64() * 1e3);
        inproc_total.push(total.as_secs_f64() * 1e3);
    }

    let col = |j: usize| {
        let mut v: Vec<f64> = enclave.iter().map(|b| b[j]).collect();
        median(&mut v)
    };
    let totals: Vec<f64> = enclave.iter().map(|b| b[5] + b[6] + b[7]).collect();
    let total = median(&mut totals.clone());
    let phases_sum = col(0) + col(1) + col(2) + col(3) + col(4);
    report.add("coldstart_total_ms", total, "ms", median(&mut inproc_total));
    report.add("coldstart_attestation_ms", col(1), "ms", total);
    report.add("coldstart_unseal_ms", col(2), "ms", total);
    report.add("coldstart_model_load_ms", col(3), "ms", total);
    report.add("coldstart_first_token_ms", col(7), "ms", total);
    report.add("coldstart_connect_ms", col(6), "ms", total);
    report.add(
        "coldstart_other_ms",
        col(0) + col(4) + (col(5) - phases_sum).max(0.0),
        "ms",
        total,
    );
    report.add(
        "coldstart_model_load_vs_inproc_ms",
        col(3),
        "ms",
        median(&mut inproc_load),
    );
    Ok(())
}

/// The phase fields of the enclave's JSON `serving` log line.
fn serving_fields(lines: &[String]) -> anyhow::Result<[f64; 6]> {
    for line in lines {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = &v["fields"];
        if fields["message"] != "serving" {
            continue;
        }
        let mut out = [0.0; 6];
        for (o, name) in out.iter_mut().zip(PHASES) {
            *o = fields[name]
                .as_f64()
                .with_context(|| format!("the enclave's serving line lacks {name}"))?;
        }
        return Ok(out);
    }
    bail!("the enclave logged no serving line")
}

/// Attests one connection, then times the first request to its first content.
async fn first_token(stack: &Stack) -> anyhow::Result<(Duration, Duration)> {
    let client = stack.client(Mode::Passport, false);
    let t = Instant::now();
    let mut conn = client.connect().await?;
    let connect = t.elapsed();
    let req = ChatRequest::new(MODEL_ID, vec![ApiMessage::user(CAPITAL_PROMPT)])
        .temperature(0.0)
        .max_tokens(8);
    let t = Instant::now();
    let mut stream = conn.chat_stream(req).await?;
    let mut first = None;
    while let Some(delta) = stream.next().await {
        if !delta?.content.is_empty() && first.is_none() {
            first = Some(t.elapsed());
        }
    }
    Ok((connect, first.context("the enclave streamed no text")?))
}

/// Plaintext bundle from disk → engine → first token: (load, total).
fn inproc_cold(bundle: &std::path::Path) -> anyhow::Result<(Duration, Duration)> {
    let t = Instant::now();
    let files = BundleFiles::read_dir(bundle)?;
    let engine = Engine::load(&files.weights, &files.tokenizer_json, &files.config_json)?;
    drop(files);
    let load = t.elapsed();
    let req = GenerateRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new(Role::User, CAPITAL_PROMPT)]),
        params: SamplingParams::greedy(8),
    };
    let mut first = None;
    engine.generate(&req, |ev| {
        if !ev.text.is_empty() && first.is_none() {
            first = Some(t.elapsed());
        }
        ControlFlow::Continue(())
    })?;
    Ok((load, first.context("no text in process")?))
}
