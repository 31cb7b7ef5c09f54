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
