//! The Fréchet (2-Wasserstein) distance between Gaussians fitted to two samples, the
//! formula behind FID (Heusel et al. 2017), and what the bootstrap needs of it: the fits
//! of many resamples of one sample from its weighted moments ([`Moments`]), and one side
//! prepared once for many distances against it ([`Rooted`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use nalgebra::{DMatrix, SymmetricEigen};
use rayon::prelude::*;

use super::bootstrap::{Linear, Replicated, Resamples};
use super::eigen::{eigenvalues_of_many, GROUP};
use super::influence::{Gradient, Roots};
use super::linalg::{product, Dense};
use super::rows;
use crate::error::{Error, Result};
use crate::kernels::gemm::{matmul, matmul_strided, View};
use crate::kernels::scatter::weighted_scatter;

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
    /// `x` must already be validated (whole rows, finite). (The reference implementation
    /// of [`Moments::fit`], which the bootstrap uses.)
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

/// The fits of any resample of one sample, from its moments about the sample mean μ:
/// a resample that takes row i `c_i` times (N = Σ c_i ≥ 2) has mean μ + δ, δ = Σ c_i x̃_i / N,
/// and (N − 1) Σ = Σ c_i x̃_i x̃_iᵀ − N δ δᵀ with x̃_i = x_i − μ. The scatter Σ c_i x̃_i x̃_iᵀ
/// is the sample's own X̃ᵀX̃ (f64, once) plus X̃ᵀ diag(c − 1) X̃ over the rows whose count
/// is not 1, summed in f32 ([`weighted_scatter`], reading those rows in place): the
/// correction is a few per cent of the scatter, so its f32 rounding (~1e-7 of itself)
/// leaves the fit f64-accurate to ~1e-8.
#[derive(Debug, Clone)]
pub struct Moments {
    d: usize,
    mean: Vec<f64>,
    centred: Vec<f64>,
    centred32: Vec<f32>,
    scatter: Vec<f64>,
}

impl Moments {
    /// The moments of the rows of `x` (n × `d`, n ≥ 2).
    pub fn new(x: &[f32], d: usize) -> Result<Self> {
        let n = rows(x, d, "x", 2)?;
        let mut mean = vec![0.0; d];
        for row in x.chunks(d) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += *v as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let centred: Vec<f64> = x
            .chunks(d)
            .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| *v as f64 - m))
            .collect();
        let a = View::rows(&centred, n, d);
        let scatter = product(a.t(), a, false).data;
        Ok(Self {
            d,
            mean,
            centred32: centred.iter().map(|&v| v as f32).collect(),
            centred,
            scatter,
        })
    }

    /// The Gaussian fit of the resample with `counts` per row (Σ ≥ 2): the numbers of
    /// [`Gaussian::fit_counted`] up to round-off.
    pub fn fit(&self, counts: &[u32]) -> Gaussian {
        self.fit_many(&[counts]).pop().expect("one fit")
    }

    /// [`Moments::fit`] of several resamples. Their mean shifts, δ N = Σ c_i x̃_i =
    /// Σ (c_i − 1) x̃_i (the x̃_i sum to 0), are one f64 product of the (c − 1) rows with X̃,
    /// which reads X̃ once for all of them (gathered row by row, it was a quarter of a fit's
    /// time at d = 128).
    pub fn fit_many(&self, counts: &[&[u32]]) -> Vec<Gaussian> {
        let (d, n) = (self.d, self.centred.len() / self.d);
        let weights: Vec<f64> = counts.iter().flat_map(|c| c.iter().map(|&c| c as f64 - 1.0)).collect();
        let shifts = product(
            View::rows(&weights, counts.len(), n),
            View::rows(&self.centred, n, d),
            true,
        );
        counts
            .iter()
            .zip(shifts.data.chunks(d))
            .map(|(c, shift)| self.fit_shifted(c, shift))
            .collect()
    }

    /// The fit of one resample given its Σ (c_i − 1) x̃_i.
    fn fit_shifted(&self, counts: &[u32], shift: &[f64]) -> Gaussian {
        let d = self.d;
        let total: u32 = counts.iter().sum();
        // Σ (c_i − 1) x̃_i x̃_iᵀ: only rows with c_i ≠ 1 count.
        let picked: Vec<(u32, f32)> = (counts.iter().enumerate())
            .filter(|(_, c)| **c != 1)
            .map(|(i, &c)| (i as u32, c as f32 - 1.0))
            .collect();
        let correction = weighted_scatter(&self.centred32, d, &picked);
        let n = total as f64;
        let delta: Vec<f64> = shift.iter().map(|s| s / n).collect();
        let mut cov = Vec::with_capacity(d * d);
        for ((scatter, correction), di) in self.scatter.chunks(d).zip(correction.chunks(d)).zip(&delta) {
            let row = scatter.iter().zip(correction).zip(&delta);
            cov.extend(row.map(|((s, c), dj)| (s + *c as f64 - n * di * dj) / (n - 1.0)));
        }
        let mean = self.mean.iter().zip(&delta).map(|(m, s)| m + s).collect();
        Gaussian { mean, cov }
    }
}

