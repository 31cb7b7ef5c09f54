//! "What this run shows": statements derived from the numbers of a sweep, checked
//! against the paper's qualitative claims whichever way they come out (never hard-coded).

use super::claims::{Claim, Claims, Settled};
use super::differences::RIVALS;
use super::tables::{
    contrast, deciding, eta_by_steps, eta_label, etas, find, format_value, loglog_slope, steps, taus, MetricInfo,
    CONSISTENCY, CONSISTENCY_EXACT, RECON,
};
use crate::experiment::measure::names;
use crate::metrics::paired::Difference;
use crate::store::{MetricRow, FLOOR_ID};

/// S up to which the paper finds η = 0 best (its Table 1: S ≤ 50 … 100).
const SMALL_S: usize = 50;

fn value(r: Option<&MetricRow>, m: &MetricInfo) -> Option<f64> {
    r.and_then(|r| r.metrics.get(m.name).copied()).filter(|v| v.is_finite())
}

/// What the η values at one (τ, S) support, by the deciding metric's paired claims.
pub(crate) enum Ranking {
    /// One η is best: its claim against every other η holds.
    Best(String),
    /// The claim does not hold: the η with the best estimate first, then the others.
    Tied(Vec<String>),
}

/// The ranking of the η values at (τ, S, clip) under `m`, from the η table's best-cell
/// claim as settled in `claims`.
pub(crate) fn rank(
    rows: &[MetricRow],
    m: &MetricInfo,
    tau: &str,
    s: usize,
    clip: bool,
    claims: &Claims,
) -> Option<Ranking> {
    let table = eta_by_steps(rows, m, tau, clip);
    let j = steps(rows).iter().position(|&x| x == s)?;
    let (_, claim) = table.best_claim(j)?;
    let Claim::Best { best, rivals, .. } = &claim else {
        return None;
    };
    let eta_of = |id: &str| rows.iter().find(|r| r.point_id == id).map(|r| r.eta.clone());
    let best_eta = eta_of(best)?;
    Some(if claims.holds(&claim) {
        Ranking::Best(best_eta)
    } else {
        Ranking::Tied(
            std::iter::once(best_eta)
                .chain(rivals.iter().filter_map(|r| eta_of(r)))
                .collect(),
        )
    })
}

/// The statistic the floor statements rest on: KID where the data have classifier features,
/// else MMD² — unbiased, so a point at its floor has the true value 0 exactly, and with
/// intervals measured calibrated near 0 (README "Intervals") — else the first deciding
/// statistic.
pub fn floor_metric(rows: &[MetricRow]) -> Option<MetricInfo> {
    let deciding = deciding(rows);
    [names::KID, names::MMD2]
        .iter()
        .find_map(|n| deciding.iter().find(|m| m.name == *n).copied())
        .or_else(|| deciding.first().copied())
}

/// The claims behind "at the noise floor": every point against the floor set, under the
/// [`floor_metric`].
pub fn floor_claims(rows: &[MetricRow]) -> Vec<Claim> {
    let Some(m) = floor_metric(rows) else {
        return Vec::new();
    };
    rows.iter().map(|r| against_floor(&m, r)).collect()
}

/// θ(r) ≠ θ(floor set) under `m`.
fn against_floor(m: &MetricInfo, r: &MetricRow) -> Claim {
    Claim::Differ {
        metric: m.name,
        a: r.point_id.clone(),
        b: FLOOR_ID.into(),
    }
}

/// Every statement the numbers support, in report order (`rows`: DDIM's; `claims`: the
/// report's settled family, which holds every claim these statements use).
pub fn findings(rows: &[MetricRow], claims: &Claims) -> Vec<String> {
    let clip = rows.first().is_some_and(|r| r.clip_x0);
    let mut out = Vec::new();
    out.extend(what_decides(rows, claims));
    out.extend(eta_ordering(rows, clip, claims));
    out.extend(small_s_comparison(rows, clip, claims));
    out.extend(fidelity_and_diversity(rows, clip));
    out.extend(at_the_floor(rows, clip, claims));
    out.extend(reconstruction(rows, clip, claims));
    out.extend(consistency(rows, clip, claims));
    out
}

/// The report's families with their sizes ("320 on the η question …, 488 on …"), those
/// without a statement left out.
pub fn families_text(claims: &Claims) -> String {
    let parts: Vec<String> = (claims.families().iter())
        .filter(|(_, n)| *n > 0)
        .map(|(family, n)| format!("{n} on {}", family.describe()))
        .collect();
    match parts.len() {
        0 => "none".into(),
        1 => format!("one family: {}", parts[0]),
        k => format!("{k} families: {}", parts.join("; ")),
    }
}

