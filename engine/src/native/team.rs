//! Decode (one token) by a team of threads that run the whole forward pass together, each taking
//! its share of every matrix's rows and of the attention heads, meeting at a spinning barrier
//! between steps — the way GGML runs a graph.
//!
//! Why not the rayon pool: one token is ~120 small products, each a parallel region. Between
//! regions a rayon worker goes idle and sleeps, and waking it costs tens of microseconds per
//! region, a fifth of a token's time on two cores. A team step spawns its helpers once per token
//! (scoped threads: they borrow the weights and the cache) and synchronises with a barrier that
//! spins briefly, then yields (so a descheduled partner on a shared machine gets its core).
//!
//! Results are bit-identical to the pool path: every row is computed by the same kernel whatever
//! thread takes it, the small element-wise steps (norms, RoPE, residuals, SiLU) run redundantly
//! on every thread from the same inputs, and each head's attention is the same function.
//! Outputs one thread writes and all read go through `f32` bits in relaxed atomics, ordered by
//! the barrier (acquire/release), so the whole exchange is safe Rust.
//!
//! One team step runs at a time per model; a step that finds another in flight (concurrent
//! generations) uses the pool instead, so concurrent requests never oversubscribe the cores with
//! spinning threads.

use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use confidant_kernels::{self as kernels, BLOCK};

use super::{KvCache, Matrix, Model, rope};

/// A reusable barrier for `n` threads: spins briefly, then yields. It can be *broken* (a member
/// panicked, or a helper could not be started): every wait then returns at once, so the other
/// members run out instead of waiting forever, and the step's result is discarded.
pub(super) struct SpinBarrier {
    n: usize,
    arrived: AtomicUsize,
    generation: AtomicUsize,
    broken: AtomicBool,
}

impl SpinBarrier {
    pub(super) fn new(n: usize) -> Self {
        Self {
            n,
            arrived: AtomicUsize::new(0),
            generation: AtomicUsize::new(0),
            broken: AtomicBool::new(false),
        }
    }

    /// Releases every waiter now and later.
    pub(super) fn break_it(&self) {
        self.broken.store(true, Ordering::Release);
    }

    pub(super) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    /// Returns once all `n` threads have called `wait` for this round (or the barrier is
    /// broken). Everything a thread wrote before its call is visible to every thread after theirs.
    pub(super) fn wait(&self) {
        let round = self.generation.load(Ordering::Acquire);
        if self.arrived.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
            self.arrived.store(0, Ordering::Relaxed);
            self.generation.fetch_add(1, Ordering::AcqRel);
            return;
        }
        let mut spins = 0u32;
        while self.generation.load(Ordering::Acquire) == round && !self.is_broken() {
            if spins < 1 << 14 {
                std::hint::spin_loop();
                spins += 1;
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// An `f32` buffer several threads write disjoint parts of and all read after a barrier.
struct Shared(Vec<AtomicU32>);

impl Shared {
    fn new(n: usize) -> Self {
        Self((0..n).map(|_| AtomicU32::new(0)).collect())
    }

    fn store(&self, at: usize, v: &[f32]) {
        for (a, v) in self.0[at..at + v.len()].iter().zip(v) {
            a.store(v.to_bits(), Ordering::Relaxed);
        }
    }

    fn load_into(&self, out: &mut [f32]) {
        for (o, a) in out.iter_mut().zip(&self.0) {
            *o = f32::from_bits(a.load(Ordering::Relaxed));
        }
    }
}

/// The buffers of one team step.
struct Step<'a> {
    barrier: SpinBarrier,
    q: Shared,
    k: Shared,
    v: Shared,
    att: Shared,
    proj: Shared,
    g: Shared,
    u: Shared,
    logits: Shared,
    cache: RwLock<&'a mut KvCache>,
    token: u32,
    pos0: usize,
}

/// Breaks the barrier if its thread unwinds.
struct BreakOnPanic<'a>(&'a SpinBarrier);

impl Drop for BreakOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.break_it();
        }
    }
}

