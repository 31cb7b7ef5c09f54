//! Paper-layout tables built from the metric rows of a sweep (pure: rows in, tables out).
//!
//! Table 1 of the paper: rows η ∈ {0.0, 0.2, 0.5, 1.0, σ̂}, columns S, one table per τ
//! kind and sample-quality metric. Table 2: reconstruction error vs S.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::claims::{side, Claim, Claims};
use crate::experiment::measure::names;
use crate::metrics::bootstrap::Interval;
use crate::metrics::paired::{difference, Difference};
use crate::store::manifest::NoiseFloor;
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
    /// The report makes statements with it (best cells, differences, the floor): its
    /// expectation does not depend on the samples' diversity or size (unbiased or
    /// bias-corrected). The others are shown with their intervals, never ranked.
    pub decides: bool,
}

/// Sample-quality metrics, in the order the report shows them (Table 1's role): in each
/// space the plug-in Fréchet distance the paper reports, then the statistics that decide.
pub const SAMPLE_QUALITY: [MetricInfo; 19] = [
    MetricInfo {
        name: names::FD_CLASSIFIER,
        label: "Fréchet distance in classifier features (FID analogue, plug-in)",
        lower_better: true,
        decides: false,
    },
    MetricInfo {
        name: names::FD_CLASSIFIER_INF,
        label: "Fréchet distance in classifier features, bias-corrected (FD∞)",
        lower_better: true,
        decides: true,
    },
    MetricInfo {
        name: names::KID,
        label: "KID (unbiased MMD², cubic kernel, classifier features)",
        lower_better: true,
        decides: true,
    },
    MetricInfo {
        name: names::FD,
        label: "Fréchet distance (data space, plug-in)",
        lower_better: true,
        decides: false,
    },
    MetricInfo {
        name: names::FD_INF,
        label: "Fréchet distance (data space), bias-corrected (FD∞)",
        lower_better: true,
        decides: true,
    },
    MetricInfo {
        name: names::MMD2,
        label: "MMD² (unbiased, RBF, median bandwidth)",
        lower_better: true,
        decides: true,
    },
    MetricInfo {
        name: names::SWD,
        label: "sliced Wasserstein-2 distance (plug-in)",
        lower_better: true,
        decides: false,
    },
    MetricInfo {
        name: names::MASS_ERROR,
        label: "mixture mass error (total variation to the true weights)",
        lower_better: true,
        decides: false,
    },
    MetricInfo {
        name: names::LABEL_TV,
        label: "predicted-label histogram, total variation to uniform",
        lower_better: true,
        decides: false,
    },
    MetricInfo {
        name: names::CONFIDENCE,
        label: "classifier's mean top-class probability (Inception-Score analogue)",
        lower_better: false,
        decides: false,
    },
    MetricInfo {
        name: names::PRECISION_CLASSIFIER,
        label: "k-NN precision, k = 3 (classifier features): share of samples on the real manifold (fidelity)",
        lower_better: false,
        decides: false,
    },
    MetricInfo {
        name: names::RECALL_CLASSIFIER,
        label: "k-NN recall, k = 3 (classifier features): share of real rows on the samples' manifold (diversity)",
        lower_better: false,
        decides: false,
    },
    MetricInfo {
        name: names::DENSITY_CLASSIFIER,
        label: "density, k = 5 (classifier features): real k-NN balls per sample / k (fidelity)",
        lower_better: false,
        decides: false,
    },
    MetricInfo {
        name: names::COVERAGE_CLASSIFIER,
        label: "coverage, k = 5 (classifier features): share of real k-NN balls holding a sample (diversity)",
        lower_better: false,
        decides: false,
    },
    MetricInfo {
        name: names::PRECISION,
        label: "k-NN precision, k = 3 (data space): share of samples on the real manifold (fidelity)",
        lower_better: false,
        decides: false,
    },
    MetricInfo {
        name: names::RECALL,
        label: "k-NN recall, k = 3 (data space): share of real rows on the samples' manifold (diversity)",
        lower_better: false,
        decides: false,
    },
    MetricInfo {
        name: names::DENSITY,
        label: "density, k = 5 (data space): real k-NN balls per sample / k (fidelity)",
        lower_better: false,
        decides: false,
    },
    MetricInfo {
        name: names::COVERAGE,
        label: "coverage, k = 5 (data space): share of real k-NN balls holding a sample (diversity)",
        lower_better: false,
        decides: false,
    },
    MetricInfo {
        name: names::NN_RATIO,
        label: "distance to the nearest training point ÷ the floor set's (memorisation: ≪ 1 copies)",
        lower_better: false,
        decides: false,
    },
];

