//! Seeded bootstrap replicates (Efron & Tibshirani 1993) of statistics of two samples:
//! generated rows x (n of them) against reference rows y (m), and the intervals made
//! from them.
//!
//! Replicate b resamples both sets with replacement, x from its own stream
//! `stream_at(seed, Purpose::Bootstrap, 2b)` and y from `stream_at(…, 2b + 1)`, so that
//! the replicates do not depend on how many are drawn or in which order, and every set of
//! the same size (every point of a sweep, and the floor set) sees the same resamples:
//! replicate b of two points is a *paired* draw ([`super::paired`]). A resample is given
//! to a statistic as a count per row (how often the row was drawn; the counts sum to n or
//! m), so that sums over rows stay sums — weighted by the counts, and for all B
//! replicates at once a product with the B × n count matrix ([`Resamples::matrix`]).
//!
//! Every replicate is kept ([`Replicated`]): the interval of one statistic
//! ([`interval`]) and of the difference of two ([`super::paired`]) both come from them.
//! Which interval ddimlab reports ([`MARGINAL`]) was chosen by its measured coverage
//! (`tests/it/coverage.rs`, README "Intervals"): see [`IntervalKind`].

use rand::Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::rng::{stream_at, Purpose};

/// The coverage of every interval ddimlab reports.
pub const LEVEL: f64 = 0.95;

/// The two-sided standard-normal quantile of [`LEVEL`], z_{0.975}.
pub const Z: f64 = 1.959_963_984_540_054;

/// A two-sided interval [lo, hi].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

impl Interval {
    /// Half the width, (hi − lo) / 2 (the "±" of a table cell).
    pub fn half_width(&self) -> f64 {
        (self.hi - self.lo) / 2.0
    }

    /// Whether `v` lies in [lo, hi].
    pub fn contains(&self, v: f64) -> bool {
        self.lo <= v && v <= self.hi
    }
}

crate::named_enum! {
    /// How an interval is made from an estimate θ̂ and its replicates θ*_b (q_p: their
    /// p-quantile, m*: their median, s*: their standard deviation).
    pub enum IntervalKind {
        /// [q_{2.5 %}, q_{97.5 %}].
        Percentile = "percentile",
        /// [2θ̂ − q_{97.5 %}, 2θ̂ − q_{2.5 %}].
        Basic = "basic",
        /// The percentile range moved so that m* sits on θ̂: [θ̂ − (m* − q_{2.5 %}), θ̂ + (q_{97.5 %} − m*)].
        Centred = "centred",
        /// θ̂ ± z_{0.975} s*.
        Normal = "normal",
    }
}

/// The interval every marginal cell of a table carries (chosen by coverage; see the
/// module docs).
pub const MARGINAL: IntervalKind = IntervalKind::Normal;

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

/// The B resamples of one set of n rows, in replicate order.
#[derive(Debug, Clone, PartialEq)]
pub struct Resamples {
    n: usize,
    counts: Vec<Vec<u32>>,
}

impl Resamples {
    /// No resamples of a set of n rows (a sweep without intervals).
    pub fn none(n: usize) -> Self {
        Self { n, counts: Vec::new() }
    }

    /// Rows n of the set resampled.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Replicates B.
    pub fn replicates(&self) -> usize {
        self.counts.len()
    }

    /// The counts of replicate `b`.
    pub fn counts(&self, b: usize) -> &[u32] {
        &self.counts[b]
    }

    /// Every replicate's counts.
    pub fn all(&self) -> &[Vec<u32>] {
        &self.counts
    }

    /// The B × n count matrix, row-major (row b = replicate b), as f64 for products.
    pub fn matrix(&self) -> Vec<f64> {
        self.counts.iter().flatten().map(|&c| c as f64).collect()
    }

    /// The same count matrix in f32 (counts are small integers: exact).
    pub fn matrix_f32(&self) -> Vec<f32> {
        self.counts.iter().flatten().map(|&c| c as f32).collect()
    }

    /// The count-weighted mean of `values` (one per row) in every replicate: B means.
    pub fn means(&self, values: &[f64]) -> Vec<f64> {
        self.counts.iter().map(|c| weighted_mean(values, c)).collect()
    }
}

