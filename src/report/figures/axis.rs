//! Axes of the line charts: padded ranges, linear and log ticks, and the plotters
//! coordinate that draws them.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;

/// Padded axis range around `[lo, hi]` (5 % either side; a unit-ish range for a single value).
pub(super) fn padded(lo: f64, hi: f64) -> Range<f64> {
    let span = hi - lo;
    if !span.is_finite() {
        // Values near ±f64::MAX: keep a finite span so that the axis maths stays finite.
        return (lo / 4.0).max(-f64::MAX / 4.0)..(hi / 4.0).min(f64::MAX / 4.0);
    }
    let pad = if span > 0.0 {
        span * 0.05
    } else if lo == 0.0 {
        1.0
    } else {
        lo.abs() * 0.1
    };
    let range = (lo - pad)..(hi + pad);
    if range.end - range.start > 0.0 && (range.end - range.start).is_finite() {
        range
    } else {
        lo..hi + 1.0_f64.max(hi.abs() * 1e-6)
    }
}

/// Extent of finite values, if any.
pub(super) fn extent(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Tick positions and labels for one axis.
pub(super) struct Ticks {
    /// Labelled tick positions (axis coordinates).
    bold: Vec<f64>,
    /// Unlabelled grid lines (axis coordinates).
    light: Vec<f64>,
    /// Labels of `bold`, in order.
    labels: Vec<(f64, String)>,
}

impl Ticks {
    /// The label of tick `v` (the nearest labelled tick).
    fn label(&self, v: f64) -> String {
        self.labels
            .iter()
            .min_by(|a, b| (a.0 - v).abs().total_cmp(&(b.0 - v).abs()))
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    }

    /// "Nice" linear ticks (steps of 1, 2 or 5 × 10^k), about `target` of them and at least 3.
    pub(super) fn linear(range: &Range<f64>, target: usize) -> Ticks {
        let span = range.end - range.start;
        let raw = span / target.max(1) as f64;
        let magnitude = 10f64.powf(raw.log10().floor());
        let ladder = [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0];
        let mut rung = ladder
            .iter()
            .position(|m| m * magnitude >= raw)
            .unwrap_or(ladder.len() - 1);
        let ticks_at = |step: f64| -> Vec<f64> {
            let mut ticks = Vec::new();
            if step.is_finite() && step > 0.0 {
                let mut k = (range.start / step).ceil();
                while k * step <= range.end && ticks.len() < 100 {
                    ticks.push(k * step);
                    k += 1.0;
                }
            }
            ticks
        };
        let mut step = ladder[rung] * magnitude;
        let mut bold = ticks_at(step);
        while bold.len() < 3 && rung > 0 {
            rung -= 1;
            step = ladder[rung] * magnitude;
            bold = ticks_at(step);
        }
        let decimals = (-step.log10().floor()).clamp(0.0, 12.0) as usize;
        let big = step.abs() >= 1e5 || step.abs() < 1e-4;
        let labels = bold
            .iter()
            .map(|&v| {
                let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
                let text = match (v == 0.0, big) {
                    (true, _) => "0".to_string(),
                    (false, true) => format!("{v:.1e}"),
                    (false, false) => format!("{v:.decimals$}"),
                };
                (v, text)
            })
            .collect();
        Ticks {
            bold,
            light: Vec::new(),
            labels,
        }
    }

    /// Ticks for a log10 axis; `range` is in log10 units, labels show 10^v.
    ///
    /// Powers of ten (every n-th one over many decades, at most about 8 labels), with 2 and 5
    /// in between under two decades, and 1..9 in between under one; light lines at 1..9 × 10^k
    /// when the range spans at most 12 decades (at powers of ten up to 100 decades).
    pub(super) fn log10(range: &Range<f64>) -> Ticks {
        let first = range.start.floor() as i64;
        let last = range.end.ceil() as i64;
        let span = range.end - range.start;
        let inside = |v: &f64| *v >= range.start && *v <= range.end;
        let decades = |ms: &[f64], every: i64| -> Vec<f64> {
            (first..=last)
                .filter(|k| k.rem_euclid(every) == 0)
                .flat_map(|k| ms.iter().map(move |m| k as f64 + m.log10()))
                .filter(inside)
                .collect()
        };
        let all: Vec<f64> = (1..=9).map(f64::from).collect();
        let every = ((span / 8.0).ceil() as i64).max(1);
        let mut bold = decades(&[1.0], every);
        if span < 2.0 {
            bold = decades(&[1.0, 2.0, 5.0], 1);
        }
        if bold.len() < 2 {
            bold = decades(&all, 1);
        }
        let light = if span <= 12.0 {
            decades(&all, 1)
        } else if span <= 100.0 {
            decades(&[1.0], 1)
        } else {
            Vec::new()
        };
        let labels = bold.iter().map(|&v| (v, format_power(v))).collect();
        Ticks { bold, light, labels }
    }
}

/// A linear axis (in axis coordinates, i.e. log10 units on a log axis) with our own ticks.
pub(super) struct Axis {
    coord: RangedCoordf64,
    ticks: Ticks,
}

impl Axis {
    /// An axis over `range` with `ticks`.
    pub(super) fn new(range: Range<f64>, ticks: Ticks) -> Axis {
        Axis {
            coord: range.into(),
            ticks,
        }
    }
}

impl Ranged for Axis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.coord.map(value, limit)
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.ticks.light.clone()
        } else {
            self.ticks.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.coord.range()
    }
}

impl ValueFormatter<f64> for Axis {
    fn format_ext(&self, value: &f64) -> String {
        self.ticks.label(*value)
    }
}

/// 10^v with three significant digits, plain for 0.001 ≤ x < 100000, else like "1e6".
pub(super) fn format_power(v: f64) -> String {
    let x = 10f64.powf(v);
    if (1e-3..1e5).contains(&x) {
        let decimals = (2.0 - x.log10().floor()).max(0.0) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else if (v - v.round()).abs() < 1e-9 {
        format!("1e{}", v.round() as i64)
    } else {
        format!("{x:.0e}")
    }
}
