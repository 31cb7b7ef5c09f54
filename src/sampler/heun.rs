//! Heun's second-order method on the probability-flow ODE (Karras et al. 2022, "Elucidating
//! the Design Space of Diffusion-Based Generative Models", Algorithm 1 with S_churn = 0).
//!
//! In x̄ = x/√ᾱ and σ = √((1 − ᾱ)/ᾱ) the ODE of paper Eq. 14 is dx̄/dσ = ε_θ(x, t(σ)).
//! A step from σ_i to σ_{i+1} is the Euler (= DDIM, [`ddim_step`]) predictor
//! x̄' = x̄_i + (σ_{i+1} − σ_i) e_i, then the trapezoidal corrector
//! x̄_{i+1} = x̄_i + (σ_{i+1} − σ_i) (e_i + e')/2 with e' = ε_θ(x', t_{i+1}), both evaluated
//! at timesteps of τ. The last step, onto σ = 0 (clean data), is Euler's: NFE = 2n − 1.

use candle_core::Tensor;

use super::{batch_t, ddim_step, predict_x0, report, Callback};
use crate::error::Result;
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

/// x_0 from x_{τ_S} = `x_t` with Heun's method over `tau`.
pub fn sample(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    mut callback: Callback<'_>,
) -> Result<Tensor> {
    let mut x = x_t.clone();
    for (index, (t, t_next)) in tau.transitions().enumerate() {
        let (a_t, a_next) = (schedule.alpha_bar(Some(t)), schedule.alpha_bar(t_next));
        // 1. Euler predictor.
        let e = model.eps(&x, &batch_t(&x, t)?)?;
        let predicted = ddim_step(&x, &e, a_t, a_next)?;
        // 2. Trapezoidal corrector, except onto clean data.
        let (next, slope) = match t_next {
            Some(t_next) => {
                let e_next = model.eps(&predicted, &batch_t(&x, t_next)?)?;
                let mean = ((&e + &e_next)? * 0.5)?;
                (ddim_step(&x, &mean, a_t, a_next)?, mean)
            }
            None => (predicted, e),
        };
        report(&mut callback, index, t_next, &next, || {
            predict_x0(&x, &slope, a_t, false)
        })?;
        x = next;
    }
    Ok(x)
}
