//! DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of
//! Diffusion Probabilistic Models", Algorithm 2; diffusers' `DPMSolverMultistepScheduler`
//! with `algorithm_type = "dpmsolver++"`, `solver_order = 2`, `solver_type = "midpoint"`).
//!
//! With α = √ᾱ, σ = √(1 − ᾱ), λ = log(α/σ) and the data prediction
//! D_i = (x_i − σ_i ε_θ(x_i, t_i)) / α_i (Eq. 9), a step from t_i to t_{i+1} with
//! h = λ_{i+1} − λ_i is
//!
//! x_{i+1} = (σ_{i+1}/σ_i) · x_i − α_{i+1} (e^{−h} − 1) · D̃,
//! D̃ = (1 + 1/(2r)) D_i − 1/(2r) D_{i−1},   r = h_{i−1}/h             (second order)
//!
//! and D̃ = D_i (first order, which is the DDIM step) on the first step and on the last
//! step onto clean data, where σ = 0 makes h infinite (diffusers' `lower_order_final`
//! with `final_sigmas_type = "zero"`): there x_0 = D_i. One evaluation per step.
//!
//! With `min_r`, a step whose r falls below it is first order too. On τ kinds that contain
//! t = 0 (linear, uniform) the step onto t = 0 is long in λ after a short one (r ≈ 0.2 at
//! S = 10), and D̃ then extrapolates D over 1/(2r) of the gap: diffusers' rule keeps it
//! second order, `sweep.dpmpp_min_r` offers the first-order step there.

use candle_core::Tensor;

use super::lambda::{second_order, Level};
use super::{batch_t, report, Callback};
use crate::error::Result;
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

/// x_0 from x_{τ_S} = `x_t` with DPM-Solver++(2M) over `tau`.
pub fn sample(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    mut callback: Callback<'_>,
    min_r: Option<f64>,
) -> Result<Tensor> {
    let mut x = x_t.clone();
    let mut previous: Option<(Tensor, f64)> = None; // (D_{i−1}, h_{i−1})
    for (index, (t, t_next)) in tau.transitions().enumerate() {
        let (cur, next) = (Level::at(schedule, Some(t)), Level::at(schedule, t_next));
        // 1. The data prediction D_i (Eq. 9).
        let d = cur.data(&x, &model.eps(&x, &batch_t(&x, t)?)?)?;
        let h = next.lambda - cur.lambda;
        // 2. D̃: second order from the previous step's D when there is one and the step
        //    does not land on clean data.
        let d_tilde = match &previous {
            Some((d_prev, h_prev)) if t_next.is_some() && h_prev / h >= min_r.unwrap_or(0.0) => {
                second_order(&d, d_prev, h_prev / h)?
            }
            _ => d.clone(),
        };
        // 3. x_{i+1} = (σ_{i+1}/σ_i) x_i + α_{i+1}(1 − e^{−h}) D̃.
        let x_next = cur.step_to(&next, &x, &d_tilde)?;
        report(&mut callback, index, t_next, &x_next, || Ok(d_tilde.clone()))?;
        previous = Some((d, h));
        x = x_next;
    }
    Ok(x)
}
