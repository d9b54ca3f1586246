//! Prometheus text metrics: request counts, latencies, token counts, rejections, attestation
//! state. Never content, never principals (labels are fixed, low-cardinality strings).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// How long each boot phase took, from [`crate::supervisor::Enclave::start`] until the API
/// listens. Durations only: nothing about the model, the key or the verifier's answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BootTimings {
    /// Local preparation: configuration files, TLS key generation, TEE device, verifier client.
    pub prepare: Duration,
    /// Key-release attestation until accepted (challenge → evidence → `/v1/attest` → result and
    /// certificate checked), retries and backoff included.
    pub attestation: Duration,
    /// Key unwrap (HPKE), reading and decrypting the sealed model, checking its digest.
    pub unseal: Duration,
    /// Building the engine from the unsealed bundle (weights, tokenizer).
    pub model_load: Duration,
    /// Opening the listener with the attested certificate.
    pub listen: Duration,
    /// Start to serving (at least the sum of the phases above).
    pub total: Duration,
}

impl BootTimings {
    /// The phases with their metric label, in boot order.
    pub fn phases(&self) -> [(&'static str, Duration); 5] {
        [
            ("prepare", self.prepare),
            ("attestation", self.attestation),
            ("unseal", self.unseal),
            ("model_load", self.model_load),
            ("listen", self.listen),
        ]
    }
}

/// Upper bounds (seconds) of the latency histogram buckets.
const BUCKETS: [f64; 11] = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, secs: f64) {
        for (i, le) in BUCKETS.iter().enumerate() {
            if secs <= *le {
                self.counts[i] += 1;
            }
        }
        self.sum += secs;
        self.count += 1;
    }
}

/// All metrics of one enclave.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    latency: Mutex<BTreeMap<&'static str, Histogram>>,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    attestations: Mutex<BTreeMap<&'static str, u64>>,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
    generations: Mutex<BTreeMap<&'static str, u64>>,
    queue_waiting: AtomicI64,
    generations_running: AtomicI64,
    unseals: AtomicU64,
    serving: AtomicI64,
    cert_not_after: AtomicU64,
    boot: Mutex<Option<BootTimings>>,
}

fn bump<K: Ord>(map: &Mutex<BTreeMap<K, u64>>, key: K, by: u64) {
    let mut m = map.lock().unwrap_or_else(|e| e.into_inner());
    *m.entry(key).or_insert(0) += by;
}

impl Metrics {
    /// One finished HTTP request on `route` (a fixed route template).
    pub fn request(&self, route: &'static str, status: u16, latency: Duration) {
        bump(&self.requests, (route, status), 1);
        self.latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(route)
            .or_default()
            .observe(latency.as_secs_f64());
    }

    /// A refused request, by stable error code.
    pub fn rejection(&self, code: &'static str) {
        bump(&self.rejections, code, 1);
    }

    /// An attestation attempt's outcome (`accepted` or an error label).
    pub fn attestation(&self, outcome: &'static str) {
        bump(&self.attestations, outcome, 1);
    }

    /// A finished generation.
    pub fn generation(&self, finish: &'static str, prompt_tokens: usize, completion_tokens: usize) {
        bump(&self.generations, finish, 1);
        self.prompt_tokens
            .fetch_add(prompt_tokens as u64, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(completion_tokens as u64, Ordering::Relaxed);
    }

    /// Number of generations that ended with `finish` (`stop`, `length`, `cancelled`, `error`).
    pub fn generations_finished(&self, finish: &str) -> u64 {
        self.generations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(k, _)| **k == finish)
            .map(|(_, v)| *v)
            .sum()
    }

    pub fn queue_waiting_add(&self, d: i64) {
        self.queue_waiting.fetch_add(d, Ordering::Relaxed);
    }

    pub fn running_add(&self, d: i64) {
        self.generations_running.fetch_add(d, Ordering::Relaxed);
    }

    /// The sealed model was read for decryption (after a key release).
    pub fn unsealed(&self) {
        self.unseals.fetch_add(1, Ordering::Relaxed);
    }

    /// How often the sealed model was read for decryption.
    pub fn unseal_count(&self) -> u64 {
        self.unseals.load(Ordering::Relaxed)
    }

    /// Whether the API is serving, and until when its certificate is valid.
    pub fn set_serving(&self, serving: bool, cert_not_after: u64) {
        self.serving.store(i64::from(serving), Ordering::Relaxed);
        self.cert_not_after.store(cert_not_after, Ordering::Relaxed);
    }

    /// Records how long boot took (once serving starts).
    pub fn set_boot(&self, timings: BootTimings) {
        *self.boot.lock().unwrap_or_else(|e| e.into_inner()) = Some(timings);
    }