/// The resamples of generated sets ([`Bootstrap::samples`]) by row count, each drawn once
/// and kept: every point of a sweep has its rows resampled by the same streams (a paired
/// draw), so they are made at the first point and shared by the rest. Without a bootstrap,
/// [`Resamples::none`].
#[derive(Debug, Default)]
pub struct SampleResamples {
    bootstrap: Option<Bootstrap>,
    kept: std::sync::Mutex<std::collections::BTreeMap<usize, std::sync::Arc<Resamples>>>,
}

impl SampleResamples {
    /// The resamples `bootstrap` draws (none without one).
    pub fn new(bootstrap: Option<Bootstrap>) -> Self {
        Self {
            bootstrap,
            kept: Default::default(),
        }
    }

    /// The resamples of a generated set of `n` rows.
    pub fn of(&self, n: usize) -> std::sync::Arc<Resamples> {
        let mut kept = self.kept.lock().expect("resamples lock");
        kept.entry(n)
            .or_insert_with(|| {
                std::sync::Arc::new(match &self.bootstrap {
                    Some(b) => b.samples(n),
                    None => Resamples::none(n),
                })
            })
            .clone()
    }
}

/// A statistic's estimate, its bootstrap replicates (replicate b in resample order) and,
/// where it has one, its first-order projection.
#[derive(Debug, Clone, PartialEq)]
pub struct Replicated {
    /// The estimate from the samples themselves.
    pub value: f64,
    /// The statistic of every resample, in replicate order.
    pub replicates: Vec<f64>,
    /// The first-order (Hoeffding) projection of the estimate onto each row (U-statistics).
    pub linear: Option<Linear>,
}

impl Replicated {
    /// An estimate with replicates and no projection.
    pub fn new(value: f64, replicates: Vec<f64>) -> Self {
        Self {
            value,
            replicates,
            linear: None,
        }
    }
}

/// The first-order (Hoeffding) projection of a statistic: the contribution φ_i of each
/// generated row and ψ_j of each reference row to its deviation, θ̂ − θ ≈ Σ φ_i + Σ ψ_j.
/// Each is estimated twice, from two disjoint halves of the other rows (even and odd
/// indices), centred (within each independent block): the two estimates of a row share
/// its true projection but not their noise, so their cross-product estimates the
/// projection's variance without the noise of the row means (the plug-in Σ φ_i² would
/// add it). A degenerate U-statistic (an MMD² near 0) has V_lin ≈ 0 and all of its
/// variance in the quadratic part. Two points' projections subtract row by row (the rows
/// share their index: the same x_T, the same reference row). MMD² and KID's come from
/// kernel-matrix row means ([`super::mmd`]); the Fréchet distances' from the gradient of
/// FD at the fits of each half ([`super::influence`]).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Linear {
    /// φ_i, one per generated row, from each half of the other rows.
    pub samples: [Vec<f64>; 2],
    /// ψ_j, one per reference row, from each half of the other rows.
    pub reference: [Vec<f64>; 2],
}

impl Linear {
    /// V_lin = Σ over the two sides of N/(N − 1) Σ_i (a_i − ā)(b_i − b̄), a and b the two
    /// halves' estimates (0 where it comes out negative).
    pub fn variance(&self) -> f64 {
        let side = |[a, b]: &[Vec<f64>; 2]| -> f64 {
            let n = a.len() as f64;
            if n < 2.0 || b.len() != a.len() {
                return 0.0;
            }
            let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
            n / (n - 1.0) * a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum::<f64>()
        };
        (side(&self.samples) + side(&self.reference)).max(0.0)
    }

    /// The projection of the difference of two statistics on the same rows (`None` when
    /// the row counts differ).
    pub fn minus(&self, other: &Linear) -> Option<Linear> {
        let diff = |a: &[f64], b: &[f64]| -> Option<Vec<f64>> {
            (a.len() == b.len()).then(|| a.iter().zip(b).map(|(x, y)| x - y).collect())
        };
        let pair = |a: &[Vec<f64>; 2], b: &[Vec<f64>; 2]| -> Option<[Vec<f64>; 2]> {
            Some([diff(&a[0], &b[0])?, diff(&a[1], &b[1])?])
        };
        Some(Linear {
            samples: pair(&self.samples, &other.samples)?,
            reference: pair(&self.reference, &other.reference)?,
        })
    }
}

