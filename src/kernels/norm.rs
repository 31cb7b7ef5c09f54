//! Group normalisation (Wu & He 2018), optionally followed by SiLU, as one candle custom
//! op. For x of shape [n, c, …] with G groups, each group g of sample i is the contiguous
//! span of c/G channels × the trailing size, and
//!
//!   x̂ = (x − μ_ig) / √(σ²_ig + ε),  z = γ_c x̂ + β_c,  y = z or SiLU(z) = z·sigmoid(z).
//!
//! LayerNorm over the last axis of [n, d] is the case G = 1 with no trailing axes.
//! Statistics are accumulated in f64. The gradient, with dz = dy (or dy·SiLU′(z)):
//!   ∂β_c = Σ dz,  ∂γ_c = Σ dz·x̂,  ∂x = (γ_c dz − mean_g(γ dz) − x̂ · mean_g(γ dz · x̂)) / √(σ² + ε).

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
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

#[inline(always)]
pub(crate) fn sigmoid(z: f32) -> f32 {
    1.0 / (1.0 + exp32(-z))
}

crate::simd::avx2_dispatch! {
    /// z ← SiLU(z) = z·sigmoid(z) over `z`.
    pub(crate) fn silu_in_place(z: &mut [f32]) => silu_in_place_portable
}

#[inline(always)]
fn silu_in_place_portable(z: &mut [f32]) {
    z.iter_mut().for_each(|z| *z *= sigmoid(*z));
}

/// SiLU(x) = x·sigmoid(x) on its own (where no norm precedes it), on the calling thread:
/// the activations it serves (the MLP's, [256, 128] in training) are too small to share
/// between threads. The gradient is [`SiluGrad`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Silu;

impl CustomOp1 for Silu {
    fn name(&self) -> &'static str {
        "ddimlab-silu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let mut y = contiguous_f32(s, l)?.to_vec();
        silu_in_place(&mut y);
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(dy.contiguous()?.apply_op2_no_bwd(x, &SiluGrad)?))
    }
}

/// ∂x = ∂y · s (1 + x (1 − s)) with s = sigmoid(x). Arguments ∂y, x.
#[derive(Debug, Clone, Copy)]
struct SiluGrad;

impl CustomOp2 for SiluGrad {
    fn name(&self) -> &'static str {
        "ddimlab-silu-grad"
    }

    fn cpu_fwd(&self, ds: &CpuStorage, dl: &Layout, xs: &CpuStorage, xl: &Layout) -> Result<(CpuStorage, Shape)> {
        let (dy, x) = (contiguous_f32(ds, dl)?, contiguous_f32(xs, xl)?);
        if dy.len() != x.len() {
            candle_core::bail!("silu grad: ∂y {:?} does not fit x {:?}", dl.dims(), xl.dims())
        }
        let mut dx = vec![0f32; x.len()];
        silu_grad(&mut dx, x, dy);
        Ok((CpuStorage::F32(dx), xl.shape().clone()))
    }
}

crate::simd::avx2_dispatch! {
    /// ∂x of SiLU (see [`SiluGrad`]).
    fn silu_grad(dx: &mut [f32], x: &[f32], dy: &[f32]) => silu_grad_portable
}

#[inline(always)]
fn silu_grad_portable(dx: &mut [f32], x: &[f32], dy: &[f32]) {
    for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dy) {
        let s = sigmoid(v);
        *d = g * s * (1.0 + v * (1.0 - s));
    }
}

crate::simd::avx2_dispatch! {
    /// One group: y = γ_c x̂ + β_c, then SiLU when `silu`, with x̂ = (x − μ)/√(σ² + ε) over
    /// all of `x`; `x` holds the group's channels one after another, `gamma.len()` of them
    /// (as many as `beta`), each of equal size.
    pub(crate) fn normalize_group(y: &mut [f32], x: &[f32], gamma: &[f32], beta: &[f32], eps: f64, silu: bool) => normalize_group_portable
}

