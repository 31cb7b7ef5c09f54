//! Seeded percentile-bootstrap intervals (Efron & Tibshirani 1993, §13.3) for statistics
//! of two samples: generated rows x (n of them) against reference rows y (m).
//!
//! Replicate b resamples both sets with replacement, x from its own stream
//! `stream_at(seed, Purpose::Bootstrap, 2b)` and y from `stream_at(…, 2b + 1)`, so that
//! the replicates do not depend on how many are drawn or in which order, and every point
//! of a sweep (same n, m) sees the same resamples. A resample is given to the statistic
//! as a count per row (how often the row was drawn; the counts sum to n or m), which
//! lets sums over rows stay sums (weighted by the counts) instead of copies.
//! The 95 % interval describes how much the estimate θ̂ moves with the samples at this
//! sample size: the replicates' 2.5 % and 97.5 % quantiles q_lo, q_hi (linear
//! interpolation between order statistics, as numpy's default percentile), moved so that
//! the replicates' median m* sits on θ̂: [θ̂ − (m* − q_lo), θ̂ + (q_hi − m*)], with the
//! lower end kept ≥ 0 when θ̂ ≥ 0 (every metric here estimates a quantity ≥ 0).
//!
//! Why moved: resampling with replacement duplicates rows, and the plug-in distances
//! (Fréchet, sliced Wasserstein) grow with duplicates, so the raw percentile interval
//! [q_lo, q_hi] sits above θ̂ (for the FID analogue of 500 real digits against 1,297
//! it did not even contain θ̂). The *basic* interval [2θ̂ − q_hi, 2θ̂ − q_lo] removes that
//! shift twice over, turning it into a bias-corrected interval for the distance between
//! the distributions, which for real-vs-real data sat entirely below θ̂. The moved
//! interval keeps θ̂ inside and keeps the estimator's own small-sample bias, which is the
//! same for every point of a sweep (same sizes) and is shown by the noise-floor row;
//! what the intervals decide is whether two points at the same sizes differ.
//! Coverage on known distributions is checked in `tests/intervals.rs`.

use rand::Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng::{stream_at, Purpose};

/// The coverage of every interval ddimlab reports.
pub const LEVEL: f64 = 0.95;

/// A two-sided interval [lo, hi].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// True when the two intervals share no value (their estimates are distinguishable).
    pub fn separated(&self, other: &Interval) -> bool {
        self.hi < other.lo || other.hi < self.lo
    }

    /// Half the width, (hi − lo) / 2 (the "±" of a table cell).
    pub fn half_width(&self) -> f64 {
        (self.hi - self.lo) / 2.0
    }
}

/// How many replicates, from which seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bootstrap {
    /// Replicates B (at least 2).
    pub replicates: usize,
    /// The experiment seed.
    pub seed: u64,
}

/// One resample of n rows: `counts[i]` is how often row i was drawn (Σ counts = n).
pub fn counts(seed: u64, stream: u64, n: usize) -> Vec<u32> {
    let mut rng = stream_at(seed, Purpose::Bootstrap, stream);
    let mut c = vec![0u32; n];
    for _ in 0..n {
        c[rng.random_range(0..n)] += 1;
    }
    c
}

/// The rows `counts` selects, each as often as it was drawn (row-major, `d` values per row).
pub fn gather(x: &[f32], d: usize, counts: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for (row, &c) in x.chunks(d).zip(counts) {
        for _ in 0..c {
            out.extend_from_slice(row);
        }
    }
    out
}

/// The count-weighted mean of `values` (Σ c_i v_i / Σ c_i): a mean over a resample.
pub fn weighted_mean(values: &[f64], counts: &[u32]) -> f64 {
    let total: u32 = counts.iter().sum();
    values.iter().zip(counts).map(|(v, c)| v * *c as f64).sum::<f64>() / total as f64
}

/// The [`LEVEL`] percentile interval of `values` (finite ones; `None` when fewer than two).
pub fn percentile_interval(values: &[f64]) -> Option<Interval> {
    sorted_finite(values).map(|v| percentiles(&v))
}

/// The finite values, ascending (`None` when fewer than two).
fn sorted_finite(values: &[f64]) -> Option<Vec<f64>> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_unstable_by(f64::total_cmp);
    (v.len() >= 2).then_some(v)
}

/// The [`LEVEL`] quantile range of sorted `v`.
fn percentiles(v: &[f64]) -> Interval {
    let tail = (1.0 - LEVEL) / 2.0;
    Interval {
        lo: quantile(v, tail),
        hi: quantile(v, 1.0 - tail),
    }
}

