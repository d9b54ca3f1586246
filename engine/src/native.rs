//! The native forward pass of the Llama architecture (SmolLM2): GGUF weights used in place, `f32`
//! activations (8-bit for decode's `Q8_0` products), matrix products split across a rayon pool of
//! the engine's own threads.
//!
//! - Quantised matrices (`Q8_0`, `Q4_1`) keep their GGUF bytes (copied once into one buffer);
//!   `F16` matrices keep their 16-bit values (the query/key projections of the `q8_0-qk-f16`
//!   bundle: half the bytes streamed per token of `f32`); `F32` tensors and norms are `f32`.
//! - Decode with `Q8_0` weights, except the query and key projections: the input is quantised
//!   once per product region to 8 bits per 32-block and multiplied with integer dot products
//!   (rounding the query/key inputs flipped the golden answer in earlier measurements).
//! - GGUF stores the query and key projections permuted for *interleaved* RoPE (pairs
//!   `(2i, 2i+1)` of each head rotate together), which is what [`rope`] applies.
//! - Decode (one token): matrix-vector products, integer (above) or with the weights dequantised
//!   in registers.
//!   Prefill (many tokens): blocks of rows are dequantised to `f32` once and multiplied with
//!   four or eight tokens at a time, so each weight load serves many tokens; each task writes
//!   its rows of every token's output in place.
//! - Products that share an input (Q/K/V, gate/up) run in one parallel region; decode with
//!   several threads runs as a thread team instead ([`team`]).
//! - Each generation owns a [`KvCache`]; the weights are shared read-only.

mod team;
mod weights;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;

use candle_core::quantized::{GgmlDType, gguf_file};
use rayon::prelude::*;
use zeroize::Zeroizing;

use crate::config::ModelConfig;
use crate::error::ModelError;
use confidant_kernels::{self as kernels, BLOCK, MatRef, Q4_1_BYTES, Q8_0_BYTES};

#[derive(Debug)]
enum Store {
    /// `Q8_0` blocks at this offset of [`Model::bytes`].
    Q8_0(usize),
    /// `Q4_1` blocks at this offset of [`Model::bytes`].
    Q4_1(usize),
    /// `F16` matrices keep their bits (converted in registers: half the bytes of `f32`), as
    /// native-endian `u16` at this (even) offset of [`Model::bytes`].
    F16(usize),
    F32(Zeroizing<Vec<f32>>),
}

/// A `rows × cols` weight matrix.
#[derive(Debug)]
struct Matrix {
    rows: usize,
    cols: usize,
    store: Store,
    /// Decode multiplies the quantised weights with an 8-bit quantised activation (integer dot
    /// products); `false` keeps the `f32` activation (the query and key projections).
    int8: bool,
}

#[derive(Debug)]
struct Layer {
    attn_norm: Vec<f32>,
    q: Matrix,
    k: Matrix,
    v: Matrix,
    o: Matrix,
    ffn_norm: Vec<f32>,
    gate: Matrix,
    up: Matrix,
    down: Matrix,
}

/// The weights and shape of the model.
pub struct Model {
    bytes: weights::WeightBuf,
    embed: Matrix,
    layers: Vec<Layer>,
    out_norm: Vec<f32>,
    /// `None`: tied to the embeddings.
    output: Option<Matrix>,
    hidden: usize,
    ffn: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    eps: f32,
    /// `theta^(-2i/head_dim)` for each rotated pair `i`.
    inv_freq: Vec<f32>,
    pool: rayon::ThreadPool,
    threads: usize,
    /// Decode steps by a thread team (see [`team`]) when more than one thread.
    team: bool,
    /// 1 while a team step runs (one at a time; others use the pool).
    team_busy: AtomicUsize,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("layers", &self.layers.len())
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// Keys and values of one generation, `f32`, `[position][kv_heads · head_dim]` per layer.
#[derive(Debug)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    len: usize,
}

