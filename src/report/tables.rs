//! Paper-layout tables built from the metric rows of a sweep (pure: rows in, tables out).
//!
//! Table 1 of the paper: rows η ∈ {0.0, 0.2, 0.5, 1.0, σ̂}, columns S, one table per τ
//! kind and sample-quality metric. Table 2: reconstruction error vs S.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::experiment::measure::names;
use crate::metrics::bootstrap::Interval;
use crate::store::MetricRow;

/// A metric the report knows how to present.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricInfo {
    /// Column name in `metrics.parquet`.
    pub name: &'static str,
    /// What it is, for table titles.
    pub label: &'static str,
    /// Smaller is better (false: larger is better, e.g. PSNR).
    pub lower_better: bool,
    /// Tables mark a best cell (false: the ideal is a target value, e.g. 1 for nn_ratio).
    pub ranked: bool,
}

/// Sample-quality metrics, in the order the report shows them (Table 1's role).
pub const SAMPLE_QUALITY: [MetricInfo; 8] = [
    MetricInfo {
        name: names::FD_CLASSIFIER,
        label: "Fréchet distance in classifier features (FID analogue)",
        lower_better: true,
        ranked: true,
    },
    MetricInfo {
        name: names::FD,
        label: "Fréchet distance (data space)",
        lower_better: true,
        ranked: true,
    },
    MetricInfo {
        name: names::MMD2,
        label: "MMD² (unbiased, RBF, median bandwidth)",
        lower_better: true,
        ranked: true,
    },
    MetricInfo {
        name: names::SWD,
        label: "sliced Wasserstein-2 distance",
        lower_better: true,
        ranked: true,
    },
    MetricInfo {
        name: names::MASS_ERROR,
        label: "mixture mass error (total variation to the true weights)",
        lower_better: true,
        ranked: true,
    },
    MetricInfo {
        name: names::LABEL_TV,
        label: "predicted-label histogram, total variation to uniform",
        lower_better: true,
        ranked: true,
    },
    MetricInfo {
        name: names::CONFIDENCE,
        label: "classifier's mean top-class probability (Inception-Score analogue)",
        lower_better: false,
        ranked: true,
    },
    MetricInfo {
        name: names::NN_RATIO,
        label: "distance to the nearest training point ÷ the floor set's (memorisation: ≪ 1 copies)",
        lower_better: false,
        ranked: false,
    },
];

/// Reconstruction error (Table 2).
pub const RECON: MetricInfo = MetricInfo {
    name: names::RECON_MSE,
    label: "reconstruction MSE per dimension, [0, 1] scale",
    lower_better: true,
    ranked: true,
};

/// Distance to the consistency reference (§5.3).
pub const CONSISTENCY: MetricInfo = MetricInfo {
    name: names::CONSISTENCY_MSE,
    label: "MSE to the reference x_0 from the same x_T, [0, 1] scale",
    lower_better: true,
    ranked: true,
};

/// Distance to the exact S → ∞ limit (single-Gaussian oracle).
pub const CONSISTENCY_EXACT: MetricInfo = MetricInfo {
    name: names::CONSISTENCY_EXACT_MSE,
    label: "MSE to the exact S → ∞ limit (flow to t = 0, then x̂_0), [0, 1] scale",
    lower_better: true,
    ranked: true,
};

/// A table: labelled rows of optional numbers under labelled columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// File stem for `tables/<name>.csv`.
    pub name: String,
    /// Heading in the report.
    pub title: String,
    /// Header of the label column (e.g. "η").
    pub row_header: String,
    /// Column headers (e.g. "S = 10").
    pub columns: Vec<String>,
    /// Row label and one cell per column.
    pub rows: Vec<LabelledRow>,
    /// Cells to mark with † (NFE < S: repeated timesteps were dropped).
    pub marked: Vec<Vec<bool>>,
    /// Bold the best cell of each column (smaller is better when true); with intervals,
    /// only where its interval separates from every other row's.
    pub best: Option<bool>,
    /// The 95 % interval of each cell, where known (empty: no intervals).
    pub intervals: Vec<Vec<Option<Interval>>>,
    /// The last row is the noise floor (real data against the reference): shown, never bold.
    pub floor: bool,
    /// Further cells (row, column) to set in bold (rankings made outside the table).
    pub bold: Vec<(usize, usize)>,
}

