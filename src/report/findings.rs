//! "What this run shows": statements derived from the numbers of a sweep, checked
//! against the paper's qualitative claims whichever way they come out (never hard-coded).

use std::collections::BTreeMap;

use super::tables::{
    eta_label, etas, find, format_value, interval_of, loglog_slope, present, steps, taus, MetricInfo, CONSISTENCY,
    CONSISTENCY_EXACT, RECON, SAMPLE_QUALITY,
};
use crate::metrics::bootstrap::Interval;
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

/// A value with its interval (none when the sweep ran without intervals).
#[derive(Clone, Copy)]
struct Estimate {
    value: f64,
    interval: Option<Interval>,
}

impl Estimate {
    fn of(r: Option<&MetricRow>, m: &MetricInfo) -> Option<Self> {
        let r = r?;
        Some(Self {
            value: value(Some(r), m)?,
            interval: interval_of(&r.metrics, m.name),
        })
    }

    /// Told apart from `other`: both intervals known and disjoint (without intervals,
    /// never: a difference without its uncertainty supports no claim).
    fn separated(&self, other: &Estimate) -> bool {
        matches!((self.interval, other.interval), (Some(a), Some(b)) if a.separated(&b))
    }
}

/// What the η values at one (τ, S) support.
pub(crate) enum Ranking {
    /// One η is best, and its interval separates from every other η's.
    Best(String),
    /// The best η's interval overlaps these η's (best first).
    Tied(Vec<String>),
}

pub(crate) fn rank(rows: &[MetricRow], m: &MetricInfo, tau: &str, s: usize, clip: bool) -> Option<Ranking> {
    let est: Vec<(String, Estimate)> = etas(rows)
        .into_iter()
        .filter_map(|e| Some((e.clone(), Estimate::of(find(rows, tau, &e, s, clip), m)?)))
        .collect();
    if est.len() < 2 {
        return None;
    }
    let best = est
        .iter()
        .reduce(|a, b| if better(m, b.1.value, a.1.value) { b } else { a })?;
    let ties: Vec<String> = est
        .iter()
        .filter(|(e, x)| *e != best.0 && !best.1.separated(x))
        .map(|(e, _)| e.clone())
        .collect();
    Some(if ties.is_empty() {
        Ranking::Best(best.0.clone())
    } else {
        Ranking::Tied(std::iter::once(best.0.clone()).chain(ties).collect())
    })
}

/// Every statement the numbers support, in report order; `floor` is the noise-floor row.
pub fn findings(rows: &[MetricRow], floor: &BTreeMap<String, f64>) -> Vec<String> {
    let clip = rows.first().is_some_and(|r| r.clip_x0);
    let mut out = Vec::new();
    out.extend(eta_ordering(rows, clip));
    out.extend(small_s_comparison(rows, clip));
    out.extend(at_the_floor(rows, floor, clip));
    out.extend(reconstruction(rows, clip));
    out.extend(consistency(rows, clip));
    out
}

fn ranked_metrics(rows: &[MetricRow]) -> Vec<MetricInfo> {
    present(rows, &SAMPLE_QUALITY)
        .into_iter()
        .filter(|m| m.ranked)
        .collect()
}

/// Per τ and metric: which η is best at each S ≤ 50 where the intervals separate, and
/// where they do not, that the η values are indistinguishable at this sample size.
fn eta_ordering(rows: &[MetricRow], clip: bool) -> Vec<String> {
    if etas(rows).len() < 2 {
        return Vec::new();
    }
    let small: Vec<usize> = steps(rows).into_iter().filter(|&s| s <= SMALL_S).collect();
    let mut out = Vec::new();
    for tau in taus(rows) {
        for m in ranked_metrics(rows) {
            let parts: Vec<String> = small
                .iter()
                .filter_map(|&s| {
                    Some(match rank(rows, &m, &tau, s, clip)? {
                        Ranking::Best(e) => format!("S = {s}: {} best", eta_label(&e)),
                        Ranking::Tied(es) => format!(
                            "S = {s}: {} indistinguishable at this sample size",
                            es.iter().map(|e| eta_label(e)).collect::<Vec<_>>().join(" ≈ ")
                        ),
                    })
                })
                .collect();
            if !parts.is_empty() {
                out.push(format!("{tau} τ, {}: {}.", m.name, parts.join("; ")));
            }
        }
    }
    out
}

/// At the smallest S: does η = 0 beat η = 1 and σ̂ (the paper's headline), counting
/// only differences whose intervals separate?
fn small_s_comparison(rows: &[MetricRow], clip: bool) -> Vec<String> {
    let Some(&s) = steps(rows).first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for rival in ["1.0", "sigma_hat"] {
        let (mut wins, mut losses, mut ties) = (Vec::new(), Vec::new(), Vec::new());
        for tau in taus(rows) {
            for m in ranked_metrics(rows) {
                let (Some(a), Some(b)) = (
                    Estimate::of(find(rows, &tau, "0.0", s, clip), &m),
                    Estimate::of(find(rows, &tau, rival, s, clip), &m),
                ) else {
                    continue;
                };
                let what = format!("{} ({tau} τ)", m.name);
                if !a.separated(&b) {
                    ties.push(what);
                } else if better(&m, a.value, b.value) {
                    wins.push(what);
                } else {
                    losses.push(what);
                }
            }
        }
        let total = wins.len() + losses.len() + ties.len();
        if total == 0 {
            continue;
        }
        let list = |v: &[String]| {
            if v.is_empty() {
                String::new()
            } else {
                format!(": {}", v.join(", "))
            }
        };
        out.push(format!(
            "At S = {s}, η = 0 against {} on {total} (metric, τ) pairs: better with separated intervals on {}{}; \
             worse on {}{}; indistinguishable at this sample size on {}{}.",
            eta_label(rival),
            wins.len(),
            list(&wins),
            losses.len(),
            list(&losses),
            ties.len(),
            list(&ties),
        ));
    }
    out
}

/// Which points of the headline metric cannot be told from real data: their interval
/// overlaps the noise floor's.
fn at_the_floor(rows: &[MetricRow], floor: &BTreeMap<String, f64>, clip: bool) -> Vec<String> {
    let Some(m) = ranked_metrics(rows).into_iter().next() else {
        return Vec::new();
    };
    let (Some(&fv), Some(fi)) = (floor.get(m.name), interval_of(floor, m.name)) else {
        return Vec::new();
    };
    let f = Estimate {
        value: fv,
        interval: Some(fi),
    };
    let mut out = Vec::new();
    for tau in taus(rows) {
        let at: Vec<String> = steps(rows)
            .into_iter()
            .flat_map(|s| etas(rows).into_iter().map(move |e| (s, e)))
            .filter(|(s, e)| Estimate::of(find(rows, &tau, e, *s, clip), &m).is_some_and(|x| !x.separated(&f)))
            .map(|(s, e)| format!("{} at S = {s}", eta_label(&e)))
            .collect();
        out.push(if at.is_empty() {
            format!(
                "{tau} τ, {}: every point is separated from the noise floor ({} ± {}): all are told apart from \
                 real data.",
                m.name,
                format_value(fv),
                format_value(fi.half_width())
            )
        } else {
            format!(
                "{tau} τ, {}: at the noise floor ({} ± {}), i.e. indistinguishable from real data at this sample \
                 size: {}.",
                m.name,
                format_value(fv),
                format_value(fi.half_width()),
                at.join(", ")
            )
        });
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