/// The number of groups G of the delete-group jackknife behind FD∞ ([`FrechetReference`]),
/// fewer where a sample has fewer than 2 G rows (at least 2).
pub const JACKKNIFE_GROUPS: usize = 10;

/// The groups of the jackknife for an n-row sample against an m-row one.
pub fn jackknife_groups(n: usize, m: usize) -> usize {
    (n.min(m) / 2).clamp(2, JACKKNIFE_GROUPS)
}

/// The reference side of the Fréchet distances, prepared once for every sample measured
/// against it: its Gaussian with Σ^{1/2} (plug-in FD), the same for each of its
/// leave-one-group-out subsets (FD∞) and for each of its bootstrap resamples.
///
/// **FD∞** removes the plug-in estimate's small-sample bias, which depends on both
/// covariances and so on the samples' diversity (Chong & Forsyth 2020), by the
/// delete-group jackknife: rows are split into G = [`JACKKNIFE_GROUPS`] groups by index
/// (row i in group i mod G, on both sides; [`jackknife_groups`] for small samples); with FD̂_(−g) the plug-in distance without
/// group g of either sample, FD∞ = G · FD̂ − (G − 1) · mean_g FD̂_(−g). A bias of the form
/// a/n + b/m cancels exactly (the extrapolation to infinite samples from sizes N and
/// N (G − 1)/G). The extrapolation keeps the linear part of FD̂ and multiplies a
/// degenerate quadratic part Q = N⁻² Σ_{i≠j} h(x_i, x_j) by κ = G/(G − 1) (a pair of rows in
/// different groups survives G − 2 of the G deletions). So its replicates are the plug-in
/// replicates with the part beyond their linear part scaled by κ:
/// FD∞*_b = FD∞ + L*_b + κ (FD*_b − FD̂ − L*_b), L*_b = Σ_i (c_i − 1) φ̂_i + Σ_j (c′_j − 1) ψ̂_j
/// with φ̂, ψ̂ the projection at the fits of all rows. (Measured: the true variance of FD∞
/// is 1–14 % above the plug-in's in the coverage simulations, the larger where the
/// quadratic part dominates; README "Intervals".)
///
/// Both carry the plug-in's first-order projection ([`Linear`], from [`super::influence`]):
/// each row's influence on FD̂, estimated twice, with the gradient at the fits of the even
/// rows of both sides and at those of the odd rows, so that the two estimates share the
/// rows' true projection but not the noise of the fits.
pub struct FrechetReference {
    d: usize,
    /// The reference rows (m × d).
    y: Vec<f32>,
    /// The fits of the reference's even rows, odd rows and all rows, with their roots.
    fits: [(Gaussian, Roots); 3],
    moments: Moments,
    full: Rooted,
    /// Per G, the reference without each of its G groups (made when first needed).
    groups: Mutex<BTreeMap<usize, Arc<Vec<Rooted>>>>,
    resamples: Resamples,
    replicates: Vec<Rooted>,
}