/// The label of the noise-floor row.
pub const FLOOR_LABEL: &str = "noise floor (real vs real)";

/// The interval of `metric` stored with a row's metrics (`<name>_lo`, `<name>_hi`).
pub fn interval_of(metrics: &std::collections::BTreeMap<String, f64>, metric: &str) -> Option<Interval> {
    let lo = *metrics.get(&format!("{metric}_lo"))?;
    let hi = *metrics.get(&format!("{metric}_hi"))?;
    (lo.is_finite() && hi.is_finite()).then_some(Interval { lo, hi })
}

/// Formats a metric value with four significant digits.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "∞" } else { "−∞" }.into()
    } else if v == 0.0 {
        "0".into()
    } else if (1e-3..1e4).contains(&v.abs()) {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

impl Table {
    /// The interval of cell (i, j), if known.
    pub fn interval(&self, i: usize, j: usize) -> Option<Interval> {
        self.intervals.get(i).and_then(|r| r.get(j).copied().flatten())
    }

    /// The row of the best cell of column j (`None`: no ranking, or with intervals, no
    /// cell whose interval separates from every other's). The floor row never competes.
    fn best_row(&self, j: usize) -> Option<usize> {
        let lower = self.best?;
        let rows = self.rows.len() - usize::from(self.floor);
        let candidates: Vec<(usize, f64)> = (0..rows)
            .filter_map(|i| Some((i, self.rows[i].1[j]?)))
            .filter(|(_, v)| v.is_finite())
            .collect();
        if candidates.len() < 2 {
            return None;
        }
        let (best, _) = candidates
            .iter()
            .copied()
            .reduce(|a, b| if (b.1 < a.1) == lower && b.1 != a.1 { b } else { a })?;
        match self.interval(best, j) {
            None if self.intervals.is_empty() => Some(best),
            None => None,
            Some(ib) => candidates
                .iter()
                .filter(|(i, _)| *i != best)
                .all(|(i, _)| self.interval(*i, j).is_some_and(|o| ib.separated(&o)))
                .then_some(best),
        }
    }

    /// The table as GitHub Markdown: value ± half the 95 % interval where known, the
    /// best cell per column in bold (see `best`), † where NFE < S.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| {} | {} |", self.row_header, self.columns.join(" | "));
        let _ = writeln!(out, "| --- |{}", " ---: |".repeat(self.columns.len()));
        let best: Vec<Option<usize>> = (0..self.columns.len()).map(|j| self.best_row(j)).collect();
        for (i, (label, cells)) in self.rows.iter().enumerate() {
            let cells: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(j, c)| match c {
                    None => "—".into(),
                    Some(v) => {
                        let mark = if self.marked[i][j] { " †" } else { "" };
                        let text = match self.interval(i, j) {
                            Some(iv) => format!("{} ± {}", format_value(*v), format_value(iv.half_width())),
                            None => format_value(*v),
                        };
                        if best[j] == Some(i) || self.bold.contains(&(i, j)) {
                            format!("**{text}**{mark}")
                        } else {
                            format!("{text}{mark}")
                        }
                    }
                })
                .collect();
            let _ = writeln!(out, "| {label} | {} |", cells.join(" | "));
        }
        out
    }
}

