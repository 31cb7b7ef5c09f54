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
//! - Distances are Euclidean; ddimlab compares their squares, which orders them the same
//!   way. Every comparison is decided as the exact squared distance Σ_k (u_k − v_k)² (f64,
//!   `distances::Rows::exact`) would decide it: from f32 products wherever their error bound
//!   leaves no doubt, from that exact sum where it does (a set's own diagonal exactly 0).
//!
//! Every statistic is a mean over the rows of *one* side given the radii ([`PrdcRows`]):
//! precision and density over the generated rows, recall and coverage over the real rows.
//! Bootstrap replicates are then count-weighted means of those per-row values
//! ([`PrdcRows::replicated`]), a conditional bootstrap (see there).
//!
//! The distances come from one f32 matrix product per pair of sets (real × real once per
//! reference, generated × generated and generated × real once per sample set), in blocks
//! of rows that bound the memory to [`BLOCK_ENTRIES`] values; a set against itself
//! through the blocks on and below the diagonal only (the distances are symmetric: a
//! row's nearest are completed from the columns of later blocks). Each approximate squared
//! distance d̃² is within ε (‖u‖² + ‖v‖²) of the exact one (`distances::Rows`): a comparison with
//! a threshold farther than that is decided by d̃², the others (ties and near-ties, rare
//! in continuous data) by the exact sum, and a row's radius by the exact distances of its
//! candidates within that bound of its k-th nearest. Against f64 products (the version
//! before), the k-NN statistics of a digits point took 5–8 ms less on two threads, every
//! value the same (measured).

use rayon::prelude::*;

use super::bootstrap::{Replicated, Resamples};
use super::distances::{approximate, distance_blocks, f32_above, f32_below, Rows};
use super::linalg::F32_BUFFERS;
use super::rows;
use crate::error::{Error, Result};

pub use super::distances::BLOCK_ENTRIES;

/// The k of precision and recall (Kynkäänniemi et al. 2019).
pub const K_PRECISION_RECALL: usize = 3;

/// The k of density and coverage (Naeem et al. 2020).
pub const K_DENSITY_COVERAGE: usize = 5;