fn bad(msg: impl Into<String>) -> ModelError {
    ModelError::Inconsistent(msg.into())
}

impl Model {
    /// Takes the tensors of the GGUF file `weights` (header `content`, already checked against
    /// `config`).
    pub fn load(
        content: &gguf_file::Content,
        weights: &[u8],
        config: &ModelConfig,
        threads: usize,
        team: bool,
    ) -> Result<Self, ModelError> {
        let base = usize::try_from(content.tensor_data_offset)
            .map_err(|_| bad("tensor data offset out of range"))?;
        let infos = &content.tensor_infos;

        let hidden = config.hidden_size;
        let heads = config.num_attention_heads;
        let kv_heads = config.num_key_value_heads;
        let head_dim = hidden / heads;
        let ffn = config.intermediate_size;
        let vocab = config.vocab_size;
        if !hidden.is_multiple_of(BLOCK)
            || !ffn.is_multiple_of(BLOCK)
            || !head_dim.is_multiple_of(2)
            || !heads.is_multiple_of(kv_heads)
        {
            return Err(bad("unsupported model shape"));
        }

        let mut bytes = weights::WeightBuf::with_capacity(weights.len())
            .map_err(|e| bad(format!("cannot map memory for the weights: {e}")))?;
        let mut loader = Loader {
            weights,
            base,
            infos,
            bytes: &mut bytes,
        };
        let embed = loader.matrix("token_embd.weight", vocab, hidden)?;
        let output = if infos.contains_key("output.weight") {
            Some(loader.matrix("output.weight", vocab, hidden)?)
        } else {
            None
        };
        let out_norm = loader.vector("output_norm.weight", hidden)?;
        let kv = kv_heads * head_dim;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: loader.vector(&n("attn_norm"), hidden)?,
                q: loader
                    .matrix(&n("attn_q"), hidden, hidden)?
                    .f32_activations(),
                k: loader.matrix(&n("attn_k"), kv, hidden)?.f32_activations(),
                v: loader.matrix(&n("attn_v"), kv, hidden)?,
                o: loader.matrix(&n("attn_output"), hidden, hidden)?,
                ffn_norm: loader.vector(&n("ffn_norm"), hidden)?,
                gate: loader.matrix(&n("ffn_gate"), ffn, hidden)?,
                up: loader.matrix(&n("ffn_up"), ffn, hidden)?,
                down: loader.matrix(&n("ffn_down"), hidden, ffn)?,
            });
        }

        let theta = f64::from(config.rope_theta);
        let inv_freq = (0..head_dim / 2)
            .map(|i| theta.powf(-2.0 * i as f64 / head_dim as f64) as f32)
            .collect();
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("engine-{i}"))
            .build()
            .map_err(|e| ModelError::Threads(e.to_string()))?;
        Ok(Self {
            bytes,
            embed,
            layers,
            out_norm,
            output,
            hidden,
            ffn,
            heads,
            kv_heads,
            head_dim,
            vocab,
            eps: config.rms_norm_eps as f32,
            inv_freq,
            pool,
            threads,
            team,
            team_busy: AtomicUsize::new(0),
        })
    }

    /// Threads of the engine's pool.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// An empty cache with room for `positions` positions.
    pub fn new_cache(&self, positions: usize) -> KvCache {
        let kv = self.kv_heads * self.head_dim;
        KvCache {
            k: (0..self.layers.len())
                .map(|_| Vec::with_capacity(positions * kv))
                .collect(),
            v: (0..self.layers.len())
                .map(|_| Vec::with_capacity(positions * kv))
                .collect(),
            len: 0,
        }
    }

    fn mat<'a>(&'a self, m: &'a Matrix) -> MatRef<'a> {
        match &m.store {
            Store::Q8_0(off) => {
                MatRef::Q8_0(&self.bytes[*off..*off + m.rows * m.cols / BLOCK * Q8_0_BYTES])
            }
            Store::Q4_1(off) => {
                MatRef::Q4_1(&self.bytes[*off..*off + m.rows * m.cols / BLOCK * Q4_1_BYTES])
            }
            // Checked at load: even offset in a page-aligned buffer, so the cast cannot fail.
            Store::F16(off) => MatRef::F16(
                bytemuck::try_cast_slice(&self.bytes[*off..*off + m.rows * m.cols * 2])
                    .unwrap_or_default(),
            ),
            Store::F32(v) => MatRef::F32(v),
        }
    }

    /// Runs `tokens` (the positions after those in `cache`) through the model, appending to the
    /// cache; returns the logits of the last token.
    pub fn forward(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Vec<f32>, ModelError> {
        if tokens.is_empty() {
            return Err(ModelError::EmptyPrompt);
        }
        if let Some(&id) = tokens.iter().find(|&&id| id as usize >= self.vocab) {
            return Err(bad(format!("token id {id} outside the vocabulary")));
        }
        if let [token] = tokens
            && self.team
            && self.threads > 1
            && let Some(logits) = self.decode_team(*token, cache)
        {
            return Ok(logits);
        }
        Ok(self.pool.install(|| self.forward_in_pool(tokens, cache)))
    }

    fn forward_in_pool(&self, tokens: &[u32], cache: &mut KvCache) -> Vec<f32> {
        let t = tokens.len();
        let (h, kvd, hd) = (self.hidden, self.kv_heads * self.head_dim, self.head_dim);
        let pos0 = cache.len;
        let embed = self.mat(&self.embed);
        let mut x = vec![0f32; t * h];
        for (row, &id) in x.chunks_exact_mut(h).zip(tokens) {
            embed.dequant_row(h, id as usize, row);
        }
        // Rotation of each position and pair.
        let half = hd / 2;
        let mut cos = vec![0f32; t * half];
        let mut sin = vec![0f32; t * half];
        for i in 0..t {
            let p = (pos0 + i) as f32;
            for (j, f) in self.inv_freq.iter().enumerate() {
                let a = p * f;
                cos[i * half + j] = a.cos();
                sin[i * half + j] = a.sin();
            }
        }

        let mut xn = vec![0f32; t * h];
        let mut q = vec![0f32; t * h];
        let mut k = vec![0f32; t * kvd];
        let mut v = vec![0f32; t * kvd];
        let mut att = vec![0f32; t * h];
        let mut proj = vec![0f32; t * h];
        let mut g = vec![0f32; t * self.ffn];
        let mut u = vec![0f32; t * self.ffn];
        for (li, layer) in self.layers.iter().enumerate() {
            kernels::rms_norm(&x, &layer.attn_norm, self.eps, &mut xn);
            self.matmul(
                &xn,
                t,
                &mut [
                    (&layer.q, q.as_mut_slice()),
                    (&layer.k, k.as_mut_slice()),
                    (&layer.v, v.as_mut_slice()),
                ],
            );
            rope(&mut q, hd, &cos, &sin);
            rope(&mut k, hd, &cos, &sin);
            cache.k[li].extend_from_slice(&k);
            cache.v[li].extend_from_slice(&v);
            self.attention(&q, &cache.k[li], &cache.v[li], pos0, t, &mut att);
            self.matmul(&att, t, &mut [(&layer.o, proj.as_mut_slice())]);
            for (a, b) in x.iter_mut().zip(&proj) {
                *a += b;
            }
            kernels::rms_norm(&x, &layer.ffn_norm, self.eps, &mut xn);
            self.matmul(
                &xn,
                t,
                &mut [
                    (&layer.gate, g.as_mut_slice()),
                    (&layer.up, u.as_mut_slice()),
                ],
            );
            let silu = |(g, u): (&mut [f32], &[f32])| {
                for (g, u) in g.iter_mut().zip(u) {
                    *g = *g / (1.0 + (-*g).exp()) * u;
                }
            };
            if t == 1 || self.threads == 1 {
                silu((&mut g, &u));
            } else {
                g.par_chunks_mut(self.ffn)
                    .zip(u.par_chunks(self.ffn))
                    .for_each(silu);
            }
            self.matmul(&g, t, &mut [(&layer.down, proj.as_mut_slice())]);
            for (a, b) in x.iter_mut().zip(&proj) {
                *a += b;
            }
        }
        cache.len += t;

        let last = &x[(t - 1) * h..];
        let mut normed = vec![0f32; h];
        kernels::rms_norm(last, &self.out_norm, self.eps, &mut normed);
        let mut logits = vec![0f32; self.vocab];
        let out = self.output.as_ref().unwrap_or(&self.embed);
        self.matmul(&normed, 1, &mut [(out, logits.as_mut_slice())]);
        logits
    }

    /// `outs[i][t][n] = Σ_k mats[i][n][k] · x[t][k]` for every matrix, in one parallel region.
    fn matmul(&self, x: &[f32], t: usize, outs: &mut [(&Matrix, &mut [f32])]) {
        let total_rows: usize = outs.iter().map(|(m, _)| m.rows).sum();
        // A few chunks per thread so a descheduled thread does not hold up the product.
        let tasks_wanted = if self.threads == 1 {
            1
        } else {
            self.threads * 4
        };
        let chunk = total_rows.div_ceil(tasks_wanted).next_multiple_of(4).max(4);
        let cols = outs.first().map_or(0, |(m, _)| m.cols);
        let mut xsum = vec![0f32; t * (cols / BLOCK)];
        for (xr, s) in x
            .chunks_exact(cols)
            .zip(xsum.chunks_exact_mut(cols / BLOCK))
        {
            kernels::block_sums(xr, s);
        }
        if t == 1 {
            // The activation quantised once for every product that takes it in 8 bits.
            let mut xq = kernels::QuantAct::default();
            if outs.iter().any(|(m, _)| m.int8) {
                xq.quantize(x);
            }
            let mut tasks: Vec<(MatRef<'_>, bool, usize, usize, &mut [f32])> = Vec::new();
            for (m, out) in outs.iter_mut() {
                let mr = self.mat(m);
                for (ci, o) in out.chunks_mut(chunk).enumerate() {
                    tasks.push((mr, m.int8, m.cols, ci * chunk, o));
                }
            }
            let run = |(m, int8, cols, r0, out): (MatRef<'_>, bool, usize, usize, &mut [f32])| {
                if int8 {
                    kernels::matvec_rows_i8(m, cols, r0, x, &xsum, &xq, out);
                } else {
                    kernels::matvec_rows(m, cols, r0, x, &xsum, out);
                }
            };
            if self.threads == 1 {
                tasks.into_iter().for_each(run);
            } else {
                tasks.into_par_iter().for_each(run);
            }
            return;
        }
        // Many tokens: tokens padded to a multiple of eight (zero rows). Each task takes a range
        // of rows and writes its piece of every token's output row in place.
        let tp = t.next_multiple_of(8);
        let mut padded = Vec::new();
        let x = if tp == t {
            x
        } else {
            padded.extend_from_slice(x);
            padded.resize(tp * cols, 0.0);
            padded.as_slice()
        };
        let chunk = chunk.next_multiple_of(32);
        let mut tasks: Vec<PrefillTask<'_>> = Vec::new();
        for (m, out) in outs.iter_mut() {
            let mat = self.mat(m);
            let first = tasks.len();
            for r0 in (0..m.rows).step_by(chunk) {
                tasks.push(PrefillTask {
                    mat,
                    cols: m.cols,
                    r0,
                    rows: chunk.min(m.rows - r0),
                    out: Vec::with_capacity(t),
                });
            }
            for token_row in out.chunks_exact_mut(m.rows) {
                for (task, piece) in tasks[first..].iter_mut().zip(token_row.chunks_mut(chunk)) {
                    task.out.push(piece);
                }
            }
        }
        let run = |mut p: PrefillTask<'_>| {
            kernels::matmul_rows(p.mat, p.cols, p.r0, p.rows, x, tp, &mut p.out);
        };
        if self.threads == 1 {
            tasks.into_iter().for_each(run);
        } else {
            tasks.into_par_iter().for_each(run);
        }
    }

    /// Causal attention of `t` new queries (positions `pos0..pos0+t`) over the cache.
    fn attention(&self, q: &[f32], kc: &[f32], vc: &[f32], pos0: usize, t: usize, out: &mut [f32]) {
        let work = t * (pos0 + t);
        let hd = self.head_dim;
        if self.threads == 1 || work < 512 {
            let mut scores = Vec::with_capacity(pos0 + t);
            for (i, o) in out.chunks_exact_mut(hd).enumerate() {
                self.attend(q, kc, vc, pos0, i, o, &mut scores);
            }
        } else {
            out.par_chunks_exact_mut(hd).enumerate().for_each_init(
                || Vec::with_capacity(pos0 + t),
                |scores, (i, o)| self.attend(q, kc, vc, pos0, i, o, scores),
            );
        }
    }

    /// One (query token, head) of [`Self::attention`]: `i = token · heads + head`; writes the
    /// head's `head_dim` outputs into `o`.
    #[allow(clippy::too_many_arguments)]
    fn attend(
        &self,
        q: &[f32],
        kc: &[f32],
        vc: &[f32],
        pos0: usize,
        i: usize,
        o: &mut [f32],
        scores: &mut Vec<f32>,
    ) {
        let (hd, heads) = (self.head_dim, self.heads);
        let kvd = self.kv_heads * hd;
        let group = heads / self.kv_heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let (ti, h) = (i / heads, i % heads);
        let kvh = h / group;
        let qv = &q[ti * heads * hd + h * hd..][..hd];
        let n = pos0 + ti + 1;
        scores.clear();
        scores.extend(
            kc.chunks_exact(kvd)
                .take(n)
                .map(|kr| kernels::dot(qv, &kr[kvh * hd..][..hd]) * scale),
        );
        kernels::softmax(scores);
        o.fill(0.0);
        for (s, vr) in scores.iter().zip(vc.chunks_exact(kvd)) {
            kernels::axpy(*s, &vr[kvh * hd..][..hd], o);
        }
    }
}

