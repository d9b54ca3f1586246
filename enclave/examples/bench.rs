//! Prefill and decode speed of prepared bundles, plus the greedy golden answer.
//!
//! cargo run --release -p confidant-enclave --example bench -- BUNDLE_DIR... [--runs N]
//!
//! Per bundle: one forward over a 128-token prompt (prefill) and 64 single-token greedy steps
//! (decode, stop tokens ignored), medians over N runs (default 5).
#![forbid(unsafe_code)]

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use candle_core::{Device, Tensor};
use confidant_enclave::model::bundle::{BundleFiles, load_tokenizer, load_weights};
use confidant_enclave::model::{
    ChatMessage, Engine, GenerateRequest, ModelConfig, Prompt, Role, SamplingParams,
};

const PREFILL: usize = 128;
const DECODE: usize = 64;

fn main() -> anyhow::Result<()> {
    let mut dirs = Vec::new();
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--runs" {
            runs = args.next().context("--runs N")?.parse()?;
        } else {
            dirs.push(PathBuf::from(a));
        }
    }
    if dirs.is_empty() {
        bail!("usage: bench BUNDLE_DIR... [--runs N]");
    }
    for dir in dirs {
        let b = BundleFiles::read_dir(&dir).with_context(|| dir.display().to_string())?;
        let config = ModelConfig::from_json(&b.config_json)?;
        let tok = load_tokenizer(&b.tokenizer_json)?;
        let t = Instant::now();
        let weights = load_weights(&b.weights, &config)?;
        let load = t.elapsed();

        let text = "The quick brown fox jumps over the lazy dog. ".repeat(40);
        let enc = tok
            .encode(text.as_str(), false)
            .map_err(anyhow::Error::msg)?;
        let prompt: Vec<u32> = enc.get_ids().iter().copied().take(PREFILL).collect();
        if prompt.len() != PREFILL {
            bail!("prompt too short");
        }

        let mut prefill = Vec::new();
        let mut decode = Vec::new();
        for _ in 0..runs {
            let mut m = weights.clone();
            let input = Tensor::new(prompt.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            let t = Instant::now();
            let mut logits = m.forward(&input, 0)?;
            prefill.push(PREFILL as f64 / t.elapsed().as_secs_f64());
            let t = Instant::now();
            for i in 0..DECODE {
                let next = logits.squeeze(0)?.argmax(0)?.to_scalar::<u32>()?;
                let input = Tensor::new(&[next], &Device::Cpu)?.unsqueeze(0)?;
                logits = m.forward(&input, PREFILL + i)?;
            }
            decode.push(DECODE as f64 / t.elapsed().as_secs_f64());
        }

        let engine = Engine::load(&b.weights, &b.tokenizer_json, &b.config_json)?;
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
        println!(
            "{}: weights {} MB ({}), load {:.2} s, prefill {:.1} tok/s, decode {:.1} tok/s \
             (medians of {runs}); greedy France: {:?}",
            dir.display(),
            b.weights.len() >> 20,
            config.confidant.weights_format,
            load.as_secs_f64(),
            median(&mut prefill),
            median(&mut decode),
            out.text
        );
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}
