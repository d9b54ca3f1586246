//! CPU kernels of Confidant's native inference engine, written so LLVM vectorises them for the build's target
//! (`x86-64-v3`: AVX2 + FMA): fixed 8-lane `f32` accumulators, fused multiply-adds, weights
//! dequantised in registers. The shapes matter: LLVM's SLP vectoriser turns `for l in 0..8`
//! over fixed-size arrays into one 256-bit operation when every lane does the same thing with
//! contiguous operands (checked in the assembly: `vpmovsxbd`/`vcvtdq2ps`/`vfmadd…ps ymm` per 8
//! weights in the matrix-vector kernels, `vbroadcastss` + `vfmadd…ps ymm` in the prefill tile).
//!
//! Two activation paths: `f32` activations against weights dequantised in registers (prefill,
//! `Q4_1`, `F16`/`F32` matrices; matches a dequantised-`f32` reference up to summation order),
//! and, for decode with `Q8_0` weights, activations quantised per 32-block to 8 bits
//! ([`QuantAct`], GGML's `Q8_0` activations) multiplied with integer dot products
//! ([`matvec_rows_i8`]).
//!
//! The hot products have hand-written SIMD kernels, used when the CPU has the features (checked
//! at run time): decode's `Q8_0` × 8-bit and `F16` × `f32` matrix-vector rows (module `avx2`:
//! `vpmaddubsw`, `vcvtph2ps`) and the prefill tiles (`avx2`: 16 rows × 4 tokens; `avx512`:
//! 32 × 8). The portable kernels below are the fallback and the reference the tests compare
//! them with.
//!
//! Weight layouts are GGML's, read in place:
//! - `Q8_0`: blocks of 32 weights, 34 bytes: `f16` scale `d`, then 32 `i8`; w = d·q.
//! - `Q4_1`: blocks of 32 weights, 20 bytes: `f16` scale `d`, `f16` minimum `m`, then 16 bytes whose
//!   low nibbles are weights 0..16 and high nibbles weights 16..32; w = d·q + m.
// `unsafe` is denied everywhere except the calls into the SIMD kernels, each behind a run-time
// CPU-feature check (see `avx2` and `avx512`).
#![deny(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;

/// Weights per quantisation block.
pub const BLOCK: usize = 32;
/// Bytes per `Q8_0` block.
pub const Q8_0_BYTES: usize = 34;
/// Bytes per `Q4_1` block.
pub const Q4_1_BYTES: usize = 20;

/// One matrix's weights, borrowed: row-major, `cols` per row.
#[derive(Debug, Clone, Copy)]
pub enum MatRef<'a> {
    Q8_0(&'a [u8]),
    Q4_1(&'a [u8]),
    /// `f16` bits (half the memory traffic of `f32`, converted in registers).
    F16(&'a [u16]),
    F32(&'a [f32]),
}

impl MatRef<'_> {
    fn row_len(&self, cols: usize) -> usize {
        match self {
            Self::Q8_0(_) => cols / BLOCK * Q8_0_BYTES,
            Self::Q4_1(_) => cols / BLOCK * Q4_1_BYTES,
            Self::F16(_) | Self::F32(_) => cols,
        }
    }

    /// `row · x`; `xsum` holds the per-block sums of `x` (used by `Q4_1`).
    #[inline]
    pub fn dot_row(&self, cols: usize, row: usize, x: &[f32], xsum: &[f32]) -> f32 {
        let n = self.row_len(cols);
        match self {
            Self::Q8_0(b) => dot_q8_0(&b[row * n..(row + 1) * n], x),
            Self::Q4_1(b) => dot_q4_1(&b[row * n..(row + 1) * n], x, xsum),
            Self::F16(w) => dot_f16(&w[row * n..(row + 1) * n], x),
            Self::F32(w) => dot(&w[row * n..(row + 1) * n], x),
        }
    }

    /// Writes row `row` as `f32` into `out` (`cols` long).
    #[inline]
    pub fn dequant_row(&self, cols: usize, row: usize, out: &mut [f32]) {
        let n = self.row_len(cols);
        match self {
            Self::Q8_0(b) => dequant_q8_0(&b[row * n..(row + 1) * n], out),
            Self::Q4_1(b) => dequant_q4_1(&b[row * n..(row + 1) * n], out),
            Self::F16(w) => {
                for (o, h) in out.iter_mut().zip(&w[row * n..(row + 1) * n]) {
                    *o = f16_to_f32(*h);
                }
            }
            Self::F32(w) => out.copy_from_slice(&w[row * n..(row + 1) * n]),
        }
    }
}

/// `f16` bits to `f32`, branch-free: exact for finite values (normal and subnormal); infinities
/// and NaNs (never scales of a valid block) come out as large finite values.
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let bits = u32::from(h);
    // Exponent and mantissa moved into place, then rebiased by multiplying with 2^112.
    let mag = f32::from_bits((bits & 0x7fff) << 13) * f32::from_bits(0x7780_0000);
    f32::from_bits(mag.to_bits() | ((bits & 0x8000) << 16))
}

/// A block's `f16` scale: `half` uses the F16C instruction on `x86-64-v3` (three instructions
/// against about ten for [`f16_to_f32`], once per 32 weights).
#[inline(always)]
fn f16(lo: u8, hi: u8) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([lo, hi])).to_f32()
}

