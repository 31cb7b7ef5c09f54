//! The sliced Wasserstein-2 distance (Bonneel et al. 2015) between the empirical
//! distributions of two samples, and its bootstrap replicates from one sort per sample:
//! each sample's projections are sorted once ([`SortedProjections`]), and a resample is a
//! weighting of the sorted values, whose 1-D W2² is exact.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::bootstrap::Resamples;
use super::linalg::product;
use super::rows;
use crate::error::{Error, Result};
use crate::kernels::gemm::View;

/// The sliced Wasserstein-2 distance (Bonneel et al. 2015) between the empirical
/// distributions of `x` (m × `d`) and `y` (n × `d`), m, n ≥ 1:
/// √(mean over θ of W2²(⟨x, θ⟩, ⟨y, θ⟩)) over `projections` directions θ drawn uniformly
/// from the unit sphere (normalised standard normals from ChaCha8 seeded with `seed`).
///
/// Each 1-D W2² is exact: ∫₀¹ (F⁻¹(u) − G⁻¹(u))² du between the step quantile functions of
/// the sorted projections, integrated over the merged breakpoints k/m and l/n; for m = n it
/// is the mean squared difference of the sorted projections.
pub fn sliced_wasserstein(x: &[f32], y: &[f32], d: usize, projections: usize, seed: u64) -> Result<f64> {
    rows(y, d, "y", 1)?; // x and the projections are checked by SortedProjections::new
    let (px, py) = (
        SortedProjections::new(x, d, projections, seed)?,
        SortedProjections::new(y, d, projections, seed)?,
    );
    let (cx, cy) = (vec![1; px.rows()], vec![1; py.rows()]);
    Ok(sliced_wasserstein_counted(&px, &cx, &py, &cy))
}

/// The `projections` directions of [`sliced_wasserstein`] for `seed`: normalised standard
/// normals from ChaCha8, in order.
fn directions(d: usize, projections: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..projections).map(|_| unit_direction(d, &mut rng)).collect()
}

/// The rows of a sample projected onto the directions of [`sliced_wasserstein`], each
/// direction's values sorted (with the rows they came from): computed once, they serve
/// any resample of the rows (bootstrap replicates) without projecting or sorting again.
#[derive(Debug, Clone)]
pub struct SortedProjections {
    /// Per direction: the projected values, ascending.
    values: Vec<Vec<f64>>,
    /// Per direction: the row of each sorted value.
    rows: Vec<Vec<u32>>,
}

impl SortedProjections {
    /// Projects and sorts the rows of `x` (n × `d`, n ≥ 1).
    pub fn new(x: &[f32], d: usize, projections: usize, seed: u64) -> Result<Self> {
        rows(x, d, "x", 1)?;
        if projections == 0 {
            return Err(Error::invalid("projections", "at least one projection is needed"));
        }
        // All projections ⟨x_i, θ_k⟩ as one product, n × directions.
        let n = x.len() / d;
        let theta: Vec<f64> = directions(d, projections, seed).concat();
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let all = product(View::rows(&x64, n, d), View::rows(&theta, projections, d).t(), false);
        let (values, rows): (Vec<Vec<f64>>, Vec<Vec<u32>>) = (0..projections)
            .into_par_iter()
            .map(|k| {
                let p: Vec<f64> = all.data.chunks(projections).map(|r| r[k]).collect();
                let mut order: Vec<u32> = (0..p.len() as u32).collect();
                order.sort_unstable_by(|&a, &b| p[a as usize].total_cmp(&p[b as usize]).then(a.cmp(&b)));
                (order.iter().map(|&i| p[i as usize]).collect(), order)
            })
            .unzip();
        Ok(Self { values, rows })
    }

    /// Number of rows projected.
    pub fn rows(&self) -> usize {
        self.values.first().map_or(0, Vec::len)
    }

    /// Number of directions.
    pub fn projections(&self) -> usize {
        self.values.len()
    }
}

/// [`sliced_wasserstein`] between the resamples that take row i of x `cx[i]` times and
/// row j of y `cy[j]` times (all ones: the samples themselves), from their sorted
/// projections (made with the same directions). Each 1-D W2² is exact: the quantile
/// functions are step functions whose steps are the sorted values with widths c/Σc.
pub fn sliced_wasserstein_counted(x: &SortedProjections, cx: &[u32], y: &SortedProjections, cy: &[u32]) -> f64 {
    let w2: Vec<f64> = (0..x.values.len())
        .into_par_iter()
        .map(|k| projection_w2(x, cx, y, cy, k))
        .collect();
    (w2.iter().sum::<f64>() / x.values.len() as f64).sqrt()
}

