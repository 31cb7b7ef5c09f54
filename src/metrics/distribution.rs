//! Distances between the distribution of generated samples and that of reference data.
//!
//! - [`frechet_distance`]: the Fréchet (2-Wasserstein) distance between Gaussians fitted to
//!   the two sets, the formula behind FID (Heusel et al. 2017), here on raw coordinates.
//! - [`mmd2_unbiased`]: the unbiased estimate of the squared maximum mean discrepancy with
//!   a Gaussian RBF kernel (Gretton et al. 2012, Lemma 6), block-averaged beyond
//!   [`MMD_BLOCK`] rows so that its cost grows linearly.
//! - [`sliced_wasserstein`]: the sliced Wasserstein-2 distance over random directions
//!   (Bonneel et al. 2015).

use nalgebra::{DMatrix, SymmetricEigen};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use super::rows;
use crate::error::{Error, Result};

/// At most this many pooled points enter the median heuristic of [`mmd2_unbiased`].
pub const MEDIAN_HEURISTIC_POINTS: usize = 1000;

/// A Gaussian N(mean, cov) in d dimensions; `cov` is d × d, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Gaussian {
    /// The mean μ (length d).
    pub mean: Vec<f64>,
    /// The covariance Σ (d × d, row-major), symmetric positive semidefinite.
    pub cov: Vec<f64>,
}

impl Gaussian {
    /// The sample mean and unbiased sample covariance (divisor n − 1) of the n ≥ 2 rows
    /// of `x` (n × `d`, row-major).
    pub fn fit(x: &[f32], d: usize) -> Result<Gaussian> {
        let n = rows(x, d, "x", 2)?;
        Ok(Self::fit_counted(x, d, &vec![1; n]))
    }

    /// [`Gaussian::fit`] of a resample given as a count per row of `x` (row i taken
    /// `counts[i]` times, Σ counts ≥ 2): the same numbers as fitting the copied rows.
    /// `x` must already be validated (whole rows, finite).
    pub fn fit_counted(x: &[f32], d: usize, counts: &[u32]) -> Gaussian {
        let total: f64 = counts.iter().map(|&c| c as f64).sum();
        let mut mean = vec![0.0; d];
        for (row, &c) in x.chunks(d).zip(counts) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += c as f64 * *v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= total);
        // Σ = Aᵀ A / (N − 1) with row i of A = √c_i (x_i − μ): one matrix product. The
        // rows are written as the columns of Aᵀ (contiguous in nalgebra's column-major order).
        let mut at = Vec::with_capacity(x.len());
        let mut kept = 0;
        for (row, &c) in x.chunks(d).zip(counts).filter(|(_, c)| **c > 0) {
            let w = (c as f64).sqrt();
            at.extend(row.iter().zip(&mean).map(|(v, m)| w * (*v as f64 - m)));
            kept += 1;
        }
        let at = DMatrix::from_vec(d, kept, at);
        let cov = (&at * at.transpose()) / (total - 1.0);
        let mut flat = vec![0.0; d * d];
        for i in 0..d {
            for j in 0..d {
                // symmetric by construction up to round-off; keep the upper triangle
                flat[i * d + j] = cov[(i.min(j), i.max(j))];
            }
        }
        Gaussian { mean, cov: flat }
    }

    /// The dimension d, after checking that the fields fit together and are finite.
    fn dim(&self, what: &str) -> Result<usize> {
        let d = self.mean.len();
        if d == 0 || self.cov.len() != d * d {
            return Err(Error::Shape(format!(
                "{what}: a mean of length {d} needs a {d} × {d} covariance, got {} values",
                self.cov.len()
            )));
        }
        let count = self.mean.iter().chain(&self.cov).filter(|v| !v.is_finite()).count();
        if count > 0 {
            return Err(Error::NonFinite {
                what: what.into(),
                count,
            });
        }
        Ok(d)
    }
}

/// The Fréchet distance between two Gaussians (Heusel et al. 2017, the FID formula):
/// ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2}).
///
/// The trace of (Σ_a Σ_b)^{1/2} is computed as Σ_i √λ_i over the eigenvalues of the
/// symmetric positive semidefinite Σ_a^{1/2} Σ_b Σ_a^{1/2} (which has the same eigenvalues
/// as Σ_a Σ_b), with Σ_a^{1/2} from a symmetric eigendecomposition and eigenvalues below
/// zero by round-off taken as 0. Covariances with a clearly negative eigenvalue are an
/// error; a result that is negative by round-off is returned as 0.
pub fn frechet(a: &Gaussian, b: &Gaussian) -> Result<f64> {
    Rooted::new(a)?.frechet(b)
}

