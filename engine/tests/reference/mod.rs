//! An exact reference forward pass of the Llama architecture over the bundle's GGUF, for tests.
//!
//! Plain scalar code in `f64`, written from the architecture's definition (RMS norm, interleaved
//! RoPE with θ from the config, grouped-query attention, SwiGLU, tied output) and nothing else:
//! every weight is dequantised exactly (`d·q` of an `f16` scale and an integer code is exact in
//! `f64`), every sum is taken in `f64` in index order. Its result therefore does not depend on
//! the CPU, its SIMD extensions, cache sizes or thread count — which is what makes it a fixed
//! point to compare engines against on any machine CI gets.
//!
//! Both engines round some activations to 8 bits before a product with `Q8_0` weights (GGML's
//! `Q8_0` activations: per 32-block `d = max|x|/127`, codes `round(x/d)`), by *definition*, not
//! by accident of summation; [`Rounding`] says which products, so the reference computes the
//! same function as the engine it is compared with, and the only differences left are those of
//! floating-point evaluation order (and the rare code that flips because an `f32` activation lay
//! on a rounding boundary).

use std::collections::HashMap;

use candle_core::quantized::{GgmlDType, gguf_file};
use confidant_engine::ModelConfig;
use rayon::prelude::*;

/// Which products round their activation to 8 bits (always only products with `Q8_0` weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rounding {
    /// The native engine: generated tokens' products except the query and key projections, and
    /// the output (logits) product of every token; the scale stays `f32`.
    Native,
    /// candle's `quantized_llama`: every product with `Q8_0` weights, prompt tokens included;
    /// the scale is stored as `f16` (GGML's `block_q8_0`).
    Candle,
    /// No rounding: the exact function of the weights.
    Exact,
}

/// What a fed token is: part of the prompt, or generated (decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Prompt,
    Generated,
}

/// One weight tensor, borrowed from the GGUF bytes.
struct Tensor<'a> {
    dtype: GgmlDType,
    data: &'a [u8],
    rows: usize,
    cols: usize,
}

fn f16(lo: u8, hi: u8) -> f64 {
    f64::from(half::f16::from_bits(u16::from_le_bytes([lo, hi])).to_f32())
}

impl Tensor<'_> {
    /// Row `r` dequantised exactly.
    fn row(&self, r: usize, out: &mut [f64]) {
        match self.dtype {
            GgmlDType::F32 => {
                let b = &self.data[r * self.cols * 4..(r + 1) * self.cols * 4];
                for (o, c) in out.iter_mut().zip(b.chunks_exact(4)) {
                    *o = f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
                }
            }
            GgmlDType::F16 => {
                let b = &self.data[r * self.cols * 2..(r + 1) * self.cols * 2];
                for (o, c) in out.iter_mut().zip(b.chunks_exact(2)) {
                    *o = f16(c[0], c[1]);
                }
            }
            GgmlDType::Q8_0 => {
                let n = self.cols / 32 * 34;
                for (o, b) in out
                    .chunks_exact_mut(32)
                    .zip(self.data[r * n..(r + 1) * n].chunks_exact(34))
                {
                    let d = f16(b[0], b[1]);
                    for (o, q) in o.iter_mut().zip(&b[2..]) {
                        *o = d * f64::from(*q as i8);
                    }
                }
            }
            other => panic!("reference: unsupported tensor type {other:?}"),
        }
    }

    /// `W·x` exactly (up to `f64` rounding).
    fn matvec(&self, x: &[f64]) -> Vec<f64> {
        (0..self.rows)
            .into_par_iter()
            .map_init(
                || vec![0f64; self.cols],
                |w, r| {
                    self.row(r, w);
                    w.iter().zip(x).map(|(a, b)| a * b).sum()
                },
            )
            .collect()
    }

    /// `W·x̂` where `x̂` is `x` rounded to 8 bits per 32-block (from `x` as `f32`, as the engines
    /// hold it): per block `d_w·d_x·Σ q_w·q_x`, the integer sum exact.
    fn matvec_q8(&self, x: &[f64], scale_f16: bool) -> Vec<f64> {
        assert_eq!(self.dtype, GgmlDType::Q8_0);
        let (codes, scales) = quantize(x, scale_f16);
        let n = self.cols / 32 * 34;
        (0..self.rows)
            .into_par_iter()
            .map(|r| {
                self.data[r * n..(r + 1) * n]
                    .chunks_exact(34)
                    .zip(codes.chunks_exact(32))
                    .zip(&scales)
                    .map(|((b, q), dx)| {
                        let s: i64 = b[2..]
                            .iter()
                            .zip(q)
                            .map(|(w, x)| i64::from(*w as i8) * i64::from(*x))
                            .sum();
                        f16(b[0], b[1]) * dx * s as f64
                    })
                    .sum()
            })
            .collect()
    }
}