    /// The boot phase durations, once the enclave served.
    pub fn boot(&self) -> Option<BootTimings> {
        *self.boot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP confidant_http_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE confidant_http_requests_total counter");
        for ((route, status), n) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "confidant_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP confidant_http_request_duration_seconds Request latency (streams: until the response head)."
        );
        let _ = writeln!(
            out,
            "# TYPE confidant_http_request_duration_seconds histogram"
        );
        for (route, h) in self
            .latency
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            for (le, n) in BUCKETS.iter().zip(h.counts.iter()) {
                let _ = writeln!(
                    out,
                    "confidant_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "confidant_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "confidant_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "confidant_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        counter_map(
            &mut out,
            "confidant_rejections_total",
            "Refused requests by error code.",
            "code",
            &self.rejections,
        );
        counter_map(
            &mut out,
            "confidant_generations_total",
            "Finished generations by finish reason.",
            "finish_reason",
            &self.generations,
        );
        counter_map(
            &mut out,
            "confidant_attestations_total",
            "Key-release attestation attempts by outcome.",
            "outcome",
            &self.attestations,
        );
        let scalars: [(&str, &str, &str, i128); 7] = [
            (
                "confidant_prompt_tokens_total",
                "counter",
                "Prompt tokens processed.",
                self.prompt_tokens.load(Ordering::Relaxed).into(),
            ),
            (
                "confidant_completion_tokens_total",
                "counter",
                "Tokens generated.",
                self.completion_tokens.load(Ordering::Relaxed).into(),
            ),
            (
                "confidant_queue_waiting",
                "gauge",
                "Requests waiting for a generation slot.",
                self.queue_waiting.load(Ordering::Relaxed).into(),
            ),
            (
                "confidant_generations_running",
                "gauge",
                "Generations running.",
                self.generations_running.load(Ordering::Relaxed).into(),
            ),
            (
                "confidant_model_unseals_total",
                "counter",
                "Times the sealed model was decrypted.",
                self.unseals.load(Ordering::Relaxed).into(),
            ),
            (
                "confidant_serving",
                "gauge",
                "1 while attested and serving.",
                self.serving.load(Ordering::Relaxed).into(),
            ),
            (
                "confidant_certificate_not_after_seconds",
                "gauge",
                "Expiry of the attested certificate (Unix seconds).",
                self.cert_not_after.load(Ordering::Relaxed).into(),
            ),
        ];
        for (name, kind, help, value) in scalars {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(boot) = self.boot() {
            let name = "confidant_boot_phase_seconds";
            let _ = writeln!(
                out,
                "# HELP {name} Duration of each boot phase (start to serving)."
            );
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (phase, d) in boot.phases() {
                let _ = writeln!(out, "{name}{{phase=\"{phase}\"}} {:.6}", d.as_secs_f64());
            }
            let name = "confidant_boot_seconds";
            let _ = writeln!(out, "# HELP {name} Start to serving.");
            let _ = writeln!(out, "# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {:.6}", boot.total.as_secs_f64());
        }
        out
    }
}

fn counter_map(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    map: &Mutex<BTreeMap<&'static str, u64>>,
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (k, n) in map.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        let _ = writeln!(out, "{name}{{{label}=\"{k}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("/v1/completions", 200, Duration::from_millis(30));
        m.rejection("rate_limited");
        m.generation("stop", 5, 7);
        let text = m.render();
        assert!(
            text.contains(
                "confidant_http_requests_total{route=\"/v1/completions\",status=\"200\"} 1"
            )
        );
        assert!(text.contains("le=\"0.05\"} 1"));
        assert!(text.contains("le=\"0.01\"} 0"));
        assert!(text.contains("confidant_rejections_total{code=\"rate_limited\"} 1"));
        assert!(text.contains("confidant_completion_tokens_total 7"));
        assert!(
            !text.contains("confidant_boot_seconds"),
            "no boot timings before boot ended"
        );
    }

    #[test]
    fn renders_boot_phases() {
        let m = Metrics::default();
        m.set_boot(BootTimings {
            prepare: Duration::from_millis(1),
            attestation: Duration::from_millis(20),
            unseal: Duration::from_millis(300),
            model_load: Duration::from_millis(400),
            listen: Duration::from_micros(500),
            total: Duration::from_millis(800),
        });
        let text = m.render();
        assert!(text.contains("confidant_boot_phase_seconds{phase=\"attestation\"} 0.020000"));
        assert!(text.contains("confidant_boot_phase_seconds{phase=\"unseal\"} 0.300000"));
        assert!(text.contains("confidant_boot_phase_seconds{phase=\"model_load\"} 0.400000"));
        assert!(text.contains("confidant_boot_phase_seconds{phase=\"listen\"} 0.000500"));
        assert!(text.contains("confidant_boot_seconds 0.800000"));
    }
}