impl FrechetReference {
    /// The reference `y` (m × `d`, m ≥ 4) resampled by `resamples` (m rows).
    pub fn new(y: &[f32], d: usize, resamples: &Resamples) -> Result<Self> {
        let m = rows(y, d, "reference", 4)?;
        let moments = Moments::new(y, d)?;
        let replicates = resamples
            .all()
            .par_iter()
            .map(|c| Rooted::fitted(&moments.fit(c)))
            .collect::<Result<Vec<_>>>()?;
        let half = |h: usize| {
            let fit = moments.fit(&half_rows(m, h));
            let roots = Roots::new(&fit);
            (fit, roots)
        };
        let fits = [half(0), half(1), half(2)];
        Ok(Self {
            d,
            y: y.to_vec(),
            full: Rooted::fitted(&fits[2].0)?,
            fits,
            moments,
            groups: Mutex::new(BTreeMap::new()),
            resamples: resamples.clone(),
            replicates,
        })
    }

    /// The reference without each of its `g` groups.
    fn groups(&self, g: usize) -> Result<Arc<Vec<Rooted>>> {
        if let Some(v) = self.groups.lock().expect("groups lock").get(&g) {
            return Ok(v.clone());
        }
        let m = self.resamples.rows();
        let v = Arc::new(
            (0..g)
                .into_par_iter()
                .map(|k| Rooted::fitted(&self.moments.fit(&without_group(m, g, k))))
                .collect::<Result<Vec<_>>>()?,
        );
        self.groups.lock().expect("groups lock").insert(g, v.clone());
        Ok(v)
    }

    /// The reference's resamples.
    pub fn resamples(&self) -> &Resamples {
        &self.resamples
    }