/// Rows `[i·rows/n, (i+1)·rows/n)` of a matrix: thread `i`'s share.
fn share(rows: usize, i: usize, n: usize) -> std::ops::Range<usize> {
    rows * i / n..rows * (i + 1) / n
}

/// Clears the in-flight flag when a team step ends, however it ends.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.store(0, Ordering::Release);
    }
}

impl Model {
    /// One decode step by the team; `None` if another team step is in flight (the caller then
    /// uses the pool). Appends the token's keys and values to `cache`.
    pub(super) fn decode_team(&self, token: u32, cache: &mut KvCache) -> Option<Vec<f32>> {
        if self
            .team_busy
            .compare_exchange(0, 1, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        let _flight = InFlight(&self.team_busy);
        let n = self.threads;
        let (h, kvd) = (self.hidden, self.kv_heads * self.head_dim);
        let pos0 = cache.len;
        let step = Step {
            barrier: SpinBarrier::new(n),
            q: Shared::new(h),
            k: Shared::new(kvd),
            v: Shared::new(kvd),
            att: Shared::new(h),
            proj: Shared::new(h),
            g: Shared::new(self.ffn),
            u: Shared::new(self.ffn),
            logits: Shared::new(self.vocab),
            cache: RwLock::new(cache),
            token,
            pos0,
        };
        std::thread::scope(|s| {
            for i in 1..n {
                let step = &step;
                let helper = std::thread::Builder::new()
                    .name(format!("engine-team-{i}"))
                    .spawn_scoped(s, move || self.team_member(step, i, n));
                if helper.is_err() {
                    // The helpers already started run out on the broken barrier; the cache is
                    // untouched (only member 0 appends to it), so the pool can take the step.
                    step.barrier.break_it();
                    return;
                }
            }
            self.team_member(&step, 0, n);
        });
        if step.barrier.is_broken() {
            tracing::warn!("engine team could not start its threads; decoding on the pool");
            return None;
        }
        let mut logits = vec![0f32; self.vocab];
        step.logits.load_into(&mut logits);
        if let Ok(cache) = step.cache.into_inner() {
            cache.len += 1;
        }
        Some(logits)
    }

    /// Thread `i` of `n`: its rows of `m` times `x` into `out` (row-indexed).
    fn team_rows(
        &self,
        m: &Matrix,
        x: &[f32],
        xq: &kernels::QuantAct,
        i: usize,
        n: usize,
        out: &Shared,
    ) {
        let rows = share(m.rows, i, n);
        let mut local = vec![0f32; rows.len()];
        let mat = self.mat(m);
        let mut xsum = vec![0f32; m.cols / BLOCK];
        kernels::block_sums(x, &mut xsum);
        if m.int8 {
            kernels::matvec_rows_i8(mat, m.cols, rows.start, x, &xsum, xq, &mut local);
        } else {
            kernels::matvec_rows(mat, m.cols, rows.start, x, &xsum, &mut local);
        }
        out.store(rows.start, &local);
    }

    fn team_member(&self, st: &Step<'_>, i: usize, n: usize) {
        // A panicking member breaks the barrier, so the others finish and the scope re-raises
        // the panic instead of hanging on a partner that will never arrive.
        let _guard = BreakOnPanic(&st.barrier);
        let (h, hd) = (self.hidden, self.head_dim);
        let kvd = self.kv_heads * hd;
        let mut x = vec![0f32; h];
        self.mat(&self.embed)
            .dequant_row(h, st.token as usize, &mut x);
        let half = hd / 2;
        let p = st.pos0 as f32;
        let (mut cos, mut sin) = (vec![0f32; half], vec![0f32; half]);
        for (j, f) in self.inv_freq.iter().enumerate() {
            cos[j] = (p * f).cos();
            sin[j] = (p * f).sin();
        }
        let mut xn = vec![0f32; h];
        let mut xq = kernels::QuantAct::default();
        let (mut q, mut k, mut v) = (vec![0f32; h], vec![0f32; kvd], vec![0f32; kvd]);
        let mut att = vec![0f32; h];
        let mut proj = vec![0f32; h];
        let (mut g, mut u) = (vec![0f32; self.ffn], vec![0f32; self.ffn]);
        let mut scores = Vec::with_capacity(st.pos0 + 1);
        let heads = share(self.heads, i, n);
        for (li, layer) in self.layers.iter().enumerate() {
            kernels::rms_norm(&x, &layer.attn_norm, self.eps, &mut xn);
            xq.quantize(&xn);
            self.team_rows(&layer.q, &xn, &xq, i, n, &st.q);
            self.team_rows(&layer.k, &xn, &xq, i, n, &st.k);
            self.team_rows(&layer.v, &xn, &xq, i, n, &st.v);
            st.barrier.wait();

            st.q.load_into(&mut q);
            rope(&mut q, hd, &cos, &sin);
            if i == 0 {
                st.k.load_into(&mut k);
                st.v.load_into(&mut v);
                rope(&mut k, hd, &cos, &sin);
                if let Ok(mut c) = st.cache.write() {
                    c.k[li].extend_from_slice(&k);
                    c.v[li].extend_from_slice(&v);
                }
            }
            st.barrier.wait();

            if let Ok(c) = st.cache.read() {
                for head in heads.clone() {
                    let o = &mut att[head * hd..(head + 1) * hd];
                    self.attend(&q, &c.k[li], &c.v[li], st.pos0, head, o, &mut scores);
                    st.att.store(head * hd, o);
                }
            }
            st.barrier.wait();

            st.att.load_into(&mut att);
            xq.quantize(&att);
            self.team_rows(&layer.o, &att, &xq, i, n, &st.proj);
            st.barrier.wait();

            st.proj.load_into(&mut proj);
            for (a, b) in x.iter_mut().zip(&proj) {
                *a += b;
            }
            kernels::rms_norm(&x, &layer.ffn_norm, self.eps, &mut xn);
            xq.quantize(&xn);
            self.team_rows(&layer.gate, &xn, &xq, i, n, &st.g);
            self.team_rows(&layer.up, &xn, &xq, i, n, &st.u);
            st.barrier.wait();

            st.g.load_into(&mut g);
            st.u.load_into(&mut u);
            for (g, u) in g.iter_mut().zip(&u) {
                *g = *g / (1.0 + (-*g).exp()) * u;
            }
            xq.quantize(&g);
            self.team_rows(&layer.down, &g, &xq, i, n, &st.proj);
            st.barrier.wait();

            st.proj.load_into(&mut proj);
            for (a, b) in x.iter_mut().zip(&proj) {
                *a += b;
            }
        }
        kernels::rms_norm(&x, &self.out_norm, self.eps, &mut xn);
        xq.quantize(&xn);
        let out = self.output.as_ref().unwrap_or(&self.embed);
        self.team_rows(out, &xn, &xq, i, n, &st.logits);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rounds keep everyone in step: no thread starts round r+1 before all finished round r.
    #[test]
    fn barrier_orders_rounds() {
        let n = 3;
        let barrier = SpinBarrier::new(n);
        let counter = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(|| {
                    for round in 0..200 {
                        counter.fetch_add(1, Ordering::Relaxed);
                        barrier.wait();
                        assert_eq!(counter.load(Ordering::Relaxed), n * (round + 1));
                        barrier.wait();
                    }
                });
            }
        });
    }

    /// A member that panics releases the others instead of leaving them waiting forever.
    #[test]
    fn panicking_member_releases_the_others() {
        let barrier = SpinBarrier::new(2);
        let result = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                barrier.wait();
                barrier.wait();
            });
            let panicker = s.spawn(|| {
                let _guard = BreakOnPanic(&barrier);
                panic!("member fails");
            });
            (waiter.join(), panicker.join())
        });
        assert!(result.0.is_ok(), "the waiter returned");
        assert!(result.1.is_err(), "the panic is reported");
        assert!(barrier.is_broken());
    }
}
