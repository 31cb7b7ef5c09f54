//! Pseudo linear multistep (PLMS; Liu et al. 2022, "Pseudo Numerical Methods for
//! Diffusion Models on Manifolds", the PLMS sampler of latent diffusion and diffusers'
//! `PNDMScheduler` with `skip_prk_steps`).
//!
//! Each step is DDIM's transfer step φ (PNDM Eq. 11, [`ddim_step`]) with ε replaced by an
//! Adams–Bashforth combination of the current and the last three evaluations e_i:
//!
//! ε' = (55 e_i − 59 e_{i−1} + 37 e_{i−2} − 9 e_{i−3}) / 24           (4th order)
//!
//! with the lower orders while the history fills: (23 e_i − 16 e_{i−1} + 5 e_{i−2}) / 12,
//! then (3 e_i − e_{i−1}) / 2, and on the first step the pseudo improved Euler
//! ε' = (e_0 + ε(φ(x, e_0), t_1)) / 2, one extra evaluation whose value is not kept.
//! The coefficients assume equal steps, as PLMS does on any τ. NFE = n + 1 (n ≥ 2).

use candle_core::Tensor;

use super::{batch_t, ddim_step, predict_x0, report, Callback};
use crate::error::Result;
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

/// Σ c_k e_k.
fn combine(terms: &[(&Tensor, f64)]) -> Result<Tensor> {
    let mut sum = (terms[0].0 * terms[0].1)?;
    for (e, c) in &terms[1..] {
        sum = (sum + (*e * *c)?)?;
    }
    Ok(sum)
}

/// The Adams–Bashforth combination of the newest evaluation `e` with up to three
/// earlier ones (`history`, oldest first), of order 1 + `history.len()`:
/// e, (3 e − e₁)/2, (23 e − 16 e₁ + 5 e₂)/12, (55 e − 59 e₁ + 37 e₂ − 9 e₃)/24.
pub(super) fn adams_bashforth(e: &Tensor, history: &[Tensor]) -> Result<Tensor> {
    match history {
        [] => Ok(e.clone()),
        [e1] => combine(&[(e, 3.0 / 2.0), (e1, -1.0 / 2.0)]),
        [e2, e1] => combine(&[(e, 23.0 / 12.0), (e1, -16.0 / 12.0), (e2, 5.0 / 12.0)]),
        [.., e3, e2, e1] => combine(&[
            (e, 55.0 / 24.0),
            (e1, -59.0 / 24.0),
            (e2, 37.0 / 24.0),
            (e3, -9.0 / 24.0),
        ]),
    }
}

/// x_0 from x_{τ_S} = `x_t` with PLMS over `tau`.
pub fn sample(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    mut callback: Callback<'_>,
) -> Result<Tensor> {
    let mut x = x_t.clone();
    let mut history: Vec<Tensor> = Vec::new(); // e_{i−1}, e_{i−2}, e_{i−3}, newest last
    for (index, (t, t_prev)) in tau.transitions().enumerate() {
        let (a_t, a_prev) = (schedule.alpha_bar(Some(t)), schedule.alpha_bar(t_prev));
        let e = model.eps(&x, &batch_t(&x, t)?)?;
        let combined = match (history.as_slice(), t_prev) {
            // 1. First step: pseudo improved Euler (when it lands on a timestep).
            ([], Some(t_next)) => {
                let trial = ddim_step(&x, &e, a_t, a_prev)?;
                let e_trial = model.eps(&trial, &batch_t(&x, t_next)?)?;
                combine(&[(&e, 0.5), (&e_trial, 0.5)])?
            }
            // 2. Adams–Bashforth of order 2, 3, 4 (1 for a single step onto data).
            (past, _) => adams_bashforth(&e, past)?,
        };
        // 3. The transfer step with the combined ε.
        let next = ddim_step(&x, &combined, a_t, a_prev)?;
        report(&mut callback, index, t_prev, &next, || {
            predict_x0(&x, &combined, a_t, false)
        })?;
        if history.len() == 3 {
            history.remove(0);
        }
        history.push(e);
        x = next;
    }
    Ok(x)
}