/// Columns per task of the column-wise reductions (coverage and recall).
const COLUMNS: usize = 256;

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
        rows(x, d, what, kmax + 1)?;
        let set = Rows::new(x, d);
        let squared = radii(&set, ks, block_entries);
        Ok(Self {
            rows: set,
            ks: ks.to_vec(),
            squared,
        })
    }

    /// Rows n.
    pub fn rows(&self) -> usize {
        self.rows.rows()
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
        let k_max = self.k_pr;
        let m = rows(samples, d, "samples", k_max + 1)?;
        let generated = Rows::new(samples, d);
        let s2 = radii(&generated, &[self.k_pr], block_entries).pop().expect("one k");
        let (real, n) = (&self.manifold.rows, self.manifold.rows());
        let (r2_pr, r2_dc) = (&self.manifold.squared[0], &self.manifold.squared[1]);
        let bounds = |r: &[f64]| -> (Vec<f32>, Vec<f32>) {
            (
                r.iter().map(|&v| f32_below(v)).collect(),
                r.iter().map(|&v| f32_above(v)).collect(),
            )
        };
        let ((pr_lo, pr_hi), (dc_lo, dc_hi), (s_lo, s_hi)) = (bounds(r2_pr), bounds(r2_dc), bounds(&s2));
        // Per generated row, per real threshold kind: how many distances are surely below
        // it (d̃ + margin < r) and how many may be (d̃ − margin < r).
        let mut by_row = vec![[0u32; 4]; m];
        // Per real row: the same for its ball (coverage) and for the generated balls (recall).
        let mut by_column = [vec![0u32; n], vec![0u32; n], vec![0u32; n], vec![0u32; n]];
        let (blocks, mut g) = distance_blocks(m, n, block_entries);
        for range in blocks {
            generated.products(range.clone(), real, n, &mut g);
            let own = (&generated.norms32[range.clone()], &generated.margins[range.clone()]);
            g.par_chunks(n)
                .zip(own.0.par_iter().zip(own.1))
                .zip(by_row[range.clone()].par_iter_mut())
                .for_each(|((row, (&na, &ma)), tally)| {
                    let mut t = [0u32; 4];
                    for j in 0..row.len() {
                        let (hi, lo) = approximate(na, real.norms32[j], ma + real.margins[j], row[j]);
                        t[0] += u32::from(hi < pr_lo[j]);
                        t[1] += u32::from(lo < pr_hi[j]);
                        t[2] += u32::from(hi < dc_lo[j]);
                        t[3] += u32::from(lo < dc_hi[j]);
                    }
                    *tally = t;
                });
            let radii = (&s_lo[range.clone()], &s_hi[range]);
            let [c_hi, c_lo, r_hi, r_lo] = &mut by_column;
            (c_hi.par_chunks_mut(COLUMNS).zip(c_lo.par_chunks_mut(COLUMNS)))
                .zip(r_hi.par_chunks_mut(COLUMNS).zip(r_lo.par_chunks_mut(COLUMNS)))
                .enumerate()
                .for_each(|(c, ((c_hi, c_lo), (r_hi, r_lo)))| {
                    let cols = c * COLUMNS..c * COLUMNS + c_hi.len();
                    let (norms, margins) = (&real.norms32[cols.clone()], &real.margins[cols.clone()]);
                    let (lo_bound, hi_bound) = (&dc_lo[cols.clone()], &dc_hi[cols.clone()]);
                    let rows = own.0.iter().zip(own.1).zip(radii.0.iter().zip(radii.1));
                    for (row, ((&na, &ma), (&s_lo, &s_hi))) in g.chunks(n).zip(rows) {
                        let row = &row[cols.clone()];
                        for j in 0..row.len() {
                            let (hi, lo) = approximate(na, norms[j], ma + margins[j], row[j]);
                            c_hi[j] += u32::from(hi < lo_bound[j]);
                            c_lo[j] += u32::from(lo < hi_bound[j]);
                            r_hi[j] += u32::from(hi < s_lo);
                            r_lo[j] += u32::from(lo < s_hi);
                        }
                    }
                });
        }
        F32_BUFFERS.give(g);
        // What the margins left open, from exact distances (rare: ties within ~1e-5).
        let exact = |i: usize, j: usize| generated.exact(i, real, j);
        let indicator = |b: bool| if b { 1.0 } else { 0.0 };
        // Some distance surely below its threshold, none possibly, or `exact` decides.
        let any = |surely: u32, possibly: u32, exact: &dyn Fn() -> bool| surely > 0 || (possibly > 0 && exact());
        let precision = (by_row.par_iter().enumerate())
            .map(|(i, t)| indicator(any(t[0], t[1], &|| (0..n).any(|j| exact(i, j) < r2_pr[j]))))
            .collect();
        let density = (by_row.par_iter().enumerate())
            .map(|(i, t)| {
                let count = match t[2] == t[3] {
                    true => t[2] as usize,
                    false => (0..n).filter(|&j| exact(i, j) < r2_dc[j]).count(),
                };
                count as f64 / self.k_dc as f64
            })
            .collect();
        let [c_hi, c_lo, r_hi, r_lo] = &by_column;
        let coverage = (0..n)
            .into_par_iter()
            .map(|j| indicator(any(c_hi[j], c_lo[j], &|| (0..m).any(|i| exact(i, j) < r2_dc[j]))))
            .collect();
        let recall = (0..n)
            .into_par_iter()
            .map(|j| indicator(any(r_hi[j], r_lo[j], &|| (0..m).any(|i| exact(i, j) < s2[i]))))
            .collect();
        Ok(PrdcRows {
            precision,
            density,
            recall,
            coverage,
        })
    }
}

