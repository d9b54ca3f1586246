//! Figures, timing helpers and output: a human line per figure on stderr, one JSON object on
//! request.

use std::time::{Duration, Instant};

/// One figure: a value, its unit, the same-run baseline and `value / baseline`.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub baseline: f64,
    pub ratio: f64,
}

/// Every figure of a run, in the order measured.
#[derive(Debug, Default)]
pub struct Report {
    figures: Vec<Figure>,
}

impl Report {
    /// Records a figure (ratio = value / baseline) and prints it to stderr.
    pub fn add(&mut self, name: &str, value: f64, unit: &str, baseline: f64) {
        let ratio = if baseline != 0.0 {
            value / baseline
        } else {
            f64::NAN
        };
        eprintln!(
            "{name:<48} {value:>14.4} {unit:<12} baseline {baseline:>14.4}  ratio {ratio:.3}"
        );
        self.figures.push(Figure {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
            baseline,
            ratio,
        });
    }

    /// `{figure: {value, unit, baseline, ratio}}` (non-finite numbers become `null`).
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::new();
        for f in &self.figures {
            map.insert(
                f.name.clone(),
                serde_json::json!({
                    "value": finite(f.value),
                    "unit": f.unit,
                    "baseline": finite(f.baseline),
                    "ratio": finite(f.ratio),
                }),
            );
        }
        serde_json::Value::Object(map).to_string()
    }
}

fn finite(x: f64) -> serde_json::Value {
    if x.is_finite() {
        serde_json::json!(x)
    } else {
        serde_json::Value::Null
    }
}

/// Runs `f` repeatedly for about `budget` (at least `min_iters`, at most `max_iters` times) and
/// returns operations per second.
pub fn rate(
    budget: Duration,
    min_iters: u64,
    max_iters: u64,
    mut f: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    f()?; // warm-up
    let start = Instant::now();
    let mut n = 0u64;
    while n < max_iters && (n < min_iters || start.elapsed() < budget) {
        f()?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Median and 99th percentile of durations, in milliseconds.
pub fn median_p99_ms(samples: &mut [Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i.min(samples.len() - 1)].as_secs_f64() * 1e3
    };
    (at(0.5), at(0.99))
}

/// Rates (operations per second) of `a` and `b`, measured in alternating rounds of about
/// `budget` each so both see the same machine load; the medians over `rounds`.
pub fn paired_rates(
    rounds: usize,
    budget: Duration,
    mut a: impl FnMut() -> anyhow::Result<()>,
    mut b: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(f64, f64)> {
    let mut ra = Vec::new();
    let mut rb = Vec::new();
    for _ in 0..rounds.max(1) {
        ra.push(rate(budget, 20, 1_000_000, &mut a)?);
        rb.push(rate(budget, 20, 1_000_000, &mut b)?);
    }
    Ok((median(&mut ra), median(&mut rb)))
}

/// Median of a sample (NaN when empty).
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}
