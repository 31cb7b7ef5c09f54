//! UniPC with B(h) = e^h − 1 ("bh2"; Zhao et al. 2023, "UniPC: A Unified
//! Predictor-Corrector Framework for Fast Sampling of Diffusion Models", Algorithms 2–3;
//! diffusers' `UniPCMultistepScheduler` with `predict_x0 = True`, `solver_type = "bh2"`,
//! `lower_order_final = True`, `final_sigmas_type = "zero"`).
//!
//! On the data predictions m_k (Eq. 9) in λ = log(α/σ), a step from λ_s to λ_t with
//! h = λ_t − λ_s, hh = −h, φ₁ = e^{hh} − 1 and B(h) = e^{hh} − 1 is
//!
//! UniP-p:  x_t = (σ_t/σ_s) x_s − α_t φ₁ m_s − α_t B(h) Σ_{k<p} ρᵖ_k D_k,
//! UniC-p:  x_t^c = (σ_t/σ_s) x_s − α_t φ₁ m_s − α_t B(h) (Σ_{k<p} ρᶜ_k D_k + ρᶜ_p (m_t − m_s)),
//!
//! with r_k = (λ_{s−k} − λ_s)/h, D_k = (m_{s−k} − m_s)/r_k and the ρ solving
//! Σ_k ρ_k r_k^{j−1} = b_j = j! φ_{j+1}(hh)/B(h) (Eq. 8–9 of the paper; the predictor uses
//! the first p − 1 equations, ρᵖ = ½ for p = 2; the corrector all p, ρᶜ = ½ for p = 1).
//! Each step evaluates the model once, at the predicted x_t; that evaluation both corrects
//! x_t (UniC, no extra evaluation) and drives the next predictor. The corrector's model
//! output is the one at the *uncorrected* x_t, as in diffusers. The order warms up from 1
//! and falls to min(p, steps left) at the end, so the last step onto clean data is first
//! order (x_0 = m_s). NFE = n.

use candle_core::Tensor;
use nalgebra::{DMatrix, DVector};

use super::lambda::Level;
use super::{batch_t, report, Callback};
use crate::error::{Error, Result};
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

/// x_0 from x_{τ_S} = `x_t` with UniPC-`order` (2 or 3) over `tau`.
pub fn sample(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    mut callback: Callback<'_>,
    order: usize,
) -> Result<Tensor> {
    let n = tau.len();
    let mut x = x_t.clone();
    let mut history: Vec<(Tensor, f64)> = Vec::new(); // (m_k, λ_k), newest last
    let mut last: Option<(Tensor, Level, usize)> = None; // x_s before the predictor, its level and order
    for (i, (t, t_next)) in tau.transitions().enumerate() {
        let (cur, next) = (Level::at(schedule, Some(t)), Level::at(schedule, t_next));
        // 1. The data prediction at the (uncorrected) state.
        let m = cur.data(&x, &model.eps(&x, &batch_t(&x, t)?)?)?;
        // 2. UniC: correct the state the last predictor reached, with this evaluation.
        if let Some((x_s, from, p)) = &last {
            x = update(x_s, from, &cur, &history, p - 1, Some(&m))?;
        }
        history.push((m, cur.lambda));
        if history.len() > order {
            history.remove(0);
        }
        // 3. UniP of this step's order: warm-up, then min(order, steps left).
        let p = order.min(n - i).min(i + 1);
        let x_next = match t_next {
            None => history[history.len() - 1].0.clone(),
            Some(_) => update(&x, &cur, &next, &history, p - 1, None)?,
        };
        report(&mut callback, i, t_next, &x_next, || {
            Ok(history[history.len() - 1].0.clone())
        })?;
        last = Some((x, cur, p));
        x = x_next;
    }
    Ok(x)
}

/// The shared UniP / UniC update from x_s at `from` to `to`. `history` ends with
/// (m_s, λ_s) and holds the earlier predictions before it; `k` earlier ones are used
/// (D_1 … D_k). With `corrector = Some(m_t)` the UniC weights (k + 1 equations,
/// the last for m_t − m_s) are used, otherwise UniP's (k equations).
fn update(
    x_s: &Tensor,
    from: &Level,
    to: &Level,
    history: &[(Tensor, f64)],
    k: usize,
    corrector: Option<&Tensor>,
) -> Result<Tensor> {
    let (m_s, lambda_s) = history
        .last()
        .ok_or_else(|| Error::Shape("UniPC: no model output".into()))?;
    let h = to.lambda - lambda_s;
    // D_j = (m_{s−j} − m_s)/r_j, r_j = (λ_{s−j} − λ_s)/h, j = 1 … k (newest first).
    let earlier: Vec<&(Tensor, f64)> = history.iter().rev().skip(1).take(k).collect();
    let rks: Vec<f64> = earlier.iter().map(|(_, l)| (l - lambda_s) / h).collect();
    let hh = -h;
    let phi1 = hh.exp_m1();
    let b_h = hh.exp_m1();
    let equations = k + usize::from(corrector.is_some());
    let b = b_vector(hh, b_h, equations.max(1));
    let rhos: Vec<f64> = match equations {
        0 => Vec::new(),
        1 => vec![0.5],
        _ => {
            let mut r = rks.clone();
            if corrector.is_some() {
                r.push(1.0);
            }
            solve(&r, &b[..equations])?
        }
    };
    // x_t = (σ_t/σ_s) x_s − α_t φ₁ m_s − α_t B(h) Σ ρ_j D_j (+ ρ_last (m_t − m_s)).
    let mut terms: Vec<(Tensor, f64)> = vec![(x_s.clone(), to.sigma / from.sigma)];
    let mut m_s_weight = -to.alpha * phi1;
    for ((m_j, _), (rk, rho)) in earlier.iter().zip(rks.iter().zip(&rhos)) {
        let w = -to.alpha * b_h * rho / rk;
        terms.push((m_j.clone(), w));
        m_s_weight -= w;
    }
    if let Some(m_t) = corrector {
        let w = -to.alpha * b_h * rhos[equations - 1];
        terms.push((m_t.clone(), w));
        m_s_weight -= w;
    }
    terms.push((m_s.clone(), m_s_weight));
    let mut sum = (&terms[0].0 * terms[0].1)?;
    for (v, w) in &terms[1..] {
        sum = (sum + (v * *w)?)?;
    }
    Ok(sum)
}

/// b_j = j! φ_{j+1}(hh)/B(h), j = 1 … `count`, by diffusers' recursion
/// h_phi_k ← h_phi_k/hh − 1/(j+1)!, starting from φ₁/hh − 1.
fn b_vector(hh: f64, b_h: f64, count: usize) -> Vec<f64> {
    let mut h_phi_k = hh.exp_m1() / hh - 1.0;
    let mut factorial = 1.0;
    let mut b = Vec::with_capacity(count);
    for j in 1..=count {
        b.push(h_phi_k * factorial / b_h);
        factorial *= (j + 1) as f64;
        h_phi_k = h_phi_k / hh - 1.0 / factorial;
    }
    b
}

/// Solves Σ_k ρ_k r_k^{j−1} = b_j, j = 1 … len (a Vandermonde system, R[j][k] = r_k^{j−1}).
fn solve(r: &[f64], b: &[f64]) -> Result<Vec<f64>> {
    let n = r.len();
    let m = DMatrix::from_fn(n, n, |j, k| r[k].powi(j as i32));
    m.lu()
        .solve(&DVector::from_column_slice(b))
        .map(|v| v.iter().copied().collect())
        .ok_or_else(|| Error::Shape("UniPC: singular order conditions (repeated λ)".into()))
}
