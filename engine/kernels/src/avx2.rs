//! Hand-written AVX2 kernels for the products that dominate decode, where LLVM's auto-vectoriser
//! does not find the instructions GGML's kernels are built on:
//!
//! - `Q8_0` weights × 8-bit activations: per 32-weight block, `vpsignb` (×2) + `vpmaddubsw` +
//!   `vpmaddwd` give eight `i32` partial sums, converted and scaled into eight `f32` lanes with one
//!   fused multiply-add; no horizontal sum per block.
//! - `F16` weights × `f32` activations: `vcvtph2ps` (F16C) converts eight weights per instruction.
//!
//! Both go through the rows one after the other, in memory order: decode streams each weight once
//! per token, and one sequential stream is what the hardware prefetcher follows best. (Four rows
//! at a time, sharing each activation load, interleaves four short streams a row apart; measured
//! in `perf` as stalls on the weight loads.)
//!
//! # Safety
//!
//! Every memory access is safe Rust: slices, and `bytemuck` reads of 16/32 bytes into vector
//! values. The kernels are `#[target_feature]` functions; the only `unsafe` is calling them, and
//! each call is behind [`available`], which checks the CPU for AVX2, FMA and F16C at run time
//! (the standard library caches the answer). On a CPU without them the callers use the portable
//! kernels.

use std::arch::x86_64::{
    __m128i, __m256, __m256i, _mm_add_ps, _mm_cvtss_f32, _mm_hadd_ps, _mm256_add_ps,
    _mm256_castps256_ps128, _mm256_cvtepi32_ps, _mm256_cvtph_ps, _mm256_extractf128_ps,
    _mm256_fmadd_ps, _mm256_madd_epi16, _mm256_maddubs_epi16, _mm256_set1_epi16, _mm256_set1_ps,
    _mm256_setzero_ps, _mm256_sign_epi8,
};

use crate::{BLOCK, Q8_0_BYTES};

/// Whether this CPU runs the kernels of this module.
#[inline]
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma")
        && std::arch::is_x86_feature_detected!("f16c")
}

