//! Row-wise operations on activations: RMS normalisation and softmax.

use crate::dot::dot;

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