/// Sum of the lanes, in order (a pairwise tree here makes LLVM regroup the lanes of the whole
/// loop into shuffled 128-bit vectors).
#[inline(always)]
fn hsum(a: [f32; 8]) -> f32 {
    a.iter().sum()
}

/// Per-block (32) sums of `x`.
pub fn block_sums(x: &[f32], out: &mut [f32]) {
    let (blocks, _) = x.as_chunks::<BLOCK>();
    for (o, b) in out.iter_mut().zip(blocks) {
        *o = b.iter().sum();
    }
}

/// `a · b` in `f32`.
#[inline]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ac, ar) = a.as_chunks::<8>();
    let (bc, br) = b.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for (x, y) in ac.iter().zip(bc) {
        for l in 0..8 {
            acc[l] = x[l].mul_add(y[l], acc[l]);
        }
    }
    let mut s = hsum(acc);
    for (x, y) in ar.iter().zip(br) {
        s = x.mul_add(*y, s);
    }
    s
}

/// `y += a·x`.
#[inline]
pub fn axpy(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = a.mul_add(*xi, *yi);
    }
}

/// `w · x` with `w` in `f16` bits, converted in registers by [`f16_to_f32`] (vectorised).
#[inline(never)]
fn dot_f16(w: &[u16], x: &[f32]) -> f32 {
    let (wc, wr) = w.as_chunks::<8>();
    let (xc, xr) = x.as_chunks::<8>();
    let mut acc = [0f32; 8];
    for (w, x) in wc.iter().zip(xc) {
        for l in 0..8 {
            acc[l] = f16_to_f32(w[l]).mul_add(x[l], acc[l]);
        }
    }
    let mut s = hsum(acc);
    for (w, x) in wr.iter().zip(xr) {
        s = f16_to_f32(*w).mul_add(*x, s);
    }
    s
}

#[inline(never)]
fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q8_0_BYTES>();
    let (xb, _) = x.as_chunks::<BLOCK>();
    let mut acc = [0f32; 8];
    for (b, xb) in blocks.iter().zip(xb) {
        let d = f16(b[0], b[1]);
        let mut s = [0f32; 8];
        for j in 0..4 {
            for l in 0..8 {
                s[l] = f32::from(b[2 + j * 8 + l] as i8).mul_add(xb[j * 8 + l], s[l]);
            }
        }
        for l in 0..8 {
            acc[l] = s[l].mul_add(d, acc[l]);
        }
    }
    hsum(acc)
}

#[inline(never)]
fn dot_q4_1(row: &[u8], x: &[f32], xsum: &[f32]) -> f32 {
    let (blocks, _) = row.as_chunks::<Q4_1_BYTES>();
    let (xb, _) = x.as_chunks::<BLOCK>();
    let mut acc = [0f32; 8];
    let mut mins = 0f32;
    for ((b, xb), xs) in blocks.iter().zip(xb).zip(xsum) {
        let d = f16(b[0], b[1]);
        let m = f16(b[2], b[3]);
        let mut s = [0f32; 8];
        for j in 0..2 {
            for l in 0..8 {
                let q = b[4 + j * 8 + l];
                s[l] = f32::from(q & 0x0f).mul_add(xb[j * 8 + l], s[l]);
                s[l] = f32::from(q >> 4).mul_add(xb[16 + j * 8 + l], s[l]);
            }
        }
        for l in 0..8 {
            acc[l] = s[l].mul_add(d, acc[l]);
        }
        mins = m.mul_add(*xs, mins);
    }
    hsum(acc) + mins
}

fn dequant_q8_0(row: &[u8], out: &mut [f32]) {
    let (blocks, _) = row.as_chunks::<Q8_0_BYTES>();
    let (ob, _) = out.as_chunks_mut::<BLOCK>();
    for (b, o) in blocks.iter().zip(ob) {
        let d = f16(b[0], b[1]);
        for (o, q) in o.iter_mut().zip(&b[2..]) {
            *o = d * f32::from(*q as i8);
        }
    }
}

fn dequant_q4_1(row: &[u8], out: &mut [f32]) {
    let (blocks, _) = row.as_chunks::<Q4_1_BYTES>();
    let (ob, _) = out.as_chunks_mut::<BLOCK>();
    for (b, o) in blocks.iter().zip(ob) {
        let d = f16(b[0], b[1]);
        let m = f16(b[2], b[3]);
        let (lo, hi) = o.split_at_mut(16);
        for ((l, h), q) in lo.iter_mut().zip(hi.iter_mut()).zip(&b[4..]) {
            *l = d.mul_add(f32::from(q & 0x0f), m);
            *h = d.mul_add(f32::from(q >> 4), m);
        }
    }
}

