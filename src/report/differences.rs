//! The key differences of a sweep, each as a paired interval: η = 0 − η = 1 and
//! η = 0 − σ̂ at every S, the points at the largest S against the noise floor, and each
//! solver against DDIM at (nearly) equal NFE. One column per deciding statistic; a cell is
//! bold where its difference holds after Holm's correction across the report.

use super::tables::{contrast, deciding, find, steps, taus, MetricInfo, Table};
use crate::sampler::{Eta, SamplerKind};
use crate::store::MetricRow;

/// The η contrasts of the paper's question, in order: η = 0 against these.
pub const RIVALS: [&str; 2] = ["1.0", "sigma_hat"];

fn label(eta: &str) -> String {
    super::tables::eta_label(eta)
}

/// A table of contrasts (rows) over the deciding metrics (columns); `pairs` gives each
/// row's label and its two rows.
fn contrast_table(
    name: String,
    title: String,
    metrics: &[MetricInfo],
    pairs: Vec<(String, &MetricRow, &MetricRow)>,
) -> Table {
    let mut t = Table::new(name, title, metrics.iter().map(|m| m.name.to_string()).collect());
    t.row_header = "difference (paired)".into();
    let decides: Vec<bool> = metrics.iter().map(|m| m.decides).collect();
    for (row_label, a, b) in pairs {
        let cells = metrics.iter().map(|m| Some(contrast(m.name, a, b))).collect();
        t.push_differences(row_label, cells, &decides);
        t.ids.push(vec![None; metrics.len()]);
    }
    t
}

/// η = 0 − η = 1 and η = 0 − σ̂ at every S, then η = 0 and η = 1 at the largest S − the
/// noise floor, per τ kind and clip setting (DDIM rows; `floor`: the floor as a row).
pub fn eta_differences(rows: &[MetricRow], floor: Option<&MetricRow>) -> Vec<Table> {
    let metrics = deciding(rows);
    if metrics.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for clip in super::tables::clips(rows) {
        for tau in taus(rows) {
            let mut pairs = Vec::new();
            for s in steps(rows) {
                let Some(zero) = find(rows, &tau, "0.0", s, clip) else {
                    continue;
                };
                for rival in RIVALS {
                    if let Some(r) = find(rows, &tau, rival, s, clip) {
                        pairs.push((format!("S = {s}: η = 0 − {}", label(rival)), zero, r));
                    }
                }
            }
            if let (Some(f), Some(&top)) = (floor, steps(rows).last()) {
                for eta in ["0.0", "1.0"] {
                    if let Some(r) = find(rows, &tau, eta, top, clip) {
                        pairs.push((format!("S = {top}: {} − noise floor", label(eta)), r, f));
                    }
                }
            }
            if pairs.is_empty() {
                continue;
            }
            let clip_text = if clip { ", x̂_0 clipped" } else { "" };
            out.push(contrast_table(
                format!("differences_{tau}{}", if clip { "_clip" } else { "" }),
                format!("Key differences — {tau} τ{clip_text}"),
                &metrics,
                pairs,
            ));
        }
    }
    out
}

/// DDIM at η = 0 without clipping, per τ kind: the rows the other solvers are held against.
fn ddim_rows<'a>(rows: &'a [MetricRow], tau: &str) -> Vec<&'a MetricRow> {
    let eta = Eta::DDIM.to_string();
    rows.iter()
        .filter(|r| r.sampler == SamplerKind::Ddim.name() && r.eta == eta && !r.clip_x0 && r.tau == tau)
        .collect()
}

/// The DDIM row (η = 0, same τ) whose NFE is closest to `nfe` (ties: the smaller NFE).
pub fn nearest_ddim<'a>(rows: &'a [MetricRow], tau: &str, nfe: usize) -> Option<&'a MetricRow> {
    ddim_rows(rows, tau)
        .into_iter()
        .min_by_key(|r| (r.nfe.abs_diff(nfe), r.nfe))
}

/// Each solver other than DDIM against DDIM at the nearest NFE, per τ kind.
pub fn sampler_differences(rows: &[MetricRow]) -> Vec<Table> {
    let metrics = deciding(rows);
    let mut out = Vec::new();
    for tau in taus(rows) {
        let mut pairs = Vec::new();
        for kind in SamplerKind::ALL.iter().filter(|k| **k != SamplerKind::Ddim) {
            for s in steps(rows) {
                let Some(r) = rows
                    .iter()
                    .find(|r| r.sampler == kind.name() && r.tau == tau && r.steps == s)
                else {
                    continue;
                };
                if let Some(d) = nearest_ddim(rows, &tau, r.nfe) {
                    pairs.push((
                        format!(
                            "{kind}, S = {s} (NFE {}) − DDIM, S = {} (NFE {})",
                            r.nfe, d.steps, d.nfe
                        ),
                        r,
                        d,
                    ));
                }
            }
        }
        if !pairs.is_empty() && !metrics.is_empty() {
            out.push(contrast_table(
                format!("differences_samplers_{tau}"),
                format!("Solvers − DDIM (η = 0) at the nearest NFE — {tau} τ"),
                &metrics,
                pairs,
            ));
        }
    }
    out
}
