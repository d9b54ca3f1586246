//! Who gets the TEE next. Evidence requests reach it one at a time (an SNP guest request or a
//! TPM quote is serial in the hardware anyway); the enclave's own attestations (boot and
//! renewal) go before any session request that is waiting, and only a few session requests may
//! wait at all: the rest are refused at once. So `POST /v1/attestation`, which anyone may call
//! (from as many source addresses as they have, each with its own rate-limit bucket), can
//! neither pile up work for the TEE nor delay the renewal that keeps the enclave's certificate
//! valid.
//!
//! Blocking: call from a blocking thread, around the `Tee::evidence` call.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The gate in front of the TEE.
#[derive(Debug)]
pub struct TeeGate {
    state: Mutex<State>,
    turn: Condvar,
    max_waiting_sessions: usize,
    session_wait: Duration,
}

#[derive(Debug, Default)]
struct State {
    busy: bool,
    enclave_waiting: usize,
    sessions_waiting: usize,
}

/// A session request was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    #[error("{0} session attestations are already waiting for the TEE")]
    QueueFull(usize),
    #[error("the TEE was not free within {0:?}")]
    Timeout(Duration),
}

/// The TEE is the holder's until this is dropped.
#[derive(Debug)]
pub struct Turn<'a> {
    gate: &'a TeeGate,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.gate.lock().busy = false;
        self.gate.turn.notify_all();
    }
}

impl TeeGate {
    /// At most `max_waiting_sessions` session requests wait (beyond it: [`Busy::QueueFull`]),
    /// each at most `session_wait` ([`Busy::Timeout`]).
    pub fn new(max_waiting_sessions: usize, session_wait: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            turn: Condvar::new(),
            max_waiting_sessions,
            session_wait,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is three counters, consistent after every statement: a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The enclave's own attestation: waits for the TEE, ahead of every waiting session request.
    pub fn enclave(&self) -> Turn<'_> {
        let mut s = self.lock();
        s.enclave_waiting += 1;
        while s.busy {
            s = self.turn.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        s.enclave_waiting -= 1;
        s.busy = true;
        Turn { gate: self }
    }

    /// A session attestation: the TEE once it is free and no enclave attestation waits, or
    /// [`Busy`].
    pub fn session(&self) -> Result<Turn<'_>, Busy> {
        let mut s = self.lock();
        let free = |s: &State| !s.busy && s.enclave_waiting == 0;
        if free(&s) {
            s.busy = true;
            return Ok(Turn { gate: self });
        }
        if s.sessions_waiting >= self.max_waiting_sessions {
            return Err(Busy::QueueFull(self.max_waiting_sessions));
        }
        s.sessions_waiting += 1;
        let deadline = Instant::now() + self.session_wait;
        loop {
            let now = Instant::now();
            if now >= deadline {
                s.sessions_waiting -= 1;
                return Err(Busy::Timeout(self.session_wait));
            }
            s = self
                .turn
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            if free(&s) {
                s.sessions_waiting -= 1;
                s.busy = true;
                return Ok(Turn { gate: self });
            }
        }
    }

    /// Session requests waiting now.
    pub fn sessions_waiting(&self) -> usize {
        self.lock().sessions_waiting
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;
    use std::sync::mpsc;

    use super::*;

    fn wait_until(what: &str, f: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn sessions_beyond_the_queue_are_refused_at_once() {
        let gate = TeeGate::new(2, Duration::from_secs(30));
        let held = gate.session().unwrap();
        std::thread::scope(|scope| {
            let waiters: Vec<_> = (0..2)
                .map(|_| scope.spawn(|| gate.session().map(drop)))
                .collect();
            wait_until("two sessions waiting", || gate.sessions_waiting() == 2);
            let t = Instant::now();
            assert_eq!(gate.session().unwrap_err(), Busy::QueueFull(2));
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "refused without waiting"
            );
            drop(held);
            for w in waiters {
                w.join().unwrap().unwrap();
            }
        });
        assert_eq!(gate.sessions_waiting(), 0);
    }

    #[test]
    fn a_session_waits_at_most_its_time() {
        let gate = TeeGate::new(4, Duration::from_millis(50));
        let _held = gate.enclave();
        assert_eq!(
            gate.session().unwrap_err(),
            Busy::Timeout(Duration::from_millis(50))
        );
        assert_eq!(gate.sessions_waiting(), 0);
    }

    /// With the TEE busy and session requests waiting, the enclave's renewal is next.
    #[test]
    fn the_enclaves_attestation_goes_before_waiting_sessions() {
        let gate = Arc::new(TeeGate::new(8, Duration::from_secs(30)));
        let held = gate.session().unwrap();
        let (order_tx, order) = mpsc::channel();
        let mut threads = Vec::new();
        for i in 0..4 {
            let (gate, tx) = (gate.clone(), order_tx.clone());
            threads.push(std::thread::spawn(move || {
                let _turn = gate.session().unwrap();
                tx.send(format!("session {i}")).unwrap();
            }));
        }
        wait_until("four sessions waiting", || gate.sessions_waiting() == 4);
        let (g, tx) = (gate.clone(), order_tx.clone());
        threads.push(std::thread::spawn(move || {
            let _turn = g.enclave();
            tx.send("enclave".to_owned()).unwrap();
        }));
        wait_until("the enclave waiting", || gate.lock().enclave_waiting == 1);
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        drop(order_tx);
        let order: Vec<String> = order.iter().collect();
        assert_eq!(order.len(), 5);
        assert_eq!(order[0], "enclave", "{order:?}");
    }
}
