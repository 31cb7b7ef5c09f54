//! Paired comparisons of two points of a sweep, and the multiplicity correction across
//! the comparisons one report states.
//!
//! Two points of a sweep share x_T, the per-sample noise, the reference set and the
//! bootstrap resamples, so replicate b of one and replicate b of the other are one draw:
//! the difference Δ̂ = θ̂_A − θ̂_B has replicates Δ*_b = θ*_{A,b} − θ*_{B,b}, whose spread
//! is the spread of Δ̂ itself — much smaller than either marginal interval when the
//! points' statistics move together (the shared reference and, for similar samplers, the
//! shared x_T). [`difference`] gives Δ̂ with its interval and a two-sided p-value for
//! Δ = 0 from the normal approximation z = Δ̂ / s(Δ*) (p-values far below 1/B are needed
//! once [`holm`] divides the level by the number of comparisons, and the percentile
//! methods cannot give them); [`PAIRED`] is the interval kind whose coverage was measured
//! (`tests/it/coverage.rs`).

use super::bootstrap::{interval, spread, Interval, IntervalKind, Linear, LEVEL};

/// Relative resolution of a statistic computed from f32 samples: |Δ̂| at or below this
/// times the larger |θ̂| gets p = 1 (about 10 × f32's machine epsilon).
pub const RESOLUTION: f64 = 1e-6;

/// The interval of a paired difference (chosen by coverage; see the module docs).
pub const PAIRED: IntervalKind = IntervalKind::Normal;

/// A paired difference θ_A − θ_B.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// Δ̂ = θ̂_A − θ̂_B.
    pub estimate: f64,
    /// Its [`LEVEL`] interval from the paired replicates ([`PAIRED`]).
    pub interval: Interval,
    /// The standard deviation of the paired replicates Δ*.
    pub se: f64,
    /// The two-sided p-value of Δ = 0, 2 Φ(−|Δ̂| / se) (1 when Δ̂ = 0 and se = 0).
    pub p: f64,
}

impl Difference {
    /// Whether the difference is told apart from 0 at `LEVEL` without correction.
    pub fn excludes_zero(&self) -> bool {
        !self.interval.contains(0.0)
    }
}

/// One side of a paired difference: an estimate, its replicates in resample order, and
/// its first-order projection where it has one.
pub type Side<'a> = (f64, &'a [f64], Option<&'a Linear>);

/// The paired difference of `a` and `b`; replicates where either side is not finite are
/// left out, and where both sides have a first-order projection, the spread of Δ mixes
/// the projection of the difference with the replicates' ([`spread`]). `None` when an
/// estimate is not finite, the replicate counts differ, or fewer than two pairs are finite.
pub fn difference(a: Side, b: Side) -> Option<Difference> {
    if a.1.len() != b.1.len() {
        return None;
    }
    let estimate = a.0 - b.0;
    let deltas: Vec<f64> =
        a.1.iter()
            .zip(b.1)
            .map(|(x, y)| x - y)
            .filter(|d| d.is_finite())
            .collect();
    let linear = match (a.2, b.2) {
        (Some(x), Some(y)) => x.minus(y),
        _ => None,
    };
    let interval = interval(PAIRED, estimate, &deltas, linear.as_ref())?;
    let se = spread(&deltas, linear.as_ref())?;
    // A difference below the statistics' numerical resolution (the samples are f32;
    // parallel sums differ in their last bits) is not a difference: two runs of the same
    // sampler would otherwise be "told apart" by replicates that agree to 1e-10.
    let resolution = RESOLUTION * a.0.abs().max(b.0.abs());
    let p = match (estimate.abs() <= resolution, se > 0.0) {
        (true, _) => 1.0,
        (false, false) => 0.0,
        (false, true) => 2.0 * normal_upper_tail(estimate.abs() / se),
    };
    Some(Difference {
        estimate,
        interval,
        se,
        p: p.min(1.0),
    })
}