/// Which statistics the statements rest on, and the family they were tested in.
fn what_decides(rows: &[MetricRow], claims: &Claims) -> Vec<String> {
    let names: Vec<&str> = deciding(rows).iter().map(|m| m.name).collect();
    if names.is_empty() {
        return vec!["No statistic decides (no sample statistics, or no intervals): nothing is ranked.".into()];
    }
    vec![format!(
        "Statements rest on {} — statistics whose expectation does not depend on the samples' diversity or \
         size — each through the paired bootstrap interval of a difference (the points share x_T, noise, \
         reference and resamples); reconstruction and consistency errors row by row (the sign test on the \
         held-out rows and the samples every point shares). The plug-in Fréchet distances and the sliced Wasserstein distance are shown, not \
         ranked. {} statements were tested, in {}; Holm's correction within each family keeps the chance of \
         any false one below 5 % per family; {} hold.",
        names.join(", "),
        claims.family_size(),
        families_text(claims),
        claims.holding()
    )]
}

/// Per τ and deciding metric: which η is best at each S ≤ 50 where its claim holds, and
/// where it does not, that the η values are not told apart.
fn eta_ordering(rows: &[MetricRow], clip: bool, claims: &Claims) -> Vec<String> {
    if etas(rows).len() < 2 {
        return Vec::new();
    }
    let small: Vec<usize> = steps(rows).into_iter().filter(|&s| s <= SMALL_S).collect();
    let mut out = Vec::new();
    for tau in taus(rows) {
        for m in deciding(rows) {
            let parts: Vec<String> = small
                .iter()
                .filter_map(|&s| {
                    Some(match rank(rows, &m, &tau, s, clip, claims)? {
                        Ranking::Best(e) => format!("S = {s}: {} best", eta_label(&e)),
                        Ranking::Tied(es) => format!(
                            "S = {s}: {} not told apart",
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

/// At the smallest S: does η = 0 beat η = 1 and σ̂ (the paper's headline), counting only
/// differences whose paired claims hold?
fn small_s_comparison(rows: &[MetricRow], clip: bool, claims: &Claims) -> Vec<String> {
    let Some(&s) = steps(rows).first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for rival in RIVALS {
        let (mut wins, mut losses, mut ties) = (Vec::new(), Vec::new(), Vec::new());
        for tau in taus(rows) {
            for m in deciding(rows) {
                let (Some(a), Some(b)) = (find(rows, &tau, "0.0", s, clip), find(rows, &tau, rival, s, clip)) else {
                    continue;
                };
                let Some(settled) = claims.get(&differ(&m, a, b)) else {
                    continue;
                };
                let Some(d) = settled.difference else { continue };
                let what = format!("{} ({tau} τ, Δ = {})", m.name, with_interval(&d));
                if !settled.holds {
                    ties.push(what);
                } else if (d.estimate < 0.0) == m.lower_better {
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
            "At S = {s}, η = 0 against {} on {total} (statistic, τ) pairs (Δ and its uncorrected 95 % interval): \
             better on {}{}; worse on {}{}; not told apart after Holm's correction on {}{}.",
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

/// At the smallest S, η = 0 against η = 1 on fidelity (precision) and diversity (recall),
/// per τ and space: the paired differences with their uncorrected 95 % intervals. The
/// k-NN statistics are descriptive (their intervals are conditional on the k-NN radii and
/// their coverage is not measured), so this names numbers, not claims.
fn fidelity_and_diversity(rows: &[MetricRow], clip: bool) -> Vec<String> {
    let Some(&s) = steps(rows).first() else {
        return Vec::new();
    };
    let pairs = [
        (names::PRECISION, names::RECALL, "data space"),
        (
            names::PRECISION_CLASSIFIER,
            names::RECALL_CLASSIFIER,
            "classifier features",
        ),
    ];
    let mut out = Vec::new();
    for tau in taus(rows) {
        let (Some(a), Some(b)) = (find(rows, &tau, "0.0", s, clip), find(rows, &tau, "1.0", s, clip)) else {
            continue;
        };
        let parts: Vec<String> = pairs
            .iter()
            .filter_map(|&(p, r, space)| {
                let show = |m: &'static str| -> Option<String> {
                    let d = contrast(m, a, b).1?;
                    Some(format!("{m} {}", with_interval(&d)))
                };
                Some(format!("{space}: {}, {}", show(p)?, show(r)?))
            })
            .collect();
        if !parts.is_empty() {
            out.push(format!(
                "Fidelity and diversity at S = {s}, {tau} τ, η = 0 − η = 1 (paired, uncorrected 95 % intervals; \
                 precision measures fidelity, recall diversity; descriptive, not ranked): {}.",
                parts.join("; ")
            ));
        }
    }
    out
}

/// Which points cannot be told from real data under the [`floor_metric`]: their paired
/// difference to the floor set does not hold.
fn at_the_floor(rows: &[MetricRow], clip: bool, claims: &Claims) -> Vec<String> {
    let Some(m) = floor_metric(rows) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for tau in taus(rows) {
        let mut judged = 0;
        let at: Vec<String> = steps(rows)
            .into_iter()
            .flat_map(|s| etas(rows).into_iter().map(move |e| (s, e)))
            .filter_map(|(s, e)| {
                let r = find(rows, &tau, &e, s, clip)?;
                let settled = claims.get(&against_floor(&m, r)).filter(|c| c.p.is_finite())?;
                judged += 1;
                (!settled.holds).then(|| format!("{} at S = {s}", eta_label(&e)))
            })
            .collect();
        if judged == 0 {
            continue;
        }
        out.push(if at.is_empty() {
            format!(
                "{tau} τ, {}: every point differs from the noise floor (paired, after correction): all are told \
                 apart from real data.",
                m.name
            )
        } else {
            format!(
                "{tau} τ, {}: not told apart from the noise floor (paired difference to the floor set, after \
                 correction), i.e. indistinguishable from real data at this sample size: {}.",
                m.name,
                at.join(", ")
            )
        });
    }
    out
}

/// The claims behind the statements about reconstruction and consistency (paper Table 2,
/// §5.3), a family of their own: per τ, the reconstruction error at each S against the next
/// smaller S (at the first η's rows, which carry the shared reconstruction), and at the
/// smallest S the distance to the consistency reference of every η > 0 against η = 0.
pub fn across_s_claims(rows: &[MetricRow]) -> Vec<Claim> {
    let clip = rows.first().is_some_and(|r| r.clip_x0);
    let mut out = Vec::new();
    for tau in taus(rows) {
        let pts = reconstruction_points(rows, &tau, clip);
        out.extend(pts.windows(2).map(|w| differ(&RECON, w[1].2, w[0].2)));
        if let Some(drift) = drift_points(rows, &tau, clip) {
            out.extend(drift.others.iter().map(|(_, r)| differ(&CONSISTENCY, r, drift.zero)));
        }
    }
    out
}

/// (S, mean error, row) of τ's reconstruction at every S that has one, at the first η's
/// rows (every η row of an S carries the same, shared reconstruction).
fn reconstruction_points<'a>(rows: &'a [MetricRow], tau: &str, clip: bool) -> Vec<(f64, f64, &'a MetricRow)> {
    let Some(eta) = etas(rows).into_iter().next() else {
        return Vec::new();
    };
    (steps(rows).into_iter())
        .filter_map(|s| {
            let r = find(rows, tau, &eta, s, clip)?;
            Some((s as f64, value(Some(r), &RECON)?, r))
        })
        .collect()
}

/// At τ's smallest S, the rows that measure consistency: η = 0's and every η > 0's.
struct Drift<'a> {
    /// The smallest S.
    s: usize,
    /// η = 0's row.
    zero: &'a MetricRow,
    /// Every η > 0 (its label as in the rows) with its row.
    others: Vec<(String, &'a MetricRow)>,
}

/// The [`Drift`] rows of τ, where η = 0 measures consistency at the smallest S.
fn drift_points<'a>(rows: &'a [MetricRow], tau: &str, clip: bool) -> Option<Drift<'a>> {
    let s = steps(rows).into_iter().next()?;
    let measured = |eta: &str| find(rows, tau, eta, s, clip).filter(|r| value(Some(r), &CONSISTENCY).is_some());
    let zero = measured("0.0")?;
    let others = (etas(rows).into_iter())
        .filter(|e| e != "0.0")
        .filter_map(|e| Some((e.clone(), measured(&e)?)))
        .collect();
    Some(Drift { s, zero, others })
}

/// θ(a) ≠ θ(b) under `m`.
fn differ(m: &MetricInfo, a: &MetricRow, b: &MetricRow) -> Claim {
    Claim::Differ {
        metric: m.name,
        a: a.point_id.clone(),
        b: b.point_id.clone(),
    }
}

/// "Δ [lo, hi]" of a settled difference.
fn with_interval(d: &Difference) -> String {
    format!(
        "{} [{}, {}]",
        format_value(d.estimate),
        format_value(d.interval.lo),
        format_value(d.interval.hi)
    )
}

/// How reconstruction error falls with S (paper Table 2): each step to the next larger S
/// by its settled claim ([`across_s_claims`], the sign test), and the fitted exponent.
fn reconstruction(rows: &[MetricRow], clip: bool, claims: &Claims) -> Vec<String> {
    let statement = |tau: String| -> Option<String> {
        let pts = reconstruction_points(rows, &tau, clip);
        let slope = loglog_slope(&pts.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>())?;
        let (first, last) = (pts[0], pts[pts.len() - 1]);
        Some(format!(
            "{tau} τ: reconstruction error {}; fitted MSE ∝ S^{slope:.2}, i.e. ×{:.2} per doubling of S (from {} at \
             S = {} to {} at S = {}).",
            reconstruction_steps(&pts, claims),
            2f64.powf(slope),
            format_value(first.1),
            first.0,
            format_value(last.1),
            last.0,
        ))
    };
    taus(rows).into_iter().filter_map(statement).collect()
}

/// What the settled claims say of each step of `pts` (S, error, row) to the next larger S.
fn reconstruction_steps(pts: &[(f64, f64, &MetricRow)], claims: &Claims) -> String {
    let (mut falls, mut rises, mut ties) = (0, Vec::new(), Vec::new());
    for w in pts.windows(2) {
        let step = format!("S = {} → {}", w[0].0, w[1].0);
        match claims.get(&differ(&RECON, w[1].2, w[0].2)) {
            Some(Settled {
                holds,
                difference: Some(d),
                ..
            }) => match (holds, d.estimate < 0.0) {
                (true, true) => falls += 1,
                (true, false) => rises.push(format!("{step}: median Δ = {}", with_interval(d))),
                (false, _) => ties.push(format!("{step}: median Δ = {}", with_interval(d))),
            },
            _ => ties.push(format!("{step}: no interval")),
        }
    }
    let held_out = pts[0].2.rows.get(RECON.name).map_or(0, Vec::len);
    let test = format!("sign test on the {held_out} held-out rows, after correction");
    if rises.is_empty() && ties.is_empty() {
        return format!("falls at every larger S ({test}, at each step)");
    }
    let list = |what: &str, v: &[String]| match v.is_empty() {
        true => String::new(),
        false => format!("; {what} {}", v.join(", ")),
    };
    format!(
        "falls at {falls} of {} steps to a larger S ({test}){}{}",
        pts.len() - 1,
        list("not told apart at", &ties),
        list("rises at", &rises),
    )
}

/// Consistency at η = 0 vs S: the fitted order of the ODE solver, and at the smallest S each
/// η > 0 against η = 0 by its settled claim ([`across_s_claims`], the sign test).
fn consistency(rows: &[MetricRow], clip: bool, claims: &Claims) -> Vec<String> {
    let mut out = Vec::new();
    for tau in taus(rows) {
        for (m, what) in [
            (CONSISTENCY, "the reference run"),
            (CONSISTENCY_EXACT, "the exact flow"),
        ] {
            let pts: Vec<(f64, f64)> = (steps(rows).into_iter())
                .filter_map(|s| Some((s as f64, value(find(rows, &tau, "0.0", s, clip), &m)?)))
                .filter(|p| p.1 > 0.0)
                .collect();
            let Some(slope) = loglog_slope(&pts) else {
                continue;
            };
            out.push(format!(
                "{tau} τ, η = 0: MSE to {what} ∝ S^{slope:.2}, so the distance shrinks like S^{:.2} (a first-order \
                 solver gives S^−1).",
                slope / 2.0
            ));
        }
        out.extend(drift_at_small_s(rows, &tau, clip, claims));
    }
    out
}

/// At the smallest S, the η > 0 points whose samples are farther from the consistency
/// reference than η = 0's, sample by sample, by their settled claims.
fn drift_at_small_s(rows: &[MetricRow], tau: &str, clip: bool, claims: &Claims) -> Option<String> {
    let Drift { s, zero, others } = drift_points(rows, tau, clip)?;
    let (mut farther, mut other) = (Vec::new(), Vec::new());
    for (eta, r) in &others {
        let Some(settled) = claims.get(&differ(&CONSISTENCY, r, zero)) else {
            continue;
        };
        let Some(d) = &settled.difference else { continue };
        let item = format!("{} {}", eta_label(eta), with_interval(d));
        match settled.holds && d.estimate > 0.0 {
            true => farther.push(item),
            false => other.push(item),
        }
    }
    if farther.is_empty() && other.is_empty() {
        return None;
    }
    Some(format!(
        "{tau} τ, S = {s}: samples from the same x_T stay at MSE {} from the reference at η = 0; sample by sample \
         (sign test on the {} samples; the median difference η − η = 0 with its 95 % interval) they are farther \
         from it, after correction, for {}{}.",
        format_value(value(Some(zero), &CONSISTENCY).unwrap_or(f64::NAN)),
        zero.rows.get(CONSISTENCY.name).map_or(0, Vec::len),
        match farther.is_empty() {
            true => "none".to_string(),
            false => farther.join(", "),
        },
        match other.is_empty() {
            true => String::new(),
            false => format!("; not farther (or not told apart) for {}", other.join(", ")),
        }
    ))
}
