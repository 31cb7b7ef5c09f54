//! k-nearest-neighbour manifold metrics of generated rows x (M of them) against real
//! rows y (N): precision and recall (Kynkäänniemi et al. 2019, "Improved Precision and
//! Recall Metric for Assessing Generative Models", k = 3) and density and coverage (Naeem
//! et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models", k = 5).
//!
//! A set's manifold is the union of balls B(z, r(z)) around its rows, r(z) the distance
//! from z to its k-th nearest *other* row of the same set ([`Manifold`]). With r_j the
//! radii of the real rows and s_i those of the generated rows:
//!
//! - precision = (1/M) Σ_i 1[∃ j: ‖x_i − y_j‖ < r_j] (generated rows on the real manifold);
//! - recall = (1/N) Σ_j 1[∃ i: ‖y_j − x_i‖ < s_i] (real rows on the generated manifold);
//! - density = (1/(k M)) Σ_i Σ_j 1[‖x_i − y_j‖ < r_j] (how many real balls hold each x_i);
//! - coverage = (1/N) Σ_j 1[min_i ‖x_i − y_j‖ < r_j] (real balls holding any x_i).
//!
//! Conventions, matched to the official implementation (`prdc/prdc.py` of
//! clovaai/generative-evaluation-prdc, which also computes the precision and recall above;
//! checked once against prdc 0.2's `compute_prdc`: the same four values on 500 × 400
//! normal rows, d = 16, k = 3 and 5, and on the tests' hand-computed examples):
//!
//! - The radius of a row is the (k + 1)-th smallest entry of its row of the set's own
//!   distance matrix, the zero distance to itself included (`get_kth_value(distances,
//!   k=nearest_k + 1)`): the distance to the k-th nearest other row. Duplicate rows count
//!   as neighbours at distance 0.
//! - Every comparison is strict, `<` (`distance_real_fake <
//!   np.expand_dims(real_nearest_neighbour_distances, axis=1)`, and `distance_real_fake.min(axis=1)
//!   < real_nearest_neighbour_distances` for coverage), where both papers write closed balls
//!   (≤). A generated row exactly on a ball's boundary is outside it. One consequence: a set
//!   measured against itself, with no tied distances, has density exactly 1 (each ball holds
//!   its centre and the k − 1 strictly nearer neighbours); ≤ would give (k + 1)/k.
//! - A set needs more than k rows (N = k + 1 gives each row its farthest other row as
//!   radius; prdc itself needs N ≥ k + 2, an artefact of `np.argpartition(…, k + 1)`).
//! - Distances are Euclidean; ddimlab compares their squares (‖u‖² + ‖v‖² − 2 u·v in f64,
//!   negative round-off taken as 0, a set's own diagonal exactly 0), which orders them the
//!   same way.
//!
//! Every statistic is a mean over the rows of *one* side given the radii ([`PrdcRows`]):
//! precision and density over the generated rows, recall and coverage over the real rows.
//! Bootstrap replicates are then count-weighted means of those per-row values
//! ([`PrdcRows::replicated`]), a conditional bootstrap (see there).
//!
//! The distances come from one matrix product per pair of sets (real × real once per
//! reference, generated × generated and generated × real once per sample set), in blocks
//! of rows that bound the memory to [`BLOCK_ENTRIES`] f64 values; a set against itself
//! through the blocks on and below the diagonal only (the distances are symmetric: a
//! row's k smallest are completed from the columns of later blocks).

use std::ops::Range;

use rayon::prelude::*;

use super::bootstrap::{Replicated, Resamples};
use super::linalg::{to_f64, F64_BUFFERS};
use super::rows;
use crate::error::{Error, Result};
use crate::kernels::gemm::{matmul, View};

/// The k of precision and recall (Kynkäänniemi et al. 2019).
pub const K_PRECISION_RECALL: usize = 3;

/// The k of density and coverage (Naeem et al. 2020).
pub const K_DENSITY_COVERAGE: usize = 5;

/// The most squared distances held at once (a block of rows × all rows of the other set:
/// 4 MiB of f64), in a buffer of [`F64_BUFFERS`] reused for every block and every call.
pub const BLOCK_ENTRIES: usize = 1 << 19;

/// Columns per task of the column-wise reductions (coverage and recall).
const COLUMNS: usize = 256;

/// Rows of one set in f64 with their squared norms.
#[derive(Debug, Clone)]
pub(super) struct Rows {
    n: usize,
    d: usize,
    data: Vec<f64>,
    norms: Vec<f64>,
}

impl Rows {
    pub(super) fn new(x: &[f32], d: usize) -> Self {
        let data = to_f64(x);
        let norms = data.chunks(d).map(|r| r.iter().map(|a| a * a).sum()).collect();
        Self {
            n: x.len() / d,
            d,
            data,
            norms,
        }
    }
}