/// Matrix-vector rows: `out[i] = row(r0 + i) · x`. `xsum`: [`block_sums`] of `x`. Quantised
/// rows go two at a time (two independent accumulator chains, one load of `x` for both).
pub fn matvec_rows(
    m: MatRef<'_>,
    cols: usize,
    r0: usize,
    x: &[f32],
    xsum: &[f32],
    out: &mut [f32],
) {
    #[cfg(target_arch = "x86_64")]
    if let MatRef::F16(w) = m
        && avx2::f16_rows(w, cols, r0, x, out).is_some()
    {
        return;
    }
    let mut pairs = out.chunks_exact_mut(2);
    let mut r = r0;
    for o in &mut pairs {
        let n = m.row_len(cols);
        let d = match m {
            MatRef::Q8_0(b) => dot2_q8_0(&b[r * n..(r + 1) * n], &b[(r + 1) * n..(r + 2) * n], x),
            MatRef::Q4_1(b) => dot2_q4_1(
                &b[r * n..(r + 1) * n],
                &b[(r + 1) * n..(r + 2) * n],
                x,
                xsum,
            ),
            MatRef::F16(_) | MatRef::F32(_) => {
                [m.dot_row(cols, r, x, xsum), m.dot_row(cols, r + 1, x, xsum)]
            }
        };
        o.copy_from_slice(&d);
        r += 2;
    }
    for o in pairs.into_remainder() {
        *o = m.dot_row(cols, r, x, xsum);
    }
}

#[inline(never)]
fn dot2_q8_0(r0: &[u8], r1: &[u8], x: &[f32]) -> [f32; 2] {
    let (b0, _) = r0.as_chunks::<Q8_0_BYTES>();
    let (b1, _) = r1.as_chunks::<Q8_0_BYTES>();
    let (xb, _) = x.as_chunks::<BLOCK>();
    let mut acc0 = [0f32; 8];
    let mut acc1 = [0f32; 8];
    for ((b0, b1), xb) in b0.iter().zip(b1).zip(xb) {
        let d0 = f16(b0[0], b0[1]);
        let d1 = f16(b1[0], b1[1]);
        let mut s0 = [0f32; 8];
        let mut s1 = [0f32; 8];
        for j in 0..4 {
            for l in 0..8 {
                s0[l] = f32::from(b0[2 + j * 8 + l] as i8).mul_add(xb[j * 8 + l], s0[l]);
            }
            for l in 0..8 {
                s1[l] = f32::from(b1[2 + j * 8 + l] as i8).mul_add(xb[j * 8 + l], s1[l]);
            }
        }
        for l in 0..8 {
            acc0[l] = s0[l].mul_add(d0, acc0[l]);
        }
        for l in 0..8 {
            acc1[l] = s1[l].mul_add(d1, acc1[l]);
        }
    }
    [hsum(acc0), hsum(acc1)]
}

#[inline(never)]
fn dot2_q4_1(r0: &[u8], r1: &[u8], x: &[f32], xsum: &[f32]) -> [f32; 2] {
    let (b0, _) = r0.as_chunks::<Q4_1_BYTES>();
    let (b1, _) = r1.as_chunks::<Q4_1_BYTES>();
    let (xb, _) = x.as_chunks::<BLOCK>();
    let mut acc0 = [0f32; 8];
    let mut acc1 = [0f32; 8];
    let mut mins = [0f32; 2];
    for (((b0, b1), xb), xs) in b0.iter().zip(b1).zip(xb).zip(xsum) {
        let (d0, m0) = (f16(b0[0], b0[1]), f16(b0[2], b0[3]));
        let (d1, m1) = (f16(b1[0], b1[1]), f16(b1[2], b1[3]));
        let mut s0 = [0f32; 8];
        let mut s1 = [0f32; 8];
        for j in 0..2 {
            for l in 0..8 {
                let q = b0[4 + j * 8 + l];
                s0[l] = f32::from(q & 0x0f).mul_add(xb[j * 8 + l], s0[l]);
                s0[l] = f32::from(q >> 4).mul_add(xb[16 + j * 8 + l], s0[l]);
            }
            for l in 0..8 {
                let q = b1[4 + j * 8 + l];
                s1[l] = f32::from(q & 0x0f).mul_add(xb[j * 8 + l], s1[l]);
                s1[l] = f32::from(q >> 4).mul_add(xb[16 + j * 8 + l], s1[l]);
            }
        }
        for l in 0..8 {
            acc0[l] = s0[l].mul_add(d0, acc0[l]);
        }
        for l in 0..8 {
            acc1[l] = s1[l].mul_add(d1, acc1[l]);
        }
        mins[0] = m0.mul_add(*xs, mins[0]);
        mins[1] = m1.mul_add(*xs, mins[1]);
    }
    [hsum(acc0) + mins[0], hsum(acc1) + mins[1]]
}