/// Reconstruction error (Table 2).
pub const RECON: MetricInfo = MetricInfo {
    name: names::RECON_MSE,
    label: "reconstruction MSE per dimension, [0, 1] scale",
    lower_better: true,
    decides: false,
};

/// Distance to the consistency reference (§5.3).
pub const CONSISTENCY: MetricInfo = MetricInfo {
    name: names::CONSISTENCY_MSE,
    label: "MSE to the reference x_0 from the same x_T, [0, 1] scale",
    lower_better: true,
    decides: false,
};

/// Distance to the exact S → ∞ limit (single-Gaussian oracle).
pub const CONSISTENCY_EXACT: MetricInfo = MetricInfo {
    name: names::CONSISTENCY_EXACT_MSE,
    label: "MSE to the exact S → ∞ limit (flow to t = 0, then x̂_0), [0, 1] scale",
    lower_better: true,
    decides: false,
};

/// The deciding sample-quality metrics `rows` carry, in report order.
pub fn deciding(rows: &[MetricRow]) -> Vec<MetricInfo> {
    present(rows, &SAMPLE_QUALITY)
        .into_iter()
        .filter(|m| m.decides)
        .collect()
}

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
    /// The statistic of every cell and whether smaller is better, when the table ranks
    /// its columns (a deciding metric): the best cell of a column is a [`Claim::Best`]
    /// against the column's other cells, and bold where it holds ([`Table::settle`]).
    pub ranking: Option<(&'static str, bool)>,
    /// The point id of each cell (where a cell is one point), for its claims.
    pub ids: Vec<Vec<Option<String>>>,
    /// The claim of each cell that is a paired difference of a deciding metric (bold
    /// where it holds); empty rows where the table has none.
    pub differences: Vec<Vec<Option<Claim>>>,
    /// The 95 % interval of each cell, where known (empty: no intervals).
    pub intervals: Vec<Vec<Option<Interval>>>,
    /// The last row is the noise floor (real data against the reference): shown, never bold.
    pub floor: bool,
    /// Cells (row, column) set in bold.
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
    /// An empty table (no rows yet).
    pub fn new(name: String, title: String, columns: Vec<String>) -> Self {
        Self {
            name,
            title,
            row_header: String::new(),
            columns,
            rows: Vec::new(),
            marked: Vec::new(),
            ranking: None,
            ids: Vec::new(),
            differences: Vec::new(),
            intervals: Vec::new(),
            floor: false,
            bold: Vec::new(),
        }
    }

    /// The interval of cell (i, j), if known.
    pub fn interval(&self, i: usize, j: usize) -> Option<Interval> {
        self.intervals.get(i).and_then(|r| r.get(j).copied().flatten())
    }

    fn id(&self, i: usize, j: usize) -> Option<&String> {
        self.ids.get(i).and_then(|r| r.get(j)).and_then(Option::as_ref)
    }

    /// The row of the best estimate of column j and the claim that it is best (`None`:
    /// the table does not rank, or fewer than two cells of the column are points). The
    /// floor row never competes.
    pub fn best_claim(&self, j: usize) -> Option<(usize, Claim)> {
        let (metric, lower) = self.ranking?;
        let rows = self.rows.len() - usize::from(self.floor);
        let candidates: Vec<(usize, f64)> = (0..rows)
            .filter_map(|i| Some((i, self.rows[i].1[j]?)))
            .filter(|(i, v)| v.is_finite() && self.id(*i, j).is_some())
            .collect();
        if candidates.len() < 2 {
            return None;
        }
        let (best, _) = candidates
            .iter()
            .copied()
            .reduce(|a, b| if (b.1 < a.1) == lower && b.1 != a.1 { b } else { a })?;
        let id = |i: usize| self.id(i, j).cloned().expect("candidates have ids");
        let rivals = candidates
            .iter()
            .filter(|(i, _)| *i != best)
            .map(|(i, _)| id(*i))
            .collect();
        Some((
            best,
            Claim::Best {
                metric,
                best: id(best),
                rivals,
            },
        ))
    }

    /// Every claim the table makes: the best cell of each ranked column, and every
    /// difference cell of a deciding metric.
    pub fn claims(&self) -> Vec<Claim> {
        (0..self.columns.len())
            .filter_map(|j| self.best_claim(j).map(|(_, c)| c))
            .chain(self.differences.iter().flatten().flatten().cloned())
            .collect()
    }

    /// Sets in bold the best cell of every column, and every difference cell, whose
    /// claim holds in `claims`.
    pub fn settle(&mut self, claims: &Claims) {
        let mut bold: Vec<(usize, usize)> = (0..self.columns.len())
            .filter_map(|j| {
                let (i, claim) = self.best_claim(j)?;
                claims.holds(&claim).then_some((i, j))
            })
            .collect();
        for (i, row) in self.differences.iter().enumerate() {
            bold.extend(
                row.iter()
                    .enumerate()
                    .filter(|(_, c)| c.as_ref().is_some_and(|c| claims.holds(c)))
                    .map(|(j, _)| (i, j)),
            );
        }
        self.bold.extend(bold);
    }

    /// The table as GitHub Markdown: value ± half the 95 % interval where known, bold
    /// cells (see [`Table::settle`]), † where NFE < S.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| {} | {} |", self.row_header, self.columns.join(" | "));
        let _ = writeln!(out, "| --- |{}", " ---: |".repeat(self.columns.len()));
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
                        if self.bold.contains(&(i, j)) {
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

/// The label of the floor row: [`FLOOR_LABEL`], with the floor set's size where it is
/// not the samples' (a smaller floor set carries more small-sample bias).
pub fn floor_label(floor: &NoiseFloor) -> String {
    match (floor.rows, floor.samples) {
        (Some(r), Some(n)) if r != n => format!("noise floor (real vs real; {r} rows, the points {n})"),
        _ => FLOOR_LABEL.into(),
    }
}

/// `table` with the noise-floor row of `metric` appended (the same value in every
/// column: the floor does not depend on S), when `floor` has it.
pub fn with_floor(mut table: Table, metric: &MetricInfo, floor: &NoiseFloor) -> Table {
    let Some(&v) = floor.metrics.get(metric.name) else {
        return table;
    };
    let columns = table.columns.len();
    table.rows.push((floor_label(floor), vec![Some(v); columns]));
    table.marked.push(vec![false; columns]);
    table
        .intervals
        .push(vec![interval_of(&floor.metrics, metric.name); columns]);
    table.ids.push(vec![None; columns]);
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

impl Table {
    /// Appends a row of one point per cell (`None`: missing) showing `metric`: its
    /// values, intervals, † marks (NFE < S) and ids.
    pub fn push_points(&mut self, label: String, cells: &[Option<&MetricRow>], metric: &str) {
        self.marked
            .push(cells.iter().map(|c| c.is_some_and(|r| r.nfe < r.steps)).collect());
        self.intervals.push(
            cells
                .iter()
                .map(|c| c.and_then(|r| interval_of(&r.metrics, metric)))
                .collect(),
        );
        self.ids
            .push(cells.iter().map(|c| c.map(|r| r.point_id.clone())).collect());
        self.rows.push((
            label,
            cells
                .iter()
                .map(|c| c.and_then(|r| r.metrics.get(metric).copied()))
                .collect(),
        ));
    }

    /// Appends a row of paired differences, one claim per cell (`None`: not available):
    /// each cell shows Δ̂ = θ(a) − θ(b) with its paired interval; `decides` makes the
    /// cell's [`Claim::Differ`] part of the report's family (bold where it holds).
    pub fn push_differences(
        &mut self,
        label: String,
        cells: Vec<Option<(Claim, Option<Difference>)>>,
        decides: &[bool],
    ) {
        self.marked.push(vec![false; cells.len()]);
        self.intervals.push(
            cells
                .iter()
                .map(|c| c.as_ref().and_then(|(_, d)| d.map(|d| d.interval)))
                .collect(),
        );
        self.rows.push((
            label,
            cells
                .iter()
                .map(|c| c.as_ref().and_then(|(_, d)| d.map(|d| d.estimate)))
                .collect(),
        ));
        self.differences.push(
            cells
                .into_iter()
                .zip(decides)
                .map(|(c, &dec)| c.filter(|_| dec).map(|(claim, _)| claim))
                .collect(),
        );
    }
}

/// The paired difference θ(a) − θ(b) of `metric` between two rows, with its claim.
pub fn contrast(metric: &'static str, a: &MetricRow, b: &MetricRow) -> (Claim, Option<Difference>) {
    let d = match (side(a, metric), side(b, metric)) {
        (Some(x), Some(y)) => difference(x, y),
        _ => None,
    };
    (
        Claim::Differ {
            metric,
            a: a.point_id.clone(),
            b: b.point_id.clone(),
        },
        d,
    )
}

/// A table over the sweep's S values with one row per (label, τ, η) at clip `clip`.
fn over_steps(
    rows: &[MetricRow],
    metric: &MetricInfo,
    specs: Vec<(String, String, String)>,
    clip: bool,
    (name, title): (String, String),
) -> Table {
    let steps = steps(rows);
    let mut table = Table::new(name, title, s_columns(&steps));
    table.ranking = metric.decides.then_some((metric.name, metric.lower_better));
    for (label, tau, eta) in specs {
        let cells: Vec<Option<&MetricRow>> = steps.iter().map(|&s| find(rows, &tau, &eta, s, clip)).collect();
        table.push_points(label, &cells, metric.name);
    }
    table
}

/// Table 1 layout for one metric and τ kind: rows η, columns S.
pub fn eta_by_steps(rows: &[MetricRow], metric: &MetricInfo, tau: &str, clip: bool) -> Table {
    let (title_clip, name_clip) = clip_suffix(clip, &clips(rows));
    let specs = etas(rows)
        .into_iter()
        .map(|eta| (eta_clip_label(&eta, clip), tau.to_string(), eta))
        .collect();
    over_steps(
        rows,
        metric,
        specs,
        clip,
        (
            format!("{}_{tau}{name_clip}", metric.name),
            format!("{} — {tau} τ{title_clip}", metric.label),
        ),
    )
}

/// Table 2 layout: rows τ kind, columns S (reconstruction is η-free).
pub fn taus_by_steps(rows: &[MetricRow], metric: &MetricInfo, eta: &str, clip: bool) -> Table {
    let (title_clip, name_clip) = clip_suffix(clip, &clips(rows));
    let specs = taus(rows)
        .into_iter()
        .map(|tau| (format!("{tau} τ"), tau, eta.to_string()))
        .collect();
    over_steps(
        rows,
        metric,
        specs,
        clip,
        (
            format!("{}_by_tau{name_clip}", metric.name),
            format!("{}{title_clip}", metric.label),
        ),
    )
}

/// An ablation: the metric at η = `eta` for every value of one axis (τ kind or clip),
/// rows S, one column per setting, then each setting's paired difference to the first
/// (the baseline), bold where it holds (deciding metrics).
pub fn ablation(
    rows: &[MetricRow],
    metric: &MetricInfo,
    eta: &str,
    settings: &[(String, String, bool)], // (label, tau, clip)
) -> Table {
    let base = &settings[0];
    let mut columns: Vec<String> = settings.iter().map(|s| s.0.clone()).collect();
    columns.extend(settings[1..].iter().map(|s| format!("{} − {}", s.0, base.0)));
    let axis = settings.iter().map(|s| s.0.as_str()).collect::<Vec<_>>().join(" vs ");
    let slug = settings
        .iter()
        .map(|s| s.0.replace([' ', '=', '_'], "").replace('τ', ""))
        .collect::<Vec<_>>()
        .join("_vs_");
    let mut table = Table::new(
        format!("ablation_{}_{slug}_eta{eta}", metric.name),
        format!("Ablation {axis}: {} at {}", metric.label, eta_label(eta)),
        columns,
    );
    for s in steps(rows) {
        let cells: Vec<Option<&MetricRow>> = settings
            .iter()
            .map(|(_, tau, clip)| find(rows, tau, eta, s, *clip))
            .collect();
        table.push_points(format!("S = {s}"), &cells, metric.name);
        let diffs: Vec<(Option<f64>, Option<Interval>, Option<Claim>)> = cells[1..]
            .iter()
            .map(|c| match (c, cells[0]) {
                (Some(a), Some(b)) => {
                    let (claim, d) = contrast(metric.name, a, b);
                    let value = a
                        .metrics
                        .get(metric.name)
                        .zip(b.metrics.get(metric.name))
                        .map(|(x, y)| x - y);
                    (value, d.map(|d| d.interval), metric.decides.then_some(claim))
                }
                _ => (None, None, None),
            })
            .collect();
        let last = table.rows.len() - 1;
        table.rows[last].1.extend(diffs.iter().map(|d| d.0));
        table.intervals[last].extend(diffs.iter().map(|d| d.1));
        table.ids[last].extend(diffs.iter().map(|_| None));
        table.marked[last].extend(diffs.iter().map(|_| false));
        let mut claims = vec![None; settings.len()];
        claims.extend(diffs.into_iter().map(|d| d.2));
        table.differences.push(claims);
    }
    table
}

/// Wall time, model time and NFE of every point.
pub fn timing(rows: &[MetricRow]) -> Table {
    Table {
        row_header: "point".into(),
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
        ..Table::new(
            "timing".into(),
            "Wall time and model evaluations of every point".into(),
            vec!["S".into(), "NFE".into(), "seconds".into(), "model seconds".into()],
        )
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