/// The reference side of the sliced W2 replicates, prepared once for every sample
/// measured against it. A resample of n rows has counts summing to n, so its quantile
/// function F⁻¹ steps on the grid k/n: it is the expansion ex of the sorted values v_i by
/// their counts c_i, value i on the cells P_i … P_i + c_i − 1 (P_i = Σ_{i' < i} c_i'). So,
/// per replicate b and direction,
///
/// W2² = ∫₀¹ (F⁻¹ − G⁻¹)² = Σ_i c_i v_i² / n − 2 Σ_i v_i (Γ[P_i + c_i] − Γ[P_i]) + ∫₀¹ (G⁻¹)²,
///
/// with Γ[k] = ∫₀^{k/n} G⁻¹, the reference's quantile function integrated up to each point of
/// the samples' grid. Γ and ∫ (G⁻¹)² belong to the reference's resample b alone: they are
/// computed once per sample size n (the merge of the grids k/n and l/m, [`GridMerge`]) and
/// kept, B × directions × (n + 1) values (102 MB at B = 200, 32 directions, n = 2,000). A
/// sample's replicate is then one pass over its sorted values, nothing written. The sliced
/// W2 of a digits point (one thread, the projections and sorts included) took 30–31 ms
/// when each replicate merged the expansions of both sides, 16–17 ms this way, most of it
/// reading the table (measured).
pub struct SlicedReference {
    y: SortedProjections,
    resamples: Resamples,
    /// Per sample size n, the reference's Γ and ∫ (G⁻¹)² (made when first needed).
    cells: Mutex<Vec<(usize, Arc<Cells>)>>,
}

/// [`SlicedReference`]'s values for samples of one size n.
struct Cells {
    /// ∫ (G⁻¹)² per replicate and direction (B × directions).
    squares: Vec<f64>,
    /// Γ per replicate and direction (B × directions × (n + 1)).
    integrals: Vec<f64>,
}

impl SlicedReference {
    /// The reference's sorted projections `y` and its resamples (`y.rows()` rows).
    pub fn new(y: SortedProjections, resamples: Resamples) -> Self {
        Self {
            y,
            resamples,
            cells: Mutex::new(Vec::new()),
        }
    }

    /// The reference's sorted projections.
    pub fn projections(&self) -> &SortedProjections {
        &self.y
    }

    /// The reference's values for samples of n rows.
    fn cells(&self, n: usize) -> Arc<Cells> {
        if let Some((_, c)) = self.cells.lock().expect("cells lock").iter().find(|(k, _)| *k == n) {
            return c.clone();
        }
        let (m, p) = (self.y.rows(), self.y.projections());
        let grid = GridMerge::new(n, m);
        let b = self.resamples.replicates();
        let (mut squares, mut integrals) = (vec![0.0; b * p], vec![0.0; b * p * (n + 1)]);
        squares
            .par_chunks_mut(p.max(1))
            .zip(integrals.par_chunks_mut((p * (n + 1)).max(1)))
            .enumerate()
            .for_each_init(
                || vec![0.0; m + EXPAND_RUN],
                |ey, (b, (squares, integrals))| {
                    for (k, (square, gamma)) in squares.iter_mut().zip(integrals.chunks_mut(n + 1)).enumerate() {
                        expand(&self.y.values[k], &self.y.rows[k], self.resamples.counts(b), ey);
                        *square = ey[..m].iter().map(|v| v * v).sum::<f64>() / m as f64;
                        grid.integrate(ey, &mut gamma[1..]);
                        for i in 1..=n {
                            gamma[i] += gamma[i - 1];
                        }
                    }
                },
            );
        let c = Arc::new(Cells { squares, integrals });
        self.cells.lock().expect("cells lock").push((n, c.clone()));
        c
    }

    /// The sliced W2 of every resample pair, replicate b taking x's counts from `rx` and
    /// the reference's from its own resamples (x: the same directions). One task per
    /// replicate.
    pub fn replicates(&self, x: &SortedProjections, rx: &Resamples) -> Vec<f64> {
        let (n, p) = (x.rows(), x.projections());
        assert_eq!(rx.replicates(), self.resamples.replicates(), "paired resamples");
        assert_eq!(
            (rx.rows(), p),
            (n, self.y.projections()),
            "the samples' resamples and directions"
        );
        let c = self.cells(n);
        (0..rx.replicates())
            .into_par_iter()
            .map(|b| {
                let total: f64 = (0..p)
                    .map(|k| {
                        let at = b * p + k;
                        let gamma = &c.integrals[at * (n + 1)..(at + 1) * (n + 1)];
                        let (squares, cross) = expanded_moments(&x.values[k], &x.rows[k], rx.counts(b), gamma);
                        squares / n as f64 - 2.0 * cross + c.squares[at]
                    })
                    .sum();
                (total / p as f64).max(0.0).sqrt()
            })
            .collect()
    }
}

