//! The half-log-SNR parametrisation the exponential integrators share (DPM-Solver++,
//! UniPC; Lu et al. 2022, §3): α = √ᾱ, σ = √(1 − ᾱ), λ = log(α/σ), and the data
//! prediction D = (x − σ ε_θ)/α (paper Eq. 9).

use candle_core::Tensor;

use crate::error::Result;
use crate::kernels;
use crate::schedule::Schedule;

/// α, σ and λ of one timestep (`None`: clean data, α = 1, σ = 0, λ = +∞).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// α = √ᾱ.
    pub alpha: f64,
    /// σ = √(1 − ᾱ).
    pub sigma: f64,
    /// λ = log(α/σ).
    pub lambda: f64,
}

impl Level {
    /// The level of timestep `t` of `schedule`.
    pub fn at(schedule: &Schedule, t: Option<usize>) -> Self {
        let a = schedule.alpha_bar(t);
        let (alpha, sigma) = (a.sqrt(), (1.0 - a).sqrt());
        Self {
            alpha,
            sigma,
            lambda: (alpha / sigma).ln(),
        }
    }

    /// The data prediction D = (x − σ ε)/α (Eq. 9).
    pub fn data(&self, x: &Tensor, eps: &Tensor) -> Result<Tensor> {
        Ok(kernels::lincomb(
            (x, 1.0 / self.alpha),
            (eps, -self.sigma / self.alpha),
            None,
        )?)
    }
}