/// `out[i] = row(r0 + i) · x` for `Q8_0` rows (`n` bytes each) against the 8-bit activation
/// (`xq` codes, `xd` block scales). `None` if the CPU lacks the features.
pub fn q8_0_rows(
    b: &[u8],
    n: usize,
    r0: usize,
    xq: &[i8],
    xd: &[f32],
    out: &mut [f32],
) -> Option<()> {
    if !available() {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: `available()` has just confirmed AVX2, FMA and F16C on this CPU, the only
    // precondition of the `#[target_feature]` function (it does no unchecked memory access).
    unsafe {
        q8_0_rows_impl(b, n, r0, bytemuck::cast_slice(xq), xd, out);
    }
    Some(())
}

/// `out[i] = row(r0 + i) · x` for `F16` rows (`cols` each). `None` if the CPU lacks the
/// features. Bit-identical to the portable `dot_f16`: the same eight lanes, summed in order.
pub fn f16_rows(w: &[u16], cols: usize, r0: usize, x: &[f32], out: &mut [f32]) -> Option<()> {
    if !available() || !cols.is_multiple_of(8) {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: as in `q8_0_rows`.
    unsafe {
        f16_rows_impl(w, cols, r0, x, out);
    }
    Some(())
}

/// Prefill tile: sixteen rows, transposed (`wt[kk][r]`, `k` × 16), times four token vectors:
/// `[token][row]` dot products, as the portable eight-row tile but with eight independent
/// accumulators (two per token), enough to keep both FMA units busy through the four-cycle
/// latency. Each lane is the same `k`-ordered chain of fused multiply-adds as the portable tile,
/// so results are bit-identical. `None` if the CPU lacks the features.
pub fn tile16x4(wt: &[f32], k: usize, x: [&[f32]; 4]) -> Option<[[f32; 16]; 4]> {
    if !available() {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: as in `q8_0_rows`.
    let out = unsafe { tile16x4_impl(wt, k, x) };
    Some(out)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn tile16x4_impl(wt: &[f32], k: usize, x: [&[f32]; 4]) -> [[f32; 16]; 4] {
    let (c, _) = wt.as_chunks::<16>();
    let [x0, x1, x2, x3] = x;
    let mut acc = [[_mm256_setzero_ps(); 2]; 4];
    for ((((w, x0), x1), x2), x3) in c[..k]
        .iter()
        .zip(&x0[..k])
        .zip(&x1[..k])
        .zip(&x2[..k])
        .zip(&x3[..k])
    {
        let [lo, hi] = bytemuck::cast::<[f32; 16], [__m256; 2]>(*w);
        for (a, x) in acc.iter_mut().zip([x0, x1, x2, x3]) {
            let b = _mm256_set1_ps(*x);
            a[0] = _mm256_fmadd_ps(lo, b, a[0]);
            a[1] = _mm256_fmadd_ps(hi, b, a[1]);
        }
    }
    acc.map(bytemuck::cast::<[__m256; 2], [f32; 16]>)
}

/// The eight lanes summed in order (as the portable kernels' `hsum`).
#[inline(always)]
fn hsum_in_order(v: __m256) -> f32 {
    let a: [f32; 8] = bytemuck::cast(v);
    a.iter().sum()
}

/// The eight lanes summed pairwise.
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_hadd_ps(s, s);
    _mm_cvtss_f32(_mm_hadd_ps(s, s))
}

#[inline(always)]
fn scale(b: &[u8; Q8_0_BYTES]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}

/// Eight `i32` sums of products of one block: `Σ w·x` over pairs of neighbouring bytes, then
/// pairs of those. `|w|` is unsigned and `x·sign(w)` signed, as `vpmaddubsw` wants; the codes of
/// `x` are within ±127, so no pair saturates `i16` (2·128·127 < 2¹⁵).
#[target_feature(enable = "avx2,fma,f16c")]
fn block_dot(w: __m256i, x: __m256i) -> __m256 {
    let p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    _mm256_cvtepi32_ps(_mm256_madd_epi16(p, _mm256_set1_epi16(1)))
}

#[inline(always)]
fn codes(b: &[u8; Q8_0_BYTES]) -> __m256i {
    bytemuck::pod_read_unaligned(&b[2..])
}

#[target_feature(enable = "avx2,fma,f16c")]
fn q8_0_rows_impl(b: &[u8], n: usize, r0: usize, xq: &[u8], xd: &[f32], out: &mut [f32]) {
    let (xb, _) = xq.as_chunks::<BLOCK>();
    let rows = b[r0 * n..(r0 + out.len()) * n].chunks_exact(n);
    for (o, row) in out.iter_mut().zip(rows) {
        let (w, _) = row.as_chunks::<Q8_0_BYTES>();
        // Two accumulators (even and odd blocks) so consecutive blocks do not wait on each
        // other's fused multiply-add.
        let mut acc = [_mm256_setzero_ps(); 2];
        for (i, ((w, x), d)) in w.iter().zip(xb).zip(xd).enumerate() {
            let x: __m256i = bytemuck::pod_read_unaligned(x);
            let a = &mut acc[i & 1];
            *a = _mm256_fmadd_ps(block_dot(codes(w), x), _mm256_set1_ps(scale(w) * d), *a);
        }
        *o = hsum(_mm256_add_ps(acc[0], acc[1]));
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn f16_rows_impl(w: &[u16], cols: usize, r0: usize, x: &[f32], out: &mut [f32]) {
    let (xc, _) = x[..cols].as_chunks::<8>();
    let rows = w[r0 * cols..(r0 + out.len()) * cols].chunks_exact(cols);
    for (o, row) in out.iter_mut().zip(rows) {
        let (wc, _) = row.as_chunks::<8>();
        let mut acc = _mm256_setzero_ps();
        for (w, x) in wc.iter().zip(xc) {
            let h = _mm256_cvtph_ps(bytemuck::cast::<[u16; 8], __m128i>(*w));
            acc = _mm256_fmadd_ps(h, bytemuck::cast(*x), acc);
        }
        *o = hsum_in_order(acc);
    }
}
