//! The samplers at equal NFE: each solver's quality against its model evaluations (DDIM at
//! η = 0 unclipped against PLMS, DPM-Solver++(2M) and Heun), and each solver's fitted
//! convergence order, error ∝ NFE^(−p).

use std::path::{Path, PathBuf};

use super::figures::{line_chart, Series};
use super::tables::{
    loglog_slope, present, s_columns, steps, taus, MetricInfo, Table, CONSISTENCY, CONSISTENCY_EXACT, SAMPLE_QUALITY,
};
use crate::error::Result;
use crate::sampler::{Eta, SamplerKind};
use crate::store::MetricRow;

/// The rows that stand for each solver present, in [`SamplerKind`] order: DDIM's at η = 0
/// without clipping (the deterministic DDIM), every row of the others.
pub(super) fn by_sampler(rows: &[MetricRow]) -> Vec<(SamplerKind, Vec<&MetricRow>)> {
    let ddim_eta = Eta::DDIM.to_string();
    SamplerKind::ALL
        .iter()
        .map(|&k| {
            let mine = rows
                .iter()
                .filter(|r| r.sampler == k.name() && (k != SamplerKind::Ddim || (r.eta == ddim_eta && !r.clip_x0)))
                .collect();
            (k, mine)
        })
        .filter(|(_, v): &(SamplerKind, Vec<&MetricRow>)| !v.is_empty())
        .collect()
}

/// The label of a solver's row, with its NFE per S.
pub fn label(kind: SamplerKind) -> &'static str {
    match kind {
        SamplerKind::Ddim => "DDIM, η = 0 (NFE = S)",
        SamplerKind::Plms => "PLMS (NFE = S + 1)",
        SamplerKind::Ipndm => "iPNDM (NFE = S)",
        SamplerKind::Dpmpp2m => "DPM-Solver++(2M) (NFE = S)",
        SamplerKind::Dpmpp3m => "DPM-Solver++(3M) (NFE = S)",
        SamplerKind::Dpmpp2mSde => "DPM-Solver++(2M) SDE (NFE = S)",
        SamplerKind::Unipc => "UniPC-2, bh2 (NFE = S)",
        SamplerKind::Unipc3 => "UniPC-3, bh2 (NFE = S)",
        SamplerKind::Euler => "Euler (NFE = S)",
        SamplerKind::Heun => "Heun (NFE = 2S − 1)",
    }
}

/// Whether the sweep ran more than one solver.
pub fn compares_samplers(rows: &[MetricRow]) -> bool {
    by_sampler(rows).len() > 1
}

/// One metric for one τ kind: rows the solvers, columns `steps`; the best solver of a
/// column is a claim of the report (deciding metrics).
pub fn samplers_by_steps(rows: &[MetricRow], metric: &MetricInfo, tau: &str, steps: &[usize]) -> Table {
    let mut table = Table::new(
        format!("{}_samplers_{tau}", metric.name),
        format!("{} — samplers, {tau} τ", metric.label),
        s_columns(steps),
    );
    table.ranking = metric.decides.then_some((metric.name, metric.lower_better));
    for (kind, mine) in by_sampler(rows) {
        let cells: Vec<Option<&MetricRow>> = steps
            .iter()
            .map(|&s| mine.iter().copied().find(|r| r.tau == tau && r.steps == s))
            .collect();
        table.push_points(label(kind).to_string(), &cells, metric.name);
    }
    table
}

/// Why a sweep without the exact error has no fitted orders (report text).
pub const NO_ORDERS: &str = "No fitted orders: the error is known exactly only for a single-Gaussian oracle (see \
     `experiments/gauss2d.yaml`); against the DDIM consistency reference, the reference's own error would floor \
     the higher-order solvers.";

/// p of error ∝ NFE^(−p) for each solver and τ kind, as report lines: fitted by least
/// squares to log √MSE against log NFE over all the solver's points, and between its two
/// largest S (the asymptotic estimate; the smallest S are often pre-asymptotic). Only
/// where the error is known exactly (`consistency_exact_mse`, single-Gaussian oracle; no
/// lines otherwise, see [`NO_ORDERS`]): against a DDIM consistency reference, that
/// reference's own O(1/S) error would floor the higher-order solvers and the fitted p
/// would say nothing about them.
pub fn fitted_orders(rows: &[MetricRow]) -> Vec<String> {
    if present(rows, &[CONSISTENCY_EXACT]).is_empty() {
        return Vec::new();
    }
    let mut lines = Vec::new();
    for tau in taus(rows) {
        let orders: Vec<String> = by_sampler(rows)
            .into_iter()
            .filter_map(|(kind, mine)| {
                let mut points: Vec<(f64, f64)> = mine
                    .iter()
                    .filter(|r| r.tau == tau)
                    .filter_map(|r| Some((r.nfe as f64, r.metrics.get(CONSISTENCY_EXACT.name)?.sqrt())))
                    .collect();
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                let all = loglog_slope(&points)?;
                let last = loglog_slope(&points[points.len().saturating_sub(2)..])?;
                Some(format!(
                    "{} p = {:.2} ({:.2} at the two largest S)",
                    kind.name(),
                    -all,
                    -last
                ))
            })
            .collect();
        if !orders.is_empty() {
            lines.push(format!(
                "Fitted order on {tau} τ (√MSE to the exact S → ∞ limit ∝ NFE^(−p), least squares over the \
                 swept S): {}.",
                orders.join(", ")
            ));
        }
    }
    lines
}

/// The metrics the solvers are compared by: the sample-quality ones, then the errors.
fn compared_metrics(rows: &[MetricRow]) -> Vec<MetricInfo> {
    let mut metrics = present(rows, &SAMPLE_QUALITY);
    metrics.extend(present(rows, &[CONSISTENCY_EXACT, CONSISTENCY]));
    metrics
}

/// Quality against NFE, one line per solver, per quality metric, error metric and τ kind.
pub fn figures(rows: &[MetricRow], out: &Path) -> Result<Vec<PathBuf>> {
    let metrics = compared_metrics(rows);
    let mut figures = Vec::new();
    for tau in taus(rows) {
        for m in &metrics {
            let series: Vec<Series> = by_sampler(rows)
                .into_iter()
                .map(|(kind, mine)| Series {
                    label: label(kind).to_string(),
                    points: mine
                        .iter()
                        .filter(|r| r.tau == tau)
                        .filter_map(|r| Some((r.nfe as f64, *r.metrics.get(m.name)?)))
                        .collect(),
                    band: Vec::new(),
                })
                .collect();
            let stem = out.join(format!("{}_samplers_{tau}", m.name));
            let log_y = m.name == CONSISTENCY.name || m.name == CONSISTENCY_EXACT.name;
            line_chart(
                &stem,
                &format!("{} vs NFE — {tau} τ", m.label),
                "NFE (model evaluations)",
                m.name,
                &series,
                true,
                log_y,
            )?;
            figures.push(stem);
        }
    }
    Ok(figures)
}

/// Every samplers table over the swept S (`grid`; the equal-NFE points have their own
/// section): the quality metrics, then the error metrics.
pub fn tables(rows: &[MetricRow], grid: &[usize]) -> Vec<Table> {
    let metrics = compared_metrics(rows);
    let grid: Vec<usize> = steps(rows).into_iter().filter(|s| grid.contains(s)).collect();
    taus(rows)
        .iter()
        .flat_map(|tau| {
            metrics
                .iter()
                .map(|m| samplers_by_steps(rows, m, tau, &grid))
                .collect::<Vec<_>>()
        })
        .collect()
}