/// The blocks of `n` rows against `other` rows, each of at most `block_entries` distances
/// (at least one row; the last block shorter), and a buffer of [`F64_BUFFERS`] that holds
/// the largest of them, so that no block grows it (give it back when done).
pub(super) fn distance_blocks(
    n: usize,
    other: usize,
    block_entries: usize,
) -> (impl Iterator<Item = Range<usize>>, Vec<f64>) {
    let size = (block_entries / other.max(1)).max(1);
    let buffer = F64_BUFFERS.take(size.min(n) * other);
    ((0..n).step_by(size).map(move |s| s..(s + size).min(n)), buffer)
}

/// The `count` smallest values offered so far, ascending, duplicates counted: after a
/// row's values, entry k is what `select_nth_unstable(k)` would find in the row, whatever
/// the order they came in. After the first few values almost every value is larger than
/// the largest kept ([`Smallest::bound`]) and is dropped by one comparison.
#[derive(Debug, Clone)]
struct Smallest {
    count: usize,
    kept: Vec<f64>,
}

impl Smallest {
    fn new(count: usize) -> Self {
        Self {
            count,
            kept: Vec::with_capacity(count + 1),
        }
    }

    /// Values at or above this are not kept (∞ until `count` values are).
    fn bound(&self) -> f64 {
        if self.kept.len() == self.count {
            self.kept[self.count - 1]
        } else {
            f64::INFINITY
        }
    }

    fn offer(&mut self, v: f64) {
        if v >= self.bound() {
            return;
        }
        if self.kept.len() == self.count {
            self.kept.pop();
        }
        let at = self.kept.partition_point(|&b| b <= v);
        self.kept.insert(at, v);
    }

    /// [`Smallest::offer`] of each value, compared with the bound eight at a time (one
    /// vector comparison), value by value only in a block that holds a smaller one (one at a
    /// time, the selection was 3 % of the digits statistics' profile).
    fn offer_all(&mut self, values: &[f64]) {
        let blocks = values.chunks_exact(8);
        let tail = blocks.remainder();
        for block in blocks {
            let bound = self.bound();
            if block.iter().fold(false, |any, &v| any | (v < bound)) {
                block.iter().for_each(|&v| self.offer(v));
            }
        }
        tail.iter().for_each(|&v| self.offer(v));
    }
}

/// The `count` smallest values of `row` in ascending order, duplicates counted.
#[cfg(test)]
fn smallest(row: &[f64], count: usize) -> Vec<f64> {
    let mut s = Smallest::new(count);
    s.offer_all(row);
    s.kept
}

/// Squared Euclidean distances from the rows `range` of `a` to the rows `cols` of `b`
/// (range.len() × cols.len(), row-major) into `g` (resized, its allocation reused): ‖u‖² +
/// ‖v‖² − 2 u·v with the inner products as one product, negative round-off taken as 0.
pub(super) fn squared_distances(a: &Rows, range: Range<usize>, b: &Rows, cols: Range<usize>, g: &mut Vec<f64>) {
    let d = a.d;
    let block = &a.data[range.start * d..range.end * d];
    let width = cols.len();
    g.resize(range.len() * width, 0.0);
    let threads = rayon::current_num_threads();
    matmul(
        g,
        false,
        View::rows(block, range.len(), d),
        View::rows(&b.data[cols.start * d..cols.end * d], width, d).t(),
        threads,
    );
    g.par_chunks_mut(width.max(1))
        .zip(&a.norms[range])
        .for_each(|(row, na)| {
            for (v, nb) in row.iter_mut().zip(&b.norms[cols.clone()]) {
                *v = (na + nb - 2.0 * *v).max(0.0);
            }
        });
}

/// Offers each of `lists` (those of columns `first`, `first` + 1, …) the values of its
/// column of `g` (rows of `width` values), eight columns at a time: one comparison of eight
/// values with their eight bounds, value by value only where one is below.
fn offer_columns(g: &[f64], width: usize, first: usize, lists: &mut [Smallest]) {
    for (q, group) in lists.chunks_mut(8).enumerate() {
        let j0 = first + 8 * q;
        let mut bounds = [f64::NEG_INFINITY; 8];
        group.iter().zip(&mut bounds).for_each(|(l, b)| *b = l.bound());
        for row in g.chunks(width) {
            let values = &row[j0..j0 + group.len()];
            if values.iter().zip(&bounds).fold(false, |any, (v, b)| any | (v < b)) {
                for ((l, b), &v) in group.iter_mut().zip(&mut bounds).zip(values) {
                    l.offer(v);
                    *b = l.bound();
                }
            }
        }
    }
}