/// An activation vector quantised per 32-block to 8 bits, as GGML's `Q8_0` activations:
/// `x ≈ d·q` with `d = max|x|/127`, `q = round(x/d)` (codes within ±127, which the AVX2 kernel
/// relies on); `s` holds `d·Σq` per block (the `Q4_1` minimum term).
#[derive(Debug, Clone, Default)]
pub struct QuantAct {
    q: Vec<i8>,
    d: Vec<f32>,
    s: Vec<f32>,
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
fn idot2_q8_0(r0: &[u8], r1: &[u8], x: &QuantAct) -> [f32; 2] {
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

/// Prefill rows: `out[t][r] = row(r0 + r) · x[t]` for `rows` rows (a multiple of 8) and the
/// tokens of `out` (`x` holds `tp ≥ out.len()` token vectors of `k`, `tp` a multiple of 8; the
/// extra ones are padding). `out[t]` is this task's piece of token `t`'s output row, so tasks over
/// disjoint row ranges write the final `[token][row]` layout directly. Each block of rows is
/// dequantised once (transposed) and multiplied with several tokens at a time by the widest tile
/// the CPU and `rows` allow: 32 rows × 8 tokens (AVX-512), 16 × 4 (AVX2), else 8 × 4
/// ([`tile8x4`]). All tiles compute the same `k`-ordered FMA chain per output, so the choice
/// does not change the result.
pub fn matmul_rows(
    m: MatRef<'_>,
    k: usize,
    r0: usize,
    rows: usize,
    x: &[f32],
    tp: usize,
    out: &mut [&mut [f32]],
) {
    let width = tile_width(rows);
    let mut rm = vec![0f32; width * k];
    let mut wt = vec![0f32; width * k];
    for b0 in (0..rows).step_by(width) {
        // Dequantise the block's rows (row-major), then transpose 32 columns at a time, so the
        // strided writes stay within a few kilobytes (one column at a time over the whole row
        // missed L1 on every store).
        for (r, row) in rm.chunks_exact_mut(k).enumerate() {
            m.dequant_row(k, r0 + b0 + r, row);
        }
        for (kb, dst) in wt.chunks_mut(32 * width).enumerate() {
            for (r, src) in rm.chunks_exact(k).enumerate() {
                for (c, v) in src[kb * 32..].iter().take(32).enumerate() {
                    dst[c * width + r] = *v;
                }
            }
        }
        let token = |j: usize| &x[j * k..(j + 1) * k];
        match width {
            #[cfg(target_arch = "x86_64")]
            32 => {
                for ti in (0..tp).step_by(8) {
                    let xs = std::array::from_fn(|j| token(ti + j));
                    let d = avx512::tile32x8(&wt, k, xs)
                        .unwrap_or_else(|| tile_any::<32, 8>(&wt, k, &xs));
                    for (o, d) in out.iter_mut().skip(ti).take(8).zip(d) {
                        o[b0..b0 + 32].copy_from_slice(&d);
                    }
                }
            }
            16 => {
                for ti in (0..tp).step_by(4) {
                    let xs = [0, 1, 2, 3].map(|j| token(ti + j));
                    #[cfg(target_arch = "x86_64")]
                    let d = avx2::tile16x4(&wt, k, xs).unwrap_or_else(|| tile16x4(&wt, k, xs));
                    #[cfg(not(target_arch = "x86_64"))]
                    let d = tile16x4(&wt, k, xs);
                    for (o, d) in out.iter_mut().skip(ti).take(4).zip(d) {
                        o[b0..b0 + 16].copy_from_slice(&d);
                    }
                }
            }
            _ => {
                for ti in (0..tp).step_by(4) {
                    let xs = [0, 1, 2, 3].map(|j| token(ti + j));
                    for (o, d) in out.iter_mut().skip(ti).take(4).zip(tile8x4(&wt, k, xs)) {
                        o[b0..b0 + 8].copy_from_slice(&d);
                    }
                }
            }
        }
    }
}

/// Rows per prefill block for a task of `rows` rows on this CPU.
fn tile_width(rows: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        if rows.is_multiple_of(32) && avx512::available() {
            return 32;
        }
        if rows.is_multiple_of(16) && avx2::available() {
            return 16;
        }
    }
    let _ = rows;
    8
}

/// Portable prefill tile of any shape: `wt[kk][r]` (`k` × `R`) times `T` token vectors; each
/// output is the `k`-ordered FMA chain (the reference the SIMD tiles match bit for bit).
pub fn tile_any<const R: usize, const T: usize>(
    wt: &[f32],
    k: usize,
    x: &[&[f32]],
) -> [[f32; R]; T] {
    let (c, _) = wt.as_chunks::<R>();
    let mut acc = [[0f32; R]; T];
    for (kk, w) in c[..k].iter().enumerate() {
        for (a, x) in acc.iter_mut().zip(x) {
            for l in 0..R {
                a[l] = w[l].mul_add(x[kk], a[l]);
            }
        }
    }
    acc
}

/// Prefill tile: eight rows, transposed (`wt[kk][r]`, `k` × 8), times four token vectors:
/// `[token][row]` dot products. Each step broadcasts one activation per token and multiplies it
/// with eight weights, so a weight load serves four tokens and no horizontal sums are needed.
// Not inlined: inside a caller's loops LLVM's SLP vectoriser loses the 8-lane shape.
#[inline(never)]
pub fn tile8x4(wt: &[f32], k: usize, x: [&[f32]; 4]) -> [[f32; 8]; 4] {
    let (c, _) = wt.as_chunks::<8>();
    let [x0, x1, x2, x3] = x;
    let (mut a0, mut a1, mut a2, mut a3) = ([0f32; 8], [0f32; 8], [0f32; 8], [0f32; 8]);
    for ((((w, x0), x1), x2), x3) in c[..k]
        .iter()
        .zip(&x0[..k])
        .zip(&x1[..k])
        .zip(&x2[..k])
        .zip(&x3[..k])
    {
        for l in 0..8 {
            a0[l] = w[l].mul_add(*x0, a0[l]);
        }
        for l in 0..8 {
            a1[l] = w[l].mul_add(*x1, a1[l]);
        }
        for l in 0..8 {
            a2[l] = w[l].mul_add(*x2, a2[l]);
        }
        for l in 0..8 {
            a3[l] = w[l].mul_add(*x3, a3[l]);
        }
    }
    [a0, a1, a2, a3]
}

/// Portable sixteen-row prefill tile (the fallback of the AVX2 one).
pub fn tile16x4(wt: &[f32], k: usize, x: [&[f32]; 4]) -> [[f32; 16]; 4] {
    tile_any::<16, 4>(wt, k, &x)
}

/// In-place RMS normalisation of each `w.len()`-long row of `x` into `out`.
pub fn rms_norm(x: &[f32], w: &[f32], eps: f32, out: &mut [f32]) {
    let n = w.len();
    for (xr, or) in x.chunks_exact(n).zip(out.chunks_exact_mut(n)) {
        let ss = dot(xr, xr);
        let scale = 1.0 / (ss / n as f32 + eps).sqrt();
        for ((o, x), w) in or.iter_mut().zip(xr).zip(w) {
            *o = x * scale * w;
        }
    }
}

/// Softmax in place.
pub fn softmax(x: &mut [f32]) {
    let max = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in x.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in x.iter_mut() {
        *v *= inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f16_bytes(v: f32) -> [u8; 2] {
        half::f16::from_f32(v).to_bits().to_le_bytes()
    }

    fn naive(w: &[f32], x: &[f32]) -> f32 {
        w.iter()
            .zip(x)
            .map(|(a, b)| f64::from(*a) * f64::from(*b))
            .sum::<f64>() as f32
    }

    fn xs(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 17.0)
            .collect()
    }

    #[test]
    fn q8_0_dot_and_dequant_agree_with_definition() {
        let cols = 96;
        let mut row = Vec::new();
        let mut w = Vec::new();
        for b in 0..cols / BLOCK {
            let d = 0.01 * (b as f32 + 1.0);
            row.extend_from_slice(&f16_bytes(d));
            let d = half::f16::from_f32(d).to_f32();
            for i in 0..BLOCK {
                let q = ((i * 13 + b * 7) % 255) as i32 - 127;
                row.push(q as i8 as u8);
                w.push(d * q as f32);
            }
        }
        let x = xs(cols);
        let mut xsum = vec![0.0; cols / BLOCK];
        block_sums(&x, &mut xsum);
        let m = MatRef::Q8_0(&row);
        let got = m.dot_row(cols, 0, &x, &xsum);
        let want = naive(&w, &x);
        assert!(
            (got - want).abs() < 1e-3 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        let mut deq = vec![0.0; cols];
        m.dequant_row(cols, 0, &mut deq);
        assert_eq!(deq, w);
        // Three rows (a pair and a single) through the two-row kernel.
        let rows = [row.clone(), row.clone(), row].concat();
        let mut out = [0.0; 3];
        matvec_rows(MatRef::Q8_0(&rows), cols, 0, &x, &xsum, &mut out);
        for o in out {
            assert!(
                (o - want).abs() < 1e-3 * want.abs().max(1.0),
                "{o} vs {want}"
            );
        }
    }

    #[test]
    fn q4_1_dot_and_dequant_agree_with_definition() {
        let cols = 64;
        let mut row = Vec::new();
        let mut w = vec![0.0; cols];
        for b in 0..cols / BLOCK {
            let (d, m) = (0.02 * (b as f32 + 1.0), -0.1 * (b as f32 + 1.0));
            row.extend_from_slice(&f16_bytes(d));
            row.extend_from_slice(&f16_bytes(m));
            let (d, m) = (
                half::f16::from_f32(d).to_f32(),
                half::f16::from_f32(m).to_f32(),
            );
            for j in 0..16 {
                let (lo, hi) = ((j * 5 + b) % 16, (j * 11 + 3) % 16);
                row.push((lo | (hi << 4)) as u8);
                w[b * BLOCK + j] = d * lo as f32 + m;
                w[b * BLOCK + j + 16] = d * hi as f32 + m;
            }
        }
        let x = xs(cols);
        let mut xsum = vec![0.0; cols / BLOCK];
        block_sums(&x, &mut xsum);
        let mr = MatRef::Q4_1(&row);
        let got = mr.dot_row(cols, 0, &x, &xsum);
        let want = naive(&w, &x);
        assert!(
            (got - want).abs() < 1e-3 * want.abs().max(1.0),
            "{got} vs {want}"
        );
        let rows = [row.clone(), row.clone(), row.clone()].concat();
        let mut out = [0.0; 3];
        matvec_rows(MatRef::Q4_1(&rows), cols, 0, &x, &xsum, &mut out);
        for o in out {
            assert!(
                (o - want).abs() < 1e-3 * want.abs().max(1.0),
                "{o} vs {want}"
            );
        }
        let mut deq = vec![0.0; cols];
        mr.dequant_row(cols, 0, &mut deq);
        for (a, b) in deq.iter().zip(&w) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    #[test]
    fn f16_conversion_matches_half_for_finite_values() {
        for h in 0..=u16::MAX {
            let want = half::f16::from_bits(h);
            if want.is_finite() {
                assert_eq!(f16_to_f32(h).to_bits(), want.to_f32().to_bits(), "{h:#x}");
            }
        }
    }

    #[test]
    fn prefill_tile_matches_single_dots() {
        let k = 40;
        let w: Vec<f32> = (0..8 * k)
            .map(|i| ((i * 7 % 23) as f32 - 11.0) / 5.0)
            .collect();
        let mut wt = vec![0.0; 8 * k];
        for r in 0..8 {
            for kk in 0..k {
                wt[kk * 8 + r] = w[r * k + kk];
            }
        }
        let xs: Vec<Vec<f32>> = (0..4)
            .map(|t| xs(k).iter().map(|v| v * (t as f32 - 1.5)).collect())
            .collect();
        let got = tile8x4(&wt, k, [&xs[0], &xs[1], &xs[2], &xs[3]]);
        for t in 0..4 {
            for r in 0..8 {
                let want = naive(&w[r * k..(r + 1) * k], &xs[t]);
                assert!((got[t][r] - want).abs() < 1e-3, "{t} {r}");
            }
        }
    }

    /// The integer kernels' definition: `Σ_blocks d_w·d_x·Σ q_w·q_x (+ m_w·d_x·Σ q_x)`, in `f64`.
    fn int_reference(w: &[(f32, f32, [i32; BLOCK])], x: &QuantAct) -> f32 {
        let xd = x.dequantize();
        let mut s = 0f64;
        for (b, (d, m, q)) in w.iter().enumerate() {
            for i in 0..BLOCK {
                let wv = f64::from(*d) * f64::from(q[i]) + f64::from(*m);
                s += wv * f64::from(xd[b * BLOCK + i]);
            }
        }
        s as f32
    }

    fn check_int(m: MatRef<'_>, cols: usize, rows: usize, x: &[f32], want: &[f32]) {
        let mut xq = QuantAct::default();
        xq.quantize(x);
        let mut xsum = vec![0.0; cols / BLOCK];
        block_sums(x, &mut xsum);
        let mut out = vec![f32::NAN; rows];
        matvec_rows_i8(m, cols, 0, x, &xsum, &xq, &mut out);
        for (o, w) in out.iter().zip(want) {
            assert!((o - w).abs() <= 1e-4 * w.abs().max(1.0), "{o} vs {w}");
        }
    }

    #[test]
    fn activation_quantisation_follows_q8_0() {
        let mut x = xs(64);
        x[..BLOCK].fill(0.0);
        x[40] = -9.0;
        let mut q = QuantAct::default();
        q.quantize(&x);
        // An all-zero block: zero scale and codes, no NaN.
        assert_eq!(q.d[0], 0.0);
        assert!(q.q[..BLOCK].iter().all(|v| *v == 0));
        assert_eq!(q.d[1], 9.0 / 127.0);
        assert_eq!(q.q[40], -127);
        assert!(q.q.iter().all(|v| (-127..=127).contains(v)));
        let deq = q.dequantize();
        for (a, b) in deq.iter().zip(&x) {
            assert!((a - b).abs() <= 0.5 * 9.0 / 127.0 + 1e-6, "{a} vs {b}");
        }
        assert_eq!(
            q.s[1],
            q.d[1] * q.q[BLOCK..].iter().map(|v| f32::from(*v)).sum::<f32>()
        );
    }

    #[test]
    fn int8_q8_0_dot_matches_definition_including_extremes() {
        let cols = 128;
        // Rows: mixed codes, all -128, all 127, all zero; three pairs' worth plus an odd row.
        let patterns: [fn(usize) -> i32; 5] = [
            |i| (i * 13 % 255) as i32 - 127,
            |_| -128,
            |_| 127,
            |_| 0,
            |i| if i % 2 == 0 { -128 } else { 127 },
        ];
        let mut bytes = Vec::new();
        let mut defs = Vec::new();
        for (r, p) in patterns.iter().enumerate() {
            let mut def = Vec::new();
            for b in 0..cols / BLOCK {
                let d = half::f16::from_f32(0.003 * (r + b + 1) as f32);
                bytes.extend_from_slice(&d.to_bits().to_le_bytes());
                let q: [i32; BLOCK] = std::array::from_fn(|i| p(b * BLOCK + i));
                bytes.extend(q.iter().map(|v| *v as i8 as u8));
                def.push((d.to_f32(), 0.0, q));
            }
            defs.push(def);
        }
        // Activations with extreme blocks: saturating at ±127, an all-zero block.
        let mut x = xs(cols);
        x[..BLOCK].fill(0.0);
        x[BLOCK..2 * BLOCK].fill(-3.0);
        x[2 * BLOCK..3 * BLOCK]
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = if i % 2 == 0 { 5.0 } else { -5.0 });
        let mut xq = QuantAct::default();
        xq.quantize(&x);
        let want: Vec<f32> = defs.iter().map(|d| int_reference(d, &xq)).collect();
        check_int(MatRef::Q8_0(&bytes), cols, patterns.len(), &x, &want);
        // All-zero activation.
        let zero = vec![0.0; cols];
        check_int(MatRef::Q8_0(&bytes), cols, patterns.len(), &zero, &[0.0; 5]);
    }

    #[test]
    fn int8_q4_1_dot_matches_definition() {
        let cols = 96;
        let mut bytes = Vec::new();
        let mut defs = Vec::new();
        for r in 0..3 {
            let mut def = Vec::new();
            for b in 0..cols / BLOCK {
                let d = half::f16::from_f32(0.02 * (r + b + 1) as f32);
                let m = half::f16::from_f32(-0.1 * (b as f32 + 1.0) + 0.07 * r as f32);
                bytes.extend_from_slice(&d.to_bits().to_le_bytes());
                bytes.extend_from_slice(&m.to_bits().to_le_bytes());
                let q: [i32; BLOCK] = std::array::from_fn(|i| match r {
                    0 => ((i * 5 + b) % 16) as i32,
                    1 => 15,
                    _ => 0,
                });
                for j in 0..16 {
                    bytes.push((q[j] | (q[j + 16] << 4)) as u8);
                }
                def.push((d.to_f32(), m.to_f32(), q));
            }
            defs.push(def);
        }
        let mut x = xs(cols);
        x[BLOCK..2 * BLOCK].fill(-7.5);
        let mut xq = QuantAct::default();
        xq.quantize(&x);
        let want: Vec<f32> = defs.iter().map(|d| int_reference(d, &xq)).collect();
        check_int(MatRef::Q4_1(&bytes), cols, 3, &x, &want);
    }

    #[test]
    fn f16_matrices_agree_with_f32() {
        let (rows, cols) = (3, 72);
        let w: Vec<f32> = (0..rows * cols)
            .map(|i| half::f16::from_f32(((i * 11 % 29) as f32 - 14.0) / 9.0).to_f32())
            .collect();
        let bits: Vec<u16> = w
            .iter()
            .map(|v| half::f16::from_f32(*v).to_bits())
            .collect();
        let x = xs(cols);
        let mut out = vec![0.0; rows];
        matvec_rows(MatRef::F16(&bits), cols, 0, &x, &[], &mut out);
        let mut row = vec![0.0; cols];
        for (r, o) in out.iter().enumerate() {
            let want = naive(&w[r * cols..(r + 1) * cols], &x);
            assert!(
                (o - want).abs() < 1e-4 * want.abs().max(1.0),
                "{o} vs {want}"
            );
            MatRef::F16(&bits).dequant_row(cols, r, &mut row);
            assert_eq!(row, w[r * cols..(r + 1) * cols]);
        }
    }

    /// Deterministic pseudo-random bytes (an LCG), for kernel comparisons.
    fn lcg_bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 56) as u8
            })
            .collect()
    }

    /// The AVX2 kernels against the portable ones on model-shaped rows: four groups of four rows
    /// and a remainder of three, starting at an odd row, codes including -128 and 127; the
    /// sixteen-row prefill tile against the portable tile.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx2_kernels_agree_with_portable_kernels() {
        // This build targets x86-64-v3, so the kernels must be the ones that run.
        assert!(
            avx2::available(),
            "AVX2/FMA/F16C missing on an x86-64-v3 build"
        );
        let (rows, cols, r0) = (20, 576, 1);
        let n = cols / BLOCK * Q8_0_BYTES;
        let mut b = lcg_bytes(rows * n, 7);
        for (i, blk) in b.chunks_exact_mut(Q8_0_BYTES).enumerate() {
            let d = half::f16::from_f32(0.001 + 0.0001 * (i % 17) as f32);
            blk[..2].copy_from_slice(&d.to_bits().to_le_bytes());
        }
        b[n + 2..n + 10].fill(0x80);
        b[n + 10..n + 18].fill(0x7f);
        let x: Vec<f32> = lcg_bytes(cols, 9)
            .iter()
            .map(|v| f32::from(*v as i8) / 13.0)
            .collect();
        let mut xq = QuantAct::default();
        xq.quantize(&x);
        let mut got = vec![f32::NAN; rows - r0];
        assert!(avx2::q8_0_rows(&b, n, r0, &xq.q, &xq.d, &mut got).is_some());
        for (i, g) in got.iter().enumerate() {
            let row = &b[(r0 + i) * n..(r0 + i + 1) * n];
            let want = idot2_q8_0(row, row, &xq)[0];
            assert!(
                (g - want).abs() <= 1e-4 * want.abs().max(1.0),
                "{g} vs {want}"
            );
        }

        let w: Vec<u16> = lcg_bytes(rows * cols * 2, 11)
            .chunks_exact(2)
            // Finite halves of either sign up to about ±2.
            .map(|p| u16::from_le_bytes([p[0], p[1] & 0xbf]))
            .collect();
        let wt: Vec<f32> = w[..16 * cols].iter().map(|h| f16_to_f32(*h)).collect();
        let ts: Vec<Vec<f32>> = (0..4)
            .map(|t| x.iter().map(|v| v * (t as f32 - 1.5)).collect())
            .collect();
        let ts = [&ts[0][..], &ts[1][..], &ts[2][..], &ts[3][..]];
        let tile = avx2::tile16x4(&wt, cols, ts);
        assert_eq!(tile, Some(tile_any::<16, 4>(&wt, cols, &ts)));
        // The portable shapes agree with each other: the 8-row tile on the first half.
        let wt8: Vec<f32> = wt.chunks_exact(16).flat_map(|c| c[..8].to_vec()).collect();
        let t8 = tile8x4(&wt8, cols, ts);
        for (a, b) in t8.iter().zip(tile.iter().flatten()) {
            assert_eq!(a[..], b[..8]);
        }

        let mut got = vec![f32::NAN; rows - r0];
        assert!(avx2::f16_rows(&w, cols, r0, &x, &mut got).is_some());
        for (i, g) in got.iter().enumerate() {
            let want = dot_f16(&w[(r0 + i) * cols..(r0 + i + 1) * cols], &x);
            assert_eq!(g.to_bits(), want.to_bits(), "row {i}: {g} vs {want}");
        }
    }

    /// The AVX-512 tile against the portable one (bit for bit), where the CPU has AVX-512F.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_tile_agrees_with_portable_tile() {
        let k = 576;
        let wt: Vec<f32> = lcg_bytes(32 * k, 5)
            .iter()
            .map(|v| f32::from(*v as i8) / 37.0)
            .collect();
        let xs: Vec<Vec<f32>> = (0..8)
            .map(|t| {
                lcg_bytes(k, 20 + t)
                    .iter()
                    .map(|v| f32::from(*v as i8) / 11.0)
                    .collect()
            })
            .collect();
        let refs: [&[f32]; 8] = std::array::from_fn(|t| xs[t].as_slice());
        let want = tile_any::<32, 8>(&wt, k, &refs);
        match avx512::tile32x8(&wt, k, refs) {
            Some(got) => assert_eq!(got, want),
            None => assert!(!avx512::available()),
        }
        // And through `matmul_rows` on a Q8_0 matrix: each output is the definition's chain.
        let n = k / BLOCK * Q8_0_BYTES;
        let mut b = lcg_bytes(64 * n, 3);
        for blk in b.chunks_exact_mut(Q8_0_BYTES) {
            blk[..2].copy_from_slice(&half::f16::from_f32(0.01).to_bits().to_le_bytes());
        }
        let x: Vec<f32> = xs.concat();
        let mut out = vec![vec![0f32; 64]; 7];
        let mut pieces: Vec<&mut [f32]> = out.iter_mut().map(|o| o.as_mut_slice()).collect();
        matmul_rows(MatRef::Q8_0(&b), k, 0, 64, &x, 8, &mut pieces);
        let mut row = vec![0f32; k];
        for r in 0..64 {
            MatRef::Q8_0(&b).dequant_row(k, r, &mut row);
            for (t, o) in out.iter().enumerate() {
                let want = row
                    .iter()
                    .zip(&xs[t])
                    .fold(0f32, |a, (w, x)| w.mul_add(*x, a));
                assert_eq!(o[r].to_bits(), want.to_bits(), "row {r} token {t}");
            }
        }
    }

    #[test]
    fn int8_path_falls_back_to_f32_for_f32_matrices() {
        let (rows, cols) = (3, 64);
        let w: Vec<f32> = (0..rows * cols).map(|i| (i % 7) as f32 - 3.0).collect();
        let x = xs(cols);
        let want: Vec<f32> = w.chunks(cols).map(|r| naive(r, &x)).collect();
        check_int(MatRef::F32(&w), cols, rows, &x, &want);
    }
}
