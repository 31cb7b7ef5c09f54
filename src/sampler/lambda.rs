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

    /// The exponential-integrator step from this level to `next` on a data prediction
    /// D̃: x_next = (σ_next/σ) x + α_next (1 − e^{−h}) D̃, with α_next e^{−h} = σ_next α/σ
    /// (finite onto clean data, σ_next = 0, where it is x_next = D̃).
    pub fn step_to(&self, next: &Level, x: &Tensor, d_tilde: &Tensor) -> Result<Tensor> {
        Ok(kernels::lincomb(
            (x, next.sigma / self.sigma),
            (d_tilde, next.alpha - next.sigma * self.alpha / self.sigma),
            None,
        )?)
    }
}

/// The second-order (midpoint) D̃ = D_i + (D_i − D_{i−1})/(2r) from the current and the
/// previous data prediction, r = h_{i−1}/h (DPM-Solver++(2M), Lu et al. 2022, Algorithm 2).
pub fn second_order(d: &Tensor, d_prev: &Tensor, r: f64) -> Result<Tensor> {
    Ok(kernels::lincomb((d, 1.0 + 0.5 / r), (d_prev, -0.5 / r), None)?)
}
