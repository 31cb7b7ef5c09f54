//! The low-NFE section: every solver on every step schedule at the sweep's equal-NFE
//! targets (`sweep.nfe`, e.g. 5, 10, 20), where the field compares samplers today. Each
//! cell is the point of that solver and τ kind with the most model evaluations not above
//! the target (the point the plan added for it), so a column compares passes of at most
//! the same cost; the best of a column is a paired claim of the report.

use super::samplers::{by_sampler, label};
use super::tables::{deciding, present, MetricInfo, Table, CONSISTENCY, CONSISTENCY_EXACT, SAMPLE_QUALITY};
use crate::experiment::measure::names;
use crate::sampler::SamplerKind;
use crate::schedule::TauKind;
use crate::store::MetricRow;

/// What the section compares: the targets, and the τ kinds and solvers of its points
/// (`sweep.low_nfe`).
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// The NFE targets.
    pub nfe: Vec<usize>,
    /// τ kinds, in row order.
    pub tau: Vec<TauKind>,
    /// Solvers, in row order.
    pub samplers: Vec<SamplerKind>,
}

impl Targets {
    /// The low-NFE targets of a sweep (`None`: it has none).
    pub fn of(sweep: &crate::experiment::sweep::SweepSpec) -> Option<Self> {
        (!sweep.low_nfe_targets().is_empty()).then(|| Self {
            nfe: sweep.low_nfe_targets().to_vec(),
            tau: sweep.low_nfe_tau(),
            samplers: sweep.low_nfe_samplers(),
        })
    }
}

/// The statistics of the section: the deciding ones, fidelity and diversity (precision,
/// recall) in each space, then the error to the exact limit or the reference where known.
fn metrics(rows: &[MetricRow]) -> Vec<MetricInfo> {
    let mut out = deciding(rows);
    let split = [
        names::PRECISION_CLASSIFIER,
        names::RECALL_CLASSIFIER,
        names::PRECISION,
        names::RECALL,
    ];
    let fidelity: Vec<MetricInfo> = SAMPLE_QUALITY
        .iter()
        .copied()
        .filter(|m| split.contains(&m.name))
        .collect();
    out.extend(present(rows, &fidelity));
    out.extend(present(rows, &[CONSISTENCY_EXACT, CONSISTENCY]));
    out
}

/// The row with the largest NFE ≤ `target` among `rows`.
fn at_most<'a>(rows: &[&'a MetricRow], target: usize) -> Option<&'a MetricRow> {
    rows.iter()
        .copied()
        .filter(|r| r.nfe <= target)
        .max_by_key(|r| (r.nfe, r.steps))
}

/// One table per compared metric: rows every (solver, τ kind) of `targets`, columns the
/// NFE targets; each row label carries the NFE its cells actually used.
pub fn tables(rows: &[MetricRow], targets: &Targets) -> Vec<Table> {
    let columns: Vec<String> = targets.nfe.iter().map(|n| format!("NFE ≤ {n}")).collect();
    metrics(rows)
        .iter()
        .map(|m| table(rows, m, targets, &columns))
        .collect()
}

fn table(rows: &[MetricRow], metric: &MetricInfo, targets: &Targets, columns: &[String]) -> Table {
    let mut table = Table::new(
        format!("{}_low_nfe", metric.name),
        format!("{} — every solver and step schedule at equal NFE", metric.label),
        columns.to_vec(),
    );
    table.ranking = metric.decides.then_some((metric.name, metric.lower_better));
    for (kind, mine) in by_sampler(rows)
        .into_iter()
        .filter(|(k, _)| targets.samplers.contains(k))
    {
        for tau in targets.tau.iter().map(|t| t.name()) {
            let on_tau: Vec<&MetricRow> = mine.iter().copied().filter(|r| r.tau == tau).collect();
            let cells: Vec<Option<&MetricRow>> = targets.nfe.iter().map(|&n| at_most(&on_tau, n)).collect();
            if cells.iter().all(Option::is_none) {
                continue;
            }
            let used: Vec<String> = cells
                .iter()
                .map(|c| c.map_or("-".into(), |r| r.nfe.to_string()))
                .collect();
            let row_label = format!("{}, {tau} τ (NFE {})", label(kind), used.join(" / "));
            table.push_points(row_label, &cells, metric.name);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(sampler: &str, tau: &str, steps: usize, nfe: usize, value: f64) -> MetricRow {
        let mut r = MetricRow::empty();
        r.sampler = sampler.into();
        r.tau = tau.into();
        r.steps = steps;
        r.nfe = nfe;
        r.eta = if sampler == "ddim" { "0.0".into() } else { "-".into() };
        r.metrics.insert("mmd2".into(), value);
        r
    }

    /// Each cell takes the point with the most evaluations within the target; a solver
    /// with no point within a target has an empty cell, and one with none at all no row.
    #[test]
    fn cells_take_the_largest_nfe_within_the_target() {
        let rows = vec![
            row("ddim", "karras", 5, 5, 0.5),
            row("ddim", "karras", 10, 10, 0.1),
            row("heun", "karras", 3, 5, 0.4),
            row("heun", "karras", 5, 9, 0.2),
            row("heun", "karras", 10, 19, 0.01),
        ];
        let targets = Targets {
            nfe: vec![5, 10],
            tau: vec![TauKind::Karras, TauKind::Linear],
            samplers: vec![SamplerKind::Ddim, SamplerKind::Heun],
        };
        let t = tables(&rows, &targets);
        let mmd = t.iter().find(|t| t.name == "mmd2_low_nfe").expect("an MMD² table");
        assert_eq!(mmd.columns, vec!["NFE ≤ 5", "NFE ≤ 10"]);
        assert_eq!(mmd.rows.len(), 2);
        assert!(
            mmd.rows[0].0.contains("DDIM") && mmd.rows[0].0.contains("NFE 5 / 10"),
            "{}",
            mmd.rows[0].0
        );
        assert!(
            mmd.rows[1].0.contains("Heun") && mmd.rows[1].0.contains("NFE 5 / 9"),
            "{}",
            mmd.rows[1].0
        );
        assert_eq!(mmd.rows[1].1, vec![Some(0.4), Some(0.2)]);
        // Only the section's solvers.
        let ddim_only = Targets {
            samplers: vec![SamplerKind::Ddim],
            ..targets
        };
        assert_eq!(tables(&rows, &ddim_only)[0].rows.len(), 1);
    }
}