/// A set of rows and, for each of one or more k, every row's k-NN radius: the distance to
/// its k-th nearest other row of the set (the (k + 1)-th smallest distance with the zero
/// to itself, prdc's `compute_nearest_neighbour_distances`). Built once per reference set
/// and reused for every sample set measured against it.
#[derive(Debug, Clone)]
pub struct Manifold {
    rows: Rows,
    ks: Vec<usize>,
    /// Per entry of `ks`: the squared radius of every row.
    squared: Vec<Vec<f64>>,
}

impl Manifold {
    /// The rows of `x` (n × `d`) and their k-NN radii for each k of `ks` (each ≥ 1; n must
    /// exceed the largest), from one product of the set with itself.
    pub fn new(x: &[f32], d: usize, ks: &[usize]) -> Result<Self> {
        Self::build(x, d, ks, "x", BLOCK_ENTRIES)
    }

    fn build(x: &[f32], d: usize, ks: &[usize], what: &str, block_entries: usize) -> Result<Self> {
        let kmax = check_ks(ks)?;
        let n = rows(x, d, what, kmax + 1)?;
        let set = Rows::new(x, d);
        let mut lists = vec![Smallest::new(kmax + 1); n];
        let (blocks, mut g) = distance_blocks(n, n, block_entries);
        for range in blocks {
            // The block's rows against the rows up to its last (the distances are
            // symmetric: the rest of its rows' distances come as columns of later blocks).
            let (start, end) = (range.start, range.end);
            squared_distances(&set, range.clone(), &set, 0..end, &mut g);
            g.par_chunks_mut(end)
                .zip(&mut lists[range])
                .enumerate()
                .for_each(|(r, (row, list))| {
                    row[start + r] = 0.0; // the distance to itself, exactly
                    list.offer_all(row);
                });
            lists[..start]
                .par_chunks_mut(COLUMNS)
                .enumerate()
                .for_each(|(c, lists)| offer_columns(&g, end, c * COLUMNS, lists));
        }
        F64_BUFFERS.give(g);
        let squared = ks.iter().map(|&k| lists.iter().map(|l| l.kept[k]).collect()).collect();
        Ok(Self {
            rows: set,
            ks: ks.to_vec(),
            squared,
        })
    }

    /// Rows n.
    pub fn rows(&self) -> usize {
        self.rows.n
    }

    /// The dimension d.
    pub fn dim(&self) -> usize {
        self.rows.d
    }

    /// The ks the radii were computed for.
    pub fn ks(&self) -> &[usize] {
        &self.ks
    }

    /// The Euclidean k-NN radius of every row (`None` for a k not computed).
    pub fn radii(&self, k: usize) -> Option<Vec<f64>> {
        self.squared_radii(k).map(|s| s.iter().map(|v| v.sqrt()).collect())
    }

    fn squared_radii(&self, k: usize) -> Option<&[f64]> {
        self.ks.iter().position(|&q| q == k).map(|t| self.squared[t].as_slice())
    }
}

/// The largest of `ks` after checking that there is one and that each is at least 1.
fn check_ks(ks: &[usize]) -> Result<usize> {
    match ks.iter().copied().max() {
        Some(k) if ks.iter().all(|&k| k >= 1) => Ok(k),
        _ => Err(Error::invalid(
            "k",
            format!("{ks:?}: at least one k, each at least 1, is needed"),
        )),
    }
}

/// The four statistics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prdc {
    /// Precision (Kynkäänniemi et al. 2019): the fraction of generated rows on the real manifold.
    pub precision: f64,
    /// Recall (Kynkäänniemi et al. 2019): the fraction of real rows on the generated manifold.
    pub recall: f64,
    /// Density (Naeem et al. 2020): real balls per generated row, over k (1 when the sets match).
    pub density: f64,
    /// Coverage (Naeem et al. 2020): the fraction of real balls holding a generated row.
    pub coverage: f64,
}

/// The per-row contributions whose means are the four statistics.
#[derive(Debug, Clone, PartialEq)]
pub struct PrdcRows {
    /// Per generated row x_i: 1[∃ j: ‖x_i − y_j‖ < r_j] (radii at k_pr), else 0.
    pub precision: Vec<f64>,
    /// Per generated row x_i: #{j: ‖x_i − y_j‖ < r_j} / k (radii at k = k_dc).
    pub density: Vec<f64>,
    /// Per real row y_j: 1[∃ i: ‖y_j − x_i‖ < s_i] (s: the generated rows' radii at k_pr).
    pub recall: Vec<f64>,
    /// Per real row y_j: 1[min_i ‖x_i − y_j‖ < r_j] (radii at k_dc).
    pub coverage: Vec<f64>,
}