/// The paired comparison of two points measured on the same rows (the reconstruction
/// errors of the held-out rows, the consistency errors of the samples from one x_T), row i
/// of `a` against row i of `b`: the sign test of d_i = a_i − b_i (Dixon & Mood 1946) and
/// the distribution-free interval of the median difference. Means of such rows can be
/// dominated by a few rows (the oracles' reconstructions: skewness 5–45, the largest row up
/// to 1,700 × the mean), where the bootstrap's normal interval of a paired difference of
/// means, or of mean logs, covered 64–89 % on the digits oracle's 100 held-out rows
/// (`scripts/coverage_study/row_means.py`, README "Intervals"); the sign test is exact
/// whatever the rows' distribution:
/// - the estimate is the median of the d_i;
/// - p = 2 P(X ≤ min(k₊, k₋)), X ~ Bin(k₊ + k₋, ½), with k₊ and k₋ the rows where d_i > 0
///   and d_i < 0 (differences within [`RESOLUTION`] of the larger value are ties, left out);
/// - the interval is [d_(k), d_(n+1−k)] of the sorted differences, k the largest with
///   2 P(Y ≤ k − 1) ≤ 1 − [`LEVEL`], Y ~ Bin(n, ½): it holds the median difference with
///   probability at least [`LEVEL`].
///
/// `se` has no meaning here and is NaN. `None` when the lengths differ or fewer than six
/// rows are finite on both sides (no interval reaches 95 % below that).
pub fn sign_test(a: &[f64], b: &[f64]) -> Option<Difference> {
    if a.len() != b.len() {
        return None;
    }
    let pairs: Vec<(f64, f64)> = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x, *y))
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    let mut d: Vec<f64> = pairs.iter().map(|(x, y)| x - y).collect();
    d.sort_by(f64::total_cmp);
    let n = d.len();
    let alpha = 1.0 - LEVEL;
    // k: the largest with 2 P(Y ≤ k − 1) ≤ α, i.e. the first j with 2 P(Y ≤ j) > α.
    let k = binomial_half_log_cdf(n)
        .position(|log_cdf| 2.0 * log_cdf.exp() > alpha)
        .filter(|&k| k > 0)?;
    let median = match n % 2 {
        1 => d[n / 2],
        _ => 0.5 * (d[n / 2 - 1] + d[n / 2]),
    };
    let tie = |(x, y): &(f64, f64)| (x - y).abs() <= RESOLUTION * x.abs().max(y.abs());
    let above = pairs.iter().filter(|p| !tie(p) && p.0 > p.1).count();
    let below = pairs.iter().filter(|p| !tie(p) && p.0 < p.1).count();
    let p = match above + below {
        0 => 1.0,
        m => (2.0 * binomial_half_cdf(m, above.min(below))).min(1.0),
    };
    Some(Difference {
        estimate: median,
        interval: Interval {
            lo: d[k - 1],
            hi: d[n - k],
        },
        se: f64::NAN,
        p,
    })
}

/// ln P(X ≤ j) for X ~ Bin(n, ½), j = 0, 1, …, n: the terms ln P(X = i) from
/// −n ln 2 by the ratio (n − i)/(i + 1), summed in logarithms (no underflow at any n; one
/// pass for every j).
fn binomial_half_log_cdf(n: usize) -> impl Iterator<Item = f64> {
    let (mut term, mut sum) = (-(n as f64) * std::f64::consts::LN_2, f64::NEG_INFINITY);
    (0..=n).map(move |i| {
        let (hi, lo) = (sum.max(term), sum.min(term));
        sum = hi + (lo - hi).exp().ln_1p();
        term += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
        sum
    })
}

/// P(X ≤ j) for X ~ Bin(n, ½).
fn binomial_half_cdf(n: usize, j: usize) -> f64 {
    binomial_half_log_cdf(n).nth(j.min(n)).map_or(1.0, f64::exp).min(1.0)
}

/// P(Z > z) for a standard normal Z: ½ erfc(z / √2).
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// Holm's step-down adjusted p-values (Holm 1979) of `p`, in the same order: with the
/// p-values sorted ascending p_(1) ≤ … ≤ p_(k), the adjusted p_(i) is
/// max_{j ≤ i} min(1, (k − j + 1) p_(j)). Rejecting where the adjusted value is below α
/// controls the probability of any false rejection among the k at α. NaN stays NaN and
/// does not count towards k.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..p.len()).filter(|&i| p[i].is_finite()).collect();
    order.sort_by(|&a, &b| p[a].total_cmp(&p[b]));
    let k = order.len();
    let mut out = vec![f64::NAN; p.len()];
    let mut running: f64 = 0.0;
    for (j, &i) in order.iter().enumerate() {
        running = running.max(((k - j) as f64 * p[i]).min(1.0));
        out[i] = running;
    }
    out
}

