//! EDM's stochastic "churn" (Karras et al. 2022, "Elucidating the Design Space of
//! Diffusion-Based Generative Models", Algorithm 2, lines 4–6; k-diffusion's
//! `sample_euler` / `sample_heun` with `s_churn`): before step i, noise is added to raise
//! σ_i to σ̂ = σ_i (1 + γ_i), γ_i = min(S_churn/n, √2 − 1) where S_tmin ≤ σ_i ≤ S_tmax
//! (else 0), x̄̂ = x̄_i + S_noise √(σ̂² − σ_i²) z in x̄ = x/√ᾱ, σ = √((1 − ᾱ)/ᾱ).
//!
//! ddimlab's models take integer timesteps, so σ̂ is served at its rounded timestep t̂
//! ([`timestep_of_sigma`], at least t_i, at most T − 1) and σ̂ is then σ(t̂) exactly: the
//! model, the noise and the step all see the same level. Where γ_i is too small to move
//! a whole timestep no noise is added (and none drawn).

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::NoiseSource;
use crate::error::{Error, Result};
use crate::kernels;
use crate::schedule::{log_sigma, sigmas, timestep_of_sigma, Schedule};

/// The churn settings (`sweep.churn`), shared by Euler and Heun.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Churn {
    /// S_churn ≥ 0: the total added noise (0: the deterministic solver).
    pub s_churn: f64,
    /// S_tmin: no churn below this σ.
    #[serde(default)]
    pub s_tmin: f64,
    /// S_tmax: no churn above this σ (none: no upper limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s_tmax: Option<f64>,
    /// S_noise: the scale of the added noise (EDM uses 1.003–1.007).
    #[serde(default = "one")]
    pub s_noise: f64,
}

fn one() -> f64 {
    1.0
}

impl Churn {
    /// No churn: the deterministic solver.
    pub const NONE: Churn = Churn {
        s_churn: 0.0,
        s_tmin: 0.0,
        s_tmax: None,
        s_noise: 1.0,
    };

    /// Checks the settings (finite, S_churn ≥ 0, S_noise > 0, S_tmin ≤ S_tmax).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::invalid("sweep.churn", m));
        let tmax = self.s_tmax.unwrap_or(f64::INFINITY);
        if !(self.s_churn.is_finite() && self.s_churn >= 0.0) {
            return bad(format!("s_churn = {}: must be a number ≥ 0", self.s_churn));
        }
        if !(self.s_noise.is_finite() && self.s_noise > 0.0) {
            return bad(format!("s_noise = {}: must be a number > 0", self.s_noise));
        }
        if !(self.s_tmin.is_finite() && self.s_tmin >= 0.0 && self.s_tmin <= tmax) {
            return bad(format!(
                "s_tmin = {}, s_tmax = {tmax}: need 0 ≤ s_tmin ≤ s_tmax",
                self.s_tmin
            ));
        }
        Ok(())
    }

    /// Whether any noise is ever added.
    pub fn is_active(&self) -> bool {
        self.s_churn > 0.0
    }
}

/// The churn of one pass: the schedule's noise levels, looked up once.
pub(super) struct Churner<'a> {
    churn: Churn,
    schedule: &'a Schedule,
    sigmas: Vec<f64>,
    log_sigmas: Vec<f64>,
    steps: usize,
}

impl<'a> Churner<'a> {
    /// The churn of a pass of `steps` steps over `schedule`.
    pub fn new(churn: Churn, schedule: &'a Schedule, steps: usize) -> Self {
        let sigmas = sigmas(schedule);
        let log_sigmas = sigmas.iter().map(|&s| log_sigma(s)).collect();
        Self {
            churn,
            schedule,
            sigmas,
            log_sigmas,
            steps,
        }
    }

    /// Raises x at timestep `t` to t̂ ≥ t (lines 4–6 of Algorithm 2): returns (x̂, t̂).
    pub fn raise(&self, x: &Tensor, t: usize, step: usize, noise: &mut dyn NoiseSource) -> Result<(Tensor, usize)> {
        let c = &self.churn;
        let sigma = self.sigmas[t];
        let inside = c.s_tmin <= sigma && sigma <= c.s_tmax.unwrap_or(f64::INFINITY);
        let gamma = if inside && c.is_active() {
            (c.s_churn / self.steps as f64).min(std::f64::consts::SQRT_2 - 1.0)
        } else {
            0.0
        };
        let t_hat = timestep_of_sigma(&self.log_sigmas, sigma * (1.0 + gamma)).clamp(t, self.sigmas.len() - 1);
        if t_hat == t {
            return Ok((x.clone(), t));
        }
        // x̂ = √ᾱ_t̂ (x/√ᾱ_t + S_noise √(σ̂² − σ_t²) z).
        let (a_t, a_hat) = (self.schedule.alpha_bar(Some(t)), self.schedule.alpha_bar(Some(t_hat)));
        let sigma_hat = self.sigmas[t_hat];
        let z = noise.noise(step, x)?;
        let scale = a_hat.sqrt() * c.s_noise * (sigma_hat * sigma_hat - sigma * sigma).sqrt();
        let raised = kernels::lincomb((x, (a_hat / a_t).sqrt()), (&z, scale), None)?;
        Ok((raised, t_hat))
    }
}
