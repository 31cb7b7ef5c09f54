//! Gaussian mixtures with diagonal covariances (pure math, f64): the data of the mixture
//! data sets and the target of the exact oracle.
//!
//! For x_0 ~ Σ_k w_k N(μ_k, diag(s_k²)) and x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε (paper Eq. 4),
//! x_t | k ~ N(√ᾱ_t μ_k, diag(v_k)) with v_k = ᾱ_t s_k² + 1 − ᾱ_t, and
//! E[x_0 | x_t, k] = μ_k + √ᾱ_t s_k² / v_k · (x_t − √ᾱ_t μ_k); E[x_0 | x_t] =
//! Σ_k r_k(x_t) E[x_0 | x_t, k] with responsibilities r_k computed with log-sum-exp.

use crate::error::{Error, Result};

/// A Gaussian mixture with diagonal covariances, in any dimension.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    weights: Vec<f64>,
    means: Vec<Vec<f64>>,
    stds: Vec<Vec<f64>>,
}

impl GaussianMixture {
    /// A mixture from weights (positive, summing to 1 within 1e-6), one mean per
    /// component and one std vector per component (each of the means' dimension).
    pub fn new(weights: Vec<f64>, means: Vec<Vec<f64>>, stds: Vec<Vec<f64>>) -> Result<Self> {
        let k = weights.len();
        if k == 0 {
            return Err(Error::Mixture("at least one component is needed".into()));
        }
        if means.len() != k || stds.len() != k {
            return Err(Error::Mixture(format!(
                "{k} weights but {} means and {} std vectors: one of each per component",
                means.len(),
                stds.len()
            )));
        }
        let dim = means[0].len();
        if dim == 0 {
            return Err(Error::Mixture("means must have at least one dimension".into()));
        }
        if let Some((i, m)) = means.iter().enumerate().find(|(_, m)| m.len() != dim) {
            return Err(Error::Mixture(format!(
                "mean {i} has {} dimensions, mean 0 has {dim}",
                m.len()
            )));
        }
        if let Some((i, s)) = stds.iter().enumerate().find(|(_, s)| s.len() != dim) {
            return Err(Error::Mixture(format!(
                "std {i} has {} dimensions, the means have {dim}",
                s.len()
            )));
        }
        if let Some(w) = weights.iter().find(|w| !(w.is_finite() && **w > 0.0)) {
            return Err(Error::Mixture(format!(
                "weight {w}: weights must be positive and finite"
            )));
        }
        let total: f64 = weights.iter().sum();
        if (total - 1.0).abs() > 1e-6 {
            return Err(Error::Mixture(format!("weights sum to {total}, not 1")));
        }
        if means.iter().flatten().any(|m| !m.is_finite()) {
            return Err(Error::Mixture("means must be finite".into()));
        }
        if let Some(s) = stds.iter().flatten().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(Error::Mixture(format!(
                "std {s}: standard deviations must be positive and finite"
            )));
        }
        Ok(Self { weights, means, stds })
    }

    /// An isotropic mixture: one scalar std per component.
    pub fn isotropic(weights: Vec<f64>, means: Vec<Vec<f64>>, stds: Vec<f64>) -> Result<Self> {
        if stds.len() != means.len() {
            return Err(Error::Mixture(format!(
                "{} means but {} stds: one std per component",
                means.len(),
                stds.len()
            )));
        }
        let stds = means.iter().zip(&stds).map(|(m, s)| vec![*s; m.len()]).collect();
        Self::new(weights, means, stds)
    }

    /// Number of components K.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// Dimension d of the data.
    pub fn dim(&self) -> usize {
        self.means[0].len()
    }

    /// Mixture weights w_k.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Component means μ_k.
    pub fn means(&self) -> &[Vec<f64>] {
        &self.means
    }

    /// Component standard deviations s_k (per dimension).
    pub fn stds(&self) -> &[Vec<f64>] {
        &self.stds
    }

    /// The mixture mean Σ_k w_k μ_k.
    pub fn mean(&self) -> Vec<f64> {
        (0..self.dim())
            .map(|j| self.weights.iter().zip(&self.means).map(|(w, m)| w * m[j]).sum())
            .collect()
    }

    /// The mixture covariance Σ_k w_k (diag(s_k²) + μ_k μ_kᵀ) − m mᵀ, row-major d × d.
    pub fn covariance(&self) -> Vec<Vec<f64>> {
        let (d, m) = (self.dim(), self.mean());
        (0..d)
            .map(|i| {
                (0..d)
                    .map(|j| {
                        let second: f64 = (0..self.components())
                            .map(|k| {
                                let diag = if i == j { self.stds[k][i].powi(2) } else { 0.0 };
                                self.weights[k] * (diag + self.means[k][i] * self.means[k][j])
                            })
                            .sum();
                        second - m[i] * m[j]
                    })
                    .collect()
            })
            .collect()
    }

    /// Posterior responsibilities r_k(x_t) = p(k | x_t) at noise level ᾱ (ᾱ = 1: the data itself).
    pub fn responsibilities(&self, x: &[f64], alpha_bar: f64) -> Vec<f64> {
        let sa = alpha_bar.sqrt();
        let logits: Vec<f64> = (0..self.components())
            .map(|k| {
                let ll: f64 = x
                    .iter()
                    .enumerate()
                    .map(|(j, xj)| {
                        let v = alpha_bar * self.stds[k][j].powi(2) + 1.0 - alpha_bar;
                        -0.5 * ((xj - sa * self.means[k][j]).powi(2) / v + v.ln())
                    })
                    .sum();
                self.weights[k].ln() + ll
            })
            .collect();
        let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let exps: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let z: f64 = exps.iter().sum();
        exps.into_iter().map(|e| e / z).collect()
    }

    /// The exact probability-flow map from noise level ᾱ = `from` to ᾱ = `to`, known in
    /// closed form for a single Gaussian N(μ, diag(s²)): the marginal at ᾱ is
    /// N(√ᾱ μ, v(ᾱ)) with v(ᾱ) = ᾱ s² + 1 − ᾱ, and the flow maps quantiles to quantiles, so
    /// x_to = √ᾱ_to μ + √(v(ᾱ_to)/v(ᾱ_from)) · (x_from − √ᾱ_from μ) per dimension.
    /// `None` for K > 1.
    pub fn flow_between(&self, x: &[f64], from: f64, to: f64) -> Option<Vec<f64>> {
        if self.components() != 1 {
            return None;
        }
        let (mu, s) = (&self.means[0], &self.stds[0]);
        let v = |a: f64, s: f64| a * s * s + 1.0 - a;
        Some(
            x.iter()
                .enumerate()
                .map(|(j, xj)| to.sqrt() * mu[j] + (v(to, s[j]) / v(from, s[j])).sqrt() * (xj - from.sqrt() * mu[j]))
                .collect(),
        )
    }

    /// E[x_0 | x_t] at noise level ᾱ (Tweedie's posterior mean; what Eq. 9 gives with the
    /// exact ε).
    pub fn denoise(&self, x: &[f64], alpha_bar: f64) -> Vec<f64> {
        let mut out = vec![0.0; x.len()];
        self.posterior_mean(x, alpha_bar, &mut out);
        out
    }

    /// E[x_0 | x_t] at noise level ᾱ (Tweedie's posterior mean), written into `out`.
    pub(crate) fn posterior_mean(&self, x: &[f64], alpha_bar: f64, out: &mut [f64]) {
        let sa = alpha_bar.sqrt();
        out.fill(0.0);
        for (k, r) in self.responsibilities(x, alpha_bar).into_iter().enumerate() {
            for (j, o) in out.iter_mut().enumerate() {
                let s2 = self.stds[k][j].powi(2);
                let v = alpha_bar * s2 + 1.0 - alpha_bar;
                *o += r * (self.means[k][j] + sa * s2 / v * (x[j] - sa * self.means[k][j]));
            }
        }
    }
}
