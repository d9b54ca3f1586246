//! The kernels against their definitions, and every SIMD kernel against the portable one.

use crate::dot::dot_f16;
use crate::int8::idot2_q8_0;
use crate::*;
#[cfg(target_arch = "x86_64")]
use crate::{avx2, avx512};

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