/// Interleaved RoPE: in every `hd`-long head of every token's row, pair `(2j, 2j+1)` turns by
/// the position's angle `j`.
fn rope(x: &mut [f32], hd: usize, cos: &[f32], sin: &[f32]) {
    let half = hd / 2;
    let t = cos.len() / half;
    let row = x.len() / t;
    for (ti, xr) in x.chunks_exact_mut(row).enumerate() {
        let (c, s) = (&cos[ti * half..][..half], &sin[ti * half..][..half]);
        for head in xr.chunks_exact_mut(hd) {
            let (pairs, _) = head.as_chunks_mut::<2>();
            for ((p, c), s) in pairs.iter_mut().zip(c).zip(s) {
                let (a, b) = (p[0], p[1]);
                p[0] = a * c - b * s;
                p[1] = a * s + b * c;
            }
        }
    }
}

/// One prefill task: rows `r0..r0 + rows` of `mat` for every token; `out[t]` is the task's piece
/// of token `t`'s output row.
struct PrefillTask<'a> {
    mat: MatRef<'a>,
    cols: usize,
    r0: usize,
    rows: usize,
    out: Vec<&'a mut [f32]>,
}

struct Loader<'a> {
    weights: &'a [u8],
    base: usize,
    infos: &'a HashMap<String, gguf_file::TensorInfo>,
    bytes: &'a mut weights::WeightBuf,
}

