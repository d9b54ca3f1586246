//! The prefill tile with AVX-512 (512-bit FMAs: twice the multiply-adds per instruction of the
//! AVX2 tile) on CPUs that have AVX-512F.
//!
//! # Safety
//!
//! As in the `avx2` module: safe Rust inside (`bytemuck` casts of arrays into vector values); the
//! only `unsafe` is the call into the `#[target_feature]` function, behind [`available`].

use std::arch::x86_64::{__m512, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_setzero_ps};

/// Whether this CPU runs the kernels of this module.
#[inline]
pub fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
}

/// Prefill tile: thirty-two rows, transposed (`wt[kk][r]`, `k` × 32), times eight token vectors:
/// `[token][row]` dot products. Sixteen accumulators (two per token) keep both 512-bit FMA
/// pipes busy. Each lane is the `k`-ordered chain of fused multiply-adds of the portable tiles,
/// so results are bit-identical to them. `None` if the CPU lacks AVX-512F.
pub fn tile32x8(wt: &[f32], k: usize, x: [&[f32]; 8]) -> Option<[[f32; 32]; 8]> {
    if !available() {
        return None;
    }
    #[allow(unsafe_code)]
    // SAFETY: `available()` has just confirmed AVX-512F on this CPU, the only precondition of the
    // `#[target_feature]` function (it does no unchecked memory access).
    let out = unsafe { tile32x8_impl(wt, k, x) };
    Some(out)
}

#[target_feature(enable = "avx512f")]
fn tile32x8_impl(wt: &[f32], k: usize, x: [&[f32]; 8]) -> [[f32; 32]; 8] {
    let (c, _) = wt.as_chunks::<32>();
    let x = x.map(|x| &x[..k]);
    let mut acc = [[_mm512_setzero_ps(); 2]; 8];
    for (kk, w) in c[..k].iter().enumerate() {
        let [lo, hi] = bytemuck::cast::<[f32; 32], [__m512; 2]>(*w);
        for (a, x) in acc.iter_mut().zip(x) {
            let b = _mm512_set1_ps(x[kk]);
            a[0] = _mm512_fmadd_ps(lo, b, a[0]);
            a[1] = _mm512_fmadd_ps(hi, b, a[1]);
        }
    }
    acc.map(bytemuck::cast::<[__m512; 2], [f32; 32]>)
}