/// How far ahead of the current offset [`expanded_moments`] prefetches Γ (entries; past
/// the end of one replicate's cells it reaches the next one's, which come next in memory).
/// The offsets depend on the counts, so the hardware cannot run ahead of them: without
/// it, the pass waited on memory (3.4 ns per row on a Xeon with 2 MB L2 per core).
const PREFETCH_AHEAD: usize = 256;

/// (Σ_i c_i v_i², Σ_i v_i (Γ[P_i + c_i] − Γ[P_i])) over the sorted `values` v_i with counts
/// c_i = `counts[rows[i]]` and P_i = Σ_{i' < i} c_i' ([`SlicedReference`]), in four
/// independent sums.
fn expanded_moments(values: &[f64], rows: &[u32], counts: &[u32], gamma: &[f64]) -> (f64, f64) {
    let (mut squares, mut cross) = ([0.0; 4], [0.0; 4]);
    let (mut at, mut below) = (0, gamma[0]);
    for (v4, r4) in values.chunks(4).zip(rows.chunks(4)) {
        crate::simd::prefetch(gamma.as_ptr().wrapping_add(at + PREFETCH_AHEAD));
        for (l, (&v, &r)) in v4.iter().zip(r4).enumerate() {
            let c = counts[r as usize] as usize;
            at += c;
            let above = gamma[at];
            squares[l] += c as f64 * v * v;
            cross[l] += v * (above - below);
            below = above;
        }
    }
    (squares.iter().sum(), cross.iter().sum())
}

/// Counts up to this many are expanded by one fixed-width write.
const EXPAND_RUN: usize = 4;

crate::simd::avx2_dispatch! {
    /// The order statistics of a resample: sorted value i repeated `counts[rows[i]]` times,
    /// into `out` (its first Σ counts entries; `out` holds [`EXPAND_RUN`] spare entries).
    /// Each value is written [`EXPAND_RUN`] times at its position and the next value
    /// overwrites the surplus, so the loop does not branch on the counts (a count above
    /// [`EXPAND_RUN`], about one row in 270, takes the slow path).
    fn expand(values: &[f64], rows: &[u32], counts: &[u32], out: &mut [f64]) => expand_portable
}

#[inline(always)]
fn expand_portable(values: &[f64], rows: &[u32], counts: &[u32], out: &mut [f64]) {
    let mut pos = 0;
    for (&v, &r) in values.iter().zip(rows) {
        let c = counts[r as usize] as usize;
        if c <= EXPAND_RUN {
            out[pos..pos + EXPAND_RUN].copy_from_slice(&[v; EXPAND_RUN]);
        } else {
            out[pos..pos + c].fill(v);
        }
        pos += c;
    }
}

/// The merge of the grids k/n (k = 1 … n) and l/m: segment s lies in cell `cells[s].0` of
/// the first grid and `cells[s].1` of the second and is `lengths[s]` long.
struct GridMerge {
    cells: Vec<(u32, u32)>,
    lengths: Vec<f64>,
}

impl GridMerge {
    fn new(n: usize, m: usize) -> Self {
        // In units of 1/(n·m): cell k of the first grid ends at (k+1)·m, cell l of the
        // second at (l+1)·n.
        let (mut k, mut l, mut at) = (0usize, 0usize, 0usize);
        let (mut cells, mut lengths) = (Vec::with_capacity(n + m), Vec::with_capacity(n + m));
        while k < n && l < m {
            let end = ((k + 1) * m).min((l + 1) * n);
            cells.push((k as u32, l as u32));
            lengths.push((end - at) as f64 / (n * m) as f64);
            at = end;
            k += usize::from(end == (k + 1) * m);
            l += usize::from(end == (l + 1) * n);
        }
        Self { cells, lengths }
    }

    /// ∫ G⁻¹ over each cell k of the first grid, for the order statistics `ey` (m) of the
    /// second, into `out` (n).
    fn integrate(&self, ey: &[f64], out: &mut [f64]) {
        out.fill(0.0);
        for (&(k, l), w) in self.cells.iter().zip(&self.lengths) {
            out[k as usize] += w * ey[l as usize];
        }
    }
}

/// The exact W2² along direction `k` between the resamples with counts `cx`, `cy`.
fn projection_w2(x: &SortedProjections, cx: &[u32], y: &SortedProjections, cy: &[u32], k: usize) -> f64 {
    let weights = |rows: &[u32], c: &[u32]| -> Vec<u64> { rows.iter().map(|&r| c[r as usize] as u64).collect() };
    w2_squared_1d(
        &x.values[k],
        &weights(&x.rows[k], cx),
        &y.values[k],
        &weights(&y.rows[k], cy),
    )
}

