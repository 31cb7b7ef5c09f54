//! DPM-Solver++(2M) SDE (Lu et al. 2022, "DPM-Solver++", Appendix; diffusers'
//! `DPMSolverMultistepScheduler` with `algorithm_type = "sde-dpmsolver++"`,
//! `solver_order = 2`, `solver_type = "midpoint"`, `final_sigmas_type = "zero"`).
//!
//! The exponential integrator of the reverse SDE in λ = log(α/σ) on the data prediction
//! D_i (Eq. 9): with h = λ_{i+1} − λ_i and r = h_{i−1}/h,
//!
//! x_{i+1} = (σ_{i+1}/σ_i) e^{−h} x_i + α_{i+1}(1 − e^{−2h}) D̃ + σ_{i+1} √(1 − e^{−2h}) z,
//! D̃ = D_i + (D_i − D_{i−1})/(2r)                                        (second order)
//!
//! and D̃ = D_i on the first step and on the last step onto clean data, where σ = 0 makes
//! the step x_0 = D_i with no noise. z comes from the per-sample noise streams (drawn on
//! every step but the last), so a point does not depend on the batch size. One
//! evaluation per step.

use candle_core::Tensor;

use super::lambda::{second_order, Level};
use super::{batch_t, report, Callback, NoiseSource};
use crate::error::Result;
use crate::kernels;
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

/// x_0 from x_{τ_S} = `x_t` with DPM-Solver++(2M) SDE over `tau`.
pub fn sample(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    noise: &mut dyn NoiseSource,
    mut callback: Callback<'_>,
) -> Result<Tensor> {
    let mut x = x_t.clone();
    let mut previous: Option<(Tensor, f64)> = None; // (D_{i−1}, λ_{i−1})
    for (i, (t, t_next)) in tau.transitions().enumerate() {
        let (cur, next) = (Level::at(schedule, Some(t)), Level::at(schedule, t_next));
        // 1. The data prediction D_i (Eq. 9).
        let d = cur.data(&x, &model.eps(&x, &batch_t(&x, t)?)?)?;
        let x_next = match t_next {
            // 2. Onto clean data: x_0 = D_i.
            None => d.clone(),
            Some(_) => {
                let h = next.lambda - cur.lambda;
                // 3. D̃: second order from the previous D.
                let d_tilde = match &previous {
                    Some((d_prev, l_prev)) => second_order(&d, d_prev, (cur.lambda - l_prev) / h)?,
                    None => d.clone(),
                };
                // 4. The SDE step with fresh noise of scale σ_{i+1} √(1 − e^{−2h}).
                let (e1, e2) = ((-h).exp(), (-2.0 * h).exp_m1());
                let z = noise.noise(i, &x)?;
                kernels::lincomb(
                    (&x, next.sigma / cur.sigma * e1),
                    (&d_tilde, -next.alpha * e2),
                    Some((&z, next.sigma * (-e2).sqrt())),
                )?
            }
        };
        report(&mut callback, i, t_next, &x_next, || Ok(d.clone()))?;
        previous = Some((d, cur.lambda));
        x = x_next;
    }
    Ok(x)
}