/// The interval of the module docs from θ̂ = `value` and the replicate values (`None`
/// when θ̂ is not finite or fewer than two replicates are).
pub fn centred_interval(value: f64, replicates: &[f64]) -> Option<Interval> {
    let v = sorted_finite(replicates).filter(|_| value.is_finite())?;
    let p = percentiles(&v);
    let median = quantile(&v, 0.5);
    let floor = if value >= 0.0 { 0.0 } else { f64::NEG_INFINITY };
    Some(Interval {
        lo: (value - (median - p.lo)).max(floor),
        hi: value + (p.hi - median),
    })
}

/// The p-quantile of sorted, non-empty `v` (linear interpolation).
fn quantile(v: &[f64], p: f64) -> f64 {
    let pos = p * (v.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    if i + 1 < v.len() {
        v[i] + frac * (v[i + 1] - v[i])
    } else {
        v[i]
    }
}

impl Bootstrap {
    /// Checks B.
    pub fn new(replicates: usize, seed: u64) -> Result<Self> {
        if replicates < 2 {
            return Err(Error::Invalid {
                field: "sweep.bootstrap".into(),
                message: format!("{replicates}: at least 2 replicates (0 turns intervals off where it is accepted)"),
            });
        }
        Ok(Self { replicates, seed })
    }

    /// The reference resamples (m rows) of every replicate, in order: they are the same
    /// for every point, so statistics can prepare their reference side once.
    pub fn reference_counts(&self, m: usize) -> Vec<Vec<u32>> {
        (0..self.replicates)
            .map(|b| counts(self.seed, 2 * b as u64 + 1, m))
            .collect()
    }

    /// The values of `stat(b, x counts, y counts)` over the replicates (in parallel; the
    /// order of the result is the replicate order whatever the scheduling).
    pub fn replicates<F>(&self, n: usize, m: usize, stat: F) -> Result<Vec<f64>>
    where
        F: Fn(usize, &[u32], &[u32]) -> Result<f64> + Sync,
    {
        (0..self.replicates)
            .into_par_iter()
            .map(|b| {
                let cx = counts(self.seed, 2 * b as u64, n);
                let cy = counts(self.seed, 2 * b as u64 + 1, m);
                stat(b, &cx, &cy)
            })
            .collect()
    }

    /// The interval of the estimate `value` of `stat` (see the module docs and
    /// [`Bootstrap::replicates`]).
    pub fn interval<F>(&self, value: f64, n: usize, m: usize, stat: F) -> Result<Option<Interval>>
    where
        F: Fn(usize, &[u32], &[u32]) -> Result<f64> + Sync,
    {
        Ok(centred_interval(value, &self.replicates(n, m, stat)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_to_n_and_depend_on_the_stream_only() {
        let a = counts(3, 7, 50);
        assert_eq!(a.iter().sum::<u32>(), 50);
        assert_eq!(a, counts(3, 7, 50));
        assert_ne!(a, counts(3, 8, 50));
    }

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile(range(11), [2.5, 97.5]) = [0.25, 9.75]
        let v: Vec<f64> = (0..11).map(f64::from).collect();
        let i = percentile_interval(&v).unwrap();
        assert!((i.lo - 0.25).abs() < 1e-12 && (i.hi - 9.75).abs() < 1e-12, "{i:?}");
        assert!(percentile_interval(&[1.0, f64::NAN]).is_none());
        // Replicates 0..=10 have median 5; around θ̂ = 2 the interval is [2 − 4.75, 2 + 4.75],
        // its lower end kept at 0.
        let c = centred_interval(2.0, &v).unwrap();
        assert!(c.lo == 0.0 && (c.hi - 6.75).abs() < 1e-12, "{c:?}");
        let c = centred_interval(-1.0, &v).unwrap();
        assert!((c.lo + 5.75).abs() < 1e-12 && (c.hi - 3.75).abs() < 1e-12, "{c:?}");
    }

    #[test]
    fn gather_and_weighted_mean_agree() {
        let x = [1.0f32, 2.0, 3.0];
        let c = [2, 0, 1];
        assert_eq!(gather(&x, 1, &c), vec![1.0, 1.0, 3.0]);
        assert!((weighted_mean(&[1.0, 2.0, 3.0], &c) - 5.0 / 3.0).abs() < 1e-12);
    }
}
