//! DPM-Solver++(3M) (Lu et al. 2022, "DPM-Solver++", §4 and Appendix B; diffusers'
//! `DPMSolverMultistepScheduler` with `algorithm_type = "dpmsolver++"`,
//! `solver_order = 3`, `lower_order_final = True`, `final_sigmas_type = "zero"`).
//!
//! With the data predictions D_i (Eq. 9) of the current and the two previous steps,
//! h = λ_{i+1} − λ_i, r₀ = h_{i−1}/h, r₁ = h_{i−2}/h:
//!
//! D1₀ = (D_i − D_{i−1})/r₀,   D1₁ = (D_{i−1} − D_{i−2})/r₁,
//! D1 = D1₀ + r₀/(r₀ + r₁) · (D1₀ − D1₁),   D2 = (D1₀ − D1₁)/(r₀ + r₁),
//! x_{i+1} = (σ_{i+1}/σ_i) x_i − α_{i+1}(e^{−h} − 1) D_i + α_{i+1}((e^{−h} − 1)/h + 1) D1
//!           − α_{i+1}((e^{−h} − 1 + h)/h² − ½) D2                               (third order)
//!
//! The order warms up (first, second, then third) and comes down at the end as in
//! diffusers: the last step onto clean data is first order (there x_0 = D_i), and with
//! fewer than 15 steps the one before it is second order ([`super::dpmpp_2m`]'s step).
//! One evaluation per step.

use candle_core::Tensor;

use super::lambda::{second_order, Level};
use super::{batch_t, report, Callback};
use crate::error::Result;
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

/// The order diffusers uses on step `i` of `n` (0-based) for a solver of order `max`:
/// 1 on the first step and on the last (onto σ = 0), at most 2 on the second and on the
/// second-to-last when n < 15, else `max`.
pub fn step_order(i: usize, n: usize, max: usize) -> usize {
    if i == 0 || i + 1 == n {
        1
    } else if i == 1 || (i + 2 == n && n < 15) {
        max.min(2)
    } else {
        max
    }
}

/// x_0 from x_{τ_S} = `x_t` with DPM-Solver++(3M) over `tau`.
pub fn sample(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    mut callback: Callback<'_>,
) -> Result<Tensor> {
    let n = tau.len();
    let mut x = x_t.clone();
    let mut history: Vec<(Tensor, f64)> = Vec::new(); // (D_k, λ_k), newest last
    for (i, (t, t_next)) in tau.transitions().enumerate() {
        let (cur, next) = (Level::at(schedule, Some(t)), Level::at(schedule, t_next));
        // 1. The data prediction D_i (Eq. 9).
        let d = cur.data(&x, &model.eps(&x, &batch_t(&x, t)?)?)?;
        // 2. D̃ of the step's order, so that x_{i+1} = (σ_{i+1}/σ_i) x_i + α_{i+1}(1 − e^{−h}) D̃.
        let h = next.lambda - cur.lambda;
        let d_tilde = match (step_order(i, n, 3), history.as_slice()) {
            (2, [.., (d1, l1)]) => second_order(&d, d1, (cur.lambda - l1) / h)?,
            (3, [.., (d2, l2), (d1, l1)]) => third_order(&d, d1, d2, [cur.lambda, *l1, *l2], h)?,
            _ => d.clone(),
        };
        let x_next = cur.step_to(&next, &x, &d_tilde)?;
        report(&mut callback, i, t_next, &x_next, || Ok(d_tilde.clone()))?;
        if history.len() == 2 {
            history.remove(0);
        }
        history.push((d, cur.lambda));
        x = x_next;
    }
    Ok(x)
}

/// The third-order D̃ (`lambdas` = [λ_i, λ_{i−1}, λ_{i−2}]) with
/// α_{i+1}(1 − e^{−h}) D̃ = −α_{i+1}(e^{−h} − 1) D_i + α_{i+1}((e^{−h} − 1)/h + 1) D1
/// − α_{i+1}((e^{−h} − 1 + h)/h² − ½) D2, that is D̃ = D_i + c₁ D1 + c₂ D2 with
/// c₁ = ((e^{−h} − 1)/h + 1)/(1 − e^{−h}) and c₂ = −((e^{−h} − 1 + h)/h² − ½)/(1 − e^{−h}).
fn third_order(d0: &Tensor, d1: &Tensor, d2: &Tensor, lambdas: [f64; 3], h: f64) -> Result<Tensor> {
    let [l0, l1, l2] = lambdas;
    let (r0, r1) = ((l0 - l1) / h, (l1 - l2) / h);
    let em1 = (-h).exp_m1(); // e^{−h} − 1
    let c1 = (em1 / h + 1.0) / -em1;
    let c2 = -((em1 + h) / (h * h) - 0.5) / -em1;
    // D1₀ = (D_i − D_{i−1})/r₀, D1₁ = (D_{i−1} − D_{i−2})/r₁,
    // D1 = D1₀ + r₀/(r₀ + r₁)(D1₀ − D1₁), D2 = (D1₀ − D1₁)/(r₀ + r₁), so
    // c₁ D1 + c₂ D2 = (c₁ + u) D1₀ − u D1₁ with u = (c₁ r₀ + c₂)/(r₀ + r₁).
    let (w1, w2) = (
        c1 * (1.0 + r0 / (r0 + r1)) + c2 / (r0 + r1),
        -(c1 * r0 + c2) / (r0 + r1),
    );
    // c₁ D1 + c₂ D2 = w₁ D1₀ + w₂ D1₁ = (w₁/r₀) D_i + (w₂/r₁ − w₁/r₀) D_{i−1} − (w₂/r₁) D_{i−2}.
    let (a, b, c) = (1.0 + w1 / r0, w2 / r1 - w1 / r0, -w2 / r1);
    Ok(((d0 * a)? + (d1 * b)? + (d2 * c)?)?)
}
