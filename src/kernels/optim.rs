//! The optimiser's element-wise updates as in-place candle ops: each variable's AdamW step
//! and EMA in three passes over its values and one over its average, without the dozen
//! temporary tensors (and their allocation and dispatch) of the same formulas written as
//! candle operations.
//!
//! Every pass performs, value by value, the f32 operations of the candle formulation it
//! replaces and in the same order (candle's `t * s` is `t · s + 0`, `t / s` is
//! `t · (1/s) + 0`, `t + s` is `t · 1 + s`, all in f32), so the results are bit-identical;
//! `tests/it/kernels.rs` checks that against the candle formulation (`kernels::reference`).

use candle_core::{CpuStorage, InplaceOp2, InplaceOp3, Layout, Result};

use super::contiguous_f32;

/// `a · keep + b · take` of candle (two affine maps and an addition), optionally with b
/// squared first: `dst ← (dst · keep + 0) + (src · take + 0)` or with src² in place of src.
/// AdamW's moments (m with g, v with g²) and the EMA (with θ) are this blend.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Blend {
    /// The factor of the destination's old value.
    pub keep: f64,
    /// The factor of the source.
    pub take: f64,
    /// Whether the source is squared first.
    pub square: bool,
}

/// AdamW's parameter step on θ, given the updated moments m and v (arguments m, v):
/// θ ← (θ · (1 − lr·λ) + 0) − ((m / c₁) / (√(v / c₂) + ε) · lr + 0), each division by a
/// scalar being candle's multiplication by its inverse.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AdamStep {
    /// The learning rate.
    pub lr: f64,
    /// The decoupled weight decay λ.
    pub weight_decay: f64,
    /// The bias corrections 1 − β₁ᵗ and 1 − β₂ᵗ.
    pub c1: f64,
    pub c2: f64,
    /// ε.
    pub eps: f64,
}

/// The destination's contiguous f32 values.
fn values_mut<'a>(s: &'a mut CpuStorage, l: &Layout) -> Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("ddimlab in-place kernel: the destination must be contiguous f32"),
    }
}

/// Checks that every source has as many values as the destination.
fn same_len(dst: &[f32], srcs: &[&[f32]]) -> Result<()> {
    match srcs.iter().find(|s| s.len() != dst.len()) {
        Some(s) => candle_core::bail!("ddimlab in-place kernel: {} values against {}", s.len(), dst.len()),
        None => Ok(()),
    }
}

impl InplaceOp2 for Blend {
    fn name(&self) -> &'static str {
        "ddimlab-blend"
    }

    fn cpu_fwd(&self, dst: &mut CpuStorage, dst_l: &Layout, s: &CpuStorage, l: &Layout) -> Result<()> {
        let (src, dst) = (contiguous_f32(s, l)?, values_mut(dst, dst_l)?);
        same_len(dst, &[src])?;
        let (keep, take) = (self.keep as f32, self.take as f32);
        if self.square {
            blend_squared(dst, src, keep, take);
        } else {
            blend(dst, src, keep, take);
        }
        Ok(())
    }
}

crate::simd::avx2_dispatch! {
    /// dst ← (dst · keep + 0) + (src · take + 0).
    fn blend(dst: &mut [f32], src: &[f32], keep: f32, take: f32) => blend_portable
}

#[inline(always)]
fn blend_portable(dst: &mut [f32], src: &[f32], keep: f32, take: f32) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = (*d * keep + 0.0) + (s * take + 0.0);
    }
}

crate::simd::avx2_dispatch! {
    /// dst ← (dst · keep + 0) + (src² · take + 0).
    fn blend_squared(dst: &mut [f32], src: &[f32], keep: f32, take: f32) => blend_squared_portable
}

#[inline(always)]
fn blend_squared_portable(dst: &mut [f32], src: &[f32], keep: f32, take: f32) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = (*d * keep + 0.0) + ((s * s) * take + 0.0);
    }
}

impl InplaceOp3 for AdamStep {
    fn name(&self) -> &'static str {
        "ddimlab-adam-step"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        ms: &CpuStorage,
        ml: &Layout,
        vs: &CpuStorage,
        vl: &Layout,
    ) -> Result<()> {
        let (m, v, theta) = (
            contiguous_f32(ms, ml)?,
            contiguous_f32(vs, vl)?,
            values_mut(dst, dst_l)?,
        );
        same_len(theta, &[m, v])?;
        let factors = [
            (1.0 - self.lr * self.weight_decay) as f32,
            (1.0 / self.c1) as f32,
            (1.0 / self.c2) as f32,
            self.eps as f32,
            self.lr as f32,
        ];
        adam_step(theta, m, v, factors);
        Ok(())
    }
}

crate::simd::avx2_dispatch! {
    /// θ ← (θ · decay + 0) − (((m · r₁ + 0) / ((√(v · r₂ + 0)) · 1 + ε)) · lr + 0) with
    /// `factors` = [decay, r₁, r₂, ε, lr].
    fn adam_step(theta: &mut [f32], m: &[f32], v: &[f32], factors: [f32; 5]) => adam_step_portable
}

#[inline(always)]
fn adam_step_portable(theta: &mut [f32], m: &[f32], v: &[f32], factors: [f32; 5]) {
    let [decay, r1, r2, eps, lr] = factors;
    for ((t, &m), &v) in theta.iter_mut().zip(m).zip(v) {
        let denom = (v * r2 + 0.0).sqrt() * 1.0 + eps;
        let update = (m * r1 + 0.0) / denom;
        *t = (*t * decay + 0.0) - (update * lr + 0.0);
    }
}
