//! The exact ε* of a training set smoothed by a Gaussian kernel: zero model error on
//! real data.
//!
//! The target is the mixture p_h(x_0) = (1/N) Σ_i N(x_0; x_i, h² I) over the N training
//! points x_i. Noised by the forward process (paper Eq. 4), every component stays
//! Gaussian: x_t | i ~ N(√ᾱ_t x_i, v I) with v = ᾱ_t h² + 1 − ᾱ_t. So
//!
//! - the posterior over training points is a softmax, r_i(x_t) ∝ exp(−‖x_t − √ᾱ x_i‖² / 2v)
//!   = exp((√ᾱ ⟨x_t, x_i⟩ − ᾱ ‖x_i‖² / 2) / v) up to a factor shared by all i;
//! - E[x_0 | x_t, i] = x_i + (√ᾱ h² / v)(x_t − √ᾱ x_i), hence
//!   E[x_0 | x_t] = (1 − ᾱ h² / v) Σ_i r_i x_i + (√ᾱ h² / v) x_t;
//! - ε*(x_t, t) = (x_t − √ᾱ E[x_0 | x_t]) / √(1 − ᾱ), the minimiser of paper Eq. 5.
//!
//! Batched, the logits are one matrix product X_t Xᵀ (n × N) and the posterior mean a
//! second, R X (n × d); the softmax uses log-sum-exp per row, so any t and any x_t stay
//! finite. h = 0 gives Dirac components: the exact ε* of the training set itself, which
//! memorises (DDIM lands on training points); h > 0 smooths it.

use candle_core::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::EpsModel;
use crate::error::{Error, Result};
use crate::kernels::exp::softmax_weights;
use crate::kernels::gemm::{matmul, View};
use crate::mixture::GaussianMixture;
use crate::schedule::Schedule;

/// Rows of x_t handled by one task of a batched evaluation (its logits, 64 × N values,
/// stay in the core's cache).
const CHUNK: usize = 64;

/// The training set smoothed by N(0, h² I): (1/N) Σ_i N(x_i, h² I).
#[derive(Debug, Clone)]
pub struct EmpiricalMixture {
    /// The training points, N × d, row-major.
    points: Vec<f64>,
    /// Dimension d.
    d: usize,
    /// ‖x_i‖².
    sq_norms: Vec<f64>,
    /// The kernel width h ≥ 0.
    h: f64,
}

impl EmpiricalMixture {
    /// The mixture over the rows of `points` (N ≥ 1 rows of `d` finite values), width `h` ≥ 0.
    pub fn new(points: &[f32], d: usize, h: f64) -> Result<Self> {
        if d == 0 || points.is_empty() || !points.len().is_multiple_of(d) {
            return Err(Error::Mixture(format!(
                "{} values are not a whole number (≥ 1) of points of dimension {d}",
                points.len()
            )));
        }
        if !(h.is_finite() && h >= 0.0) {
            return Err(Error::Mixture(format!("std {h}: must be finite and at least 0")));
        }
        if points.iter().any(|v| !v.is_finite()) {
            return Err(Error::Mixture("the training points must be finite".into()));
        }
        let points: Vec<f64> = points.iter().map(|&v| v as f64).collect();
        let sq_norms = points.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect();
        Ok(Self { points, d, sq_norms, h })
    }

    /// Number of components N (training points).
    pub fn components(&self) -> usize {
        self.sq_norms.len()
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.d
    }

    /// The kernel width h.
    pub fn std(&self) -> f64 {
        self.h
    }

    /// `n` draws: a uniformly chosen training point plus h·z, z ~ N(0, I), row-major.
    pub fn sample(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        self.sample_indexed(n, rng).0
    }

    /// [`EmpiricalMixture::sample`] with the training point each draw came from.
    pub fn sample_indexed(&self, n: usize, rng: &mut ChaCha8Rng) -> (Vec<f32>, Vec<usize>) {
        let mut out = Vec::with_capacity(n * self.dim());
        let mut picked = Vec::with_capacity(n);
        for _ in 0..n {
            let i = rng.random_range(0..self.components());
            picked.push(i);
            for &p in self.point(i) {
                let z: f64 = StandardNormal.sample(rng);
                out.push((p + self.h * z) as f32);
            }
        }
        (out, picked)
    }

    /// The same mixture as a [`GaussianMixture`] (equal weights; h > 0), for checks.
    pub fn to_gaussian_mixture(&self) -> Result<GaussianMixture> {
        let n = self.components();
        let means = self.points.chunks(self.d).map(<[f64]>::to_vec).collect();
        GaussianMixture::isotropic(vec![1.0 / n as f64; n], means, vec![self.h; n])
    }

    /// Training point x_i.
    fn point(&self, i: usize) -> &[f64] {
        &self.points[i * self.d..(i + 1) * self.d]
    }

    /// v = ᾱ h² + 1 − ᾱ, the per-dimension variance of x_t given a component.
    fn variance(&self, alpha_bar: f64) -> f64 {
        alpha_bar * self.h * self.h + 1.0 - alpha_bar
    }