#[inline(always)]
fn normalize_group_portable(y: &mut [f32], x: &[f32], gamma: &[f32], beta: &[f32], eps: f64, silu: bool) {
    let (mean, rstd) = stats(x, eps);
    per_channel(y, (x, x), (gamma, beta), |v, _, g, b| g * ((v - mean) * rstd) + b);
    if silu {
        silu_in_place_portable(y);
    }
}

/// out_k = f(a_k, b_k, γ_c, β_c) over a group whose `gamma.len()` channels (as many as
/// `beta`) lie one after another in `out`, `a` and `b`, with c the channel of value k. One
/// loop over the group when a channel is one value (LayerNorm), so that it vectorises;
/// otherwise one per channel.
#[inline(always)]
fn per_channel(
    out: &mut [f32],
    (a, b): (&[f32], &[f32]),
    (gamma, beta): (&[f32], &[f32]),
    f: impl Fn(f32, f32, f32, f32) -> f32,
) {
    let inner = out.len() / gamma.len().max(1);
    if inner == 1 {
        for ((o, (&a, &b)), (&g, &c)) in out.iter_mut().zip(a.iter().zip(b)).zip(gamma.iter().zip(beta)) {
            *o = f(a, b, g, c);
        }
    } else {
        let channels = out.chunks_mut(inner).zip(a.chunks(inner).zip(b.chunks(inner)));
        for ((oc, (ac, bc)), (&g, &c)) in channels.zip(gamma.iter().zip(beta)) {
            for (o, (&a, &b)) in oc.iter_mut().zip(ac.iter().zip(bc)) {
                *o = f(a, b, g, c);
            }
        }
    }
}

