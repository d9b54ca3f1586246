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
//! 32 × 8). The portable kernels are the fallback and the reference the tests compare
//! them with.
//!
//! Modules by concern: `formats` (GGML's block layouts, read in place), `dot` (`f32` dot
//! products and matrix-vector rows), `int8` (8-bit activations and integer dot products),
//! `prefill` (matrix × several tokens in tiles), `ops` (RMS norm, softmax); `avx2` and
//! `avx512` hold the SIMD kernels, each behind a run-time CPU check.
// `unsafe` is denied everywhere except the calls into the SIMD kernels, each behind a run-time
// CPU-feature check (see `avx2` and `avx512`).
#![deny(unsafe_code)]

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod dot;
mod formats;
mod int8;
mod ops;
mod prefill;
#[cfg(test)]
mod tests;

pub use dot::{axpy, block_sums, dot, matvec_rows};
pub use formats::{BLOCK, MatRef, Q4_1_BYTES, Q8_0_BYTES, f16_to_f32};
pub use int8::{QuantAct, matvec_rows_i8};
pub use ops::{rms_norm, softmax};
pub use prefill::{matmul_rows, tile_any, tile8x4, tile16x4};
