//! The statements a report makes about two points, settled together.
//!
//! A report is built in three passes: its tables are laid out from the rows (pure), the
//! [`Claim`]s they imply are collected — the best cell of every ranked column, every row
//! of the differences tables, every point against the noise floor — and settled here in
//! one family, each from the paired bootstrap interval of its difference
//! ([`crate::metrics::paired`]; for the errors measured row by row, the sign test on the
//! paired rows) with Holm's correction across the whole family; only then
//! are cells set in bold and findings written, from [`Settled::holds`]. A statement that
//! was not in the family cannot be made: [`Claims::get`] has nothing to say about it.

use std::collections::BTreeMap;

use crate::metrics::paired::{difference, holm, sign_test, Difference, Side, ALPHA};
use crate::store::manifest::NoiseFloor;
use crate::store::{MetricRow, FLOOR_ID};

/// One statement about a statistic of points of a sweep (or a point and the floor set,
/// whose id is [`FLOOR_ID`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Claim {
    /// θ(a) ≠ θ(b): the paired interval of θ(a) − θ(b) excludes 0.
    Differ {
        /// The statistic.
        metric: &'static str,
        /// The first point.
        a: String,
        /// The second point.
        b: String,
    },
    /// `best` is better than every one of `rivals` (an intersection–union statement: its
    /// p-value is the largest of the pairwise ones).
    Best {
        /// The statistic.
        metric: &'static str,
        /// The point with the best estimate.
        best: String,
        /// The other points of the comparison.
        rivals: Vec<String>,
    },
}

/// A settled claim.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settled {
    /// The claim's own p-value.
    pub p: f64,
    /// Its Holm-adjusted p-value within the report's family.
    pub p_holm: f64,
    /// Whether the report may state it: p_holm < α = 0.05.
    pub holds: bool,
    /// For [`Claim::Differ`], the paired difference θ(a) − θ(b).
    pub difference: Option<Difference>,
}

/// The question a family of claims answers; each family is settled apart, with its own
/// correction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// The η question of the paper's tables, with every point against the noise floor.
    Eta,
    /// Which solver is best at equal NFE.
    Solvers,
    /// Reconstruction and consistency across S and η (row by row).
    AcrossS,
}

impl Family {
    /// What the family asks, for a report.
    pub fn describe(self) -> &'static str {
        match self {
            Family::Eta => "the η question and the noise floor",
            Family::Solvers => "the solvers at equal NFE",
            Family::AcrossS => "reconstruction and consistency across S and η",
        }
    }
}

/// Every claim of one report, settled.
#[derive(Debug, Clone, Default)]
pub struct Claims {
    settled: BTreeMap<Claim, Settled>,
    /// The families this was settled in (Holm within each), with their sizes.
    families: Vec<(Family, usize)>,
}

/// The estimate and replicates of every statistic of every point (and of the floor).
struct Lookup<'a> {
    rows: BTreeMap<&'a str, &'a MetricRow>,
}

/// A row's `metric` as one side of a paired difference: its value, replicates and
/// first-order projection (`None` without replicates).
pub fn side<'a>(r: &'a MetricRow, metric: &str) -> Option<Side<'a>> {
    Some((
        *r.metrics.get(metric)?,
        r.replicates.get(metric)?.as_slice(),
        r.linear.get(metric),
    ))
}

impl Lookup<'_> {
    fn get(&self, id: &str, metric: &str) -> Option<Side<'_>> {
        side(self.rows.get(id)?, metric)
    }

    /// θ(a) − θ(b): row by row where both points carry the metric's per-row values (the
    /// sign test, [`sign_test`]), else from the paired bootstrap replicates.
    fn difference(&self, metric: &str, a: &str, b: &str) -> Option<Difference> {
        let per_row = |id: &str| self.rows.get(id)?.rows.get(metric);
        if let (Some(x), Some(y)) = (per_row(a), per_row(b)) {
            return sign_test(x, y);
        }
        difference(self.get(a, metric)?, self.get(b, metric)?)
    }
}

/// The noise floor as a row of the sweep (id [`FLOOR_ID`]), so that a point is
/// compared with it like with any other point.
pub fn floor_row(floor: &NoiseFloor) -> MetricRow {
    MetricRow {
        point_id: FLOOR_ID.into(),
        metrics: floor.metrics.clone(),
        replicates: floor.replicates.clone(),
        linear: floor.linear.clone(),
        ..MetricRow::empty()
    }
}

