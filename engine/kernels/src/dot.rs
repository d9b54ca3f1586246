//! `f32` dot products against weights dequantised in registers: the decode path of `F16`/`F32`
//! matrices and of quantised ones when activations stay `f32`, the vector helpers, and the
//! matrix-vector rows that pick between them ([`matvec_rows`]).

#[cfg(target_arch = "x86_64")]
use crate::avx2;
use crate::formats::{BLOCK, MatRef, Q4_1_BYTES, Q8_0_BYTES, f16, f16_to_f32};

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
pub(crate) fn dot_f16(w: &[u16], x: &[f32]) -> f32 {
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
pub(crate) fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
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
pub(crate) fn dot_q4_1(row: &[u8], x: &[f32], xsum: &[f32]) -> f32 {
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
