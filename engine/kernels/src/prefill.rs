//! Prefill: matrix × several tokens. Each block of rows is dequantised once, transposed, and
//! multiplied with the tokens by the widest tile the CPU allows ([`matmul_rows`]); the portable
//! tiles here are the fallback and the reference of the SIMD ones.

use crate::formats::MatRef;
#[cfg(target_arch = "x86_64")]
use crate::{avx2, avx512};

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