/// A Gaussian with its Σ^{1/2} computed once, for many Fréchet distances against it
/// (e.g. bootstrap replicates that share one side).
#[derive(Debug, Clone)]
pub struct Rooted {
    mean: Vec<f64>,
    sigma: DMatrix<f64>,
    root: DMatrix<f64>,
}

impl Rooted {
    /// Checks `a` and takes the square root of its covariance.
    pub fn new(a: &Gaussian) -> Result<Self> {
        let d = a.dim("a")?;
        let sigma = symmetric(&a.cov, d);
        Ok(Self {
            root: psd_sqrt(&sigma, "a.cov")?,
            mean: a.mean.clone(),
            sigma,
        })
    }

    /// [`frechet`] between this Gaussian (a) and `b`.
    pub fn frechet(&self, b: &Gaussian) -> Result<f64> {
        let d = self.mean.len();
        if b.dim("b")? != d {
            return Err(Error::Shape(format!("a has d = {d} but b has d = {}", b.mean.len())));
        }
        let sb = symmetric(&b.cov, d);
        psd_eigenvalues(sb.clone(), "b.cov")?;
        Ok(self.frechet_psd(b, &sb))
    }

    /// [`Rooted::frechet`] against a Gaussian from [`Gaussian::fit_counted`], positive
    /// semidefinite by construction (Σ = AᵀA / (N − 1)), so its eigenvalue check is
    /// skipped (one eigendecomposition fewer per bootstrap replicate).
    pub fn frechet_fitted(&self, b: &Gaussian) -> f64 {
        self.frechet_psd(b, &symmetric(&b.cov, self.mean.len()))
    }

    fn frechet_psd(&self, b: &Gaussian, sb: &DMatrix<f64>) -> f64 {
        let m = &self.root * sb * &self.root;
        let tr_root: f64 = SymmetricEigen::new((&m + m.transpose()) / 2.0)
            .eigenvalues
            .iter()
            .map(|l| l.max(0.0).sqrt())
            .sum();
        let mean_term: f64 = self.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
        (mean_term + self.sigma.trace() + sb.trace() - 2.0 * tr_root).max(0.0)
    }
}

/// [`frechet`] between the [`Gaussian::fit`]s of `x` and `y` (each n × `d`, n ≥ 2).
pub fn frechet_distance(x: &[f32], y: &[f32], d: usize) -> Result<f64> {
    frechet(&Gaussian::fit(x, d)?, &Gaussian::fit(y, d)?)
}

/// A d × d matrix from row-major values, symmetrised as (M + Mᵀ)/2.
fn symmetric(values: &[f64], d: usize) -> DMatrix<f64> {
    let m = DMatrix::from_row_slice(d, d, values);
    (&m + m.transpose()) / 2.0
}

/// The eigendecomposition of a symmetric matrix, or an error when an eigenvalue is
/// negative beyond round-off (below −1e-9 · max(1, max |λ|)).
fn psd_eigenvalues(m: DMatrix<f64>, what: &str) -> Result<SymmetricEigen<f64, nalgebra::Dyn>> {
    let eig = SymmetricEigen::new(m);
    let scale = eig.eigenvalues.iter().fold(1.0f64, |s, l| s.max(l.abs()));
    let min = eig.eigenvalues.min();
    if min < -1e-9 * scale {
        return Err(Error::Invalid {
            field: what.into(),
            message: format!("not positive semidefinite (eigenvalue {min:e})"),
        });
    }
    Ok(eig)
}

/// The symmetric square root V diag(√max(λ, 0)) Vᵀ of a positive semidefinite matrix.
fn psd_sqrt(m: &DMatrix<f64>, what: &str) -> Result<DMatrix<f64>> {
    let eig = psd_eigenvalues(m.clone(), what)?;
    let roots = DMatrix::from_diagonal(&eig.eigenvalues.map(|l| l.max(0.0).sqrt()));
    Ok(&eig.eigenvectors * roots * eig.eigenvectors.transpose())
}

