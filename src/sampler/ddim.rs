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

use std::fmt;

use candle_core::Tensor;

use super::{batch_t, check_input, predict_x0, report, Callback, Counted, NoiseSource, PassOutput, Recorder};
use crate::error::{Error, Result};
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

/// The stochasticity of the sampler: η of paper Eq. 16, or the paper's σ̂ (Appendix D.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Eta {
    /// σ_t = η · σ_t(1), η ∈ [0, 1] (Eq. 16).
    Value(f64),
    /// The larger DDPM variance σ̂_t² = 1 − ᾱ_t/ᾱ_prev with η = 1's direction term.
    SigmaHat,
}

impl Eta {
    /// η = 0: deterministic DDIM.
    pub const DDIM: Eta = Eta::Value(0.0);

    /// A numeric η, checked to lie in [0, 1].
    pub fn new(eta: f64) -> Result<Self> {
        if eta.is_finite() && (0.0..=1.0).contains(&eta) {
            Ok(Eta::Value(eta))
        } else {
            Err(Error::EtaOutOfRange(eta))
        }
    }

    /// The numeric η, or `None` for σ̂.
    pub fn value(self) -> Option<f64> {
        match self {
            Eta::Value(v) => Some(v),
            Eta::SigmaHat => None,
        }
    }
}

impl fmt::Display for Eta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Eta::Value(v) => write!(f, "{v:?}"),
            Eta::SigmaHat => f.write_str("sigma_hat"),
        }
    }
}

/// σ_t(η) of paper Eq. 16 for a step from ᾱ_t = `a_t` to ᾱ_prev = `a_prev`.
pub fn sigma(a_t: f64, a_prev: f64, eta: f64) -> f64 {
    eta * ((1.0 - a_prev) / (1.0 - a_t)).sqrt() * (1.0 - a_t / a_prev).sqrt()
}

/// The three coefficients of one generalized step (paper Eq. 12):
/// x_next = `x0` · x̂_0 + `eps` · ε + `noise` · z.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCoefficients {
    /// √ᾱ_next, the weight of the predicted x_0.
    pub x0: f64,
    /// √(1 − ᾱ_next − σ_t²), the weight of the "direction pointing to x_t".
    pub eps: f64,
    /// The scale of the fresh noise.
    pub noise: f64,
}

impl StepCoefficients {
    /// Coefficients of the step from ᾱ_t = `a_t` to ᾱ_next = `a_next` with stochasticity `eta`.
    /// Deterministic (η = 0) steps may go either way (decoding or encoding).
    pub fn new(a_t: f64, a_next: f64, eta: Eta) -> Self {
        let (sigma_direction, noise) = match eta {
            Eta::Value(0.0) => (0.0, 0.0),
            Eta::Value(v) => {
                let s = sigma(a_t, a_next, v);
                (s, s)
            }
            Eta::SigmaHat => {
                let hat = if a_next < 1.0 { (1.0 - a_t / a_next).sqrt() } else { 0.0 };
                (sigma(a_t, a_next, 1.0), hat)
            }
        };
        Self {
            x0: a_next.sqrt(),
            eps: (1.0 - a_next - sigma_direction * sigma_direction).max(0.0).sqrt(),
            noise,
        }
    }

    /// The weights of x_t and ε once x̂_0 (Eq. 9, at ᾱ_t = `a_t`, unclipped) is substituted
    /// into `x0 · x̂_0 + eps · ε`: (x0/√ᾱ_t, eps − x0·√(1 − ᾱ_t)/√ᾱ_t).
    pub fn substituted(&self, a_t: f64) -> (f64, f64) {
        let (sa, sb) = (a_t.sqrt(), (1.0 - a_t).sqrt());
        (self.x0 / sa, self.eps - self.x0 * sb / sa)
    }
}

/// Deterministic DDIM encoding (inversion) of clean `x0` to x_{τ_S}: the Eq. 14 ODE run
/// from ᾱ = 1 up through τ. The step τ_{i−1} → τ_i evaluates ε_θ(x_{τ_{i−1}}, τ_i) (the
/// model at the target timestep, as diffusers' `DDIMInverseScheduler`), so the pass
/// makes one evaluation per distinct timestep and decoding undoes it as S grows.
pub fn encode(model: &dyn EpsModel, schedule: &Schedule, tau: &Tau, x0: &Tensor, record: bool) -> Result<PassOutput> {
    check_input(schedule, tau, x0, "encoder input x_0")?;
    let counted = Counted::new(model);
    let mut rec = record.then(|| Recorder::new(x0, None));
    let mut x = x0.clone();
    let mut t_from = None;
    for &t_to in tau.timesteps() {
        let (a_from, a_to) = (schedule.alpha_bar(t_from), schedule.alpha_bar(Some(t_to)));
        let coef = StepCoefficients::new(a_from, a_to, Eta::DDIM);
        let eps = counted.eps(&x, &batch_t(&x, t_to)?)?;
        let x0_pred = predict_x0(&x, &eps, a_from, false)?;
        let next = ((&x0_pred * coef.x0)? + (&eps * coef.eps)?)?;
        if let Some(r) = rec.as_mut() {
            r.push(&next, &x0_pred, Some(t_to));
        }
        x = next;
        t_from = Some(t_to);
    }
    Ok(PassOutput {
        x,
        nfe: counted.calls(),
        trajectory: rec.map(Recorder::finish),
    })
}

/// The deterministic DDIM step (Eq. 12 with σ = 0) from ᾱ_t = `a_t` to ᾱ_next = `a_next`
/// with noise estimate `eps`:
/// x_next = √(ᾱ_next/ᾱ_t) · x_t + (√(1 − ᾱ_next) − √(ᾱ_next (1 − ᾱ_t)/ᾱ_t)) · ε,
/// which is Euler's method on x̄ = x/√ᾱ in σ = √((1 − ᾱ)/ᾱ) (x̄_next = x̄ + (σ_next − σ) ε)
/// and PNDM's transfer φ. PLMS and Heun reuse it with a combined ε; it is DDIM's own
/// η = 0 step without clipping (the same coefficients, [`StepCoefficients::substituted`]).
pub fn ddim_step(x: &Tensor, eps: &Tensor, a_t: f64, a_next: f64) -> Result<Tensor> {
    let (x_coef, eps_coef) = StepCoefficients::new(a_t, a_next, Eta::DDIM).substituted(a_t);
    Ok(kernels::lincomb((x, x_coef), (eps, eps_coef), None)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_range_is_checked() {
        assert!(Eta::new(0.0).is_ok());
        assert!(Eta::new(1.0).is_ok());
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let msg = Eta::new(bad).unwrap_err().to_string();
            assert!(msg.contains("[0, 1]"), "{msg}");
        }
    }

    #[test]
    fn last_step_is_noise_free_for_every_eta() {
        for eta in [Eta::Value(0.5), Eta::Value(1.0), Eta::SigmaHat] {
            let c = StepCoefficients::new(0.7, 1.0, eta);
            assert_eq!((c.x0, c.eps, c.noise), (1.0, 0.0, 0.0), "{eta}");
        }
    }
}
