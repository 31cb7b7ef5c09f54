//! "What this run shows": statements derived from the numbers of a sweep, checked
//! against the paper's qualitative claims whichever way they come out (never hard-coded).

use super::tables::{
    eta_label, etas, find, format_value, loglog_slope, present, steps, taus, MetricInfo, CONSISTENCY,
    CONSISTENCY_EXACT, RECON, SAMPLE_QUALITY,
};
use crate::store::MetricRow;

/// S up to which the paper finds η = 0 best (its Table 1: S ≤ 50 … 100).
const SMALL_S: usize = 50;

fn value(r: Option<&MetricRow>, m: &MetricInfo) -> Option<f64> {
    r.and_then(|r| r.metrics.get(m.name).copied()).filter(|v| v.is_finite())
}

fn better(m: &MetricInfo, a: f64, b: f64) -> bool {
    if m.lower_better {
        a < b
    } else {
        a > b
    }
}

/// Every statement the numbers support, in report order.
pub fn findings(rows: &[MetricRow]) -> Vec<String> {
    let clip = rows.first().is_some_and(|r| r.clip_x0);
    let mut out = Vec::new();
    out.extend(eta_zero_best(rows, clip));
    out.extend(small_s_comparison(rows, clip));
    out.extend(reconstruction(rows, clip));
    out.extend(consistency(rows, clip));
    out
}

/// Is η = 0 the best η at every S ≤ 50, per metric and τ?
fn eta_zero_best(rows: &[MetricRow], clip: bool) -> Vec<String> {
    let etas = etas(rows);
    if !etas.iter().any(|e| e == "0.0") || etas.len() < 2 {
        return Vec::new();
    }
    let small: Vec<usize> = steps(rows).into_iter().filter(|&s| s <= SMALL_S).collect();
    let mut out = Vec::new();
    for tau in taus(rows) {
        for m in present(rows, &SAMPLE_QUALITY) {
            let mut wins = 0;
            let mut exceptions = Vec::new();
            for &s in &small {
                let best = etas
                    .iter()
                    .filter_map(|e| Some((e, value(find(rows, &tau, e, s, clip), &m)?)))
                    .reduce(|a, b| if better(&m, b.1, a.1) { b } else { a });
                match best {
                    Some((e, _)) if e == "0.0" => wins += 1,
                    Some((e, _)) => exceptions.push(format!("{} at S = {s}", eta_label(e))),
                    None => {}
                }
            }
            if wins + exceptions.len() == 0 {
                continue;
            }
            out.push(if exceptions.is_empty() {
                format!(
                    "{tau} τ, {}: η = 0 is the best η at every S ≤ {SMALL_S} ({wins} of {wins}).",
                    m.name
                )
            } else {
                format!(
                    "{tau} τ, {}: η = 0 is the best η at {wins} of {} S ≤ {SMALL_S}; best elsewhere: {}.",
                    m.name,
                    wins + exceptions.len(),
                    exceptions.join(", ")
                )
            });
        }
    }
    out
}

/// At the smallest S: does η = 0 beat η = 1 and σ̂ (the paper's headline)?
fn small_s_comparison(rows: &[MetricRow], clip: bool) -> Vec<String> {
    let Some(&s) = steps(rows).first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for rival in ["1.0", "sigma_hat"] {
        let (mut wins, mut total, mut losses) = (0, 0, Vec::new());
        for tau in taus(rows) {
            for m in present(rows, &SAMPLE_QUALITY) {
                let (Some(a), Some(b)) = (
                    value(find(rows, &tau, "0.0", s, clip), &m),
                    value(find(rows, &tau, rival, s, clip), &m),
                ) else {
                    continue;
                };
                total += 1;
                if better(&m, a, b) {
                    wins += 1;
                } else {
                    losses.push(format!("{} ({tau} τ)", m.name));
                }
            }
        }
        if total > 0 {
            let detail = if losses.is_empty() {
                String::new()
            } else {
                format!("; it does not on {}", losses.join(", "))
            };
            out.push(format!(
                "At S = {s}, η = 0 beats {} on {wins} of {total} (metric, τ) pairs{detail}.",
                eta_label(rival)
            ));
        }
    }
    out
}

/// How reconstruction error falls with S (paper Table 2).
fn reconstruction(rows: &[MetricRow], clip: bool) -> Vec<String> {
    let mut out = Vec::new();
    let Some(eta) = etas(rows).into_iter().next() else {
        return out;
    };
    for tau in taus(rows) {
        let pts: Vec<(f64, f64)> = steps(rows)
            .into_iter()
            .filter_map(|s| Some((s as f64, value(find(rows, &tau, &eta, s, clip), &RECON)?)))
            .collect();
        let Some(slope) = loglog_slope(&pts) else {
            continue;
        };
        let rises: Vec<String> = pts
            .windows(2)
            .filter(|w| w[1].1 > w[0].1)
            .map(|w| format!("S = {} → {}", w[0].0, w[1].0))
            .collect();
        let monotone = if rises.is_empty() {
            "falls at every larger S".to_string()
        } else {
            format!("does not fall everywhere (rises at {})", rises.join(", "))
        };
        out.push(format!(
            "{tau} τ: reconstruction error {monotone}; fitted MSE ∝ S^{:.2}, i.e. ×{:.2} per doubling of S \
             (from {} at S = {} to {} at S = {}).",
            slope,
            2f64.powf(slope),
            format_value(pts[0].1),
            pts[0].0,
            format_value(pts[pts.len() - 1].1),
            pts[pts.len() - 1].0
        ));
    }
    out
}

/// Consistency at η = 0 vs S: the fitted order of the ODE solver, and η > 0 for contrast.
fn consistency(rows: &[MetricRow], clip: bool) -> Vec<String> {
    let mut out = Vec::new();
    for tau in taus(rows) {
        for (m, what) in [
            (CONSISTENCY, "the reference run"),
            (CONSISTENCY_EXACT, "the exact flow"),
        ] {
            let pts: Vec<(f64, f64)> = steps(rows)
                .into_iter()
                .filter_map(|s| Some((s as f64, value(find(rows, &tau, "0.0", s, clip), &m)?)))
                .filter(|p| p.1 > 0.0)
                .collect();
            let Some(slope) = loglog_slope(&pts) else {
                continue;
            };
            out.push(format!(
                "{tau} τ, η = 0: MSE to {what} ∝ S^{slope:.2}, so the distance shrinks like S^{:.2} \
                 (a first-order solver gives S^−1).",
                slope / 2.0
            ));
        }
        let s = steps(rows).into_iter().next();
        if let Some(s) = s {
            let at = |eta: &str| value(find(rows, &tau, eta, s, clip), &CONSISTENCY);
            let others: Vec<String> = etas(rows)
                .iter()
                .filter(|e| *e != "0.0")
                .filter_map(|e| Some(format!("{} for {}", format_value(at(e)?), eta_label(e))))
                .collect();
            if let (Some(zero), false) = (at("0.0"), others.is_empty()) {
                out.push(format!(
                    "{tau} τ, S = {s}: samples from the same x_T stay close to the reference at η = 0 \
                     (MSE {}) and drift at η > 0 ({}).",
                    format_value(zero),
                    others.join(", ")
                ));
            }
        }
    }
    out
}
