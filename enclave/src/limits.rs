//! Admission control: a bounded generation queue, and a per-principal anomaly detector.
//!
//! Memory stays bounded: at most `max_concurrent` generations run and at most `max_queue`
//! requests wait; the next one is refused at once (503). The anomaly detector tracks a bounded
//! number of principals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::metrics::Metrics;

/// Why a request got no generation slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Overloaded {
    #[error("generation queue is full")]
    QueueFull,
    #[error("timed out waiting for a generation slot")]
    Timeout,
}

/// Slots for running generations plus a bounded waiting line.
#[derive(Debug)]
pub struct GenerationQueue {
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_queue: usize,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

/// A running generation's slot; released on drop.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.running_add(-1);
    }
}

struct Waiting<'a>(&'a GenerationQueue);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::AcqRel);
        self.0.metrics.queue_waiting_add(-1);
    }
}

impl GenerationQueue {
    pub fn new(
        max_concurrent: usize,
        max_queue: usize,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent.max(1))),
            waiting: AtomicUsize::new(0),
            max_queue,
            timeout,
            metrics,
        }
    }

    /// A slot now, or after waiting in line (bounded in length and time).
    pub async fn acquire(&self) -> Result<Slot, Overloaded> {
        let slot = |permit| {
            self.metrics.running_add(1);
            Slot {
                _permit: permit,
                metrics: self.metrics.clone(),
            }
        };
        if let Ok(p) = self.slots.clone().try_acquire_owned() {
            return Ok(slot(p));
        }
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        self.metrics.queue_waiting_add(1);
        let _waiting = Waiting(self);
        if before >= self.max_queue {
            return Err(Overloaded::QueueFull);
        }
        match tokio::time::timeout(self.timeout, self.slots.clone().acquire_owned()).await {
            Ok(Ok(p)) => Ok(slot(p)),
            Ok(Err(_)) | Err(_) => Err(Overloaded::Timeout),
        }
    }
}

/// What a principal did within the current window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    rejections: u32,
    oversized: u32,
    warned_rejections: bool,
    warned_oversized: bool,
}

/// Flags unusual usage per principal as `warn!` lines: repeated rejections (auth, limits,
/// invalid requests) and bursts of oversized prompts within one window. Logs carry the
/// principal and counts only.
#[derive(Debug)]
pub struct AnomalyDetector {
    window: Duration,
    rejection_threshold: u32,
    oversized_threshold: u32,
    max_principals: usize,
    map: Mutex<HashMap<String, Window>>,
}

impl Default for AnomalyDetector {
    fn default() -> Self {
        Self::new(Duration::from_secs(60), 10, 3, 10_000)
    }
}

impl AnomalyDetector {
    pub fn new(
        window: Duration,
        rejection_threshold: u32,
        oversized_threshold: u32,
        max_principals: usize,
    ) -> Self {
        Self {
            window,
            rejection_threshold: rejection_threshold.max(1),
            oversized_threshold: oversized_threshold.max(1),
            max_principals: max_principals.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    fn with_window(&self, principal: &str, f: impl FnOnce(&mut Window)) {
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(principal) && map.len() >= self.max_principals {
            let window = self.window;
            map.retain(|_, w| now.duration_since(w.start) < window);
            if map.len() >= self.max_principals {
                return;
            }
        }
        let w = map.entry(principal.to_owned()).or_insert(Window {
            start: now,
            rejections: 0,
            oversized: 0,
            warned_rejections: false,
            warned_oversized: false,
        });
        if now.duration_since(w.start) >= self.window {
            *w = Window {
                start: now,
                rejections: 0,
                oversized: 0,
                warned_rejections: false,
                warned_oversized: false,
            };
        }
        f(w);
    }

    /// A request of `principal` was refused with `code`.
    pub fn rejected(&self, principal: &str, code: &'static str) {
        let (threshold, window) = (self.rejection_threshold, self.window);
        self.with_window(principal, |w| {
            w.rejections += 1;
            if w.rejections >= threshold && !w.warned_rejections {
                w.warned_rejections = true;
                tracing::warn!(
                    anomaly = "repeated_rejections",
                    principal,
                    rejections = w.rejections,
                    window_secs = window.as_secs(),
                    last_code = code,
                    "usage anomaly: repeated rejections"
                );
            }
        });
    }

    /// `principal` sent a prompt over the cap (`tokens` long).
    pub fn oversized_prompt(&self, principal: &str, tokens: usize) {
        let (threshold, window) = (self.oversized_threshold, self.window);
        self.with_window(principal, |w| {
            w.oversized += 1;
            if w.oversized >= threshold && !w.warned_oversized {
                w.warned_oversized = true;
                tracing::warn!(
                    anomaly = "oversized_prompts",
                    principal,
                    count = w.oversized,
                    last_prompt_tokens = tokens,
                    window_secs = window.as_secs(),
                    "usage anomaly: burst of oversized prompts"
                );
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queue_is_bounded() {
        let m = Arc::new(Metrics::default());
        let q = Arc::new(GenerationQueue::new(1, 1, Duration::from_secs(5), m));
        let first = q.acquire().await.unwrap();
        let q2 = q.clone();
        let waiter = tokio::spawn(async move { q2.acquire().await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(q.acquire().await.unwrap_err(), Overloaded::QueueFull);
        drop(first);
        assert_eq!(waiter.await.unwrap(), Ok(()));
        let _again = q.acquire().await.unwrap();
    }

    #[tokio::test]
    async fn queue_times_out() {
        let m = Arc::new(Metrics::default());
        let q = GenerationQueue::new(1, 4, Duration::from_millis(20), m);
        let _first = q.acquire().await.unwrap();
        assert_eq!(q.acquire().await.unwrap_err(), Overloaded::Timeout);
    }

    #[test]
    fn detector_is_bounded() {
        let d = AnomalyDetector::new(Duration::from_secs(60), 2, 2, 2);
        for p in ["a", "b", "c", "d"] {
            d.rejected(p, "x");
        }
        assert!(d.map.lock().unwrap().len() <= 2);
    }
}