/// A direction uniform on the unit sphere in d dimensions.
fn unit_direction(d: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
    loop {
        let z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
        let norm = z.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 0.0 {
            return z.into_iter().map(|v| v / norm).collect();
        }
    }
}

/// The exact squared 1-D Wasserstein-2 distance between two weighted empirical
/// distributions on sorted values: value i of `xs` has weight wx[i] / Σwx, value j of
/// `ys` weight wy[j] / Σwy. In units of 1/(Σwx · Σwy), step i of `xs` is wx[i] · Σwy
/// long and step j of `ys` wy[j] · Σwx: integers, so the breakpoints are exact. The
/// merge advances without branching on the data (a zero-weight step is a pass of length
/// 0), which keeps it fast on the random weights of bootstrap resamples.
fn w2_squared_1d(xs: &[f64], wx: &[u64], ys: &[f64], wy: &[u64]) -> f64 {
    let (sx, sy): (u64, u64) = (wx.iter().sum(), wy.iter().sum());
    let (n, m) = (xs.len(), ys.len());
    if n == 0 || m == 0 || sx == 0 || sy == 0 {
        return 0.0;
    }
    let (mut i, mut j, mut total) = (0, 0, 0.0);
    let (mut left_x, mut left_y) = (wx[0] * sy, wy[0] * sx); // what remains of the current steps
    while i < n && j < m {
        let step = left_x.min(left_y);
        let diff = xs[i] - ys[j];
        total += step as f64 * diff * diff;
        left_x -= step;
        left_y -= step;
        let (next_x, next_y) = (usize::from(left_x == 0), usize::from(left_y == 0));
        i += next_x;
        j += next_y;
        // Load the next step's length where one was used up (index clamped at the end).
        let (ci, cj) = (i.min(n - 1), j.min(m - 1));
        left_x = if next_x == 1 { wx[ci] * sy } else { left_x };
        left_y = if next_y == 1 { wy[cj] * sx } else { left_y };
    }
    total / (sx as f64 * sy as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::bootstrap::Bootstrap;

    #[test]
    fn grid_merge_of_halves_and_thirds() {
        // k/2 and l/3: breakpoints 1/3, 1/2, 2/3, 1 → segments 1/3, 1/6, 1/6, 1/3.
        let g = GridMerge::new(2, 3);
        assert_eq!(g.cells, vec![(0, 0), (0, 1), (1, 1), (1, 2)]);
        let want = [1.0 / 3.0, 1.0 / 6.0, 1.0 / 6.0, 1.0 / 3.0];
        assert!(g.lengths.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-15));
    }

    #[test]
    fn batched_replicates_equal_the_merge_of_counted_steps() {
        let (d, n) = (3, 57);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919 % 101) as f32) / 50.0 - 1.0).collect();
        let px = SortedProjections::new(&x, d, 9, 3).unwrap();
        // unequal grids (merged) and equal ones (n = m: cell by cell)
        for m in [40, 57] {
            let y: Vec<f32> = (0..m * d).map(|i| ((i * 104_729 % 97) as f32) / 40.0 - 1.2).collect();
            let py = SortedProjections::new(&y, d, 9, 3).unwrap();
            let boot = Bootstrap::new(6, 2).unwrap();
            let (rx, ry) = (boot.samples(n), boot.reference(m));
            let fast = SlicedReference::new(py.clone(), ry.clone()).replicates(&px, &rx);
            for (b, f) in fast.iter().enumerate() {
                let slow = sliced_wasserstein_counted(&px, rx.counts(b), &py, ry.counts(b));
                assert!((f - slow).abs() < 1e-12, "m = {m}, {b}: {f} vs {slow}");
            }
        }
        // A count above the fixed-width run still expands exactly.
        let mut heavy = vec![0u32; n];
        heavy[3] = 20;
        heavy[10] = (n - 20) as u32;
        let mut out = vec![0.0; n + EXPAND_RUN];
        expand(&px.values[0], &px.rows[0], &heavy, &mut out);
        let at = |row: u32| px.values[0][px.rows[0].iter().position(|&r| r == row).unwrap()];
        let (a, b) = (at(3), at(10));
        let want: Vec<f64> = if a <= b {
            [vec![a; 20], vec![b; n - 20]].concat()
        } else {
            [vec![b; n - 20], vec![a; 20]].concat()
        };
        assert_eq!(&out[..n], want.as_slice());
    }
}