/// The distinct values of `key` over `rows`, in first-seen order.
fn distinct<T: PartialEq + Clone>(rows: &[MetricRow], key: impl Fn(&MetricRow) -> T) -> Vec<T> {
    let mut out = Vec::new();
    for r in rows {
        let k = key(r);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// Every S of the sweep, ascending.
pub fn steps(rows: &[MetricRow]) -> Vec<usize> {
    rows.iter()
        .map(|r| r.steps)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// τ kinds in sweep order.
pub fn taus(rows: &[MetricRow]) -> Vec<String> {
    distinct(rows, |r| r.tau.clone())
}

/// η labels in sweep order.
pub fn etas(rows: &[MetricRow]) -> Vec<String> {
    distinct(rows, |r| r.eta.clone())
}

/// Clip settings in sweep order.
pub fn clips(rows: &[MetricRow]) -> Vec<bool> {
    distinct(rows, |r| r.clip_x0)
}

/// The η label as the paper writes it.
pub fn eta_label(eta: &str) -> String {
    if eta == "sigma_hat" {
        "σ̂".into()
    } else {
        format!("η = {eta}")
    }
}

/// The η label of a row, naming the x̂_0 clipping of σ̂ (the official code's σ̂ sampler,
/// `ddpm_noisy`, always clips; its `generalized_steps` never does).
pub fn eta_clip_label(eta: &str, clip: bool) -> String {
    match (eta, clip) {
        ("sigma_hat", true) => "σ̂ (x̂_0 clipped, as the official ddpm_noisy)".into(),
        ("sigma_hat", false) => "σ̂ (no clipping)".into(),
        _ => eta_label(eta),
    }
}

/// `table` with the noise-floor row of `metric` appended (the same value in every
/// column: the floor does not depend on S), when `floor` has it.
pub fn with_floor(mut table: Table, metric: &MetricInfo, floor: &std::collections::BTreeMap<String, f64>) -> Table {
    let Some(&v) = floor.get(metric.name) else { return table };
    let columns = table.columns.len();
    table.rows.push((FLOOR_LABEL.into(), vec![Some(v); columns]));
    table.marked.push(vec![false; columns]);
    if !table.intervals.is_empty() {
        table.intervals.push(vec![interval_of(floor, metric.name); columns]);
    }
    table.floor = true;
    table
}

/// Which metrics of `candidates` some row carries.
pub fn present(rows: &[MetricRow], candidates: &[MetricInfo]) -> Vec<MetricInfo> {
    candidates
        .iter()
        .filter(|m| rows.iter().any(|r| r.metrics.contains_key(m.name)))
        .copied()
        .collect()
}

/// The row of (τ, η, S, clip), if it ran.
pub fn find<'a>(rows: &'a [MetricRow], tau: &str, eta: &str, s: usize, clip: bool) -> Option<&'a MetricRow> {
    rows.iter()
        .find(|r| r.tau == tau && r.eta == eta && r.steps == s && r.clip_x0 == clip)
}

pub fn s_columns(steps: &[usize]) -> Vec<String> {
    steps.iter().map(|s| format!("S = {s}")).collect()
}

fn clip_suffix(clip: bool, clips: &[bool]) -> (&'static str, &'static str) {
    match (clips.len() > 1, clip) {
        (false, _) => ("", ""),
        (true, true) => (", x̂_0 clipped", "_clip"),
        (true, false) => (", no clipping", "_noclip"),
    }
}

/// A row label and its cells (`None`: point missing).
pub type LabelledRow = (String, Vec<Option<f64>>);

/// Rows of `metric` over the sweep's S values, one per (label, τ, η), with † marks.
/// The rows, † marks and intervals of a table over S.
type OverSteps = (Vec<LabelledRow>, Vec<Vec<bool>>, Vec<Vec<Option<Interval>>>);

fn over_steps(rows: &[MetricRow], metric: &MetricInfo, specs: Vec<(String, String, String)>, clip: bool) -> OverSteps {
    let steps = steps(rows);
    let mut table_rows = Vec::new();
    let mut marked = Vec::new();
    let mut intervals = Vec::new();
    for (label, tau, eta) in specs {
        let cells: Vec<Option<&MetricRow>> = steps.iter().map(|&s| find(rows, &tau, &eta, s, clip)).collect();
        marked.push(cells.iter().map(|c| c.is_some_and(|r| r.nfe < r.steps)).collect());
        intervals.push(
            cells
                .iter()
                .map(|c| c.and_then(|r| interval_of(&r.metrics, metric.name)))
                .collect(),
        );
        table_rows.push((
            label,
            cells
                .iter()
                .map(|c| c.and_then(|r| r.metrics.get(metric.name).copied()))
                .collect(),
        ));
    }
    (table_rows, marked, intervals)
}

/// Table 1 layout for one metric and τ kind: rows η, columns S.
pub fn eta_by_steps(rows: &[MetricRow], metric: &MetricInfo, tau: &str, clip: bool) -> Table {
    let (title_clip, name_clip) = clip_suffix(clip, &clips(rows));
    let specs = etas(rows)
        .into_iter()
        .map(|eta| (eta_clip_label(&eta, clip), tau.to_string(), eta))
        .collect();
    let (table_rows, marked, intervals) = over_steps(rows, metric, specs, clip);
    Table {
        name: format!("{}_{tau}{name_clip}", metric.name),
        title: format!("{} — {tau} τ{title_clip}", metric.label),
        row_header: "".into(),
        columns: s_columns(&steps(rows)),
        rows: table_rows,
        marked,
        best: metric.ranked.then_some(metric.lower_better),
        intervals,
        floor: false,
        bold: Vec::new(),
    }
}

/// Table 2 layout: rows τ kind, columns S (reconstruction is η-free).
pub fn taus_by_steps(rows: &[MetricRow], metric: &MetricInfo, eta: &str, clip: bool) -> Table {
    let (title_clip, name_clip) = clip_suffix(clip, &clips(rows));
    let specs = taus(rows)
        .into_iter()
        .map(|tau| (format!("{tau} τ"), tau, eta.to_string()))
        .collect();
    let (table_rows, marked, intervals) = over_steps(rows, metric, specs, clip);
    Table {
        name: format!("{}_by_tau{name_clip}", metric.name),
        title: format!("{}{title_clip}", metric.label),
        row_header: "".into(),
        columns: s_columns(&steps(rows)),
        rows: table_rows,
        marked,
        best: metric.ranked.then_some(metric.lower_better),
        intervals,
        floor: false,
        bold: Vec::new(),
    }
}

/// An ablation: the metric at η = `eta` for every value of one axis (τ kind or clip),
/// rows S, one column per setting plus its difference to the first (the baseline).
pub fn ablation(
    rows: &[MetricRow],
    metric: &MetricInfo,
    eta: &str,
    settings: &[(String, String, bool)], // (label, tau, clip)
) -> Table {
    let steps = steps(rows);
    let base = &settings[0];
    let mut columns: Vec<String> = settings.iter().map(|s| s.0.clone()).collect();
    columns.extend(settings[1..].iter().map(|s| format!("{} − {}", s.0, base.0)));
    let mut table_rows = Vec::new();
    let mut marked = Vec::new();
    for &s in &steps {
        let cells: Vec<Option<&MetricRow>> = settings
            .iter()
            .map(|(_, tau, clip)| find(rows, tau, eta, s, *clip))
            .collect();
        let values: Vec<Option<f64>> = cells
            .iter()
            .map(|c| c.and_then(|r| r.metrics.get(metric.name).copied()))
            .collect();
        let diffs: Vec<Option<f64>> = values[1..].iter().map(|v| Some(v.as_ref()? - values[0]?)).collect();
        let mut mark: Vec<bool> = cells.iter().map(|c| c.is_some_and(|r| r.nfe != r.steps)).collect();
        mark.extend(std::iter::repeat_n(false, diffs.len()));
        marked.push(mark);
        table_rows.push((format!("S = {s}"), values.into_iter().chain(diffs).collect()));
    }
    let axis = settings.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(" vs ");
    let slug = settings
        .iter()
        .map(|s| s.0.replace([' ', '=', '_'], "").replace('τ', ""))
        .collect::<Vec<_>>()
        .join("_vs_");
    Table {
        name: format!("ablation_{}_{slug}_eta{eta}", metric.name),
        title: format!("Ablation {axis}: {} at {}", metric.label, eta_label(eta)),
        row_header: "".into(),
        columns,
        rows: table_rows,
        marked,
        best: None,
        intervals: Vec::new(),
        floor: false,
        bold: Vec::new(),
    }
}

/// Wall time, model time and NFE of every point.
pub fn timing(rows: &[MetricRow]) -> Table {
    Table {
        name: "timing".into(),
        title: "Wall time and model evaluations of every point".into(),
        row_header: "point".into(),
        columns: vec!["S".into(), "NFE".into(), "seconds".into(), "model seconds".into()],
        rows: rows
            .iter()
            .map(|r| {
                (
                    format!("{}{}", r.point_id, if r.diverged { " (diverged)" } else { "" }),
                    vec![
                        Some(r.steps as f64),
                        Some(r.nfe as f64),
                        Some(r.seconds),
                        Some(r.model_seconds),
                    ],
                )
            })
            .collect(),
        marked: rows
            .iter()
            .map(|r| vec![r.nfe < r.steps, false, false, false])
            .collect(),
        best: None,
        intervals: Vec::new(),
        floor: false,
        bold: Vec::new(),
    }
}

/// Least-squares slope of log y against log x over the finite positive pairs.
pub fn loglog_slope(points: &[(f64, f64)]) -> Option<f64> {
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
        .map(|(x, y)| (x.ln(), y.ln()))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}