    /// The posterior r_i(x_t) over training points of every row of `x` (row-major n × d):
    /// row-major n × N, rows summing to 1.
    pub fn responsibilities(&self, x: &[f64], alpha_bar: f64) -> Vec<f64> {
        let mut w = Vec::new();
        let sums = self.weights(x, alpha_bar, &mut w);
        for (row, z) in w.chunks_mut(self.components()).zip(sums) {
            row.iter_mut().for_each(|r| *r /= z);
        }
        w
    }

    /// E[x_0 | x_t] for every row of `x` (row-major n × d) at noise level ᾱ (Tweedie's
    /// formula) into `mean` (n × d), with `w` as room for the n × N weights:
    /// E[x_0 | x_t] = (1 − ᾱh²/v) Σ_i r_i x_i + (√ᾱ h²/v) x_t.
    fn posterior_mean_into(&self, x: &[f64], alpha_bar: f64, w: &mut Vec<f64>, mean: &mut [f64]) {
        let (n, d, big_n) = (x.len() / self.d, self.d, self.components());
        let sums = self.weights(x, alpha_bar, w);
        // Σ_i w_i x_i (unnormalised), the second matrix product.
        matmul(
            mean,
            false,
            View::rows(w, n, big_n),
            View::rows(&self.points, big_n, d),
            1,
        );
        let v = self.variance(alpha_bar);
        let (keep, pull) = (
            1.0 - alpha_bar * self.h * self.h / v,
            alpha_bar.sqrt() * self.h * self.h / v,
        );
        for ((m, xt), z) in mean.chunks_mut(d).zip(x.chunks(d)).zip(sums) {
            let scale = keep / z;
            m.iter_mut().zip(xt).for_each(|(m, x)| *m = scale * *m + pull * x);
        }
    }

    /// The posterior weights of every row of `x` (row-major n × d) before normalisation,
    /// w_i = exp(ℓ_i − max_j ℓ_j) with the logits ℓ_i = (√ᾱ ⟨x_t, x_i⟩ − ᾱ ‖x_i‖²/2)/v
    /// (the first matrix product), into `w` (n × N); returns each row's Σ_i w_i (≥ 1).
    fn weights(&self, x: &[f64], alpha_bar: f64, w: &mut Vec<f64>) -> Vec<f64> {
        let (n, d, big_n) = (x.len() / self.d, self.d, self.components());
        w.resize(n * big_n, 0.0);
        matmul(w, false, View::rows(x, n, d), View::rows(&self.points, big_n, d).t(), 1);
        let v = self.variance(alpha_bar);
        let (a, b) = (alpha_bar.sqrt() / v, 0.5 * alpha_bar / v);
        w.chunks_mut(big_n)
            .map(|row| {
                row.iter_mut()
                    .zip(&self.sq_norms)
                    .for_each(|(l, sq)| *l = a * *l - b * sq);
                softmax_weights(row)
            })
            .collect()
    }
}

/// The exact ε* of an [`EmpiricalMixture`] under a [`Schedule`], as an [`EpsModel`];
/// computed in f64 on the host, returned on the input's device in its dtype.
#[derive(Debug, Clone)]
pub struct EmpiricalOracle {
    mixture: EmpiricalMixture,
    schedule: Schedule,
}

impl EmpiricalOracle {
    /// The oracle for data from `mixture` noised by `schedule`.
    pub fn new(mixture: EmpiricalMixture, schedule: Schedule) -> Self {
        Self { mixture, schedule }
    }

    /// The mixture it is exact for.
    pub fn mixture(&self) -> &EmpiricalMixture {
        &self.mixture
    }
}

impl EpsModel for EmpiricalOracle {
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        let d = self.mixture.dim();
        let xs = super::host_rows(x, t, d, self.schedule.timesteps(), "empirical oracle")?;
        let n = t.len();
        // Rows in chunks that share one t (a sampler batch shares it throughout).
        let starts: Vec<usize> = (0..n).filter(|&i| i % CHUNK == 0 || t[i] != t[i - 1]).collect();
        let mut eps = vec![0.0; xs.len()];
        let mut parts = Vec::with_capacity(starts.len());
        let mut rest = eps.as_mut_slice();
        for (k, &s) in starts.iter().enumerate() {
            let e = starts.get(k + 1).copied().unwrap_or(n);
            let (part, tail) = std::mem::take(&mut rest).split_at_mut((e - s) * d);
            parts.push((s, e, part));
            rest = tail;
        }
        parts.into_par_iter().for_each_init(Vec::new, |w, (s, e, out)| {
            // ε* = (x_t − √ᾱ E[x_0 | x_t]) / √(1 − ᾱ)
            let a = self.schedule.alpha_bar(Some(t[s]));
            let xt = &xs[s * d..e * d];
            self.mixture.posterior_mean_into(xt, a, w, out);
            let (sa, s1a) = (a.sqrt(), (1.0 - a).sqrt());
            out.iter_mut().zip(xt).for_each(|(o, x)| *o = (x - sa * *o) / s1a);
        });
        Ok(Tensor::from_vec(eps, x.shape(), x.device())?.to_dtype(x.dtype())?)
    }
}