/// At most this many rows of each sample share one block of [`mmd2_unbiased`]: up to it
/// the estimate is the classic all-pairs one; beyond it the cost grows linearly.
pub const MMD_BLOCK: usize = 2000;

/// An unbiased MMD² estimate and the kernel bandwidth it used.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mmd {
    /// The unbiased estimate of MMD²; it can be slightly negative when the distributions agree.
    pub value: f64,
    /// The bandwidth h of the kernel exp(−‖u − v‖² / (2h²)).
    pub bandwidth: f64,
    /// Number of blocks B the estimate averages (1: the all-pairs estimator).
    pub blocks: usize,
    /// The spread of the block estimates: their standard deviation / √B (NaN when B = 1).
    pub block_se: f64,
}

/// The unbiased estimate of MMD² between the distributions of `x` (m × `d`) and `y`
/// (n × `d`), m, n ≥ 2 (Gretton et al. 2012, Lemma 6), with the Gaussian RBF kernel
/// k(u, v) = exp(−‖u − v‖² / (2h²)):
///
/// MMD²_u = Σ_{i≠j} k(x_i, x_j) / (m(m−1)) + Σ_{i≠j} k(y_i, y_j) / (n(n−1)) − 2 Σ_{i,j} k(x_i, y_j) / (mn).
///
/// When m or n exceeds [`MMD_BLOCK`], each sample is cut into consecutive blocks of at most
/// that many rows (B_x = ⌈m / MMD_BLOCK⌉ and B_y = ⌈n / MMD_BLOCK⌉ near-equal blocks) and
/// the estimate is the mean over b < B = max(B_x, B_y) of the formula above on the pair
/// (x-block b mod B_x, y-block b mod B_y) — the block estimator of KID (Bińkowski et al.
/// 2018), still unbiased, at a cost linear in m + n. [`Mmd::block_se`] reports the spread.
///
/// With `bandwidth` `None`, h comes from the median heuristic h² = median ‖u − v‖² / 2 over
/// the distinct pairs of the pooled sample (x's rows, then y's); when the pool has more than
/// [`MEDIAN_HEURISTIC_POINTS`] rows, the rows ⌊i · N / 1000⌋, i = 0 … 999, are used. The
/// median of an even number of distances is the mean of the middle two. A zero median
/// (all points equal) is an error: pass a bandwidth instead.
pub fn mmd2_unbiased(x: &[f32], y: &[f32], d: usize, bandwidth: Option<f64>) -> Result<Mmd> {
    rows(x, d, "x", 2)?;
    rows(y, d, "y", 2)?;
    let (x, y) = (to_f64_rows(x, d), to_f64_rows(y, d));
    let h = match bandwidth {
        Some(h) if h.is_finite() && h > 0.0 => h,
        Some(h) => {
            return Err(Error::Invalid {
                field: "bandwidth".into(),
                message: format!("{h}: the bandwidth must be positive and finite"),
            })
        }
        None => median_bandwidth(&x, &y)?,
    };
    let (xb, yb) = (blocks(&x), blocks(&y));
    let b = xb.len().max(yb.len());
    let values: Vec<f64> = (0..b)
        .map(|i| mmd2_block(xb[i % xb.len()], yb[i % yb.len()], h))
        .collect();
    let value = values.iter().sum::<f64>() / b as f64;
    let block_se = if b > 1 {
        let var = values.iter().map(|v| (v - value).powi(2)).sum::<f64>() / (b - 1) as f64;
        (var / b as f64).sqrt()
    } else {
        f64::NAN
    };
    Ok(Mmd {
        value,
        bandwidth: h,
        blocks: b,
        block_se,
    })
}

/// `x` cut into ⌈len / MMD_BLOCK⌉ consecutive near-equal blocks.
fn blocks(x: &[Vec<f64>]) -> Vec<&[Vec<f64>]> {
    let k = x.len().div_ceil(MMD_BLOCK).max(1);
    (0..k).map(|i| &x[i * x.len() / k..(i + 1) * x.len() / k]).collect()
}

