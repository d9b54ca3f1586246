//! Prefill and decode speed of prepared bundles, native engine and candle side by side, plus the
//! greedy golden answer.
//!
//! cargo run --release -p confidant-engine --example bench -- BUNDLE_DIR... [--runs N]
//!     [--threads 1,2] [--backends native,candle] [--pool]
//!
//! Per bundle, backend and thread count: one forward over a 128-token prompt (prefill) and 64
//! single-token greedy steps (decode, stop tokens ignored), medians over N runs (default 5).
//! candle runs inside a rayon pool of the given size (it uses rayon's current pool). `--pool`:
//! the native engine decodes on its rayon pool instead of as a thread team.
#![forbid(unsafe_code)]

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use confidant_engine::bundle::{BundleFiles, load_tokenizer};
use confidant_engine::{
    Backend, ChatMessage, Engine, EngineOptions, GenerateRequest, ModelConfig, Prompt, Role,
    SamplingParams,
};

const PREFILL: usize = 128;
const DECODE: usize = 64;

fn main() -> anyhow::Result<()> {
    let mut dirs = Vec::new();
    let mut runs = 5usize;
    let mut threads = vec![1usize, 2];
    let mut backends = vec![Backend::Native, Backend::Candle];
    let mut pool = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--threads" => {
                threads = args
                    .next()
                    .context("--threads N,M")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--pool" => pool = true,
            "--backends" => {
                backends = args
                    .next()
                    .context("--backends native,candle")?
                    .split(',')
                    .map(|b| match b {
                        "native" => Ok(Backend::Native),
                        "candle" => Ok(Backend::Candle),
                        other => bail!("unknown backend {other}"),
                    })
                    .collect::<Result<_, _>>()?
            }
            _ => dirs.push(PathBuf::from(a)),
        }
    }
    if dirs.is_empty() || runs == 0 {
        bail!(
            "usage: bench BUNDLE_DIR... [--runs N] [--threads 1,2] [--backends native,candle] [--pool]"
        );
    }
    for dir in dirs {
        let b = BundleFiles::read_dir(&dir).with_context(|| dir.display().to_string())?;
        let config = ModelConfig::from_json(&b.config_json)?;
        let tok = load_tokenizer(&b.tokenizer_json)?;
        let text = "The quick brown fox jumps over the lazy dog. ".repeat(40);
        let enc = tok
            .encode(text.as_str(), false)
            .map_err(anyhow::Error::msg)?;
        let prompt: Vec<u32> = enc.get_ids().iter().copied().take(PREFILL).collect();
        if prompt.len() != PREFILL {
            bail!("prompt too short");
        }
        println!(
            "{}: weights {} MB ({})",
            dir.display(),
            b.weights.len() >> 20,
            config.confidant.weights_format
        );
        for &backend in &backends {
            for &n in &threads {
                let t = Instant::now();
                let engine = Engine::load_with(
                    &b.weights,
                    &b.tokenizer_json,
                    &b.config_json,
                    EngineOptions {
                        backend,
                        threads: n,
                        team_decode: !pool,
                    },
                )?;
                let load = t.elapsed();
                // candle uses rayon's current pool; the native engine its own.
                let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build()?;
                let (prefill, decode, answer) = pool.install(|| -> anyhow::Result<_> {
                    let mut prefill = Vec::new();
                    let mut decode = Vec::new();
                    for _ in 0..runs {
                        let mut s = engine.session(PREFILL + DECODE);
                        let t = Instant::now();
                        let mut logits = s.feed(&prompt)?;
                        prefill.push(PREFILL as f64 / t.elapsed().as_secs_f64());
                        let t = Instant::now();
                        for _ in 0..DECODE {
                            let next = argmax(&logits);
                            logits = s.feed(&[next])?;
                        }
                        decode.push(DECODE as f64 / t.elapsed().as_secs_f64());
                    }
                    let out = engine.generate(
                        &GenerateRequest {
                            prompt: Prompt::Chat(vec![ChatMessage::new(
                                Role::User,
                                "What is the capital of France?",
                            )]),
                            params: SamplingParams::greedy(32),
                        },
                        |_| ControlFlow::Continue(()),
                    )?;
                    Ok((median(&mut prefill), median(&mut decode), out.text))
                })?;
                println!(
                    "  {backend:?} threads {n}: load {:.2} s, prefill {prefill:.1} tok/s, \
                     decode {decode:.1} tok/s (medians of {runs}); greedy France: {answer:?}",
                    load.as_secs_f64(),
                );
            }
        }
    }
    Ok(())
}

fn argmax(v: &[f32]) -> u32 {
    v.iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map_or(0, |(i, _)| i as u32)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