/// GGML's `Q8_0` quantisation of an activation, in `f32` as the engines do it.
fn quantize(x: &[f64], scale_f16: bool) -> (Vec<i8>, Vec<f64>) {
    let mut codes = Vec::with_capacity(x.len());
    let mut scales = Vec::with_capacity(x.len() / 32);
    for b in x.chunks_exact(32) {
        let b: Vec<f32> = b.iter().map(|v| *v as f32).collect();
        let amax = b.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        codes.extend(b.iter().map(|v| (v * id).round() as i8));
        scales.push(if scale_f16 {
            f64::from(half::f16::from_f32(d).to_f32())
        } else {
            f64::from(d)
        });
    }
    (codes, scales)
}

struct Layer<'a> {
    attn_norm: Vec<f64>,
    q: Tensor<'a>,
    k: Tensor<'a>,
    v: Tensor<'a>,
    o: Tensor<'a>,
    ffn_norm: Vec<f64>,
    gate: Tensor<'a>,
    up: Tensor<'a>,
    down: Tensor<'a>,
}

/// The model, borrowing the GGUF bytes.
pub struct Reference<'a> {
    embed: Tensor<'a>,
    output: Option<Tensor<'a>>,
    out_norm: Vec<f64>,
    layers: Vec<Layer<'a>>,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    eps: f64,
    theta: f64,
}

impl<'a> Reference<'a> {
    pub fn new(gguf: &'a [u8], config: &ModelConfig) -> Self {
        let content =
            gguf_file::Content::read(&mut std::io::Cursor::new(gguf)).expect("GGUF header");
        let base = content.tensor_data_offset as usize;
        let infos: &HashMap<String, gguf_file::TensorInfo> = &content.tensor_infos;
        let tensor = |name: &str| -> Tensor<'a> {
            let info = infos.get(name).unwrap_or_else(|| panic!("{name} missing"));
            let dims = info.shape.dims();
            let (rows, cols) = match dims {
                [c] => (1, *c),
                [r, c] => (*r, *c),
                _ => panic!("{name}: shape {dims:?}"),
            };
            let len = match info.ggml_dtype {
                GgmlDType::F32 => rows * cols * 4,
                GgmlDType::F16 => rows * cols * 2,
                GgmlDType::Q8_0 => rows * cols / 32 * 34,
                other => panic!("{name}: unsupported type {other:?}"),
            };
            let start = base + info.offset as usize;
            Tensor {
                dtype: info.ggml_dtype,
                data: &gguf[start..start + len],
                rows,
                cols,
            }
        };
        let vector = |name: &str| -> Vec<f64> {
            let t = tensor(name);
            let mut v = vec![0f64; t.cols];
            t.row(0, &mut v);
            v
        };
        let layers = (0..config.num_hidden_layers)
            .map(|i| {
                let n = |s: &str| format!("blk.{i}.{s}.weight");
                Layer {
                    attn_norm: vector(&n("attn_norm")),
                    q: tensor(&n("attn_q")),
                    k: tensor(&n("attn_k")),
                    v: tensor(&n("attn_v")),
                    o: tensor(&n("attn_output")),
                    ffn_norm: vector(&n("ffn_norm")),
                    gate: tensor(&n("ffn_gate")),
                    up: tensor(&n("ffn_up")),
                    down: tensor(&n("ffn_down")),
                }
            })
            .collect();
        Self {
            embed: tensor("token_embd.weight"),
            output: infos
                .contains_key("output.weight")
                .then(|| tensor("output.weight")),
            out_norm: vector("output_norm.weight"),
            layers,
            heads: config.num_attention_heads,
            kv_heads: config.num_key_value_heads,
            head_dim: config.hidden_size / config.num_attention_heads,
            eps: config.rms_norm_eps,
            theta: f64::from(config.rope_theta),
        }
    }

    pub fn session(&self, rounding: Rounding) -> Session<'_, 'a> {
        Session {
            model: self,
            rounding,
            k: vec![Vec::new(); self.layers.len()],
            v: vec![Vec::new(); self.layers.len()],
            pos: 0,
        }
    }
}