/// The all-pairs unbiased MMD² of two blocks (each ≥ 2 rows) at bandwidth h.
fn mmd2_block(x: &[Vec<f64>], y: &[Vec<f64>], h: f64) -> f64 {
    let gamma = 1.0 / (2.0 * h * h);
    let k = |u: &[f64], v: &[f64]| (-gamma * sq_dist(u, v)).exp();
    let (m, n) = (x.len() as f64, y.len() as f64);
    let kxx = 2.0 * off_diagonal_sum(x, &k);
    let kyy = 2.0 * off_diagonal_sum(y, &k);
    let kxy: f64 = x
        .par_iter()
        .map(|u| y.iter().map(|v| k(u, v)).sum::<f64>())
        .collect::<Vec<_>>()
        .iter()
        .sum();
    kxx / (m * (m - 1.0)) + kyy / (n * (n - 1.0)) - 2.0 * kxy / (m * n)
}

/// The RBF kernel matrices of two samples, for bootstrap replicates of the all-pairs
/// estimator of [`mmd2_unbiased`] (each sample at most [`MMD_BLOCK`] rows): built once
/// per pair of samples, each replicate is then three count-weighted quadratic forms.
pub struct KernelMatrices {
    n: usize,
    m: usize,
    kxx: Vec<f32>,
    kyy: Vec<f32>,
    kxy: Vec<f32>,
}

impl KernelMatrices {
    /// k(u, v) = exp(−‖u − v‖² / (2h²)) over x × x, y × y and x × y; `None` when a sample
    /// has more than [`MMD_BLOCK`] rows (the block estimator has no single matrix).
    pub fn new(x: &[f32], y: &[f32], d: usize, h: f64) -> Result<Option<Self>> {
        let (n, m) = (rows(x, d, "x", 2)?, rows(y, d, "y", 2)?);
        if n > MMD_BLOCK || m > MMD_BLOCK {
            return Ok(None);
        }
        let (x, y) = (to_f64_rows(x, d), to_f64_rows(y, d));
        let gamma = 1.0 / (2.0 * h * h);
        let gram = |a: &[Vec<f64>], b: &[Vec<f64>]| -> Vec<f32> {
            a.par_iter()
                .flat_map_iter(|u| b.iter().map(move |v| (-gamma * sq_dist(u, v)).exp() as f32))
                .collect()
        };
        Ok(Some(Self {
            n,
            m,
            kxx: gram(&x, &x),
            kyy: gram(&y, &y),
            kxy: gram(&x, &y),
        }))
    }

    /// The unbiased MMD² of the resample that takes row i of x `cx[i]` times and row j
    /// of y `cy[j]` times: pairs of distinct draws, Σ_{a≠b} k(x_{i_a}, x_{i_b}) =
    /// cxᵀ Kxx cx − Σ_i cx_i k(x_i, x_i), and likewise for y; all ones give the
    /// all-pairs estimate itself.
    pub fn mmd2(&self, cx: &[u32], cy: &[u32]) -> f64 {
        let quad = |k: &[f32], a: &[u32], b: &[u32], cols: usize| -> f64 {
            a.iter()
                .enumerate()
                .filter(|(_, c)| **c > 0)
                .map(|(i, &ci)| {
                    let row = &k[i * cols..(i + 1) * cols];
                    ci as f64 * row.iter().zip(b).map(|(kv, &cj)| *kv as f64 * cj as f64).sum::<f64>()
                })
                .sum()
        };
        let diag = |k: &[f32], c: &[u32], size: usize| -> f64 {
            c.iter()
                .enumerate()
                .map(|(i, &ci)| ci as f64 * k[i * size + i] as f64)
                .sum()
        };
        let (n, m) = (cx.iter().sum::<u32>() as f64, cy.iter().sum::<u32>() as f64);
        let xx = quad(&self.kxx, cx, cx, self.n) - diag(&self.kxx, cx, self.n);
        let yy = quad(&self.kyy, cy, cy, self.m) - diag(&self.kyy, cy, self.m);
        let xy = quad(&self.kxy, cx, cy, self.m);
        xx / (n * (n - 1.0)) + yy / (m * (m - 1.0)) - 2.0 * xy / (n * m)
    }
}

/// The Euclidean distance from every row of `x` to its nearest row of `train` (both
/// × `d`): how close samples come to the training points (memorisation).
pub fn nearest_distances(x: &[f32], train: &[f32], d: usize) -> Result<Vec<f64>> {
    rows(x, d, "x", 1)?;
    rows(train, d, "train", 1)?;
    let (x, train) = (to_f64_rows(x, d), to_f64_rows(train, d));
    Ok(x.par_iter()
        .map(|u| train.iter().map(|v| sq_dist(u, v)).fold(f64::INFINITY, f64::min).sqrt())
        .collect())
}

