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
use nalgebra::DMatrix;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::EpsModel;
use crate::error::{Error, Result};
use crate::mixture::GaussianMixture;
use crate::schedule::Schedule;

/// Rows of x_t handled by one task of a batched evaluation.
const CHUNK: usize = 64;

/// The training set smoothed by N(0, h² I): (1/N) Σ_i N(x_i, h² I).
#[derive(Debug, Clone)]
pub struct EmpiricalMixture {
    /// The training points, N × d.
    points: DMatrix<f64>,
    /// Xᵀ, d × N (kept so that the logits' product does not transpose per call).
    points_t: DMatrix<f64>,
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
        let n = points.len() / d;
        let points = DMatrix::from_row_slice(n, d, &points.iter().map(|&v| v as f64).collect::<Vec<_>>());
        let sq_norms = points.row_iter().map(|r| r.norm_squared()).collect();
        Ok(Self {
            points_t: points.transpose(),
            points,
            sq_norms,
            h,
        })
    }

    /// Number of components N (training points).
    pub fn components(&self) -> usize {
        self.points.nrows()
    }

    /// Dimension d.
    pub fn dim(&self) -> usize {
        self.points.ncols()
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
            for j in 0..self.dim() {
                let z: f64 = StandardNormal.sample(rng);
                out.push((self.points[(i, j)] + self.h * z) as f32);
            }
        }
        (out, picked)
    }

    /// The same mixture as a [`GaussianMixture`] (equal weights; h > 0), for checks.
    pub fn to_gaussian_mixture(&self) -> Result<GaussianMixture> {
        let n = self.components();
        let means = self.points.row_iter().map(|r| r.iter().copied().collect()).collect();
        GaussianMixture::isotropic(vec![1.0 / n as f64; n], means, vec![self.h; n])
    }

    /// v = ᾱ h² + 1 − ᾱ, the per-dimension variance of x_t given a component.
    fn variance(&self, alpha_bar: f64) -> f64 {
        alpha_bar * self.h * self.h + 1.0 - alpha_bar
    }

    /// The posterior r_i(x_t) over training points of every row of `x` (n × d): n × N,
    /// rows summing to 1.
    pub fn responsibilities(&self, x: &DMatrix<f64>, alpha_bar: f64) -> DMatrix<f64> {
        let (sa, v) = (alpha_bar.sqrt(), self.variance(alpha_bar));
        let mut r = x * &self.points_t; // ⟨x_t, x_i⟩
        for mut row in r.row_iter_mut() {
            for (l, sq) in row.iter_mut().zip(&self.sq_norms) {
                *l = (sa * *l - 0.5 * alpha_bar * sq) / v;
            }
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            row.iter_mut().for_each(|l| *l = (*l - max).exp());
            let z = row.sum();
            row /= z;
        }
        r
    }

    /// E[x_0 | x_t] for every row of `x` (n × d) at noise level ᾱ (Tweedie's formula).
    pub fn posterior_mean(&self, x: &DMatrix<f64>, alpha_bar: f64) -> DMatrix<f64> {
        let v = self.variance(alpha_bar);
        let shrink = alpha_bar * self.h * self.h / v;
        let weighted = self.responsibilities(x, alpha_bar) * &self.points;
        weighted * (1.0 - shrink) + x * (alpha_bar.sqrt() * self.h * self.h / v)
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
        let mut eps = vec![0.0; xs.len()];
        // Rows in chunks that share one t (a sampler batch shares it throughout).
        let starts: Vec<usize> = (0..n).filter(|&i| i % CHUNK == 0 || t[i] != t[i - 1]).collect();
        let chunks: Vec<(usize, usize)> = starts
            .iter()
            .enumerate()
            .map(|(k, &s)| (s, starts.get(k + 1).copied().unwrap_or(n)))
            .collect();
        let parts: Vec<Vec<f64>> = chunks
            .par_iter()
            .map(|&(s, e)| {
                let a = self.schedule.alpha_bar(Some(t[s]));
                let xt = DMatrix::from_row_slice(e - s, d, &xs[s * d..e * d]);
                let mean = self.mixture.posterior_mean(&xt, a);
                let (sa, s1a) = (a.sqrt(), (1.0 - a).sqrt());
                let e_mat = (xt - mean * sa) / s1a;
                // row-major out of the column-major matrix
                let mut out = Vec::with_capacity((e - s) * d);
                for row in e_mat.row_iter() {
                    out.extend(row.iter());
                }
                out
            })
            .collect();
        for (&(s, e), part) in chunks.iter().zip(parts) {
            eps[s * d..e * d].copy_from_slice(&part);
        }
        Ok(Tensor::from_vec(eps, x.shape(), x.device())?.to_dtype(x.dtype())?)
    }
}