    /// The plug-in FD and FD∞ of `x` (n × d, n ≥ 4) against the reference, each with its
    /// replicates (x resampled by `rx`, the reference by its own resamples).
    pub fn measure(&self, x: &[f32], rx: &Resamples) -> Result<(Replicated, Replicated)> {
        let n = rows(x, self.d, "samples", 4)?;
        let moments = Moments::new(x, self.d)?;
        let groups = jackknife_groups(n, self.resamples.rows());
        // The fit of all rows, then those without each group, against the reference's
        // counterparts: the plug-in FD and the jackknife's distances, in groups of GROUP.
        let counts: Vec<Vec<u32>> = std::iter::once(vec![1; n])
            .chain((0..groups).map(|k| without_group(n, groups, k)))
            .collect();
        let fits = moments.fit_many(&counts.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let reference = self.groups(groups)?;
        let pairs: Vec<(&Rooted, &Gaussian)> = std::iter::once(&self.full).chain(reference.iter()).zip(&fits).collect();
        let distances: Vec<f64> = pairs.par_chunks(GROUP).flat_map_iter(frechet_fitted_many).collect();
        let (plug_in, dropped, fit) = (distances[0], &distances[1..], &fits[0]);
        let g = groups as f64;
        let inf = g * plug_in - (g - 1.0) * dropped.iter().sum::<f64>() / g;
        let indices: Vec<usize> = (0..rx.replicates()).collect();
        let replicates: Vec<f64> = indices
            .par_chunks(GROUP)
            .flat_map_iter(|chunk| {
                let counts: Vec<&[u32]> = chunk.iter().map(|&b| rx.counts(b)).collect();
                let fits = moments.fit_many(&counts);
                let pairs: Vec<_> = chunk
                    .iter()
                    .zip(&fits)
                    .map(|(&b, f)| (&self.replicates[b], f))
                    .collect();
                frechet_fitted_many(&pairs)
            })
            .collect();
        if replicates.is_empty() {
            // No intervals: the projection, which serves only them, is not made.
            return Ok((Replicated::new(plug_in, replicates), Replicated::new(inf, Vec::new())));
        }
        let (linear, [phi, psi]) = self.projection(x, &moments, fit);
        // L*_b = Σ_i (c_i − 1) φ̂_i + Σ_j (c′_j − 1) ψ̂_j: the replicate's linear part.
        let total = |v: &[f64]| v.iter().sum::<f64>();
        let (sx, sy) = (total(&phi), total(&psi));
        let ry = &self.resamples;
        let (mx, my) = (rx.means(&phi), ry.means(&psi));
        let linear_part = mx
            .iter()
            .zip(my)
            .map(|(a, b)| (n as f64 * a - sx) + (ry.rows() as f64 * b - sy));
        let kappa = g / (g - 1.0);
        let moved = replicates
            .iter()
            .zip(linear_part)
            .map(|(r, l)| inf + l + kappa * (r - plug_in - l))
            .collect();
        Ok((
            Replicated {
                linear: Some(linear.clone()),
                ..Replicated::new(plug_in, replicates)
            },
            Replicated {
                linear: Some(linear),
                ..Replicated::new(inf, moved)
            },
        ))
    }

    /// The first-order projection of FD̂ onto the rows of `x` and of the reference, once
    /// with the gradient at the fits of each half (even rows, odd rows) of both sides, and
    /// the projection at the fits of all rows ([φ̂, ψ̂]; `full`: x's fit of all rows).
    fn projection(&self, x: &[f32], moments: &Moments, full: &Gaussian) -> (Linear, [Vec<f64>; 2]) {
        let n = x.len() / self.d;
        let projections: Vec<[Vec<f64>; 2]> = (0..3)
            .into_par_iter()
            .map(|h| {
                let (fit_y, roots) = &self.fits[h];
                let half = (h < 2).then(|| moments.fit(&half_rows(n, h)));
                let fit_x = half.as_ref().unwrap_or(full);
                let gradient = Gradient::new(fit_x, fit_y, roots);
                [gradient.samples(x, fit_x), gradient.reference(&self.y, fit_y)]
            })
            .collect();
        let [even, odd, full]: [[Vec<f64>; 2]; 3] = projections.try_into().expect("three fits");
        let [s0, r0] = even;
        let [s1, r1] = odd;
        let linear = Linear {
            samples: [s0, s1],
            reference: [r0, r1],
        };
        (linear, full)
    }
}

/// Counts that keep the even rows of n (`h` = 0), the odd ones (`h` = 1) or all (`h` = 2).
fn half_rows(n: usize, h: usize) -> Vec<u32> {
    (0..n).map(|i| u32::from(h == 2 || i % 2 == h)).collect()
}

/// Counts that keep every row of n but those of group `k` of `g` (row i is in group i mod g).
fn without_group(n: usize, g: usize, k: usize) -> Vec<u32> {
    (0..n).map(|i| u32::from(i % g != k)).collect()
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
    trace: f64,
    /// Σ^{1/2}, or the Cholesky factor L (Σ = L Lᵀ) where `lower`.
    root: Dense,
    lower: bool,
}

impl Rooted {
    /// Checks `a` and takes the square root of its covariance.
    pub fn new(a: &Gaussian) -> Result<Self> {
        let d = a.dim("a")?;
        Ok(Self::with_root(a, psd_sqrt(&symmetric(&a.cov, d), "a.cov")?))
    }

    /// [`Rooted::new`] of a fit ([`Moments::fit`]): positive semidefinite by construction,
    /// so eigenvalues below 0 are round-off (of a rank-deficient covariance: fewer rows
    /// than dimensions) and are taken as 0 instead of refused.
    ///
    /// Where Σ is positive definite its Cholesky factor L stands in for Σ^{1/2}: Lᵀ Σ_b L
    /// has the eigenvalues of Σ_a Σ_b too, and its two products, one factor triangular and
    /// the result symmetric, take 55 % of the work of Σ^{1/2} Σ_b Σ^{1/2}'s
    /// ([`Rooted::conjugated`]).
    pub fn fitted(a: &Gaussian) -> Result<Self> {
        let d = a.dim("a")?;
        if let Some(c) = nalgebra::Cholesky::new(symmetric(&a.cov, d)) {
            return Ok(Self {
                lower: true,
                ..Self::with_root(a, c.l())
            });
        }
        let eig = SymmetricEigen::new(symmetric(&a.cov, d));
        let roots = DMatrix::from_diagonal(&eig.eigenvalues.map(|l| l.max(0.0).sqrt()));
        Ok(Self::with_root(
            a,
            &eig.eigenvectors * roots * eig.eigenvectors.transpose(),
        ))
    }

