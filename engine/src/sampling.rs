//! Sampling parameters and the token sampler.
//!
//! Temperature 0 is greedy (arg-max). Otherwise tokens are drawn from the softmax of
//! `logits / temperature`, restricted to the smallest set of most likely tokens whose mass
//! reaches `top_p` (nucleus sampling). The random source is ChaCha20 seeded from `seed`, so a
//! given seed, prompt and model reproduce the same text on every platform.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::error::ModelError;

/// Most stop strings a request may carry (as in the OpenAI API).
pub const MAX_STOP_STRINGS: usize = 4;
/// Longest stop string, in bytes.
pub const MAX_STOP_LEN: usize = 256;

/// How to pick tokens and when to stop.
#[derive(Clone, PartialEq)]
pub struct SamplingParams {
    /// Most tokens to generate (at least 1).
    pub max_tokens: usize,
    /// 0 for greedy; otherwise in (0, 2].
    pub temperature: f32,
    /// Nucleus mass in (0, 1]; 1 keeps every token.
    pub top_p: f32,
    /// Seed of the sampler; `None` draws one from the OS.
    pub seed: Option<u64>,
    /// Generation stops before the first occurrence of any of these; they are not returned.
    pub stop: Vec<String>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            max_tokens: 256,
            temperature: 1.0,
            top_p: 1.0,
            seed: None,
            stop: Vec::new(),
        }
    }
}

impl std::fmt::Debug for SamplingParams {
    // Stop strings can be derived from the prompt: show their count only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplingParams")
            .field("max_tokens", &self.max_tokens)
            .field("temperature", &self.temperature)
            .field("top_p", &self.top_p)
            .field("seed", &self.seed)
            .field("stop_count", &self.stop.len())
            .finish()
    }
}

impl SamplingParams {
    /// Greedy decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Self {
        Self {
            max_tokens,
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// Checks every parameter is in range (the API checks before queueing a request).
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.max_tokens == 0 {
            return Err(ModelError::InvalidParams("max_tokens must be at least 1"));
        }
        if !(self.temperature.is_finite() && (0.0..=2.0).contains(&self.temperature)) {
            return Err(ModelError::InvalidParams("temperature must be in [0, 2]"));
        }
        if !(self.top_p.is_finite() && self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(ModelError::InvalidParams("top_p must be in (0, 1]"));
        }
        if self.stop.len() > MAX_STOP_STRINGS {
            return Err(ModelError::InvalidParams("at most 4 stop strings"));
        }
        if self
            .stop
            .iter()
            .any(|s| s.is_empty() || s.len() > MAX_STOP_LEN)
        {
            return Err(ModelError::InvalidParams(
                "stop strings must be 1 to 256 bytes",
            ));
        }
        Ok(())
    }
}

/// Picks the next token from a row of logits.
#[derive(Debug)]
pub(crate) struct Sampler {
    temperature: f32,
    top_p: f32,
    rng: ChaCha20Rng,
    /// Scratch buffer of (token, weight), reused across steps.
    scratch: Vec<(u32, f32)>,
}

impl Sampler {
    pub(crate) fn new(params: &SamplingParams) -> Self {
        let seed = params.seed.unwrap_or_else(rand::random);
        Self {
            temperature: params.temperature,
            top_p: params.top_p,
            rng: ChaCha20Rng::seed_from_u64(seed),
            scratch: Vec::new(),
        }
    }

    pub(crate) fn sample(&mut self, logits: &[f32]) -> Result<u32, ModelError> {
        if self.temperature == 0.0 {
            return argmax(logits);
        }
        let max = logits
            .iter()
            .copied()
            .filter(|l| !l.is_nan())
            .fold(f32::NEG_INFINITY, f32::max);
        if !max.is_finite() {
            return Err(ModelError::InvalidParams("logits are not finite"));
        }
        self.scratch.clear();
        let mut total = 0f32;
        for (id, &l) in (0u32..).zip(logits) {
            let w = if l.is_nan() {
                0.0
            } else {
                ((l - max) / self.temperature).exp()
            };
            total += w;
            self.scratch.push((id, w));
        }
        let mut kept = self.scratch.len();
        if self.top_p < 1.0 {
            self.scratch
                .sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let threshold = self.top_p * total;
            let mut mass = 0f32;
            kept = 0;
            for &(_, w) in &self.scratch {
                mass += w;
                kept += 1;
                if mass >= threshold {
                    break;
                }
            }
            total = mass;
        }
        let candidates = &self.scratch[..kept];
        let mut r = self.rng.r#gen::<f32>() * total;
        for &(id, w) in candidates {
            if r < w {
                return Ok(id);
            }
            r -= w;
        }
        // Rounding left r just above the last weight: take the last candidate with any mass.
        candidates
            .iter()
            .rev()
            .find(|(_, w)| *w > 0.0)
            .map(|(id, _)| *id)
            .ok_or(ModelError::InvalidParams("no token has probability mass"))
    }
}

fn argmax(logits: &[f32]) -> Result<u32, ModelError> {
    let mut best: Option<(u32, f32)> = None;
    for (id, &l) in (0u32..).zip(logits) {
        if l.is_nan() {
            continue;
        }
        if best.is_none_or(|(_, b)| l > b) {
            best = Some((id, l));
        }
    }
    best.map(|(id, _)| id)
        .ok_or(ModelError::InvalidParams("logits are not finite"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(temperature: f32, top_p: f32, seed: u64) -> SamplingParams {
        SamplingParams {
            temperature,
            top_p,
            seed: Some(seed),
            ..SamplingParams::default()
        }
    }

    #[test]
    fn greedy_takes_first_maximum() {
        let mut s = Sampler::new(&SamplingParams::greedy(1));
        assert_eq!(s.sample(&[0.1, 3.0, 3.0, f32::NAN]).unwrap(), 1);
    }

    #[test]
    fn same_seed_same_draws() {
        let logits: Vec<f32> = (0..100).map(|i| (i as f32 * 0.37).sin()).collect();
        let draw = |seed| {
            let mut s = Sampler::new(&params(1.0, 0.9, seed));
            (0..50)
                .map(|_| s.sample(&logits).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
    }

    #[test]
    fn small_top_p_keeps_only_the_top_token() {
        let mut s = Sampler::new(&params(1.0, 0.01, 1));
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.0, 5.0, 1.0]).unwrap(), 1);
        }
    }

    #[test]
    fn invalid_params_are_rejected() {
        let bad = [
            SamplingParams {
                max_tokens: 0,
                ..SamplingParams::default()
            },
            SamplingParams {
                temperature: -0.1,
                ..SamplingParams::default()
            },
            SamplingParams {
                temperature: f32::NAN,
                ..SamplingParams::default()
            },
            SamplingParams {
                top_p: 0.0,
                ..SamplingParams::default()
            },
            SamplingParams {
                top_p: 1.5,
                ..SamplingParams::default()
            },
            SamplingParams {
                stop: vec![String::new()],
                ..SamplingParams::default()
            },
            SamplingParams {
                stop: vec!["x".into(); 5],
                ..SamplingParams::default()
            },
        ];
        for p in bad {
            assert!(
                matches!(p.validate(), Err(ModelError::InvalidParams(_))),
                "{p:?}"
            );
        }
        assert!(SamplingParams::default().validate().is_ok());
    }
}