/// Rows of f64 from a validated flat f32 sample.
fn to_f64_rows(x: &[f32], d: usize) -> Vec<Vec<f64>> {
    x.chunks(d).map(|r| r.iter().map(|v| *v as f64).collect()).collect()
}

/// ‖u − v‖², with four independent partial sums so that the loop vectorises.
fn sq_dist(u: &[f64], v: &[f64]) -> f64 {
    let mut acc = [0.0; 4];
    for (a, b) in u.chunks_exact(4).zip(v.chunks_exact(4)) {
        for k in 0..4 {
            acc[k] += (a[k] - b[k]).powi(2);
        }
    }
    let tail = u.len() - u.len() % 4;
    let rest: f64 = u[tail..].iter().zip(&v[tail..]).map(|(a, b)| (a - b).powi(2)).sum();
    acc.iter().sum::<f64>() + rest
}

/// Σ_{i<j} f(x_i, x_j), one parallel task per row, summed in a fixed order.
fn off_diagonal_sum(x: &[Vec<f64>], f: &(impl Fn(&[f64], &[f64]) -> f64 + Sync)) -> f64 {
    let per_row: Vec<f64> = (0..x.len())
        .into_par_iter()
        .map(|i| x[i + 1..].iter().map(|v| f(&x[i], v)).sum())
        .collect();
    per_row.iter().sum()
}

/// The median-heuristic bandwidth of one sample `x` (n × `d`, n ≥ 2) alone, by the rule
/// of [`mmd2_unbiased`]: fixing it once (e.g. on the reference data) keeps the kernel, and
/// so the MMD² values, comparable across the points of a sweep.
pub fn median_bandwidth_of(x: &[f32], d: usize) -> Result<f64> {
    rows(x, d, "x", 2)?;
    median_bandwidth(&to_f64_rows(x, d), &[])
}

/// The median-heuristic bandwidth of [`mmd2_unbiased`].
fn median_bandwidth(x: &[Vec<f64>], y: &[Vec<f64>]) -> Result<f64> {
    let pooled: Vec<&Vec<f64>> = x.iter().chain(y).collect();
    let total = pooled.len();
    let points: Vec<&Vec<f64>> = if total > MEDIAN_HEURISTIC_POINTS {
        (0..MEDIAN_HEURISTIC_POINTS)
            .map(|i| pooled[i * total / MEDIAN_HEURISTIC_POINTS])
            .collect()
    } else {
        pooled
    };
    let mut dists: Vec<f64> = (0..points.len())
        .into_par_iter()
        .flat_map_iter(|i| points[i + 1..].iter().map(move |v| (i, v)))
        .map(|(i, v)| sq_dist(points[i], v))
        .collect();
    dists.sort_unstable_by(f64::total_cmp);
    let mid = dists.len() / 2;
    let median = if dists.len().is_multiple_of(2) {
        (dists[mid - 1] + dists[mid]) / 2.0
    } else {
        dists[mid]
    };
    if median <= 0.0 {
        return Err(Error::Invalid {
            field: "bandwidth".into(),
            message: "the median pairwise distance is 0 (the points coincide): pass a bandwidth".into(),
        });
    }
    Ok((median / 2.0).sqrt())
}

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
}

/// [`sliced_wasserstein`] between the resamples that take row i of x `cx[i]` times and
/// row j of y `cy[j]` times (all ones: the samples themselves), from their sorted
/// projections (made with the same directions). Each 1-D W2² is exact: the quantile
/// functions are step functions whose steps are the sorted values with widths c/Σc.
pub fn sliced_wasserstein_counted(x: &SortedProjections, cx: &[u32], y: &SortedProjections, cy: &[u32]) -> f64 {
    let w2: Vec<f64> = (0..x.values.len())
        .into_par_iter()
        .map(|k| {
            let wx: Vec<u64> = x.rows[k].iter().map(|&r| cx[r as usize] as u64).collect();
            let wy: Vec<u64> = y.rows[k].iter().map(|&r| cy[r as usize] as u64).collect();
            w2_squared_1d(&x.values[k], &wx, &y.values[k], &wy)
        })
        .collect();
    (w2.iter().sum::<f64>() / x.values.len() as f64).sqrt()
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