/// The standard deviation behind a normal interval: the replicates' (bootstrap variance
/// V_boot), or, for a statistic with a first-order projection, √((2 V_lin + V_boot)/3).
///
/// Why the mixture: a U-statistic is a linear part plus a degenerate quadratic part,
/// V = V_L + V_Q. The projection's variance V_lin estimates V_L only; the bootstrap's
/// counts the quadratic part about three times (V_L + 3 V_Q: each resample is a sample
/// of the empirical distribution, whose own projection carries the quadratic part's
/// noise), so (2 V_lin + V_boot)/3 counts each once. A smooth function of sample moments
/// such as the Fréchet distance has the same structure to second order: with m̄ the
/// moments, θ̂ − θ ≈ ∇ᵀe + ½ eᵀHe (e = m̄ − m), and the bootstrap's linear part, taken at
/// ∇(m̄) = ∇ + He, adds the quadratic part's variance twice more. Measured coverage:
/// README "Intervals" and `tests/it/coverage.rs`.
pub fn spread(replicates: &[f64], linear: Option<&Linear>) -> Option<f64> {
    let boot = standard_deviation(replicates)?;
    Some(match linear {
        Some(l) => ((2.0 * l.variance() + boot * boot) / 3.0).sqrt(),
        None => boot,
    })
}

impl Bootstrap {
    /// Checks B.
    pub fn new(replicates: usize, seed: u64) -> Result<Self> {
        if replicates < 2 {
            return Err(Error::invalid(
                "sweep.bootstrap",
                format!("{replicates}: at least 2 replicates (0 turns intervals off where it is accepted)"),
            ));
        }
        Ok(Self { replicates, seed })
    }

    /// The resamples of a generated set of n rows (streams 2b): the same for every set
    /// of that size, so replicate b of two points is a paired draw.
    pub fn samples(&self, n: usize) -> Resamples {
        self.resamples(n, 0)
    }

    /// The resamples of the reference set of m rows (streams 2b + 1).
    pub fn reference(&self, m: usize) -> Resamples {
        self.resamples(m, 1)
    }

    fn resamples(&self, n: usize, offset: u64) -> Resamples {
        Resamples {
            n,
            counts: (0..self.replicates)
                .into_par_iter()
                .map(|b| counts(self.seed, 2 * b as u64 + offset, n))
                .collect(),
        }
    }

    /// The values of `stat(b, x counts, y counts)` over the replicates (in parallel; the
    /// order of the result is the replicate order whatever the scheduling): for the
    /// statistics that have no batched form.
    pub fn replicates<F>(&self, x: &Resamples, y: &Resamples, stat: F) -> Result<Vec<f64>>
    where
        F: Fn(usize, &[u32], &[u32]) -> Result<f64> + Sync,
    {
        (0..self.replicates)
            .into_par_iter()
            .map(|b| stat(b, x.counts(b), y.counts(b)))
            .collect()
    }
}

/// The finite values, ascending (`None` when fewer than two).
fn sorted_finite(values: &[f64]) -> Option<Vec<f64>> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_unstable_by(f64::total_cmp);
    (v.len() >= 2).then_some(v)
}

/// The p-quantile of sorted, non-empty `v` (linear interpolation, numpy's default).
pub fn quantile(v: &[f64], p: f64) -> f64 {
    let pos = p * (v.len() - 1) as f64;
    let (i, frac) = (pos.floor() as usize, pos.fract());
    if i + 1 < v.len() {
        v[i] + frac * (v[i + 1] - v[i])
    } else {
        v[i]
    }
}

