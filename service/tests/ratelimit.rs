//! Token buckets under an injected clock.
#![allow(clippy::unwrap_used, reason = "tests panic on unexpected failures")]

use std::sync::Arc;
use std::time::Duration;

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use confidant_service::ApiError;
use confidant_service::ratelimit::{
    BucketConfig, Limiter, ManualClock, RateLimitConfig, RateLimitConfigError, RateLimited,
    RateLimits,
};

fn limiter(per_second: f64, burst: u64, max_keys: usize) -> (Limiter, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    let l = Limiter::new(BucketConfig { per_second, burst }, max_keys, clock.clone()).unwrap();
    (l, clock)
}

#[test]
fn burst_then_429_with_retry_after() {
    let (l, _) = limiter(2.0, 3, 10);
    for _ in 0..3 {
        assert_eq!(l.try_take("alice", 1), Ok(()));
    }
    let err = l.try_take("alice", 1).unwrap_err();
    assert_eq!(err.retry_after, Duration::from_millis(500));
    // Other principals have their own bucket.
    assert_eq!(l.try_take("bob", 1), Ok(()));

    let resp = ApiError::from(err).into_response();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()[header::RETRY_AFTER], "1");
}

#[test]
fn refills_over_injected_time() {
    let (l, clock) = limiter(1.0, 2, 10);
    l.try_take("a", 2).unwrap();
    assert!(l.try_take("a", 1).is_err());
    clock.advance(Duration::from_millis(999));
    assert!(l.try_take("a", 1).is_err());
    clock.advance(Duration::from_millis(1));
    assert_eq!(l.try_take("a", 1), Ok(()));
    clock.advance(Duration::from_secs(3600));
    // Never more than the burst.
    assert_eq!(l.try_take("a", 2), Ok(()));
    assert!(l.try_take("a", 1).is_err());
}

#[test]
fn token_budget_reserve_refund_and_oversized_requests() {
    let clock = Arc::new(ManualClock::new());
    let limits = RateLimits::new(
        &RateLimitConfig {
            requests: BucketConfig {
                per_second: 1.0,
                burst: 5,
            },
            tokens: BucketConfig {
                per_second: 10.0,
                burst: 100,
            },
            max_keys: 10,
        },
        clock.clone(),
    )
    .unwrap();
    assert_eq!(limits.check_request("p"), Ok(()));
    limits.tokens.try_take("p", 80).unwrap();
    limits.tokens.refund("p", 70); // used only 10
    assert_eq!(limits.tokens.try_take("p", 90), Ok(()));

    // Larger than the burst: admitted from a full bucket, leaving debt that must be repaid.
    clock.advance(Duration::from_secs(60));
    assert_eq!(limits.tokens.try_take("p", 150), Ok(()));
    let RateLimited { retry_after } = limits.tokens.try_take("p", 1).unwrap_err();
    assert_eq!(retry_after, Duration::from_millis(5_100));
}

#[test]
fn memory_is_bounded_and_idle_principals_go_first() {
    let (l, clock) = limiter(1.0, 2, 3);
    l.try_take("busy", 2).unwrap();
    l.try_take("idle1", 1).unwrap();
    l.try_take("idle2", 1).unwrap();
    clock.advance(Duration::from_secs(1)); // idle buckets are full again, "busy" is not
    for i in 0..50 {
        l.try_take(&format!("p{i}"), 1).unwrap();
        assert!(l.tracked() <= 3);
    }
    assert_eq!(l.tracked(), 3);
}

#[test]
fn busy_principal_survives_eviction_of_idle_ones() {
    let (l, clock) = limiter(1.0, 2, 2);
    l.try_take("busy", 2).unwrap();
    l.try_take("idle", 1).unwrap();
    clock.advance(Duration::from_secs(1));
    // "idle" is full and evicted; "busy" (1 token) keeps its state.
    l.try_take("new", 1).unwrap();
    l.try_take("busy", 1).unwrap();
    assert!(l.try_take("busy", 1).is_err());
}

#[test]
fn bad_parameters_are_refused() {
    let clock = Arc::new(ManualClock::new());
    let mk = |per_second, burst, keys| {
        Limiter::new(BucketConfig { per_second, burst }, keys, clock.clone()).map(|_| ())
    };
    assert_eq!(mk(0.0, 1, 1), Err(RateLimitConfigError::BadRate));
    assert_eq!(mk(f64::NAN, 1, 1), Err(RateLimitConfigError::BadRate));
    assert_eq!(mk(1.0, 0, 1), Err(RateLimitConfigError::ZeroBurst));
    assert_eq!(mk(1.0, 1, 0), Err(RateLimitConfigError::ZeroKeys));
}
