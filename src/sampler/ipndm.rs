//! Improved PNDM (iPNDM; Zhang & Chen 2023, "Fast Sampling of Diffusion Models with
//! Exponential Integrator", §5; k-diffusion's `sample_ipndm`).
//!
//! Adams–Bashforth on ε in x̄ = x/√ᾱ and σ = √((1 − ᾱ)/ᾱ), where the probability-flow ODE
//! is dx̄/dσ = ε (so d = (x̄ − D)/σ = ε): each step is DDIM's transfer step
//! ([`ddim_step`], Euler in σ) with ε replaced by the Adams–Bashforth combination of the
//! current and up to three earlier evaluations ([`adams_bashforth`]), the order warming
//! up 1, 2, 3, 4 over the first steps (PLMS instead spends an extra evaluation on its
//! first step); the last step, onto σ = 0, lands on x̂_0 of the current ε (ComfyUI's
//! `sample_ipndm`; k-diffusion's releases do not have it). The fixed coefficients assume
//! equal steps in σ. One evaluation per step.

use candle_core::Tensor;

use super::plms::adams_bashforth;
use super::{batch_t, ddim_step, predict_x0, report, Callback};
use crate::error::Result;
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

/// x_0 from x_{τ_S} = `x_t` with iPNDM (order ≤ 4) over `tau`.
pub fn sample(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    mut callback: Callback<'_>,
) -> Result<Tensor> {
    let mut x = x_t.clone();
    let mut history: Vec<Tensor> = Vec::new(); // e_{i−3}, e_{i−2}, e_{i−1}, newest last
    for (index, (t, t_next)) in tau.transitions().enumerate() {
        let (a_t, a_next) = (schedule.alpha_bar(Some(t)), schedule.alpha_bar(t_next));
        let e = model.eps(&x, &batch_t(&x, t)?)?;
        // The last step, onto clean data, is x̂_0 itself (Euler onto σ = 0), as in
        // ComfyUI's `sample_ipndm`.
        let combined = match t_next {
            Some(_) => adams_bashforth(&e, &history)?,
            None => e.clone(),
        };
        let next = ddim_step(&x, &combined, a_t, a_next)?;
        report(&mut callback, index, t_next, &next, || {
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