    fn with_root(a: &Gaussian, root: DMatrix<f64>) -> Self {
        let d = a.mean.len();
        Self {
            mean: a.mean.clone(),
            trace: (0..d).map(|i| a.cov[i * d + i]).sum(),
            root: Dense {
                rows: d,
                cols: d,
                data: root.transpose().as_slice().to_vec(), // row-major
            },
            lower: false,
        }
    }

    /// [`frechet`] between this Gaussian (a) and `b`.
    pub fn frechet(&self, b: &Gaussian) -> Result<f64> {
        let d = self.mean.len();
        if b.dim("b")? != d {
            return Err(Error::Shape(format!("a has d = {d} but b has d = {}", b.mean.len())));
        }
        psd_eigenvalues(symmetric(&b.cov, d), "b.cov")?;
        Ok(self.frechet_fitted(b))
    }

    /// [`Rooted::frechet`] against a Gaussian from a fit ([`Gaussian::fit_counted`],
    /// [`Moments::fit`]), positive semidefinite by construction, so its eigenvalue check is
    /// skipped: one eigenvalue computation (no eigenvectors) and two products per call.
    pub fn frechet_fitted(&self, b: &Gaussian) -> f64 {
        frechet_fitted_many(&[(self, b)])[0]
    }

    /// Σ_a^{1/2} Σ_b Σ_a^{1/2}, or Lᵀ Σ_b L (row-major; its upper triangle, which is what
    /// [`eigenvalues_of_many`] reads): its eigenvalues are those of Σ_a Σ_b.
    fn conjugated(&self, b: &Gaussian) -> Vec<f64> {
        let d = self.mean.len();
        if self.lower {
            return triangular_conjugate(&self.root.data, &b.cov, d);
        }
        let left = product(self.root.view(), View::rows(&b.cov, d, d), true);
        product(left.view(), self.root.view(), true).data
    }

    /// The distance to `b` from the eigenvalues of [`Rooted::conjugated`].
    fn distance(&self, b: &Gaussian, eigenvalues: &[f64]) -> f64 {
        let d = self.mean.len();
        let tr_root: f64 = eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
        let mean_term: f64 = self.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
        let tr_b: f64 = (0..d).map(|i| b.cov[i * d + i]).sum();
        (mean_term + self.trace + tr_b - 2.0 * tr_root).max(0.0)
    }
}

/// The columns of L per block of [`triangular_conjugate`] (16: 20.5–20.7 against 22.9–23.0 ms
/// per digits point with 32, one thread; 64 was slower still).
const TRIANGLE_BLOCK: usize = 16;

/// The upper triangle (and the diagonal blocks) of Lᵀ S L for a lower-triangular L and a
/// symmetric S (both d × d, row-major), through the blocks that are not zero: Gᵀ = Lᵀ S by
/// block-rows J of Lᵀ (L[j0.., J] has no rows above j0), then the block-rows I of the
/// symmetric result from their diagonal on, M[I, i0..] = Gᵀ[I, i0..] L[i0.., i0..]; below
/// the diagonal blocks, zeros.
fn triangular_conjugate(l: &[f64], s: &[f64], d: usize) -> Vec<f64> {
    let mut gt = vec![0.0; d * d];
    for j0 in (0..d).step_by(TRIANGLE_BLOCK) {
        let j1 = (j0 + TRIANGLE_BLOCK).min(d);
        let lt = View::strided(&l[j0 * d + j0..], d - j0, j1 - j0, d).t();
        let sv = View::strided(&s[j0 * d..], d - j0, d, d);
        matmul(&mut gt[j0 * d..j1 * d], false, lt, sv, 1);
    }
    let mut m = vec![0.0; d * d];
    for i0 in (0..d).step_by(TRIANGLE_BLOCK) {
        let (i1, w) = ((i0 + TRIANGLE_BLOCK).min(d), d - i0);
        let g = View::strided(&gt[i0 * d + i0..], i1 - i0, w, d);
        let lv = View::strided(&l[i0 * d + i0..], w, w, d);
        matmul_strided(&mut m[i0 * d + i0..], d, false, g, lv, 1);
    }
    m
}

/// [`Rooted::frechet_fitted`] of each pair, their eigenvalue iterations interleaved
/// ([`eigenvalues_of_many`]).
pub fn frechet_fitted_many(pairs: &[(&Rooted, &Gaussian)]) -> Vec<f64> {
    let Some((first, _)) = pairs.first() else {
        return Vec::new();
    };
    let conjugated: Vec<Vec<f64>> = pairs.iter().map(|(a, b)| a.conjugated(b)).collect();
    eigenvalues_of_many(&conjugated, first.mean.len())
        .iter()
        .zip(pairs)
        .map(|(l, (a, b))| a.distance(b, l))
        .collect()
}

/// [`frechet`] between the [`Gaussian::fit`]s of `x` and `y` (each n × `d`, n ≥ 2).
pub fn frechet_distance(x: &[f32], y: &[f32], d: usize) -> Result<f64> {
    frechet(&Gaussian::fit(x, d)?, &Gaussian::fit(y, d)?)
}

/// A d × d matrix from row-major values, symmetrised as (M + Mᵀ)/2.
pub(super) fn symmetric(values: &[f64], d: usize) -> DMatrix<f64> {
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
        return Err(Error::invalid(
            what,
            format!("not positive semidefinite (eigenvalue {min:e})"),
        ));
    }
    Ok(eig)
}

