//! Heun's second-order method on the probability-flow ODE (Karras et al. 2022, "Elucidating
//! the Design Space of Diffusion-Based Generative Models", Algorithm 2; k-diffusion's
//! `sample_heun`), with EDM's optional churn ([`Churn`]).
//!
//! In x̄ = x/√ᾱ and σ = √((1 − ᾱ)/ᾱ) the ODE of paper Eq. 14 is dx̄/dσ = ε_θ(x, t(σ)).
//! A step from σ_i to σ_{i+1} is the Euler (= DDIM, [`ddim_step`]) predictor
//! x̄' = x̄_i + (σ_{i+1} − σ_i) e_i, then the trapezoidal corrector
//! x̄_{i+1} = x̄_i + (σ_{i+1} − σ_i) (e_i + e')/2 with e' = ε_θ(x', t_{i+1}), both evaluated
//! at timesteps of τ. The last step, onto σ = 0 (clean data), is Euler's: NFE = 2n − 1.
//! With churn, each step first raises x_i to σ̂ ≥ σ_i and steps from there.

use candle_core::Tensor;

use super::churn::{Churn, Churner};
use super::{batch_t, ddim_step, predict_x0, report, Callback, NoiseSource};
use crate::error::Result;
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

/// x_0 from x_{τ_S} = `x_t` with Heun's method (`corrector`) or Euler's (without) over
/// `tau`, with `churn` before each step.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    noise: &mut dyn NoiseSource,
    mut callback: Callback<'_>,
    churn: Churn,
    corrector: bool,
) -> Result<Tensor> {
    let churner = Churner::new(churn, schedule, tau.len());
    let mut x = x_t.clone();
    for (index, (t, t_next)) in tau.transitions().enumerate() {
        // 1. Churn: raise σ_i to σ̂ (a no-op without churn).
        let (x_hat, t_hat) = churner.raise(&x, t, index, noise)?;
        let (a_hat, a_next) = (schedule.alpha_bar(Some(t_hat)), schedule.alpha_bar(t_next));
        // 2. Euler predictor.
        let e = model.eps(&x_hat, &batch_t(&x, t_hat)?)?;
        let predicted = ddim_step(&x_hat, &e, a_hat, a_next)?;
        // 3. Trapezoidal corrector, except onto clean data.
        let (next, slope) = match t_next {
            Some(t_next) if corrector => {
                let e_next = model.eps(&predicted, &batch_t(&x, t_next)?)?;
                let mean = ((&e + &e_next)? * 0.5)?;
                (ddim_step(&x_hat, &mean, a_hat, a_next)?, mean)
            }
            _ => (predicted, e),
        };
        report(&mut callback, index, t_next, &next, || {
            predict_x0(&x_hat, &slope, a_hat, false)
        })?;
        x = next;
    }
    Ok(x)
}