/// Every row's squared k-NN radius in its own set for each k of `ks` (the (k + 1)-th
/// smallest squared distance, itself at 0 included), exact: the smallest approximate
/// distances are kept with their rows ([`candidates`]), those within the error bound of
/// the (k + 1)-th recomputed exactly (the whole row where more might be).
fn radii(set: &Rows, ks: &[usize], block_entries: usize) -> Vec<Vec<f64>> {
    let (n, k) = (set.rows(), *ks.iter().max().expect("a k"));
    let keep = k + 1 + RADIUS_SPARE;
    let lists = candidates(set, keep, block_entries);
    let top = set.norms.iter().fold(0.0f64, |a, &b| a.max(b));
    let exact = lists
        .par_iter()
        .enumerate()
        .map(|(i, list)| {
            // every approximate value is within ε (‖x_i‖² + ‖x_j‖²) ≤ Δ of its exact one
            let reach = list.kept[k].0 as f64 + 2.0 * set.eps * (set.norms[i] + top);
            let mut exact: Vec<f64> = if list.kept.len() == keep && list.kept[keep - 1].0 as f64 <= reach {
                (0..n).map(|j| set.exact(i, set, j)).collect() // more candidates than kept
            } else {
                let near = list.kept.iter().filter(|c| c.0 as f64 <= reach);
                near.map(|c| set.exact(i, set, c.1 as usize)).collect()
            };
            exact.sort_by(f64::total_cmp);
            ks.iter().map(|&k| exact[k]).collect::<Vec<f64>>()
        })
        .collect::<Vec<_>>();
    (0..ks.len()).map(|t| exact.iter().map(|r| r[t]).collect()).collect()
}

/// Per row of `set`, the `keep` smallest approximate squared distances to the rows of the
/// set (itself at exactly 0) with those rows: the products of each block of rows with the
/// rows up to the block's last (the distances are symmetric: the rest of a row's come as
/// columns of later blocks).
fn candidates(set: &Rows, keep: usize, block_entries: usize) -> Vec<Nearest> {
    let n = set.rows();
    let mut lists = vec![Nearest::new(keep); n];
    let (blocks, mut g) = distance_blocks(n, n, block_entries);
    for range in blocks {
        let end = range.end;
        set.products(range.clone(), set, end, &mut g);
        g.par_chunks(end)
            .zip(&mut lists[range.clone()])
            .enumerate()
            .for_each(|(r, (row, list))| offer_row(row, range.start + r, &set.norms32, list));
        lists[..range.start]
            .par_chunks_mut(COLUMNS)
            .enumerate()
            .for_each(|(c, lists)| offer_columns(&g, end, range.start, c * COLUMNS, &set.norms32, lists));
    }
    F32_BUFFERS.give(g);
    lists
}

/// Offers row i's approximate squared distances (from its products `row` with rows
/// 0 … row.len() − 1; `norms`: the f32 squared norms) to its list, 16 at a time.
fn offer_row(row: &[f32], i: usize, norms: &[f32], list: &mut Nearest) {
    let mut values = [0.0f32; 16];
    for (q, (dots, nbs)) in row.chunks(16).zip(norms.chunks(16)).enumerate() {
        for ((v, &dot), &nb) in values.iter_mut().zip(dots).zip(nbs) {
            *v = approximate(norms[i], nb, 0.0, dot).0;
        }
        let values = &mut values[..dots.len()];
        if (16 * q..16 * q + dots.len()).contains(&i) {
            values[i - 16 * q] = 0.0; // itself, exactly
        }
        list.offer_all(values, 16 * q);
    }
}

/// Offers each of `lists` (the rows `first`, `first` + 1, … before the block) its column of
/// `g` (the products of the block's rows, from row `start` on, `width` to a row): eight
/// columns at a time, value by value only where one is below its list's bound.
fn offer_columns(g: &[f32], width: usize, start: usize, first: usize, norms: &[f32], lists: &mut [Nearest]) {
    for (q, group) in lists.chunks_mut(8).enumerate() {
        let j0 = first + 8 * q;
        let nbs = &norms[j0..j0 + group.len()];
        let mut bounds = [f32::NEG_INFINITY; 8];
        group.iter().zip(&mut bounds).for_each(|(l, b)| *b = l.bound());
        for (r, row) in g.chunks(width).enumerate() {
            let mut values = [f32::INFINITY; 8];
            for ((v, &dot), &nb) in values.iter_mut().zip(&row[j0..j0 + group.len()]).zip(nbs) {
                *v = approximate(norms[start + r], nb, 0.0, dot).0;
            }
            if values.iter().zip(&bounds).fold(false, |any, (v, b)| any | (v < b)) {
                for ((l, b), &v) in group.iter_mut().zip(&mut bounds).zip(&values) {
                    l.offer(v, (start + r) as u32);
                    *b = l.bound();
                }
            }
        }
    }
}

