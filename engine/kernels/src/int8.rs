//! The decode path for quantised weights: the activation quantised per 32-block to 8 bits
//! ([`QuantAct`], GGML's `Q8_0` activations) and integer dot products against `Q8_0` / `Q4_1`
//! rows ([`matvec_rows_i8`]).

#[cfg(target_arch = "x86_64")]
use crate::avx2;
use crate::dot::matvec_rows;
use crate::formats::{BLOCK, MatRef, Q4_1_BYTES, Q8_0_BYTES, f16};

/// An activation vector quantised per 32-block to 8 bits, as GGML's `Q8_0` activations:
/// `x ≈ d·q` with `d = max|x|/127`, `q = round(x/d)` (codes within ±127, which the AVX2 kernel
/// relies on); `s` holds `d·Σq` per block (the `Q4_1` minimum term).
#[derive(Debug, Clone, Default)]
pub struct QuantAct {
    pub(crate) q: Vec<i8>,
    pub(crate) d: Vec<f32>,
    pub(crate) s: Vec<f32>,
}

impl QuantAct {
    /// Quantises `x` (length a multiple of [`BLOCK`]), reusing the buffers.
    pub fn quantize(&mut self, x: &[f32]) {
        let (blocks, _) = x.as_chunks::<BLOCK>();
        self.q.clear();
        self.d.clear();
        self.s.clear();
        for b in blocks {
            let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d > 0.0 { 1.0 / d } else { 0.0 };
            let mut sum = 0i32;
            for v in b {
                let q = (v * id).round() as i8;
                sum += i32::from(q);
                self.q.push(q);
            }
            self.d.push(d);
            self.s.push(d * sum as f32);
        }
    }

    /// The quantised values as `f32` (for tests and references).
    pub fn dequantize(&self) -> Vec<f32> {
        self.q
            .iter()
            .enumerate()
            .map(|(i, q)| f32::from(*q) * self.d[i / BLOCK])
            .collect()
    }
}

/// `Σ q_w·q_x` of one `Q8_0` block, as one `i32` reduction: LLVM turns the sum of products of
/// sign-extended 16-bit values into two `vpmovsxbw` + two `vpmaddwd` (sixteen 16×16-bit products
/// summed pairwise per instruction) and a horizontal add. Forms that keep eight `i32` lanes per
/// block (to scale lanes without the horizontal add) lose the `vpmaddwd` match inside the loop
/// over blocks and come out as `vpmulld` on gathered operands, slower than the `f32` kernels.
#[inline(always)]
fn idot_q8_0_block(b: &[u8; Q8_0_BYTES], x: &[i8; BLOCK]) -> i32 {
    b[2..]
        .iter()
        .zip(x)
        .map(|(w, x)| i32::from(*w as i8) * i32::from(*x))
        .sum()
}

/// `Σ q_w·q_x` of one `Q4_1` block (unsigned nibbles), as [`idot_q8_0_block`].
#[inline(always)]
fn idot_q4_1_block(b: &[u8; Q4_1_BYTES], x: &[i8; BLOCK]) -> i32 {
    let (lo, hi) = x.split_at(16);
    b[4..]
        .iter()
        .zip(lo.iter().zip(hi))
        .map(|(q, (l, h))| i32::from(q & 0x0f) * i32::from(*l) + i32::from(q >> 4) * i32::from(*h))
        .sum()
}

/// Integer dot products of two `Q8_0` rows with a quantised activation: per block
/// `Σ q_w·q_x` in `i32`, scaled by `d_w·d_x`.
#[inline(never)]
pub(crate) fn idot2_q8_0(r0: &[u8], r1: &[u8], x: &QuantAct) -> [f32; 2] {
    let (b0, _) = r0.as_chunks::<Q8_0_BYTES>();
    let (b1, _) = r1.as_chunks::<Q8_0_BYTES>();
    let (xq, _) = x.q.as_chunks::<BLOCK>();
    let mut acc = [0f32; 2];
    for (((b0, b1), xq), xd) in b0.iter().zip(b1).zip(xq).zip(&x.d) {
        let d0 = f16(b0[0], b0[1]) * xd;
        let d1 = f16(b1[0], b1[1]) * xd;
        acc[0] = (idot_q8_0_block(b0, xq) as f32).mul_add(d0, acc[0]);
        acc[1] = (idot_q8_0_block(b1, xq) as f32).mul_add(d1, acc[1]);
    }
    acc
}