impl Claims {
    /// Settles `claims` against the replicates of `rows` (the floor among them as
    /// [`floor_row`], id [`FLOOR_ID`]). A claim whose points lack replicates (a sweep
    /// without intervals) gets p = NaN, takes no part in the correction and never holds.
    pub fn settle<'a>(rows: impl IntoIterator<Item = &'a MetricRow>, claims: impl IntoIterator<Item = Claim>) -> Self {
        Self::settle_as(Family::Eta, rows, claims)
    }

    /// [`Claims::settle`] of a family that asks `family`'s question.
    pub fn settle_as<'a>(
        family: Family,
        rows: impl IntoIterator<Item = &'a MetricRow>,
        claims: impl IntoIterator<Item = Claim>,
    ) -> Self {
        let lookup = Lookup {
            rows: rows.into_iter().map(|r| (r.point_id.as_str(), r)).collect(),
        };
        let mut unique: Vec<Claim> = claims.into_iter().collect();
        unique.sort();
        unique.dedup();
        let raw: Vec<(Option<Difference>, f64)> = unique
            .iter()
            .map(|c| match c {
                Claim::Differ { metric, a, b } => {
                    let d = lookup.difference(metric, a, b);
                    (d, d.map_or(f64::NAN, |d| d.p))
                }
                Claim::Best { metric, best, rivals } => {
                    let ps: Option<Vec<f64>> = rivals
                        .iter()
                        .map(|r| lookup.difference(metric, best, r).map(|d| d.p))
                        .collect();
                    let p = ps
                        .filter(|v| !v.is_empty())
                        .map_or(f64::NAN, |v| v.into_iter().fold(0.0, f64::max));
                    (None, p)
                }
            })
            .collect();
        let adjusted = holm(&raw.iter().map(|r| r.1).collect::<Vec<_>>());
        let settled = unique
            .into_iter()
            .zip(raw)
            .zip(adjusted)
            .map(|((claim, (difference, p)), p_holm)| {
                (
                    claim,
                    Settled {
                        p,
                        p_holm,
                        holds: p_holm < ALPHA,
                        difference,
                    },
                )
            })
            .collect();
        let mut out = Self {
            settled,
            families: Vec::new(),
        };
        out.families = vec![(family, out.family_size())];
        out
    }

    /// Two families settled apart (each with its own Holm correction), as one lookup:
    /// a report asks separate questions (the η question of the paper's tables; which
    /// solver is best at equal NFE), and each question's error rate is controlled on its
    /// own. A claim in both keeps `self`'s settlement.
    pub fn and(mut self, other: Claims) -> Self {
        for (claim, settled) in other.settled {
            self.settled.entry(claim).or_insert(settled);
        }
        self.families.extend(other.families);
        self
    }

    /// Every family with its size, in settlement order.
    pub fn families(&self) -> &[(Family, usize)] {
        &self.families
    }

    /// The settled `claim`, if it was in the family.
    pub fn get(&self, claim: &Claim) -> Option<&Settled> {
        self.settled.get(claim)
    }

    /// Whether `claim` was in the family and holds.
    pub fn holds(&self, claim: &Claim) -> bool {
        self.get(claim).is_some_and(|s| s.holds)
    }

    /// The number of claims the correction counted (those with a p-value).
    pub fn family_size(&self) -> usize {
        self.settled.values().filter(|s| s.p.is_finite()).count()
    }

    /// How many of them hold.
    pub fn holding(&self) -> usize {
        self.settled.values().filter(|s| s.holds).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, value: f64, reps: Vec<f64>) -> MetricRow {
        MetricRow {
            point_id: id.into(),
            tau: "linear".into(),
            sampler: "ddim".into(),
            eta: "0.0".into(),
            eta_value: 0.0,
            steps: 10,
            nfe: 10,
            clip_x0: false,
            seconds: 0.0,
            model_seconds: 0.0,
            diverged: false,
            metrics: BTreeMap::from([("m".to_string(), value)]),
            replicates: BTreeMap::from([("m".to_string(), reps)]),
            linear: BTreeMap::new(),
            rows: BTreeMap::new(),
        }
    }

    #[test]
    fn claims_are_settled_together_with_holm() {
        // a − b: Δ̂ = 1, Δ* = ±0.1 alternating (sd ≈ 0.1): z ≈ 10, holds. a − c: Δ̂ = 0.05
        // with the same spread: z ≈ 0.5, does not.
        let noise: Vec<f64> = (0..40).map(|i| if i % 2 == 0 { 0.1 } else { -0.1 }).collect();
        let rows = vec![
            row("a", 1.0, noise.clone()),
            row("b", 0.0, vec![0.0; 40]),
            row("c", 0.95, vec![0.0; 40]),
        ];
        let differ = |a: &str, b: &str| Claim::Differ {
            metric: "m",
            a: a.into(),
            b: b.into(),
        };
        let best = Claim::Best {
            metric: "m",
            best: "b".into(),
            rivals: vec!["a".into(), "c".into()],
        };
        let c = Claims::settle(&rows, [differ("a", "b"), differ("a", "c"), best.clone()]);
        assert_eq!(c.family_size(), 3);
        assert!(c.holds(&differ("a", "b")));
        assert!(!c.holds(&differ("a", "c")));
        // The Best claim's p is the larger pairwise one (b vs c: Δ̂ = −0.95, Δ* = 0: p = 0;
        // b vs a: p ≈ 0): it holds.
        assert!(c.holds(&best));
        // A claim that was not in the family is not stated.
        assert!(c.get(&differ("b", "c")).is_none());
        let s = c.get(&differ("a", "b")).unwrap();
        assert!(s.p_holm >= s.p && s.difference.unwrap().estimate == 1.0);
    }
}