/// The symmetric square root V diag(√max(λ, 0)) Vᵀ of a positive semidefinite matrix.
fn psd_sqrt(m: &DMatrix<f64>, what: &str) -> Result<DMatrix<f64>> {
    let eig = psd_eigenvalues(m.clone(), what)?;
    let roots = DMatrix::from_diagonal(&eig.eigenvalues.map(|l| l.max(0.0).sqrt()));
    Ok(&eig.eigenvectors * roots * eig.eigenvectors.transpose())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_fit_equals_the_counted_fit() {
        let d = 3;
        let x: Vec<f32> = (0..30).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.3).collect();
        let counts = [2, 0, 1, 3, 0, 0, 1, 1, 2, 0];
        let (a, b) = (
            Moments::new(&x, d).unwrap().fit(&counts),
            Gaussian::fit_counted(&x, d, &counts),
        );
        for (u, v) in a.mean.iter().zip(&b.mean) {
            assert!((u - v).abs() < 1e-12, "{u} vs {v}");
        }
        // The scatter's correction is summed in f32: ~1e-8 relative.
        for (u, v) in a.cov.iter().zip(&b.cov) {
            assert!((u - v).abs() < 1e-7 * v.abs().max(1.0), "{u} vs {v}");
        }
        // All ones: the sample's own fit, in f64.
        let (a, b) = (
            Moments::new(&x, d).unwrap().fit(&[1; 10]),
            Gaussian::fit(&x, d).unwrap(),
        );
        for (u, v) in a.mean.iter().chain(&a.cov).zip(b.mean.iter().chain(&b.cov)) {
            assert!((u - v).abs() < 1e-12, "{u} vs {v}");
        }
    }

    #[test]
    fn moments_fit_equals_the_counted_fit_over_several_block_rows() {
        // d = 70: the scatter in column blocks of two vectors (32 on AVX-512: 32, 32, 6) and row tiles of 12, 4, 1.
        let (d, n) = (70, 120);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919 % 211) as f32) / 100.0 - 1.0).collect();
        let counts: Vec<u32> = (0..n).map(|i| ((i * 37 + 5) % 5) as u32).collect();
        let (a, b) = (
            Moments::new(&x, d).unwrap().fit(&counts),
            Gaussian::fit_counted(&x, d, &counts),
        );
        for (u, v) in a.mean.iter().chain(&a.cov).zip(b.mean.iter().chain(&b.cov)) {
            assert!((u - v).abs() < 1e-6 * v.abs().max(1.0), "{u} vs {v}");
        }
        for i in 0..d {
            for j in 0..d {
                let (u, v) = (a.cov[i * d + j], a.cov[j * d + i]);
                assert!((u - v).abs() < 1e-12 * u.abs().max(1.0), "symmetric at ({i}, {j})");
            }
        }
    }

    #[test]
    fn fitted_distance_equals_the_checked_one() {
        let d = 2;
        let x: Vec<f32> = (0..40).map(|i| ((i * 13 % 7) as f32) * 0.2).collect();
        let y: Vec<f32> = (0..40).map(|i| ((i * 5 % 9) as f32) * 0.25 - 0.3).collect();
        let (gx, gy) = (Gaussian::fit(&x, d).unwrap(), Gaussian::fit(&y, d).unwrap());
        let r = Rooted::new(&gx).unwrap();
        assert!((r.frechet(&gy).unwrap() - r.frechet_fitted(&gy)).abs() < 1e-15);
        // the Cholesky factor in place of the root: the same distance
        let c = Rooted::fitted(&gx).unwrap();
        assert!(c.lower && !r.lower);
        assert!((r.frechet_fitted(&gy) - c.frechet_fitted(&gy)).abs() < 1e-14);
    }

    #[test]
    fn replicates_and_projections_come_with_intervals_only() {
        use crate::metrics::bootstrap::Bootstrap;
        let (d, n, m) = (3, 40, 30);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919 % 101) as f32) / 50.0 - 1.0).collect();
        let y: Vec<f32> = (0..m * d).map(|i| ((i * 104_729 % 97) as f32) / 40.0 - 1.2).collect();
        let boot = Bootstrap::new(5, 1).unwrap();
        let with = FrechetReference::new(&y, d, &boot.reference(m)).unwrap();
        let (fd, inf) = with.measure(&x, &boot.samples(n)).unwrap();
        for r in [&fd, &inf] {
            assert_eq!(r.replicates.len(), 5);
            let l = r.linear.as_ref().expect("a projection");
            assert_eq!((l.samples[0].len(), l.reference[1].len()), (n, m));
        }
        let without = FrechetReference::new(&y, d, &Resamples::none(m)).unwrap();
        let (fd0, inf0) = without.measure(&x, &Resamples::none(n)).unwrap();
        assert!(fd0.replicates.is_empty() && fd0.linear.is_none() && inf0.linear.is_none());
        assert_eq!((fd0.value, inf0.value), (fd.value, inf.value));
    }

    #[test]
    fn the_cholesky_factor_conjugates_to_the_roots_spectrum() {
        // d = 70: blocks of 16 (four) and 6. Lᵀ S L against Σ^{1/2} S Σ^{1/2} (the same
        // eigenvalues), and L Lᵀ = Σ; a singular Σ (a constant column) keeps the root.
        let (d, n) = (70, 150);
        let mut uniform = crate::rng::uniforms(3);
        let mut next = || uniform() as f32;
        let x: Vec<f32> = (0..n * d).map(|_| next()).collect();
        let y: Vec<f32> = (0..n * d).map(|_| 1.2 * next() + 0.1).collect();
        let (gx, gy) = (Gaussian::fit(&x, d).unwrap(), Gaussian::fit(&y, d).unwrap());
        let (chol, root) = (Rooted::fitted(&gx).unwrap(), Rooted::new(&gx).unwrap());
        assert!(chol.lower);
        let l = DMatrix::from_row_slice(d, d, &chol.root.data);
        let llt = &l * l.transpose();
        for (u, v) in llt.as_slice().iter().zip(&gx.cov) {
            assert!((u - v).abs() < 1e-12, "L Lᵀ = Σ");
        }
        let spectrum = |m: Vec<f64>| {
            // the upper triangle, mirrored
            let full: Vec<f64> = (0..d * d)
                .map(|ij| m[(ij / d).min(ij % d) * d + (ij / d).max(ij % d)])
                .collect();
            let mut e: Vec<f64> = symmetric(&full, d).symmetric_eigenvalues().iter().copied().collect();
            e.sort_by(f64::total_cmp);
            e
        };
        let (a, b) = (spectrum(chol.conjugated(&gy)), spectrum(root.conjugated(&gy)));
        let top = b[d - 1];
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-11 * top, "{u} vs {v}");
        }
        assert!((chol.frechet_fitted(&gy) - root.frechet_fitted(&gy)).abs() < 1e-10);
        let mut flat = x.clone();
        flat.iter_mut().skip(5).step_by(d).for_each(|v| *v = 0.5);
        assert!(!Rooted::fitted(&Gaussian::fit(&flat, d).unwrap()).unwrap().lower);
    }
}
