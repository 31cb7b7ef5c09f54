//! The sliced Wasserstein-2 distance (Bonneel et al. 2015) between the empirical
//! distributions of two samples, and its bootstrap replicates from one sort per sample:
//! each sample's projections are sorted once ([`SortedProjections`]), and a resample is a
//! weighting of the sorted values, whose 1-D W2² is exact.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::bootstrap::Resamples;
use super::rows;
use crate::error::{Error, Result};

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
            return Err(Error::Invalid {
                field: "projections".into(),
                message: "at least one projection is needed".into(),
            });
        }
        let (values, rows): (Vec<Vec<f64>>, Vec<Vec<u32>>) = directions(d, projections, seed)
            .par_iter()
            .map(|theta| {
                let p: Vec<f64> = x
                    .chunks(d)
                    .map(|r| r.iter().zip(theta).map(|(v, t)| *v as f64 * t).sum())
                    .collect();
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

/// [`sliced_wasserstein_counted`] of every resample pair, replicate b taking x's counts
/// from `rx` and y's from `ry` (one task per replicate; the same numbers as calling it
/// replicate by replicate).
pub fn sliced_wasserstein_replicates(
    x: &SortedProjections,
    rx: &Resamples,
    y: &SortedProjections,
    ry: &Resamples,
) -> Vec<f64> {
    (0..rx.replicates())
        .into_par_iter()
        .map(|b| {
            let (cx, cy) = (rx.counts(b), ry.counts(b));
            let total: f64 = (0..x.values.len()).map(|k| projection_w2(x, cx, y, cy, k)).sum();
            (total / x.values.len() as f64).sqrt()
        })
        .collect()
}

/// The exact W2² along direction `k` between the resamples with counts `cx`, `cy`.
fn projection_w2(x: &SortedProjections, cx: &[u32], y: &SortedProjections, cy: &[u32], k: usize) -> f64 {
    let wx: Vec<u64> = x.rows[k].iter().map(|&r| cx[r as usize] as u64).collect();
    let wy: Vec<u64> = y.rows[k].iter().map(|&r| cy[r as usize] as u64).collect();
    w2_squared_1d(&x.values[k], &wx, &y.values[k], &wy)
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
/// long and step j of `ys` wy[j] · Σwx: integers, so the breakpoints are exact.
fn w2_squared_1d(xs: &[f64], wx: &[u64], ys: &[f64], wy: &[u64]) -> f64 {
    let (sx, sy): (u64, u64) = (wx.iter().sum(), wy.iter().sum());
    let (mut i, mut j, mut total) = (0, 0, 0.0);
    let (mut left_x, mut left_y) = (0u64, 0u64); // what remains of the current steps
    loop {
        while left_x == 0 && i < xs.len() {
            left_x = wx[i] * sy;
            if left_x == 0 {
                i += 1;
            }
        }
        while left_y == 0 && j < ys.len() {
            left_y = wy[j] * sx;
            if left_y == 0 {
                j += 1;
            }
        }
        if i >= xs.len() || j >= ys.len() {
            break;
        }
        let step = left_x.min(left_y);
        total += step as f64 * (xs[i] - ys[j]).powi(2);
        left_x -= step;
        left_y -= step;
        if left_x == 0 {
            i += 1;
        }
        if left_y == 0 {
            j += 1;
        }
    }
    total / (sx as f64 * sy as f64)
}