/// μ and 1/√(σ² + ε) of one group: two passes (mean, then Σ (x − μ)²), each summed in
/// eight f32 lanes (so that the loop vectorises) flushed to f64 every 1,024 values.
#[inline(always)]
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
        let cg = d.cg();
        y.par_chunks_mut(d.span())
            .zip(x.par_chunks(d.span()))
            .enumerate()
            .with_min_len(min_groups(d.span()))
            .for_each(|(i, (yg, xg))| {
                let channels = (i % d.groups) * cg..(i % d.groups + 1) * cg;
                normalize_group(yg, xg, &gamma[channels.clone()], &beta[channels], self.eps, self.silu);
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
        let d = Dims::new(xl.dims(), self.0.groups, params.len() / 2)?;
        let (gamma, beta) = params.split_at(d.c);
        let per_sample = d.c * d.inner;
        let t = threads();
        let chunk = d.n.div_ceil(t.max(1)).max(1);
        let mut dx = vec![0f32; x.len()];
        // Samples split into one chunk per thread; each returns its partial ∂γ, ∂β.
        let partials: Vec<Vec<f64>> = dx
            .par_chunks_mut(chunk * per_sample)
            .zip(x.par_chunks(chunk * per_sample))
            .zip(dy.par_chunks(chunk * per_sample))
            .map(|((dxs, xs), dys)| samples_grad(dxs, xs, dys, (gamma, beta), d, self.0))
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

crate::simd::avx2_dispatch! {
    /// ∂x of whole samples (`xs`, `dys` and `dxs` hold the same samples) into `dxs`; returns
    /// their part of [∂γ | ∂β].
    fn samples_grad(dxs: &mut [f32], xs: &[f32], dys: &[f32], params: (&[f32], &[f32]), d: Dims, norm: GroupNorm) -> Vec<f64> => samples_grad_portable
}

#[inline(always)]
fn samples_grad_portable(
    dxs: &mut [f32],
    xs: &[f32],
    dys: &[f32],
    params: (&[f32], &[f32]),
    d: Dims,
    norm: GroupNorm,
) -> Vec<f64> {
    let ((gamma, beta), GroupNorm { groups, eps, silu }) = (params, norm);
    let (cg, inner) = (d.cg(), d.inner);
    let mut acc = vec![0f64; 2 * d.c];
    let mut dz = vec![0f32; d.span()];
    for ((dxg, xg), (gi, dyg)) in dxs
        .chunks_mut(d.span())
        .zip(xs.chunks(d.span()))
        .zip(dys.chunks(d.span()).enumerate())
    {
        let (mean, rstd) = stats(xg, eps);
        let c0 = (gi % groups) * cg;
        let (gam, bet) = (&gamma[c0..c0 + cg], &beta[c0..c0 + cg]);
        // 1. dz, in loops of their own that vectorise.
        if silu {
            per_channel(&mut dz, (xg, dyg), (gam, bet), |v, dy, g, b| {
                let z = g * ((v - mean) * rstd) + b;
                let s = sigmoid(z);
                dy * s * (1.0 + z * (1.0 - s))
            });
        } else {
            dz.copy_from_slice(dyg);
        }
        // 2. The f64 sums channel by channel, in order, and the group means of γ dz and γ dz x̂.
        let (mut m1, mut m2) = (0f64, 0f64);
        for (j, (dzc, xc)) in dz.chunks(inner).zip(xg.chunks(inner)).enumerate() {
            let (mut sg, mut sb) = (0f64, 0f64);
            for (&dz, &v) in dzc.iter().zip(xc) {
                sg += (dz * ((v - mean) * rstd)) as f64;
                sb += dz as f64;
            }
            acc[c0 + j] += sg;
            acc[d.c + c0 + j] += sb;
            m1 += gam[j] as f64 * sb;
            m2 += gam[j] as f64 * sg;
        }
        let len = d.span() as f64;
        let (m1, m2) = ((m1 / len) as f32, (m2 / len) as f32);
        // 3. ∂x (β unused).
        per_channel(dxg, (xg, &dz), (gam, gam), |v, dz, g, _| {
            rstd * (g * dz - m1 - ((v - mean) * rstd) * m2)
        });
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits<T: Copy + Into<f64>>(v: &[T]) -> Vec<u64> {
        v.iter().map(|&x| x.into().to_bits()).collect()
    }

    /// Irregular values in about [−3, 3].
    fn values(len: usize, seed: f32) -> Vec<f32> {
        (0..len).map(|i| 3.0 * ((i as f32 + seed) * 0.731).sin()).collect()
    }

    /// The AVX2 copies (where the CPU has AVX2) compute what the portable code computes,
    /// bit for bit, for group norm (4 channels of 9 values, LayerNorm rows) and its gradient.
    #[test]
    fn dispatched_copies_match_the_portable_code_bit_for_bit() {
        for (channels, inner) in [(4, 9), (37, 1)] {
            let (x, gamma, beta) = (
                values(channels * inner, 0.0),
                values(channels, 1.0),
                values(channels, 2.0),
            );
            for silu in [false, true] {
                let (mut fast, mut slow) = (vec![0f32; x.len()], vec![0f32; x.len()]);
                normalize_group(&mut fast, &x, &gamma, &beta, 1e-5, silu);
                normalize_group_portable(&mut slow, &x, &gamma, &beta, 1e-5, silu);
                assert_eq!(bits(&fast), bits(&slow));
                // Two samples of two groups.
                let norm = GroupNorm {
                    groups: 2,
                    eps: 1e-5,
                    silu,
                };
                let d = Dims::new(&[2, channels * 2, inner], 2, channels * 2).unwrap();
                let (xs, dys) = (values(2 * d.c * inner, 3.0), values(2 * d.c * inner, 4.0));
                let (g2, b2) = (values(d.c, 5.0), values(d.c, 6.0));
                let (mut dx_fast, mut dx_slow) = (vec![0f32; xs.len()], vec![0f32; xs.len()]);
                let acc_fast = samples_grad(&mut dx_fast, &xs, &dys, (&g2, &b2), d, norm);
                let acc_slow = samples_grad_portable(&mut dx_slow, &xs, &dys, (&g2, &b2), d, norm);
                assert_eq!(bits(&dx_fast), bits(&dx_slow));
                assert_eq!(bits(&acc_fast), bits(&acc_slow));
            }
        }
    }
}