/// The significance level of every statement: 1 − [`LEVEL`].
pub const ALPHA: f64 = 1.0 - LEVEL;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holm_by_hand() {
        // p = (0.01, 0.04, 0.03, 0.005), k = 4: sorted 0.005, 0.01, 0.03, 0.04 →
        // 4·0.005 = 0.02, 3·0.01 = 0.03, 2·0.03 = 0.06, 1·0.04 → max(0.06, 0.04) = 0.06.
        let a = holm(&[0.01, 0.04, 0.03, 0.005]);
        let want = [0.03, 0.06, 0.06, 0.02];
        for (x, y) in a.iter().zip(want) {
            assert!((x - y).abs() < 1e-12, "{a:?}");
        }
        let b = holm(&[0.5, f64::NAN, 0.9]);
        assert!(
            (b[0] - 1.0).abs() < 1e-12 && b[1].is_nan() && (b[2] - 1.0).abs() < 1e-12,
            "{b:?}"
        );
    }

    #[test]
    fn normal_tail_known_values() {
        // scipy.stats.norm.sf: 0 → 0.5, 1.959963984540054 → 0.025, 3 → 0.0013498980316301
        assert!((normal_upper_tail(0.0) - 0.5).abs() < 1e-15);
        assert!((normal_upper_tail(super::super::bootstrap::Z) - 0.025).abs() < 1e-12);
        assert!((normal_upper_tail(3.0) - 0.001_349_898_031_630_1).abs() < 1e-13);
    }

    #[test]
    fn sign_test_by_hand() {
        // Ten rows, nine falling by 1, one rising by 2: k₋ = 9, k₊ = 1, p = 2 (1 + 10)/1024
        // = 0.021484375. Sorted d: −1 × 9, 2; median −1. n = 10: 2 P(Y ≤ 1) = 22/1024 ≤ 0.05,
        // 2 P(Y ≤ 2) = 112/1024 > 0.05, so k = 2: [d_(2), d_(9)] = [−1, −1].
        let a = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0];
        let b = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let d = sign_test(&a, &b).unwrap();
        assert!((d.p - 0.021_484_375).abs() < 1e-12, "{}", d.p);
        assert_eq!((d.estimate, d.interval.lo, d.interval.hi), (-1.0, -1.0, -1.0));
        // scipy.stats.binomtest(3, 20).pvalue = 0.002576828002929688 (k₊ = 3 of 20)
        let a: Vec<f64> = (0..20).map(|i| if i < 3 { 2.0 } else { -(i as f64) }).collect();
        let d = sign_test(&a, &[0.0; 20]).unwrap();
        assert!((d.p - 0.002_576_828_002_929_688).abs() < 1e-12, "{}", d.p);
        // n = 20: 2 P(Y ≤ 5) = 0.0414 ≤ 0.05 < 2 P(Y ≤ 6) = 0.1153: k = 6, [d_(6), d_(15)].
        let mut sorted = a.clone();
        sorted.sort_by(f64::total_cmp);
        assert_eq!((d.interval.lo, d.interval.hi), (sorted[5], sorted[14]));
        // Ties (equal rows) are left out of the test; all tied: p = 1.
        assert_eq!(sign_test(&[1.0; 8], &[1.0; 8]).unwrap().p, 1.0);
        // Fewer than six rows: no 95 % interval; lengths that differ: nothing.
        assert!(sign_test(&[1.0; 5], &[0.0; 5]).is_none());
        assert!(sign_test(&[1.0; 7], &[0.0; 8]).is_none());
        // Large n: no underflow (2,000 rows, 1,100 up): p = 2 P(X ≤ 900) ≈ 8.4e-6.
        let up: Vec<f64> = (0..2000).map(|i| if i < 1100 { 1.0 } else { -1.0 }).collect();
        let p = sign_test(&up, &[0.0; 2000]).unwrap().p;
        assert!(p > 1e-6 && p < 2e-5, "{p}");
        assert!((binomial_half_cdf(4, 1) - 5.0 / 16.0).abs() < 1e-15);
    }

    #[test]
    fn paired_difference_by_hand() {
        // Δ* = (1, 2, 3) − (0, 0, 0): sd 1; Δ̂ = 2 → z = 2, p = 2·0.0227501319 = 0.0455002639.
        let d = difference((3.0, &[1.0, 2.0, 3.0], None), (1.0, &[0.0, 0.0, 0.0], None)).unwrap();
        assert_eq!(d.estimate, 2.0);
        assert!((d.se - 1.0).abs() < 1e-15);
        assert!((d.p - 0.045_500_263_896_358_4).abs() < 1e-12, "{}", d.p);
        assert!(d.excludes_zero());
        assert!(difference((1.0, &[1.0], None), (1.0, &[1.0, 2.0], None)).is_none());
        let same = difference((1.0, &[1.0, 1.0], None), (1.0, &[1.0, 1.0], None)).unwrap();
        assert_eq!(same.p, 1.0);
        // Below the resolution: replicates that agree to 1e-10 do not make a difference.
        let a = [0.02, 0.021, 0.019];
        let b: Vec<f64> = a.iter().map(|v| v + 2e-10).collect();
        let tiny = difference((0.02, &a, None), (0.02 + 2e-10, &b, None)).unwrap();
        assert_eq!(tiny.p, 1.0);
    }
}