/// One sequence's keys and values.
pub struct Session<'r, 'a> {
    model: &'r Reference<'a>,
    rounding: Rounding,
    k: Vec<Vec<f64>>,
    v: Vec<Vec<f64>>,
    pos: usize,
}

fn rms_norm(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ss: f64 = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let s = 1.0 / (ss + eps).sqrt();
    x.iter().zip(w).map(|(x, w)| x * s * w).collect()
}

impl Session<'_, '_> {
    /// A product of `t` with `x`, rounding the activation where the engine being mirrored does.
    fn product(&self, t: &Tensor<'_>, x: &[f64], kind: Kind, qk: bool, logits: bool) -> Vec<f64> {
        let round = t.dtype == GgmlDType::Q8_0
            && match self.rounding {
                Rounding::Native => logits || (kind == Kind::Generated && !qk),
                Rounding::Candle => true,
                Rounding::Exact => false,
            };
        if round {
            t.matvec_q8(x, self.rounding == Rounding::Candle)
        } else {
            t.matvec(x)
        }
    }

    /// Feeds `tokens` one position at a time; returns the logits after the last.
    pub fn feed(&mut self, tokens: &[u32], kind: Kind) -> Vec<f64> {
        let mut logits = Vec::new();
        for &t in tokens {
            logits = self.step(t, kind);
        }
        logits
    }

    fn step(&mut self, token: u32, kind: Kind) -> Vec<f64> {
        let m = self.model;
        let hd = m.head_dim;
        let mut x = vec![0f64; m.embed.cols];
        m.embed.row(token as usize, &mut x);
        let p = self.pos as f64;
        let rope = |v: &mut [f64]| {
            for head in v.chunks_exact_mut(hd) {
                for (i, pair) in head.chunks_exact_mut(2).enumerate() {
                    let a = p * m.theta.powf(-2.0 * i as f64 / hd as f64);
                    let (c, s) = (a.cos(), a.sin());
                    let (x0, x1) = (pair[0], pair[1]);
                    pair[0] = x0 * c - x1 * s;
                    pair[1] = x0 * s + x1 * c;
                }
            }
        };
        let kvd = m.kv_heads * hd;
        let group = m.heads / m.kv_heads;
        for (li, l) in m.layers.iter().enumerate() {
            let xn = rms_norm(&x, &l.attn_norm, m.eps);
            let mut q = self.product(&l.q, &xn, kind, true, false);
            let mut k = self.product(&l.k, &xn, kind, true, false);
            let v = self.product(&l.v, &xn, kind, false, false);
            rope(&mut q);
            rope(&mut k);
            self.k[li].extend_from_slice(&k);
            self.v[li].extend_from_slice(&v);
            let n = self.pos + 1;
            let mut att = vec![0f64; q.len()];
            for h in 0..m.heads {
                let kvh = h / group;
                let qh = &q[h * hd..(h + 1) * hd];
                let scores: Vec<f64> = (0..n)
                    .map(|j| {
                        let kj = &self.k[li][j * kvd + kvh * hd..][..hd];
                        qh.iter().zip(kj).map(|(a, b)| a * b).sum::<f64>() / (hd as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                let z: f64 = e.iter().sum();
                for (j, w) in e.iter().enumerate() {
                    let vj = &self.v[li][j * kvd + kvh * hd..][..hd];
                    for (o, v) in att[h * hd..(h + 1) * hd].iter_mut().zip(vj) {
                        *o += w / z * v;
                    }
                }
            }
            let o = self.product(&l.o, &att, kind, false, false);
            for (x, o) in x.iter_mut().zip(&o) {
                *x += o;
            }
            let xn = rms_norm(&x, &l.ffn_norm, m.eps);
            let g = self.product(&l.gate, &xn, kind, false, false);
            let u = self.product(&l.up, &xn, kind, false, false);
            let h: Vec<f64> = g
                .iter()
                .zip(&u)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let d = self.product(&l.down, &h, kind, false, false);
            for (x, d) in x.iter_mut().zip(&d) {
                *x += d;
            }
        }
        self.pos += 1;
        let xn = rms_norm(&x, &m.out_norm, m.eps);
        let out = m.output.as_ref().unwrap_or(&m.embed);
        self.product(out, &xn, kind, false, true)
    }
}
