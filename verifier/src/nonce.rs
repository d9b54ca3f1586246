//! Single-use challenge nonces with a short time to live, in a bounded in-memory store.
//!
//! A nonce is issued by `POST /v1/challenge` and consumed by the first `POST /v1/attest` that
//! names it, whatever that attempt's outcome. Consumed and expired nonces are remembered until
//! one more TTL has passed, so a replay is reported as a replay (not as "unknown") for as long as
//! anyone could plausibly still hold it. Time is passed in (milliseconds since the Unix epoch).

use std::collections::HashMap;
use std::sync::Mutex;

use ring::rand::SecureRandom;

/// Length of a nonce in bytes.
pub const NONCE_LEN: usize = 32;

/// Why a nonce could not be issued or consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceError {
    /// The nonce was never issued here (or was forgotten long ago).
    #[error("unknown nonce")]
    Unknown,
    /// The nonce was already used by an earlier attestation.
    #[error("nonce already used")]
    Replayed,
    /// The nonce's TTL passed before it was used.
    #[error("nonce expired")]
    Expired,
    /// The store holds its maximum number of nonces; retry shortly.
    #[error("too many outstanding challenges")]
    StoreFull,
    /// The system random number generator failed.
    #[error("random number generator failed")]
    Rng,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Outstanding,
    Used,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    state: State,
    expires_ms: u64,
}

/// The bounded nonce store.
#[derive(Debug)]
pub struct NonceStore {
    ttl_ms: u64,
    capacity: usize,
    entries: Mutex<HashMap<[u8; NONCE_LEN], Entry>>,
}

/// A freshly issued nonce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Issued {
    pub nonce: [u8; NONCE_LEN],
    /// Milliseconds since the Unix epoch after which the nonce is refused.
    pub expires_ms: u64,
}

impl NonceStore {
    /// A store issuing nonces valid for `ttl_ms`, holding at most `capacity` entries (outstanding
    /// plus recently used/expired).
    pub fn new(ttl_ms: u64, capacity: usize) -> Self {
        Self {
            ttl_ms,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Issues a fresh random nonce.
    pub fn issue(&self, rng: &dyn SecureRandom, now_ms: u64) -> Result<Issued, NonceError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| NonceError::Rng)?;
        let expires_ms = now_ms.saturating_add(self.ttl_ms);
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= self.capacity {
            self.purge(&mut map, now_ms);
        }
        if map.len() >= self.capacity {
            return Err(NonceError::StoreFull);
        }
        map.insert(
            nonce,
            Entry {
                state: State::Outstanding,
                expires_ms,
            },
        );
        Ok(Issued { nonce, expires_ms })
    }

    /// Consumes `nonce`: succeeds once, if it was issued here and has not expired. Any attempt
    /// marks it used.
    pub fn consume(&self, nonce: &[u8], now_ms: u64) -> Result<[u8; NONCE_LEN], NonceError> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| NonceError::Unknown)?;
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get_mut(&nonce).ok_or(NonceError::Unknown)?;
        let previous = entry.state;
        entry.state = State::Used;
        match previous {
            State::Used => Err(NonceError::Replayed),
            State::Outstanding if now_ms >= entry.expires_ms => Err(NonceError::Expired),
            State::Outstanding => Ok(nonce),
        }
    }

    /// Checks that `nonce` is outstanding (issued here, neither consumed nor expired) without
    /// consuming it; returns its expiry (milliseconds since the Unix epoch).
    pub fn outstanding(&self, nonce: &[u8], now_ms: u64) -> Result<u64, NonceError> {
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| NonceError::Unknown)?;
        let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.get(&nonce).ok_or(NonceError::Unknown)?;
        match entry.state {
            State::Used => Err(NonceError::Replayed),
            State::Outstanding if now_ms >= entry.expires_ms => Err(NonceError::Expired),
            State::Outstanding => Ok(entry.expires_ms),
        }
    }

    /// Number of entries held (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets entries one TTL past their expiry.
    fn purge(&self, map: &mut HashMap<[u8; NONCE_LEN], Entry>, now_ms: u64) {
        let ttl = self.ttl_ms;
        map.retain(|_, e| e.expires_ms.saturating_add(ttl) > now_ms);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;

    #[test]
    fn single_use() {
        let store = NonceStore::new(1000, 10);
        let rng = SystemRandom::new();
        let n = store.issue(&rng, 0).unwrap();
        assert_eq!(store.consume(&n.nonce, 10), Ok(n.nonce));
        assert_eq!(store.consume(&n.nonce, 20), Err(NonceError::Replayed));
    }

    #[test]
    fn expiry_and_unknown() {
        let store = NonceStore::new(1000, 10);
        let rng = SystemRandom::new();
        let n = store.issue(&rng, 0).unwrap();
        assert_eq!(store.consume(&n.nonce, 1000), Err(NonceError::Expired));
        assert_eq!(store.consume(&n.nonce, 1001), Err(NonceError::Replayed));
        assert_eq!(store.consume(&[0u8; 32], 0), Err(NonceError::Unknown));
        assert_eq!(store.consume(&[0u8; 3], 0), Err(NonceError::Unknown));
    }

    #[test]
    fn outstanding_does_not_consume() {
        let store = NonceStore::new(1000, 10);
        let rng = SystemRandom::new();
        let n = store.issue(&rng, 0).unwrap();
        assert_eq!(store.outstanding(&n.nonce, 10), Ok(1000));
        assert_eq!(store.outstanding(&n.nonce, 1000), Err(NonceError::Expired));
        assert_eq!(store.consume(&n.nonce, 20), Ok(n.nonce));
        assert_eq!(store.outstanding(&n.nonce, 30), Err(NonceError::Replayed));
        assert_eq!(store.outstanding(&[1u8; 32], 0), Err(NonceError::Unknown));
    }

    #[test]
    fn bounded() {
        let store = NonceStore::new(1000, 2);
        let rng = SystemRandom::new();
        store.issue(&rng, 0).unwrap();
        store.issue(&rng, 0).unwrap();
        assert_eq!(store.issue(&rng, 500), Err(NonceError::StoreFull));
        // Two TTLs later both entries are forgotten.
        assert!(store.issue(&rng, 2000).is_ok());
        assert_eq!(store.len(), 1);
    }
}
