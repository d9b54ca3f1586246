//! GGML's weight layouts, read in place: the block constants, [`MatRef`] (one matrix, borrowed)
//! with its row access, and the `f16` conversions.
//!
//! - `Q8_0`: blocks of 32 weights, 34 bytes: `f16` scale `d`, then 32 `i8`; w = d·q.
//! - `Q4_1`: blocks of 32 weights, 20 bytes: `f16` scale `d`, `f16` minimum `m`, then 16 bytes
//!   whose low nibbles are weights 0..16 and high nibbles weights 16..32; w = d·q + m.

use crate::dot::{dot, dot_f16, dot_q4_1, dot_q8_0};

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
    /// Bytes (or elements, for `F16`/`F32`) per row of `cols` weights.
    #[inline]
    pub(crate) fn row_len(&self, cols: usize) -> usize {
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
pub(crate) fn f16(lo: u8, hi: u8) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([lo, hi])).to_f32()
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
