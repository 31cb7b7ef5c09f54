//! Group normalisation (Wu & He 2018), optionally followed by SiLU, as one candle custom
//! op. For x of shape [n, c, …] with G groups, each group g of sample i is the contiguous
//! span of c/G channels × the trailing size, and
//!
//!   x̂ = (x − μ_ig) / √(σ²_ig + ε),  z = γ_c x̂ + β_c,  y = z or SiLU(z) = z·sigmoid(z).
//!
//! LayerNorm over the last axis of [n, d] is the case G = 1 with no trailing axes.
//! Statistics are accumulated in f64. The gradient, with dz = dy (or dy·SiLU′(z)):
//!   ∂β_c = Σ dz,  ∂γ_c = Σ dz·x̂,  ∂x = (γ_c dz − mean_g(γ dz) − x̂ · mean_g(γ dz · x̂)) / √(σ² + ε).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};
use rayon::prelude::*;

use super::exp::exp32;
use super::{contiguous_f32, threads};

/// The normalisation's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct GroupNorm {
    pub groups: usize,
    pub eps: f64,
    pub silu: bool,
}

/// Sizes: `n` samples of `c` channels × `inner` values, `groups` groups.
#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    inner: usize,
    groups: usize,
}

impl Dims {
    fn new(dims: &[usize], groups: usize, params: usize) -> Result<Self> {
        let (n, c) = match dims {
            [n, c, ..] => (*n, *c),
            _ => candle_core::bail!("group norm: input must be at least [n, c], got {dims:?}"),
        };
        if groups == 0 || c % groups != 0 || params != c {
            candle_core::bail!("group norm: {groups} groups and {params} scale/shift values for {c} channels")
        }
        Ok(Self {
            n,
            c,
            inner: dims[2..].iter().product(),
            groups,
        })
    }
    /// Channels per group.
    fn cg(&self) -> usize {
        self.c / self.groups
    }
    /// Values per group.
    fn span(&self) -> usize {
        self.cg() * self.inner
    }
}

pub(crate) fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp32(-z))
}

/// μ and 1/√(σ² + ε) of one group: two passes (mean, then Σ (x − μ)²), each summed in
/// eight f32 lanes (so that the loop vectorises) flushed to f64 every 1,024 values.
pub(crate) fn stats(x: &[f32], eps: f64) -> (f32, f32) {
    let len = x.len() as f64;
    let mean = lane_sum(x, |v| v) / len;
    let m = mean as f32;
    let var = lane_sum(x, |v| (v - m) * (v - m)) / len;
    (m, (1.0 / (var + eps).sqrt()) as f32)
}

/// Σ f(x_i) by eight f32 partial sums per 1,024-value chunk, chunks added in f64.
#[inline(always)]
fn lane_sum(x: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    x.chunks(1024)
        .map(|chunk| {
            let mut lanes = [0f32; 8];
            let mut it = chunk.chunks_exact(8);
            for c in &mut it {
                for k in 0..8 {
                    lanes[k] += f(c[k]);
                }
            }
            let tail: f32 = it.remainder().iter().map(|&v| f(v)).sum();
            lanes.iter().map(|&v| v as f64).sum::<f64>() + tail as f64
        })
        .sum()
}

/// Groups per parallel task: enough work per task to pay for scheduling.
fn min_groups(span: usize) -> usize {
    (4096 / span.max(1)).max(1)
}