/// As [`idot2_q8_0`] for `Q4_1` rows: `d_w·d_x·Σ q_w·q_x + m_w·d_x·Σ q_x` per block.
#[inline(never)]
fn idot2_q4_1(r0: &[u8], r1: &[u8], x: &QuantAct) -> [f32; 2] {
    let (b0, _) = r0.as_chunks::<Q4_1_BYTES>();
    let (b1, _) = r1.as_chunks::<Q4_1_BYTES>();
    let (xq, _) = x.q.as_chunks::<BLOCK>();
    let mut acc = [0f32; 2];
    let mut mins = [0f32; 2];
    for ((((b0, b1), xq), xd), xs) in b0.iter().zip(b1).zip(xq).zip(&x.d).zip(&x.s) {
        let d0 = f16(b0[0], b0[1]) * xd;
        let d1 = f16(b1[0], b1[1]) * xd;
        acc[0] = (idot_q4_1_block(b0, xq) as f32).mul_add(d0, acc[0]);
        acc[1] = (idot_q4_1_block(b1, xq) as f32).mul_add(d1, acc[1]);
        mins[0] = f16(b0[2], b0[3]).mul_add(*xs, mins[0]);
        mins[1] = f16(b1[2], b1[3]).mul_add(*xs, mins[1]);
    }
    [acc[0] + mins[0], acc[1] + mins[1]]
}

/// One row of a quantised matrix times a quantised activation (the odd row of
/// [`matvec_rows_i8`]); `None` for `f32` matrices.
fn idot_row(m: MatRef<'_>, cols: usize, row: usize, x: &QuantAct) -> Option<f32> {
    let n = m.row_len(cols);
    match m {
        MatRef::Q8_0(b) => {
            let r = &b[row * n..(row + 1) * n];
            Some(idot2_q8_0(r, r, x)[0])
        }
        MatRef::Q4_1(b) => {
            let r = &b[row * n..(row + 1) * n];
            Some(idot2_q4_1(r, r, x)[0])
        }
        MatRef::F16(_) | MatRef::F32(_) => None,
    }
}

/// [`matvec_rows`] with integer dot products against the quantised activation `xq` (from the
/// same `x`): `Q8_0` and `Q4_1` rows use 8-bit × 8-bit products; `f32` matrices fall back to
/// [`matvec_rows`] on `x` (`xsum`: [`block_sums`] of `x`).
pub fn matvec_rows_i8(
    m: MatRef<'_>,
    cols: usize,
    r0: usize,
    x: &[f32],
    xsum: &[f32],
    xq: &QuantAct,
    out: &mut [f32],
) {
    let n = m.row_len(cols);
    let b = match m {
        MatRef::Q8_0(b) | MatRef::Q4_1(b) => b,
        MatRef::F16(_) | MatRef::F32(_) => return matvec_rows(m, cols, r0, x, xsum, out),
    };
    #[cfg(target_arch = "x86_64")]
    if matches!(m, MatRef::Q8_0(_)) && avx2::q8_0_rows(b, n, r0, &xq.q, &xq.d, out).is_some() {
        return;
    }
    let mut r = r0;
    let mut pairs = out.chunks_exact_mut(2);
    for o in &mut pairs {
        let (a, c) = (&b[r * n..(r + 1) * n], &b[(r + 1) * n..(r + 2) * n]);
        let d = if matches!(m, MatRef::Q8_0(_)) {
            idot2_q8_0(a, c, xq)
        } else {
            idot2_q4_1(a, c, xq)
        };
        o.copy_from_slice(&d);
        r += 2;
    }
    for o in pairs.into_remainder() {
        *o = idot_row(m, cols, r, xq).unwrap_or_default();
    }
}
