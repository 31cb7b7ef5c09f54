//! The generalized DDIM sampler (paper Eq. 12) with its σ family (Eq. 16) and σ̂
//! (Appendix D.3).
//!
//! One step from timestep t to t_prev (ᾱ_{−1} = 1) is
//!
//! x_prev = √ᾱ_prev · x̂_0 + √(1 − ᾱ_prev − σ_t²) · ε_θ(x_t, t) + σ_t · z,
//! x̂_0 = (x_t − √(1 − ᾱ_t) · ε_θ(x_t, t)) / √ᾱ_t,        z ~ N(0, I)  (Eq. 12 / Eq. 9)
//!
//! with σ_t(η) = η · √((1 − ᾱ_prev)/(1 − ᾱ_t)) · √(1 − ᾱ_t/ᾱ_prev) (Eq. 16). η = 0 is
//! DDIM, η = 1 is DDPM's posterior (β̃_t at full T). σ̂ keeps η = 1's direction
//! coefficient and injects noise of scale σ̂_t = √(1 − ᾱ_t/ᾱ_prev), except on the final
//! step onto clean data, where (as the official code masks t = 0) no noise is added.
//! With `clip_x0`, x̂_0 is clipped to [−1, 1] before it is used; σ̂ then also re-derives ε
//! from the clipped x̂_0, which makes the step the official `ddpm_noisy` (the posterior
//! mean of q(x_prev | x_t, clip(x̂_0)) plus σ̂ z), while a numeric η keeps the model's ε
//! (diffusers' `DDIMScheduler` with `clip_sample=True`).
//! The model is evaluated once per distinct timestep of τ.

use candle_core::Tensor;

use super::{batch_t, predict_x0, report, Callback, Eta, NoiseSource, StepCoefficients};
use crate::error::Result;
use crate::kernels;
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

/// x_0 from x_{τ_S} = `x_t` with the generalized step (Eq. 12) over `tau`.
#[allow(clippy::too_many_arguments)]
pub fn sample(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    noise: &mut dyn NoiseSource,
    mut callback: Callback<'_>,
    eta: Eta,
    clip_x0: bool,
) -> Result<Tensor> {
    let mut x = x_t.clone();
    for (step, (t, t_prev)) in tau.transitions().enumerate() {
        let (a_t, a_prev) = (schedule.alpha_bar(Some(t)), schedule.alpha_bar(t_prev));
        let coef = StepCoefficients::new(a_t, a_prev, eta);
        let eps = model.eps(&x, &batch_t(&x, t)?)?;
        // 1. x̂_0 (Eq. 9) is formed on its own only when it is clipped or reported;
        //    otherwise Eq. 12 with Eq. 9 substituted is one linear combination of x_t and ε.
        let x0 = if clip_x0 || callback.is_some() {
            Some(predict_x0(&x, &eps, a_t, clip_x0)?)
        } else {
            None
        };
        // 2. σ̂ with clipping is the official `ddpm_noisy`: the posterior mean of
        //    q(x_prev | x_t, clip(x̂_0)), which is Eq. 12 with ε re-derived from the clipped
        //    x̂_0, ε′ = (x_t − √ᾱ_t · x̂_0) / √(1 − ᾱ_t). A numeric η keeps the model's ε, as
        //    diffusers' `DDIMScheduler(clip_sample=True)` does.
        let eps = match (&x0, eta) {
            (Some(x0), Eta::SigmaHat) if clip_x0 => eps_from_x0(&x, x0, a_t)?,
            _ => eps,
        };
        let (first, second) = match &x0 {
            Some(x0) => ((x0, coef.x0), (&eps, coef.eps)),
            None => {
                let (x_coef, eps_coef) = coef.substituted(a_t);
                ((&x, x_coef), (&eps, eps_coef))
            }
        };
        // 3. Eq. 12: √ᾱ_prev x̂_0 + √(1 − ᾱ_prev − σ²) ε + σ z.
        let z = (coef.noise > 0.0).then(|| noise.noise(step, &x)).transpose()?;
        let next = kernels::lincomb(first, second, z.as_ref().map(|z| (z, coef.noise)))?;
        if let Some(x0) = &x0 {
            report(&mut callback, step, t_prev, &next, || Ok(x0.clone()))?;
        }
        x = next;
    }
    Ok(x)
}

/// The ε that x_t and x̂_0 imply at ᾱ_t = `a_t` (Eq. 9 solved for ε):
/// ε′ = (x_t − √ᾱ_t · x̂_0) / √(1 − ᾱ_t).
fn eps_from_x0(x: &Tensor, x0: &Tensor, a_t: f64) -> Result<Tensor> {
    Ok(kernels::lincomb(
        (x, 1.0 / (1.0 - a_t).sqrt()),
        (x0, -(a_t / (1.0 - a_t)).sqrt()),
        None,
    )?)
}