impl<'a> Loader<'a> {
    fn raw(
        &self,
        name: &str,
        rows: usize,
        cols: usize,
    ) -> Result<(GgmlDType, &'a [u8]), ModelError> {
        let info = self
            .infos
            .get(name)
            .ok_or_else(|| bad(format!("weights lack {name}")))?;
        let dims = info.shape.dims();
        let want: &[usize] = if rows == 1 { &[cols] } else { &[rows, cols] };
        if rows > 1 && !rows.is_multiple_of(8) {
            return Err(bad(format!("{name}: rows not a multiple of 8")));
        }
        if dims != want {
            return Err(bad(format!("{name} has shape {dims:?}, expected {want:?}")));
        }
        let n = rows * cols;
        let len = match info.ggml_dtype {
            GgmlDType::F32 => n * 4,
            GgmlDType::F16 => n * 2,
            GgmlDType::Q8_0 => n / BLOCK * Q8_0_BYTES,
            GgmlDType::Q4_1 => n / BLOCK * Q4_1_BYTES,
            other => return Err(bad(format!("{name}: unsupported type {other:?}"))),
        };
        let start = usize::try_from(info.offset)
            .ok()
            .and_then(|o| o.checked_add(self.base))
            .ok_or_else(|| bad(format!("{name}: offset out of range")))?;
        let data = start
            .checked_add(len)
            .and_then(|end| self.weights.get(start..end))
            .ok_or_else(|| bad(format!("{name}: data outside the file")))?;
        Ok((info.ggml_dtype, data))
    }

    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Result<Matrix, ModelError> {
        let (dtype, data) = self.raw(name, rows, cols)?;
        let store = match dtype {
            GgmlDType::Q8_0 | GgmlDType::Q4_1 => {
                let off = self
                    .bytes
                    .push(data)
                    .ok_or_else(|| bad(format!("{name}: weights larger than the file")))?;
                if dtype == GgmlDType::Q8_0 {
                    Store::Q8_0(off)
                } else {
                    Store::Q4_1(off)
                }
            }
            GgmlDType::F16 => {
                if self.bytes.len() % 2 == 1 {
                    self.bytes.push(&[0]);
                }
                let native: Zeroizing<Vec<u8>> = Zeroizing::new(
                    data.chunks_exact(2)
                        .flat_map(|b| u16::from_le_bytes([b[0], b[1]]).to_ne_bytes())
                        .collect(),
                );
                let off = self
                    .bytes
                    .push(&native)
                    .ok_or_else(|| bad(format!("{name}: weights larger than the file")))?;
                if bytemuck::try_cast_slice::<u8, u16>(&self.bytes[off..off + native.len()])
                    .is_err()
                {
                    return Err(bad(format!("{name}: misaligned F16 weights")));
                }
                Store::F16(off)
            }
            _ => Store::F32(Zeroizing::new(to_f32(dtype, data))),
        };
        // Q4_1 stays on the `f32` path: with 8-bit activations the Q4_1 bundle's greedy answer
        // changes, and its integer kernel is no faster (see the kernels crate).
        let int8 = matches!(store, Store::Q8_0(_));
        Ok(Matrix {
            rows,
            cols,
            store,
            int8,
        })
    }

    fn vector(&mut self, name: &str, n: usize) -> Result<Vec<f32>, ModelError> {
        let (dtype, data) = self.raw(name, 1, n)?;
        match dtype {
            GgmlDType::F32 | GgmlDType::F16 => Ok(to_f32(dtype, data)),
            other => Err(bad(format!("{name}: unsupported type {other:?}"))),
        }
    }
}

impl Matrix {
    fn f32_activations(self) -> Self {
        Self {
            int8: false,
            ..self
        }
    }
}

fn to_f32(dtype: GgmlDType, data: &[u8]) -> Vec<f32> {
    if dtype == GgmlDType::F16 {
        data.chunks_exact(2)
            .map(|b| kernels::f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect()
    } else {
        data.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }
}