/// The four statistics with their bootstrap replicates.
#[derive(Debug, Clone, PartialEq)]
pub struct PrdcReplicated {
    /// Precision, replicated over the generated rows' resamples.
    pub precision: Replicated,
    /// Recall, replicated over the real rows' resamples.
    pub recall: Replicated,
    /// Density, replicated over the generated rows' resamples.
    pub density: Replicated,
    /// Coverage, replicated over the real rows' resamples.
    pub coverage: Replicated,
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

impl PrdcRows {
    /// The four statistics: the means of the per-row values.
    pub fn values(&self) -> Prdc {
        Prdc {
            precision: mean(&self.precision),
            recall: mean(&self.recall),
            density: mean(&self.density),
            coverage: mean(&self.coverage),
        }
    }

    /// The statistics with their bootstrap replicates: replicate b of precision and density
    /// is the count-weighted mean of their per-row values under `samples`' resample b (of
    /// the M generated rows), and of recall and coverage under `reference`'s (of the N real
    /// rows) — B means each, no distances recomputed.
    ///
    /// This is a conditional bootstrap: each statistic is resampled over the side it
    /// averages over, with the other set and every radius held fixed (the real radii and
    /// real rows for precision and density; the generated radii and rows for recall and
    /// coverage). The radii's own variability, and that of the set the balls are built
    /// from, is not resampled: a resample duplicates rows, which would turn k-NN radii
    /// into 0 (a duplicate is a neighbour at distance 0), so recomputing them on resampled
    /// sets does not estimate the radii's sampling distribution.
    pub fn replicated(&self, samples: &Resamples, reference: &Resamples) -> Result<PrdcReplicated> {
        let check = |r: &Resamples, n: usize, what: &str| -> Result<()> {
            if r.rows() == n {
                Ok(())
            } else {
                Err(Error::Shape(format!(
                    "the {what} resamples are of {} rows, the {what} set has {n}",
                    r.rows()
                )))
            }
        };
        check(samples, self.precision.len(), "generated")?;
        check(reference, self.recall.len(), "reference")?;
        let rep = |v: &[f64], r: &Resamples| Replicated::new(mean(v), r.means(v));
        Ok(PrdcReplicated {
            precision: rep(&self.precision, samples),
            recall: rep(&self.recall, reference),
            density: rep(&self.density, samples),
            coverage: rep(&self.coverage, reference),
        })
    }
}

/// The real rows and their radii at the two ks: what every sample set is measured against.
#[derive(Debug, Clone)]
pub struct Reference {
    manifold: Manifold,
    k_pr: usize,
    k_dc: usize,
}

impl Reference {
    /// The real rows `real` (N × `d`, N > max(k_pr, k_dc)) with their radii at `k_pr`
    /// (precision and recall; [`K_PRECISION_RECALL`] in the paper) and `k_dc` (density and
    /// coverage; [`K_DENSITY_COVERAGE`]).
    pub fn new(real: &[f32], d: usize, k_pr: usize, k_dc: usize) -> Result<Self> {
        Self::build(real, d, k_pr, k_dc, BLOCK_ENTRIES)
    }

    fn build(real: &[f32], d: usize, k_pr: usize, k_dc: usize, block_entries: usize) -> Result<Self> {
        Ok(Self {
            manifold: Manifold::build(real, d, &[k_pr, k_dc], "reference", block_entries)?,
            k_pr,
            k_dc,
        })
    }

    /// The real rows and their radii.
    pub fn manifold(&self) -> &Manifold {
        &self.manifold
    }

    /// The per-row contributions of `samples` (M × d, M > k_pr: recall needs their own
    /// radii) against this reference.
    pub fn per_row(&self, samples: &[f32]) -> Result<PrdcRows> {
        self.per_row_blocked(samples, BLOCK_ENTRIES)
    }

    /// The four statistics of `samples` against this reference.
    pub fn prdc(&self, samples: &[f32]) -> Result<Prdc> {
        Ok(self.per_row(samples)?.values())
    }

