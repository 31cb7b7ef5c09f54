//! The residual MLP's whole inference pass (`model::mlp`) as one custom op: every layer
//! of a block of rows runs on one thread with single-threaded GEMMs into three scratch
//! matrices, so a batch costs one thread fork instead of one per layer and allocates
//! nothing per layer. The time embedding, shared by the batch, arrives folded into each
//! block's first bias. Inference only (no gradient): training uses the per-layer kernels.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape};
use rayon::prelude::*;

use super::gemm::{matmul, View};
use super::norm::{normalize_group, silu_in_place};
use super::{contiguous_f32, threads};

/// y = x Wᵀ + b with W [d_out, d_in] row-major.
#[derive(Debug, Clone)]
pub struct Affine {
    /// W, row-major [d_out, d_in].
    pub w: Vec<f32>,
    /// b [d_out].
    pub b: Vec<f32>,
}

impl Affine {
    fn d_out(&self) -> usize {
        self.b.len()
    }
    fn d_in(&self) -> usize {
        self.w.len() / self.b.len().max(1)
    }

    /// out = x Wᵀ + b, or out += x Wᵀ + b when `accumulate`, for `rows` rows of x.
    fn apply(&self, x: &[f32], rows: usize, out: &mut [f32], accumulate: bool) {
        for row in out.chunks_mut(self.d_out()) {
            if accumulate {
                row.iter_mut().zip(&self.b).for_each(|(o, b)| *o += b);
            } else {
                row.copy_from_slice(&self.b);
            }
        }
        let w = View::rows(&self.w, self.d_out(), self.d_in()).t();
        matmul(out, true, View::rows(x, rows, self.d_in()), w, 1);
    }
}

/// LayerNorm's γ and β (ε = 1e-5).
#[derive(Debug, Clone)]
pub struct Norm {
    /// γ.
    pub gamma: Vec<f32>,
    /// β.
    pub beta: Vec<f32>,
}

/// out = LN(x) row by row (or x without a norm), then SiLU when `silu`.
fn norm_rows(norm: Option<&Norm>, x: &[f32], out: &mut [f32], width: usize, silu: bool) {
    for (o, r) in out.chunks_mut(width).zip(x.chunks(width)) {
        match norm {
            Some(n) => normalize_group(o, r, &n.gamma, &n.beta, 1e-5, silu),
            None => {
                o.copy_from_slice(r);
                if silu {
                    silu_in_place(o);
                }
            }
        }
    }
}

/// One residual block: h ← h + W_2 SiLU(W_1 LN(h) + b_1 + shift) + b_2.
#[derive(Debug, Clone)]
pub struct Block {
    /// LayerNorm before the block, if any.
    pub norm: Option<Norm>,
    /// W_1 with the time projection folded into its bias.
    pub fc1: Affine,
    /// W_2.
    pub fc2: Affine,
}

/// The network, its weights copied out of the candle variables.
#[derive(Debug, Clone)]
pub struct MlpForward {
    /// x → h.
    pub input: Affine,
    /// The residual blocks.
    pub blocks: Vec<Block>,
    /// LayerNorm before the output, if any.
    pub out_norm: Option<Norm>,
    /// SiLU(LN(h)) → ε.
    pub output: Affine,
}

impl MlpForward {
    /// The pass over `rows` rows of x into y.
    fn rows(&self, x: &[f32], y: &mut [f32]) {
        let (d, h) = (self.input.d_in(), self.input.d_out());
        let rows = x.len() / d;
        let mut buf = vec![0f32; 3 * rows * h];
        let (hid, rest) = buf.split_at_mut(rows * h);
        let (a, r) = rest.split_at_mut(rows * h);
        self.input.apply(x, rows, hid, false);
        for b in &self.blocks {
            norm_rows(b.norm.as_ref(), hid, a, h, false);
            b.fc1.apply(a, rows, r, false);
            silu_in_place(r);
            b.fc2.apply(r, rows, hid, true);
        }
        norm_rows(self.out_norm.as_ref(), hid, a, h, true);
        self.output.apply(a, rows, y, false);
    }
}

impl CustomOp1 for MlpForward {
    fn name(&self) -> &'static str {
        "ddimlab-mlp-forward"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l)?;
        let d = self.input.d_in();
        if d == 0 || x.len() % d != 0 || self.output.d_out() != d {
            candle_core::bail!("mlp forward: input {:?} does not fit a {d}-wide network", l.dims())
        }
        let n = x.len() / d;
        let mut y = vec![0f32; x.len()];
        // One block of rows per thread, at least 32 rows each.
        let per = n.div_ceil(threads()).max(32);
        y.par_chunks_mut(per * d)
            .zip(x.par_chunks(per * d))
            .for_each(|(yc, xc)| self.rows(xc, yc));
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }
}
