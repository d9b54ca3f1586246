//! Per-principal token buckets with injected time and bounded memory.
//!
//! Each [`Limiter`] is one budget (requests, or generated tokens) keyed by principal. A bucket
//! holds up to `burst` units and refills at `per_second`. Memory is bounded: at most
//! `max_keys` principals are tracked; when full, buckets that have refilled completely (which
//! carry no state worth keeping) are dropped first, then the least recently used one.
//! Dropping a non-full bucket forgives that principal's debt; with authenticated principals and
//! a cap well above the number of active users this does not happen in practice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// A source of monotonic time, injected so tests can move time by hand.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current instant.
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that only moves when told to (for tests).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Instant>,
}

impl ManualClock {
    /// Starts at the current instant.
    pub fn new() -> Self {
        Self {
            now: Mutex::new(Instant::now()),
        }
    }

    /// Moves time forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The request was refused; try again after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("rate limited; retry after {retry_after:?}")]
pub struct RateLimited {
    /// How long until the request would be admitted.
    pub retry_after: Duration,
}

impl From<RateLimited> for ApiError {
    fn from(e: RateLimited) -> Self {
        ApiError::rate_limited(e.retry_after)
    }
}

/// One budget's parameters.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Refill rate in units per second (must be > 0).
    pub per_second: f64,
    /// Bucket capacity (must be >= 1).
    pub burst: u64,
}

/// Invalid limiter parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateLimitConfigError {
    /// `per_second` is zero, negative or not finite.
    #[error("rate must be a positive finite number")]
    BadRate,
    /// `burst` is zero.
    #[error("burst must be at least 1")]
    ZeroBurst,
    /// `max_keys` is zero.
    #[error("max_keys must be at least 1")]
    ZeroKeys,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// May go negative: a request larger than `burst` is admitted from a full bucket and leaves
    /// the principal in debt, so it is never starved yet pays in full.
    tokens: f64,
    updated: Instant,
}

/// One per-principal budget.
#[derive(Debug)]
pub struct Limiter {
    rate: f64,
    burst: f64,
    max_keys: usize,
    clock: Arc<dyn Clock>,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl Limiter {
    /// A limiter tracking at most `max_keys` principals.
    pub fn new(
        config: BucketConfig,
        max_keys: usize,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RateLimitConfigError> {
        if !(config.per_second.is_finite() && config.per_second > 0.0) {
            return Err(RateLimitConfigError::BadRate);
        }
        if config.burst == 0 {
            return Err(RateLimitConfigError::ZeroBurst);
        }
        if max_keys == 0 {
            return Err(RateLimitConfigError::ZeroKeys);
        }
        Ok(Self {
            rate: config.per_second,
            burst: config.burst as f64,
            max_keys,
            clock,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes `n` units from `key`'s bucket, or says how long to wait. `n` larger than the burst
    /// is admitted only from a full bucket (see [`Bucket`]); `n == 0` always succeeds.
    pub fn try_take(&self, key: &str, n: u64) -> Result<(), RateLimited> {
        if n == 0 {
            return Ok(());
        }
        let now = self.clock.now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if !map.contains_key(key) && map.len() >= self.max_keys {
            self.evict(&mut map, now);
        }
        let bucket = map.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        self.refill(bucket, now);
        let need = (n as f64).min(self.burst);
        if bucket.tokens >= need {
            bucket.tokens -= n as f64;
            Ok(())
        } else {
            let secs = (need - bucket.tokens) / self.rate;
            Err(RateLimited {
                retry_after: Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX),
            })
        }
    }

    /// Gives back `n` units (e.g. the unused part of a `max_tokens` reservation), up to the burst.
    pub fn refund(&self, key: &str, n: u64) {
        let now = self.clock.now();
        let mut map = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = map.get_mut(key) {
            self.refill(bucket, now);
            bucket.tokens = (bucket.tokens + n as f64).min(self.burst);
        }
    }

    /// Number of principals currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.lock().map(|m| m.len()).unwrap_or(0)
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate).min(self.burst);
        bucket.updated = now;
    }

    fn evict(&self, map: &mut HashMap<String, Bucket>, now: Instant) {
        let full = |b: &Bucket| {
            let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
            b.tokens + elapsed * self.rate >= self.burst
        };
        map.retain(|_, b| !full(b));
        if map.len() >= self.max_keys {
            let oldest = map
                .iter()
                .min_by_key(|(_, b)| b.updated)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                map.remove(&k);
            }
        }
    }
}

/// Parameters of both budgets a service applies per principal.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Requests.
    pub requests: BucketConfig,
    /// Generated tokens (the enclave reserves `max_tokens`, then refunds what it did not use).
    pub tokens: BucketConfig,
    /// Cap on tracked principals per budget.
    #[serde(default = "default_max_keys")]
    pub max_keys: usize,
}

fn default_max_keys() -> usize {
    10_000
}

/// The two per-principal budgets.
#[derive(Debug)]
pub struct RateLimits {
    /// One unit per request.
    pub requests: Limiter,
    /// One unit per generated token.
    pub tokens: Limiter,
}

impl RateLimits {
    /// Both budgets sharing one clock.
    pub fn new(
        config: &RateLimitConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, RateLimitConfigError> {
        Ok(Self {
            requests: Limiter::new(config.requests, config.max_keys, clock.clone())?,
            tokens: Limiter::new(config.tokens, config.max_keys, clock)?,
        })
    }

    /// Admits one request for `principal`.
    pub fn check_request(&self, principal: &str) -> Result<(), RateLimited> {
        self.requests.try_take(principal, 1)
    }
}