impl CustomOp3 for GroupNorm {
    fn name(&self) -> &'static str {
        "ddimlab-group-norm"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, gamma, beta) = (
            contiguous_f32(xs, xl)?,
            contiguous_f32(gs, gl)?,
            contiguous_f32(bs, bl)?,
        );
        let d = Dims::new(xl.dims(), self.groups, gamma.len().min(beta.len()))?;
        let mut y = vec![0f32; x.len()];
        let (cg, inner) = (d.cg(), d.inner);
        y.par_chunks_mut(d.span())
            .zip(x.par_chunks(d.span()))
            .enumerate()
            .with_min_len(min_groups(d.span()))
            .for_each(|(i, (yg, xg))| {
                let (mean, rstd) = stats(xg, self.eps);
                let c0 = (i % d.groups) * cg;
                for (j, (yc, xc)) in yg.chunks_mut(inner).zip(xg.chunks(inner)).enumerate() {
                    let (g, b) = (gamma[c0 + j], beta[c0 + j]);
                    for (o, &v) in yc.iter_mut().zip(xc) {
                        let z = g * ((v - mean) * rstd) + b;
                        *o = if self.silu { z * sigmoid(z) } else { z };
                    }
                }
            });
        Ok((CpuStorage::F32(y), xl.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = gamma.elem_count();
        let params = Tensor::cat(&[gamma.flatten_all()?, beta.flatten_all()?], 0)?;
        let all = dy.contiguous()?.apply_op3_no_bwd(x, &params, &GroupNormGrad(*self))?;
        let n = x.elem_count();
        let dx = all.narrow(0, 0, n)?.reshape(x.shape())?;
        let dgamma = all.narrow(0, n, c)?.reshape(gamma.shape())?;
        let dbeta = all.narrow(0, n + c, c)?.reshape(beta.shape())?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// The gradient: arguments ∂y, x, [γ | β]; result [∂x | ∂γ | ∂β] flattened.
#[derive(Debug, Clone, Copy)]
struct GroupNormGrad(GroupNorm);

impl CustomOp3 for GroupNormGrad {
    fn name(&self) -> &'static str {
        "ddimlab-group-norm-grad"
    }

    fn cpu_fwd(
        &self,
        ds: &CpuStorage,
        dl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (dy, x, params) = (
            contiguous_f32(ds, dl)?,
            contiguous_f32(xs, xl)?,
            contiguous_f32(ps, pl)?,
        );
        let GroupNorm { groups, eps, silu } = self.0;
        let d = Dims::new(xl.dims(), groups, params.len() / 2)?;
        let (gamma, beta) = params.split_at(d.c);
        let (cg, inner, per_sample) = (d.cg(), d.inner, d.c * d.inner);
        let t = threads();
        let chunk = d.n.div_ceil(t.max(1)).max(1);
        let mut dx = vec![0f32; x.len()];
        // Samples split into one chunk per thread; each returns its partial ∂γ, ∂β.
        let partials: Vec<Vec<f64>> = dx
            .par_chunks_mut(chunk * per_sample)
            .zip(x.par_chunks(chunk * per_sample))
            .zip(dy.par_chunks(chunk * per_sample))
            .map(|((dxs, xs), dys)| {
                let mut acc = vec![0f64; 2 * d.c];
                let mut dz = vec![0f32; d.span()];
                for ((dxg, xg), (gi, dyg)) in dxs
                    .chunks_mut(d.span())
                    .zip(xs.chunks(d.span()))
                    .zip(dys.chunks(d.span()).enumerate())
                {
                    let (mean, rstd) = stats(xg, eps);
                    let c0 = (gi % groups) * cg;
                    // dz, and the group means of γ dz and γ dz x̂.
                    let (mut m1, mut m2) = (0f64, 0f64);
                    for j in 0..cg {
                        let (g, b) = (gamma[c0 + j], beta[c0 + j]);
                        let (mut sg, mut sb) = (0f64, 0f64);
                        for k in j * inner..(j + 1) * inner {
                            let xh = (xg[k] - mean) * rstd;
                            let dzk = if silu {
                                let z = g * xh + b;
                                let s = sigmoid(z);
                                dyg[k] * s * (1.0 + z * (1.0 - s))
                            } else {
                                dyg[k]
                            };
                            dz[k] = dzk;
                            sg += (dzk * xh) as f64;
                            sb += dzk as f64;
                        }
                        acc[c0 + j] += sg;
                        acc[d.c + c0 + j] += sb;
                        m1 += g as f64 * sb;
                        m2 += g as f64 * sg;
                    }
                    let len = d.span() as f64;
                    let (m1, m2) = ((m1 / len) as f32, (m2 / len) as f32);
                    for j in 0..cg {
                        let g = gamma[c0 + j];
                        for k in j * inner..(j + 1) * inner {
                            let xh = (xg[k] - mean) * rstd;
                            dxg[k] = rstd * (g * dz[k] - m1 - xh * m2);
                        }
                    }
                }
                acc
            })
            .collect();
        let mut out = dx;
        out.reserve(2 * d.c);
        let mut sums = vec![0f64; 2 * d.c];
        for p in &partials {
            sums.iter_mut().zip(p).for_each(|(s, v)| *s += v);
        }
        out.extend(sums.iter().map(|&v| v as f32));
        Ok((CpuStorage::F32(out), Shape::from(x.len() + 2 * d.c)))
    }
}