/// Candidates kept per row by [`radii`] beyond the k + 1 it needs.
const RADIUS_SPARE: usize = 4;

/// The `count` smallest (value, row) offered, ascending.
#[derive(Debug, Clone)]
struct Nearest {
    count: usize,
    kept: Vec<(f32, u32)>,
}

impl Nearest {
    fn new(count: usize) -> Self {
        Self {
            count,
            kept: Vec::with_capacity(count + 1),
        }
    }

    /// Values at or above this are not kept (∞ until `count` are).
    fn bound(&self) -> f32 {
        match self.kept.len() == self.count {
            true => self.kept[self.count - 1].0,
            false => f32::INFINITY,
        }
    }

    /// [`Nearest::offer`] of `values` (rows `first`, `first` + 1, …), compared with the
    /// bound all at once first: almost every value is above it.
    #[inline(always)]
    fn offer_all(&mut self, values: &[f32], first: usize) {
        let bound = self.bound();
        if values.iter().fold(false, |any, &v| any | (v < bound)) {
            for (q, &v) in values.iter().enumerate() {
                self.offer(v, (first + q) as u32);
            }
        }
    }

    #[inline(always)]
    fn offer(&mut self, v: f32, row: u32) {
        if self.kept.len() == self.count {
            if v >= self.kept[self.count - 1].0 {
                return;
            }
            self.kept.pop();
        }
        let at = self.kept.partition_point(|c| c.0 <= v);
        self.kept.insert(at, (v, row));
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
    fn the_nearest_kept_are_those_of_a_sort() {
        for (len, count) in [(1, 1), (6, 6), (40, 4), (300, 6), (300, 1)] {
            // values with many duplicates and a descending run, so that kept values are
            // displaced; offered in blocks of 16 as the radii offer them
            let row: Vec<f32> = (0..len)
                .map(|i| ((i * 7919 + 13) % 17) as f32 - (i % 3) as f32 * 0.5)
                .collect();
            let descending: Vec<f32> = (0..len).rev().map(|i| i as f32).collect();
            for values in [&row, &descending] {
                let mut kept = Nearest::new(count);
                for (q, block) in values.chunks(16).enumerate() {
                    kept.offer_all(block, 16 * q);
                }
                let mut sorted = values.to_vec();
                sorted.sort_by(f32::total_cmp);
                let got: Vec<f32> = kept.kept.iter().map(|c| c.0).collect();
                assert_eq!(got, sorted[..count].to_vec(), "{len}, {count}");
                assert!(
                    kept.kept.iter().all(|&(v, r)| values[r as usize] == v),
                    "the rows kept with them"
                );
            }
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

    /// prdc's radii literally: the (k + 1)-th smallest of each full row of distances
    /// (`distance`, or the squared ones).
    fn brute_radii(x: &[f32], d: usize, k: usize, metric: fn(&[f32], &[f32]) -> f64) -> Vec<f64> {
        x.chunks(d)
            .map(|u| {
                let mut row: Vec<f64> = x.chunks(d).map(|v| metric(u, v)).collect();
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
            let s = brute_radii(&x, d, k_pr, distance);
            let (r_pr, r_dc) = (brute_radii(&y, d, k_pr, distance), brute_radii(&y, d, k_dc, distance));
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

    /// Squared distances by plain loops in f64, in the order [`Rows::exact`] sums them
    /// (so that a tie is a tie on both sides).
    fn squared(u: &[f32], v: &[f32]) -> f64 {
        u.iter().zip(v).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum()
    }

    #[test]
    fn ties_and_near_ties_agree_with_brute_force() {
        // The f32 products decide only what their error bound allows; the rest is
        // recomputed exactly. Here most comparisons sit on or next to a threshold: rows on
        // a small integer grid (exact ties, duplicate rows), and generated rows that are
        // real rows moved by a few f32 ulps (distances within the products' error of 0 and
        // of the radii), in d = 48, in blocks of a few rows.
        let (d, n, m) = (48, 150, 120);
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let mut y: Vec<f32> = (0..n * d).map(|_| rng.random_range(0..3) as f32).collect();
        let mut x: Vec<f32> = (0..m * d).map(|_| rng.random_range(0..3) as f32 + 0.5).collect();
        // five copies of a row on each side: radii of 0 at k ≤ 4
        for r in 1..5 {
            y.copy_within(0..d, r * d);
            x.copy_within((m - 5) * d..(m - 4) * d, (m - 5 + r) * d);
        }
        for i in 0..m / 2 {
            let j = rng.random_range(0..n);
            for k in 0..d {
                let v = y[j * d + k];
                x[i * d + k] = match rng.random_range(0..3) {
                    0 => v,
                    1 => v.next_up(),
                    _ => v.next_down() + f32::EPSILON * 4.0,
                };
            }
        }
        let (k_pr, k_dc) = (K_PRECISION_RECALL, K_DENSITY_COVERAGE);
        let radii = |set: &[f32], k: usize| brute_radii(set, d, k, squared);
        let (s2, r2_pr, r2_dc) = (radii(&x, k_pr), radii(&y, k_pr), radii(&y, k_dc));
        let dist: Vec<Vec<f64>> = x
            .chunks(d)
            .map(|u| y.chunks(d).map(|v| squared(u, v)).collect())
            .collect();
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let want = PrdcRows {
            precision: (0..m).map(|i| flag((0..n).any(|j| dist[i][j] < r2_pr[j]))).collect(),
            density: (0..m)
                .map(|i| (0..n).filter(|&j| dist[i][j] < r2_dc[j]).count() as f64 / k_dc as f64)
                .collect(),
            recall: (0..n).map(|j| flag((0..m).any(|i| dist[i][j] < s2[i]))).collect(),
            coverage: (0..n).map(|j| flag((0..m).any(|i| dist[i][j] < r2_dc[j]))).collect(),
        };
        for block in [BLOCK_ENTRIES, 7 * n] {
            let reference = Reference::build(&y, d, k_pr, k_dc, block).unwrap();
            assert_eq!(reference.manifold().squared, vec![r2_pr.clone(), r2_dc.clone()]);
            assert_eq!(
                Manifold::build(&x, d, &[k_pr], "x", block).unwrap().squared,
                vec![s2.clone()]
            );
            assert_eq!(reference.per_row_blocked(&x, block).unwrap(), want, "blocks of {block}");
        }
        // Not trivial: radii of 0, comparisons the f32 bound cannot decide (within ε (‖u‖² +
        // ‖v‖²) of their threshold), rows on both sides of the balls.
        assert!(r2_pr[0] == 0.0 && s2[m - 1] == 0.0);
        let (eps, norm) = (Rows::new(&x, d).eps, |u: &[f32]| squared(u, &vec![0.0; d]));
        let open = (0..m)
            .flat_map(|i| (0..n).map(move |j| (i, j)))
            .filter(|&(i, j)| {
                let margin = eps * (norm(&x[i * d..][..d]) + norm(&y[j * d..][..d]));
                [r2_pr[j], r2_dc[j], s2[i]]
                    .iter()
                    .any(|r| (dist[i][j] - r).abs() <= margin)
            })
            .count();
        assert!(open > 100, "{open} comparisons within the bound");
        let v = want.values();
        for t in [v.precision, v.recall, v.coverage] {
            assert!(t > 0.0 && t < 1.0, "{v:?}");
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