/// The standard deviation (divisor B − 1) of the finite `values` (`None` when fewer than two).
pub fn standard_deviation(values: &[f64]) -> Option<f64> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.len() < 2 {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    Some((v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt())
}

/// The [`LEVEL`] interval of kind `kind` from the estimate `value` and its `replicates`
/// (finite ones; `None` when θ̂ is not finite or fewer than two replicates are); a normal
/// interval uses the first-order projection `linear` where there is one ([`spread`]).
pub fn interval(kind: IntervalKind, value: f64, replicates: &[f64], linear: Option<&Linear>) -> Option<Interval> {
    let v = sorted_finite(replicates).filter(|_| value.is_finite())?;
    let tail = (1.0 - LEVEL) / 2.0;
    let (lo, hi) = (quantile(&v, tail), quantile(&v, 1.0 - tail));
    Some(match kind {
        IntervalKind::Percentile => Interval { lo, hi },
        IntervalKind::Basic => Interval {
            lo: 2.0 * value - hi,
            hi: 2.0 * value - lo,
        },
        IntervalKind::Centred => {
            let median = quantile(&v, 0.5);
            Interval {
                lo: value - (median - lo),
                hi: value + (hi - median),
            }
        }
        IntervalKind::Normal => {
            let s = spread(&v, linear)?;
            Interval {
                lo: value - Z * s,
                hi: value + Z * s,
            }
        }
    })
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
        let b = Bootstrap::new(4, 3).unwrap();
        assert_eq!(b.samples(50).counts(3), counts(3, 6, 50).as_slice());
        assert_eq!(b.reference(50).counts(3), counts(3, 7, 50).as_slice());
    }

    #[test]
    fn intervals_by_hand() {
        // numpy.percentile(range(11), [2.5, 97.5]) = [0.25, 9.75]; median 5; sd √11.
        let v: Vec<f64> = (0..11).map(f64::from).collect();
        let close = |i: Interval, lo: f64, hi: f64| (i.lo - lo).abs() < 1e-12 && (i.hi - hi).abs() < 1e-12;
        let p = interval(IntervalKind::Percentile, 2.0, &v, None).unwrap();
        assert!(close(p, 0.25, 9.75), "{p:?}");
        let b = interval(IntervalKind::Basic, 2.0, &v, None).unwrap();
        assert!(close(b, -5.75, 3.75), "{b:?}");
        let c = interval(IntervalKind::Centred, 2.0, &v, None).unwrap();
        assert!(close(c, -2.75, 6.75), "{c:?}");
        let s = 11f64.sqrt();
        let n = interval(IntervalKind::Normal, 2.0, &v, None).unwrap();
        assert!(close(n, 2.0 - Z * s, 2.0 + Z * s), "{n:?}");
        assert!(interval(IntervalKind::Normal, 1.0, &[1.0, f64::NAN], None).is_none());
        assert!(interval(IntervalKind::Normal, f64::NAN, &v, None).is_none());
        // With a projection whose halves agree, φ = (1, −1, 0), ψ = (2, −2):
        // V_lin = 3/2 · 2 + 2/1 · 8 = 19, and V_boot = 11 (the replicates' variance):
        // sd = √((2 · 19 + 11)/3). Halves with independent noise cancel it: (1, −1) against
        // (1, 1) has cross-product 0.
        let l = Linear {
            samples: [vec![1.0, -1.0, 0.0], vec![1.0, -1.0, 0.0]],
            reference: [vec![2.0, -2.0], vec![2.0, -2.0]],
        };
        assert!((l.variance() - 19.0).abs() < 1e-12);
        let noise = Linear {
            samples: [vec![1.0, -1.0], vec![1.0, 1.0]],
            reference: [vec![], vec![]],
        };
        assert_eq!(noise.variance(), 0.0);
        let m = interval(IntervalKind::Normal, 2.0, &v, Some(&l)).unwrap();
        let sd = ((2.0 * 19.0 + 11.0) / 3.0f64).sqrt();
        assert!(close(m, 2.0 - Z * sd, 2.0 + Z * sd), "{m:?}");
        assert_eq!(l.minus(&l).unwrap().variance(), 0.0);
    }

    #[test]
    fn gather_and_weighted_mean_agree() {
        let x = [1.0f32, 2.0, 3.0];
        let c = [2, 0, 1];
        assert_eq!(gather(&x, 1, &c), vec![1.0, 1.0, 3.0]);
        assert!((weighted_mean(&[1.0, 2.0, 3.0], &c) - 5.0 / 3.0).abs() < 1e-12);
    }
}