    fn per_row_blocked(&self, samples: &[f32], block_entries: usize) -> Result<PrdcRows> {
        let d = self.manifold.dim();
        let generated = Manifold::build(samples, d, &[self.k_pr], "samples", block_entries)?;
        let (m, n) = (generated.rows(), self.manifold.rows());
        let s2 = &generated.squared[0];
        let (r2_pr, r2_dc) = (&self.manifold.squared[0], &self.manifold.squared[1]);
        let k_dc = self.k_dc as f64;
        let mut precision = vec![0.0; m];
        let mut density = vec![0.0; m];
        let mut nearest = vec![f64::INFINITY; n];
        let mut recalled = vec![false; n];
        let (blocks, mut g) = distance_blocks(m, n, block_entries);
        for range in blocks {
            squared_distances(&generated.rows, range.clone(), &self.manifold.rows, 0..n, &mut g);
            // Row-wise: the real balls holding each generated row.
            g.par_chunks(n)
                .zip(precision[range.clone()].par_iter_mut())
                .zip(density[range.clone()].par_iter_mut())
                .for_each(|((row, p), dens)| {
                    let inside = |radii: &[f64]| row.iter().zip(radii).filter(|(v, r)| v < r).count();
                    *p = if inside(r2_pr) > 0 { 1.0 } else { 0.0 };
                    *dens = inside(r2_dc) as f64 / k_dc;
                });
            // Column-wise: the nearest generated row to each real row, and whether any
            // generated ball holds it.
            let own = &s2[range];
            nearest
                .par_chunks_mut(COLUMNS)
                .zip(recalled.par_chunks_mut(COLUMNS))
                .enumerate()
                .for_each(|(c, (near, hit))| {
                    let cols = c * COLUMNS..c * COLUMNS + near.len();
                    for (row, s) in g.chunks(n).zip(own) {
                        for ((v, a), h) in row[cols.clone()].iter().zip(near.iter_mut()).zip(hit.iter_mut()) {
                            *a = a.min(*v);
                            *h |= v < s;
                        }
                    }
                });
        }
        F64_BUFFERS.give(g);
        let indicator = |b: bool| if b { 1.0 } else { 0.0 };
        Ok(PrdcRows {
            precision,
            density,
            recall: recalled.into_iter().map(indicator).collect(),
            coverage: nearest.iter().zip(r2_dc).map(|(v, r)| indicator(v < r)).collect(),
        })
    }
}

/// Precision, recall (k = `k_pr`), density and coverage (k = `k_dc`) of `samples` (M × `d`)
/// against `real` (N × `d`), M > k_pr and N > max(k_pr, k_dc); the papers' ks are
/// [`K_PRECISION_RECALL`] and [`K_DENSITY_COVERAGE`]. Measuring many sample sets against
/// one reference: build a [`Reference`] once.
pub fn prdc(samples: &[f32], real: &[f32], d: usize, k_pr: usize, k_dc: usize) -> Result<Prdc> {
    Reference::new(real, d, k_pr, k_dc)?.prdc(samples)
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::metrics::bootstrap::{gather, Bootstrap};

    #[test]
    fn the_smallest_values_are_those_of_a_sort() {
        for (len, count) in [(1, 1), (6, 6), (40, 4), (300, 6), (300, 1)] {
            // values with many duplicates and a descending run, so that kept values are displaced
            let row: Vec<f64> = (0..len)
                .map(|i| ((i * 7919 + 13) % 17) as f64 - (i % 3) as f64 * 0.5)
                .collect();
            let mut sorted = row.clone();
            sorted.sort_by(f64::total_cmp);
            assert_eq!(smallest(&row, count), sorted[..count].to_vec(), "{len}, {count}");
            let descending: Vec<f64> = (0..len).rev().map(|i| i as f64).collect();
            assert_eq!(
                smallest(&descending, count),
                (0..count).map(|i| i as f64).collect::<Vec<_>>()
            );
        }
    }

    /// The hand-computed example (1-D, k_pr = 1, k_dc = 2).
    ///
    /// Real y = (0, 1, 2, 4, 20, 21, 22). Sorted distances to the other real rows:
    ///   0: 1, 2, 4, …      → r (k = 1) = 1, R (k = 2) = 2
    ///   1: 1, 1, 3, …      → r = 1, R = 1
    ///   2: 1, 2, 2, …      → r = 1, R = 2
    ///   4: 2, 3, 4, …      → r = 2, R = 3
    ///   20: 1, 2, 16, …    → r = 1, R = 2
    ///   21: 1, 1, 17, …    → r = 1, R = 1
    ///   22: 1, 2, 18, …    → r = 1, R = 2
    /// Generated x = (1.5, 2.5, 6, 9): 1.5: 1, 4.5, 7.5; 2.5: 1, 3.5, 6.5; 6: 3, 3.5, 4.5;
    /// 9: 3, 6.5, 7.5 → s (k = 1) = (1, 1, 3, 3).
    /// |x_i − y_j| (rows x, columns y):
    ///   1.5: 1.5  0.5  0.5  2.5  18.5 19.5 20.5
    ///   2.5: 2.5  1.5  0.5  1.5  17.5 18.5 19.5
    ///   6:   6    5    4    2    14   15   16
    ///   9:   9    8    7    5    11   12   13
    /// Precision (d < r = (1,1,1,2,1,1,1)): 1.5 (0.5 < 1 at y = 1) in; 2.5 (0.5 < 1 at y = 2)
    /// in; 6: 2 < 2 at y = 4 is false (on the boundary: out, prdc's `<`), nothing else → out;
    /// 9 out. Precision = 2/4.
    /// Density (d < R = (2,1,2,3,2,1,2)): 1.5 in 4 balls (y = 0, 1, 2, 4) → 4/2; 2.5 in 2
    /// (y = 2, 4) → 1; 6 in 1 (y = 4) → 1/2; 9 in none → 0. Density = 3.5/4 = 0.875.
    /// Recall (d < s_i): y = 0: 1.5 ≥ 1, 2.5 ≥ 1, 6 ≥ 3, 9 ≥ 3 → out; y = 1: 0.5 < 1 in;
    /// y = 2: 0.5 < 1 in; y = 4: 2 < 3 (x = 6) in; 20, 21, 22: nearest 11 ≥ 3 → out.
    /// Recall = 3/7.
    /// Coverage (min_i d < R): y = 0: 1.5 < 2; y = 1: 0.5 < 1; y = 2: 0.5 < 2; y = 4: 1.5 < 3;
    /// 20, 21, 22: 11, 12, 13 → out. Coverage = 4/7.
    /// Every value is a multiple of 1/2, so the f64 arithmetic is exact.
    #[test]
    fn hand_computed_example() {
        let y = [0.0f32, 1.0, 2.0, 4.0, 20.0, 21.0, 22.0];
        let x = [1.5f32, 2.5, 6.0, 9.0];
        let reference = Reference::new(&y, 1, 1, 2).unwrap();
        assert_eq!(
            reference.manifold().radii(1).unwrap(),
            vec![1.0, 1.0, 1.0, 2.0, 1.0, 1.0, 1.0]
        );
        assert_eq!(
            reference.manifold().radii(2).unwrap(),
            vec![2.0, 1.0, 2.0, 3.0, 2.0, 1.0, 2.0]
        );
        assert_eq!(reference.manifold().radii(3), None);
        assert_eq!(
            Manifold::new(&x, 1, &[1]).unwrap().radii(1).unwrap(),
            vec![1.0, 1.0, 3.0, 3.0]
        );
        let rows = reference.per_row(&x).unwrap();
        assert_eq!(rows.precision, vec![1.0, 1.0, 0.0, 0.0]);
        assert_eq!(rows.density, vec![2.0, 1.0, 0.5, 0.0]);
        assert_eq!(rows.recall, vec![0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(rows.coverage, vec![1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
        let want = Prdc {
            precision: 0.5,
            recall: 3.0 / 7.0,
            density: 0.875,
            coverage: 4.0 / 7.0,
        };
        assert_eq!(rows.values(), want);
        assert_eq!(prdc(&x, &y, 1, 1, 2).unwrap(), want);
        // Blocks of a few rows give the same.
        let small = Reference::build(&y, 1, 1, 2, 15).unwrap();
        assert_eq!(small.per_row_blocked(&x, 15).unwrap(), rows);
    }

    /// A set against itself. The same y as above (ties: y = 1 has two neighbours at 1):
    /// precision, recall and coverage are 1 (every row is the centre of its own ball, whose
    /// radius is positive: 0 < r). Density, k = 2, R = (2,1,2,3,2,1,2): the balls holding each row
    ///   0: its own (0 < 2); 1 ≥ 1, 2 ≥ 2, 4 ≥ 3 → 1
    ///   1: y = 0 (1 < 2), its own, y = 2 (1 < 2); 3 ≥ 3 → 3
    ///   2: 2 ≥ 2, 1 ≥ 1, its own, y = 4 (2 < 3) → 2
    ///   4: its own only (4 ≥ 2, 3 ≥ 1, 2 ≥ 2) → 1
    ///   20: its own (1 ≥ 1, 2 ≥ 2) → 1; 21: y = 20 (1 < 2), its own, y = 22 (1 < 2) → 3;
    ///   22: its own → 1
    /// Σ = 12, density = 12/(2 · 7) = 6/7.
    /// Without ties (z = (0, 1, 3, 7, 15), all pairwise differences distinct) every ball
    /// holds its centre and exactly k − 1 other rows strictly inside (its k-th neighbour is
    /// on the boundary): Σ = N k, density = 1 exactly, for any k < N.
    #[test]
    fn a_set_against_itself() {
        let y = [0.0f32, 1.0, 2.0, 4.0, 20.0, 21.0, 22.0];
        let p = prdc(&y, &y, 1, 1, 2).unwrap();
        assert_eq!((p.precision, p.recall, p.coverage), (1.0, 1.0, 1.0));
        assert_eq!(p.density, 6.0 / 7.0);
        let z = [0.0f32, 1.0, 3.0, 7.0, 15.0];
        for (k_pr, k_dc) in [(1, 1), (1, 2), (2, 3), (3, 4)] {
            let p = prdc(&z, &z, 1, k_pr, k_dc).unwrap();
            let want = Prdc {
                precision: 1.0,
                recall: 1.0,
                density: 1.0,
                coverage: 1.0,
            };
            assert_eq!(p, want, "k = {k_pr}, {k_dc}");
        }
        // In more dimensions, with continuous data (no ties), at the papers' ks.
        let w = random(&mut ChaCha8Rng::seed_from_u64(5), 40, 5, 0.0);
        let p = prdc(&w, &w, 5, K_PRECISION_RECALL, K_DENSITY_COVERAGE).unwrap();
        assert_eq!((p.precision, p.recall, p.coverage), (1.0, 1.0, 1.0));
        assert!((p.density - 1.0).abs() < 1e-15, "{}", p.density);
    }

    /// n × d standard-normal-ish rows (uniform sums) shifted by `shift`.
    fn random(rng: &mut ChaCha8Rng, n: usize, d: usize, shift: f32) -> Vec<f32> {
        (0..n * d)
            .map(|_| (0..3).map(|_| rng.random::<f32>() - 0.5).sum::<f32>() * 1.2 + shift)
            .collect()
    }

    /// Euclidean distance by plain loops in f64.
    fn distance(u: &[f32], v: &[f32]) -> f64 {
        u.iter()
            .zip(v)
            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    }

    /// prdc's radii literally: the (k + 1)-th smallest of each full row of distances.
    fn brute_radii(x: &[f32], d: usize, k: usize) -> Vec<f64> {
        x.chunks(d)
            .map(|u| {
                let mut row: Vec<f64> = x.chunks(d).map(|v| distance(u, v)).collect();
                row.sort_by(f64::total_cmp);
                row[k]
            })
            .collect()
    }

    /// prdc's statistics by plain loops over the pairs, given the radii of each real row (at
    /// k_pr and k_dc) and of each generated row (`s`): O(M · N · d).
    fn brute(x: &[f32], s: &[f64], y: &[f32], r_pr: &[f64], r_dc: &[f64], d: usize, k_dc: usize) -> PrdcRows {
        let dist: Vec<Vec<f64>> = x
            .chunks(d)
            .map(|u| y.chunks(d).map(|v| distance(u, v)).collect())
            .collect();
        let (m, n) = (s.len(), r_pr.len());
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        PrdcRows {
            precision: (0..m).map(|i| flag((0..n).any(|j| dist[i][j] < r_pr[j]))).collect(),
            density: (0..m)
                .map(|i| (0..n).filter(|&j| dist[i][j] < r_dc[j]).count() as f64 / k_dc as f64)
                .collect(),
            recall: (0..n).map(|j| flag((0..m).any(|i| dist[i][j] < s[i]))).collect(),
            coverage: (0..n)
                .map(|j| flag((0..m).map(|i| dist[i][j]).fold(f64::INFINITY, f64::min) < r_dc[j]))
                .collect(),
        }
    }

    #[test]
    fn agrees_with_brute_force_on_random_data() {
        let d = 5;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        for (m, n, shift) in [(64, 200, 0.3), (200, 64, 0.8), (64, 64, 1.0)] {
            let x = random(&mut rng, m, d, shift);
            let y = random(&mut rng, n, d, 0.0);
            let (k_pr, k_dc) = (K_PRECISION_RECALL, K_DENSITY_COVERAGE);
            let s = brute_radii(&x, d, k_pr);
            let (r_pr, r_dc) = (brute_radii(&y, d, k_pr), brute_radii(&y, d, k_dc));
            let want = brute(&x, &s, &y, &r_pr, &r_dc, d, k_dc);
            let reference = Reference::new(&y, d, k_pr, k_dc).unwrap();
            let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(u, v)| (u - v).abs() <= 1e-12 * v.max(1.0));
            assert!(close(&reference.manifold().radii(k_pr).unwrap(), &r_pr));
            assert!(close(&reference.manifold().radii(k_dc).unwrap(), &r_dc));
            assert!(close(&Manifold::new(&x, d, &[k_pr]).unwrap().radii(k_pr).unwrap(), &s));
            let got = reference.per_row(&x).unwrap();
            assert_eq!(got, want, "{m} × {n}");
            // Neither trivial: some rows in, some out.
            let v = got.values();
            for t in [v.precision, v.recall, v.coverage] {
                assert!(t > 0.0 && t < 1.0, "{m} × {n}: {v:?}");
            }
            // Blocks of 7 rows (the last one shorter) give the same.
            let small = Reference::build(&y, d, k_pr, k_dc, 7 * n).unwrap();
            assert_eq!(small.per_row_blocked(&x, 7 * n).unwrap(), want, "{m} × {n} in blocks");
        }
    }

    #[test]
    fn replicates_equal_the_statistics_of_the_gathered_resamples() {
        let (d, m, n) = (5, 64, 200);
        let (k_pr, k_dc) = (K_PRECISION_RECALL, K_DENSITY_COVERAGE);
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let x = random(&mut rng, m, d, 0.3);
        let y = random(&mut rng, n, d, 0.0);
        let reference = Reference::new(&y, d, k_pr, k_dc).unwrap();
        let rows = reference.per_row(&x).unwrap();
        let boot = Bootstrap::new(5, 9).unwrap();
        let (rx, ry) = (boot.samples(m), boot.reference(n));
        let rep = rows.replicated(&rx, &ry).unwrap();
        let v = rows.values();
        assert_eq!(
            (
                rep.precision.value,
                rep.recall.value,
                rep.density.value,
                rep.coverage.value
            ),
            (v.precision, v.recall, v.density, v.coverage)
        );
        // The radii, held fixed: each resampled row carries its original row's radius.
        let s = Manifold::new(&x, d, &[k_pr]).unwrap().radii(k_pr).unwrap();
        let (r_pr, r_dc) = (
            reference.manifold().radii(k_pr).unwrap(),
            reference.manifold().radii(k_dc).unwrap(),
        );
        let carry = |r: &[f64], counts: &[u32]| -> Vec<f64> {
            r.iter()
                .zip(counts)
                .flat_map(|(v, &c)| std::iter::repeat_n(*v, c as usize))
                .collect()
        };
        for b in 0..boot.replicates {
            let (cx, cy) = (rx.counts(b), ry.counts(b));
            // Generated rows resampled, the real set fixed.
            let xs = gather(&x, d, cx);
            let g = brute(&xs, &carry(&s, cx), &y, &r_pr, &r_dc, d, k_dc).values();
            // Real rows resampled (with their radii), the generated set fixed.
            let ys = gather(&y, d, cy);
            let h = brute(&x, &s, &ys, &carry(&r_pr, cy), &carry(&r_dc, cy), d, k_dc).values();
            let close = |a: f64, b: f64| (a - b).abs() < 1e-12;
            assert!(close(rep.precision.replicates[b], g.precision), "{b}");
            assert!(close(rep.density.replicates[b], g.density), "{b}");
            assert!(close(rep.recall.replicates[b], h.recall), "{b}");
            assert!(close(rep.coverage.replicates[b], h.coverage), "{b}");
        }
        // Resamples of the wrong sets are refused.
        assert!(rows.replicated(&ry, &rx).is_err());
        assert!(rows
            .replicated(&Resamples::none(m), &Resamples::none(n))
            .unwrap()
            .precision
            .replicates
            .is_empty());
    }

    #[test]
    fn bad_input_is_an_error() {
        let y: Vec<f32> = (0..12).map(|i| i as f32).collect(); // 6 rows of d = 2
        let x: Vec<f32> = (0..8).map(|i| i as f32 * 0.5).collect(); // 4 rows
        assert!(prdc(&x, &y, 2, 3, 5).is_ok());
        // Too few real rows for k_dc = 6 (6 rows, 7 needed), too few generated rows for k_pr = 4.
        assert!(matches!(prdc(&x, &y, 2, 3, 6), Err(Error::Invalid { .. })));
        assert!(matches!(prdc(&x, &y, 2, 4, 5), Err(Error::Invalid { .. })));
        // k = 0, d = 0, ragged rows.
        assert!(prdc(&x, &y, 2, 0, 5).is_err());
        assert!(Manifold::new(&y, 2, &[]).is_err());
        assert!(prdc(&x, &y, 0, 3, 5).is_err());
        assert!(matches!(prdc(&x[..7], &y, 2, 3, 5), Err(Error::Shape(_))));
        // NaN and infinity on either side.
        let mut bad = x.clone();
        bad[3] = f32::NAN;
        assert!(matches!(prdc(&bad, &y, 2, 3, 5), Err(Error::NonFinite { .. })));
        let mut bad = y.clone();
        bad[0] = f32::INFINITY;
        assert!(matches!(prdc(&x, &bad, 2, 3, 5), Err(Error::NonFinite { .. })));
        // A different d for the samples than the reference's: ragged.
        let reference = Reference::new(&y, 2, 3, 5).unwrap();
        assert!(reference.per_row(&y[..9]).is_err());
    }
}
