//! The unbiased estimate of the squared maximum mean discrepancy (Gretton et al. 2012,
//! Lemma 6) under two kernels: the Gaussian RBF kernel in data space (`mmd2`) and the
//! cubic polynomial kernel of KID (Bińkowski et al. 2018) in the classifier's features
//! (`kid`). Being unbiased, its expectation is the population MMD² whatever the samples'
//! diversity or size (the plug-in Fréchet distance's is not).
//!
//! Samples above [`MMD_BLOCK`] rows are split into independent blocks (see
//! [`block_ranges`]), so that the cost grows linearly. Bootstrap replicates
//! ([`KernelReference::measure`]) are quadratic forms of the count matrix against the
//! kernel matrices: all B of them are two matrix products per block.

use std::ops::Range;
use std::sync::Mutex;

use rayon::prelude::*;

use super::bootstrap::{Linear, Replicated, Resamples};
use super::linalg::F32_BUFFERS;
use super::rows;
use crate::error::{Error, Result};
use crate::kernels::exp::exp32;
use crate::kernels::gemm::{matmul, View};

/// At most this many rows of each sample share one block: up to it the estimate is the
/// classic all-pairs one; beyond it the samples are cut into independent blocks.
pub const MMD_BLOCK: usize = 2000;

/// At most this many pooled points enter the median heuristic.
pub const MEDIAN_HEURISTIC_POINTS: usize = 1000;

/// The kernel k(u, v) of an MMD².
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kernel {
    /// The Gaussian RBF kernel exp(−‖u − v‖² / (2h²)), bandwidth h.
    Rbf {
        /// h > 0.
        bandwidth: f64,
    },
    /// KID's cubic polynomial kernel (uᵀv / d + 1)³ in d dimensions (Bińkowski et al. 2018).
    Cubic,
}

impl Kernel {
    /// k(u, v) of two rows (the reference implementation).
    pub fn eval(&self, u: &[f64], v: &[f64]) -> f64 {
        match *self {
            Kernel::Rbf { bandwidth } => {
                let sq: f64 = u.iter().zip(v).map(|(a, b)| (a - b).powi(2)).sum();
                (-sq / (2.0 * bandwidth * bandwidth)).exp()
            }
            Kernel::Cubic => {
                let dot: f64 = u.iter().zip(v).map(|(a, b)| a * b).sum();
                (dot / u.len() as f64 + 1.0).powi(3)
            }
        }
    }

    /// The kernel matrix of rows `a` (p × `d`) against rows `b` (q × `d`), row-major p × q,
    /// in f32: one product a·bᵀ (the `gemm` kernel), then the kernel of each inner product
    /// (and the rows' squared norms). f32 entries (relative error ~1e-7) change an MMD²
    /// over n² pairs by ~1e-9 of the kernel's scale, far below its sampling spread.
    fn gram(&self, a: &[f32], b: &[f32], d: usize) -> Dense32 {
        let (p, q) = (a.len() / d, b.len() / d);
        let mut g = Dense32 {
            rows: p,
            cols: q,
            data: F32_BUFFERS.take(p * q),
        };
        matmul(
            &mut g.data,
            false,
            View::rows(a, p, d),
            View::rows(b, q, d).t(),
            rayon::current_num_threads(),
        );
        match *self {
            Kernel::Rbf { bandwidth } => {
                let gamma = (1.0 / (2.0 * bandwidth * bandwidth)) as f32;
                let norms = |x: &[f32]| -> Vec<f32> { x.chunks(d).map(|r| r.iter().map(|v| v * v).sum()).collect() };
                let (na, nb) = (norms(a), norms(b));
                g.data.par_chunks_mut(q).zip(&na).for_each(|(row, ni)| {
                    for (k, nj) in row.iter_mut().zip(&nb) {
                        *k = exp32(-gamma * (ni + nj - 2.0 * *k).max(0.0));
                    }
                });
            }
            Kernel::Cubic => {
                let scale = 1.0 / d as f32;
                g.data.par_iter_mut().for_each(|k| *k = (*k * scale + 1.0).powi(3));
            }
        }
        g
    }

    fn check(&self) -> Result<()> {
        match *self {
            Kernel::Rbf { bandwidth } if !(bandwidth.is_finite() && bandwidth > 0.0) => Err(Error::invalid(
                "bandwidth",
                format!("{bandwidth}: the bandwidth must be positive and finite"),
            )),
            _ => Ok(()),
        }
    }
}

/// An unbiased MMD² estimate and how it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mmd {
    /// The unbiased estimate of MMD²; it can be slightly negative when the distributions agree.
    pub value: f64,
    /// The bandwidth h of the RBF kernel (NaN for the cubic kernel).
    pub bandwidth: f64,
    /// Number of independent blocks the estimate averages (1: the all-pairs estimator).
    pub blocks: usize,
}

/// The independent blocks of an n-row sample against an m-row one: K = max(⌈n / B⌉,
/// ⌈m / B⌉) blocks (B = [`MMD_BLOCK`]), block k taking rows ⌊k n / K⌋ … ⌊(k+1) n / K⌋ − 1
/// of the first sample and the same share of the second; no row is in two blocks, so the
/// block estimates are independent and their mean is unbiased. An error when a block of
/// either sample would hold fewer than 2 rows.
pub fn block_ranges(n: usize, m: usize) -> Result<Vec<(Range<usize>, Range<usize>)>> {
    let k = n.div_ceil(MMD_BLOCK).max(m.div_ceil(MMD_BLOCK)).max(1);
    if n / k < 2 || m / k < 2 {
        return Err(Error::invalid(
            "samples",
            format!("{n} against {m} rows need {k} independent MMD blocks of at least 2 rows each on both sides"),
        ));
    }
    Ok((0..k)
        .map(|i| (i * n / k..(i + 1) * n / k, i * m / k..(i + 1) * m / k))
        .collect())
}

/// The unbiased estimate of MMD² between the distributions of `x` (n × `d`) and `y`
/// (m × `d`), n, m ≥ 2 (Gretton et al. 2012, Lemma 6):
///
/// MMD²_u = Σ_{i≠j} k(x_i, x_j) / (n(n−1)) + Σ_{i≠j} k(y_i, y_j) / (m(m−1)) − 2 Σ_{i,j} k(x_i, y_j) / (nm),
///
/// averaged over the independent blocks of [`block_ranges`]. This is the direct,
/// pair-by-pair implementation (the reference the batched [`KernelReference`] is tested
/// against). With the RBF kernel and `bandwidth` `None`, h comes from the median heuristic
/// over the pooled sample ([`median_bandwidth_of`]'s rule).
pub fn mmd2_unbiased(x: &[f32], y: &[f32], d: usize, bandwidth: Option<f64>) -> Result<Mmd> {
    rows(x, d, "x", 2)?;
    rows(y, d, "y", 2)?;
    let (x, y) = (to_f64_rows(x, d), to_f64_rows(y, d));
    let h = match bandwidth {
        Some(h) => h,
        None => median_bandwidth(&x, &y)?,
    };
    let mmd = mmd2_with(&Kernel::Rbf { bandwidth: h }, &x, &y)?;
    Ok(Mmd { bandwidth: h, ..mmd })
}

/// KID: the unbiased MMD² of [`mmd2_unbiased`] with the cubic kernel (direct implementation).
pub fn kid(x: &[f32], y: &[f32], d: usize) -> Result<Mmd> {
    rows(x, d, "x", 2)?;
    rows(y, d, "y", 2)?;
    mmd2_with(&Kernel::Cubic, &to_f64_rows(x, d), &to_f64_rows(y, d))
}

fn mmd2_with(kernel: &Kernel, x: &[Vec<f64>], y: &[Vec<f64>]) -> Result<Mmd> {
    kernel.check()?;
    let blocks = block_ranges(x.len(), y.len())?;
    let k = |u: &Vec<f64>, v: &Vec<f64>| kernel.eval(u, v);
    let values: Vec<f64> = blocks
        .iter()
        .map(|(rx, ry)| {
            let (xb, yb) = (&x[rx.clone()], &y[ry.clone()]);
            let (n, m) = (xb.len() as f64, yb.len() as f64);
            // (per-row sums collected, then summed in order: a parallel sum's order, and so
            // its last bits, would depend on the thread scheduling)
            let rows: Vec<f64> = xb.par_iter().map(|u| yb.iter().map(|v| k(u, v)).sum::<f64>()).collect();
            let kxy: f64 = rows.iter().sum();
            2.0 * off_diagonal_sum(xb, &k) / (n * (n - 1.0)) + 2.0 * off_diagonal_sum(yb, &k) / (m * (m - 1.0))
                - 2.0 * kxy / (n * m)
        })
        .collect();
    Ok(Mmd {
        value: values.iter().sum::<f64>() / values.len() as f64,
        bandwidth: match kernel {
            Kernel::Rbf { bandwidth } => *bandwidth,
            Kernel::Cubic => f64::NAN,
        },
        blocks: values.len(),
    })
}

/// Σ_{i<j} f(x_i, x_j), one parallel task per row, summed in a fixed order.
fn off_diagonal_sum(x: &[Vec<f64>], f: &(impl Fn(&Vec<f64>, &Vec<f64>) -> f64 + Sync)) -> f64 {
    let per_row: Vec<f64> = (0..x.len())
        .into_par_iter()
        .map(|i| x[i + 1..].iter().map(|v| f(&x[i], v)).sum())
        .collect();
    per_row.iter().sum()
}

/// One block's reference side: its rows' range, kernel matrix, and Σ_{a≠b} k over the
/// pairs of distinct draws of the sample itself and of every resample.
struct ReferenceBlock {
    range: Range<usize>,
    /// Σ_{i≠j} k(y_i, y_j) of the sample (the estimate's term).
    ones: f64,
    /// The same over the distinct draws of each resample.
    replicates: Vec<f64>,
    /// mean_{j'≠j} k(y_j, y_j') of each row over each half of the other rows (its
    /// first-order projection's own part).
    row_means: [Vec<f64>; 2],
}

/// The reference side of an MMD² (or KID), prepared once for every sample measured
/// against it: its rows, its resamples, and per block layout its kernel sums.
pub struct KernelReference {
    kernel: Kernel,
    d: usize,
    y: Vec<f32>,
    resamples: Resamples,
    counts: Vec<f32>,
    /// Per number of blocks K, the reference blocks (computed when first needed).
    layouts: Mutex<Vec<(usize, std::sync::Arc<Vec<ReferenceBlock>>)>>,
}

impl KernelReference {
    /// The reference `y` (m × `d`) under `kernel`, resampled by `resamples` (m rows).
    pub fn new(kernel: Kernel, y: &[f32], d: usize, resamples: Resamples) -> Result<Self> {
        kernel.check()?;
        let m = rows(y, d, "reference", 2)?;
        if resamples.rows() != m {
            return Err(Error::Shape(format!(
                "{} reference resample rows for a reference of {m}",
                resamples.rows()
            )));
        }
        Ok(Self {
            kernel,
            d,
            y: y.to_vec(),
            counts: resamples.matrix_f32(),
            resamples,
            layouts: Mutex::new(Vec::new()),
        })
    }

    /// The kernel.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// The reference blocks for K blocks.
    fn layout(&self, blocks: &[(Range<usize>, Range<usize>)]) -> std::sync::Arc<Vec<ReferenceBlock>> {
        let k = blocks.len();
        if let Some((_, l)) = self.layouts.lock().expect("layout lock").iter().find(|(n, _)| *n == k) {
            return l.clone();
        }
        let m = self.resamples.rows();
        let layout: Vec<ReferenceBlock> = blocks
            .iter()
            .map(|(_, ry)| {
                let yb = &self.y[ry.start * self.d..ry.end * self.d];
                let kyy = self.kernel.gram(yb, yb, self.d);
                let (row_means, total) = half_row_means(&kyy, true);
                let (ones, replicates) = self_pairs(&kyy, total, &self.counts, m, ry.clone());
                ReferenceBlock {
                    range: ry.clone(),
                    ones,
                    replicates,
                    row_means,
                }
            })
            .collect();
        let layout = std::sync::Arc::new(layout);
        self.layouts.lock().expect("layout lock").push((k, layout.clone()));
        layout
    }

    /// The unbiased MMD² of `x` (n × d) against the reference and of every resample pair
    /// (x by `resamples`, n rows; the reference by its own): replicate b is the estimator
    /// over the distinct draws, Σ_{a≠b} k(x_{i_a}, x_{i_b}) = cᵀKc − Σ_i c_i k(x_i, x_i),
    /// with the cross term cₓᵀ K_xy c_y, each block on its own rows.
    pub fn measure(&self, x: &[f32], resamples: &Resamples) -> Result<Replicated> {
        let (d, m) = (self.d, self.resamples.rows());
        let n = rows(x, d, "samples", 2)?;
        if resamples.rows() != n || resamples.replicates() != self.resamples.replicates() {
            return Err(Error::Shape(format!(
                "{} × {} sample resamples for {n} rows and {} replicates",
                resamples.replicates(),
                resamples.rows(),
                self.resamples.replicates()
            )));
        }
        let blocks = block_ranges(n, m)?;
        let reference = self.layout(&blocks);
        let cx = resamples.matrix_f32();
        let reps = resamples.replicates();
        let (mut value, mut replicates) = (0.0, vec![0.0; reps]);
        let k = blocks.len() as f64;
        let mut linear = Linear::default();
        for ((rx, _), yb) in blocks.iter().zip(reference.iter()) {
            let xb = &x[rx.start * d..rx.end * d];
            let kxx = self.kernel.gram(xb, xb, d);
            let (own, xx_total) = half_row_means(&kxx, true);
            let (xx_ones, xx) = self_pairs(&kxx, xx_total, &cx, n, rx.clone());
            let kxy = self.kernel.gram(xb, &self.y[yb.range.start * d..yb.range.end * d], d);
            let (cross_rows, xy_total) = half_row_means(&kxy, false);
            let y_side = (&self.counts[..], m, yb.range.clone());
            let (xy_ones, xy) = cross_pairs(&kxy, xy_total, (&cx, n, rx.clone()), y_side);
            // First-order projection (Hoeffding), from each half of the other rows: row i of x
            // contributes (2/n_k)(mean_{i'≠i} k(x_i, x_i') − mean_j k(x_i, y_j)), row j of y
            // (2/m_k)(mean_{j'≠j} k(y_j, y_j') − mean_i k(x_i, y_j)), each block 1/K of the mean.
            let (bn, bm) = (rx.len() as f64, yb.range.len() as f64);
            let cross_cols = half_column_means(&kxy);
            for h in 0..2 {
                linear.samples[h].extend(centred(
                    own[h].iter().zip(&cross_rows[h]).map(|(a, b)| 2.0 * (a - b) / (bn * k)),
                ));
                linear.reference[h].extend(centred(
                    yb.row_means[h]
                        .iter()
                        .zip(&cross_cols[h])
                        .map(|(a, b)| 2.0 * (a - b) / (bm * k)),
                ));
            }
            value += combine(xx_ones, yb.ones, xy_ones, bn, bm);
            F32_BUFFERS.give(kxx.data);
            F32_BUFFERS.give(kxy.data);
            let sizes = |c: &[f32], stride: usize, r: &Range<usize>, b: usize| -> f64 {
                c[b * stride + r.start..b * stride + r.end]
                    .iter()
                    .map(|&v| v as f64)
                    .sum()
            };
            for (b, r) in replicates.iter_mut().enumerate() {
                let (nb, mb) = (sizes(&cx, n, rx, b), sizes(&self.counts, m, &yb.range, b));
                *r += combine(xx[b], yb.replicates[b], xy[b], nb, mb);
            }
        }
        Ok(Replicated {
            value: value / k,
            replicates: replicates.into_iter().map(|r| r / k).collect(),
            linear: Some(linear),
        })
    }
}

/// u/(N(N−1)) + w/(M(M−1)) − 2v/(NM); NaN when a side has fewer than 2 draws.
fn combine(xx: f64, yy: f64, xy: f64, n: f64, m: f64) -> f64 {
    if n < 2.0 || m < 2.0 {
        return f64::NAN;
    }
    xx / (n * (n - 1.0)) + yy / (m * (m - 1.0)) - 2.0 * xy / (n * m)
}

/// A row-major f32 kernel matrix.
struct Dense32 {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

/// The mean of every row of `k` over the even and over the odd columns (leaving out the
/// diagonal entry of a square matrix when `skip_diagonal`), and Σ over all the entries of
/// `k` from the same row sums (added in row order, so the result does not depend on the
/// thread scheduling).
fn half_row_means(k: &Dense32, skip_diagonal: bool) -> ([Vec<f64>; 2], f64) {
    let halves: Vec<(f64, f64, f64)> = k
        .data
        .par_chunks(k.cols.max(1))
        .enumerate()
        .map(|(i, r)| {
            let mut sums = even_odd_sums(r);
            let whole = sums.iter().sum::<f64>();
            let mut counts = [r.len().div_ceil(2), r.len() / 2];
            if skip_diagonal && i < r.len() {
                sums[i % 2] -= r[i] as f64;
                counts[i % 2] -= 1;
            }
            (
                sums[0] / counts[0].max(1) as f64,
                sums[1] / counts[1].max(1) as f64,
                whole,
            )
        })
        .collect();
    (
        [
            halves.iter().map(|h| h.0).collect(),
            halves.iter().map(|h| h.1).collect(),
        ],
        halves.iter().map(|h| h.2).sum(),
    )
}

/// The sums (in f64) of the values at even and at odd positions of `r`, in eight lanes so
/// that the loop vectorises.
fn even_odd_sums(r: &[f32]) -> [f64; 2] {
    let mut lanes = [0.0f64; 8];
    let chunks = r.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        lanes.iter_mut().zip(c).for_each(|(s, &v)| *s += v as f64);
    }
    let mut sums = [
        lanes[0] + lanes[2] + lanes[4] + lanes[6],
        lanes[1] + lanes[3] + lanes[5] + lanes[7],
    ];
    // the tail starts at an even position (a multiple of 8)
    tail.iter().enumerate().for_each(|(j, &v)| sums[j % 2] += v as f64);
    sums
}

/// The mean of every column of `k` over the even and over the odd rows.
fn half_column_means(k: &Dense32) -> [Vec<f64>; 2] {
    let mut sums = [vec![0.0; k.cols], vec![0.0; k.cols]];
    for (i, r) in k.data.chunks(k.cols.max(1)).enumerate() {
        sums[i % 2].iter_mut().zip(r).for_each(|(c, &v)| *c += v as f64);
    }
    let counts = [k.rows.div_ceil(2).max(1) as f64, (k.rows / 2).max(1) as f64];
    for h in 0..2 {
        sums[h].iter_mut().for_each(|c| *c /= counts[h]);
    }
    sums
}

/// The values minus their mean.
fn centred(values: impl Iterator<Item = f64>) -> Vec<f64> {
    let v: Vec<f64> = values.collect();
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    v.into_iter().map(|x| x - mean).collect()
}

/// The product of the rows `range` of a B × `stride` count matrix with `k` (B × k.cols),
/// and the count rows themselves: what the replicates' quadratic forms are made of.
fn counted(k: &Dense32, counts: &[f32], stride: usize, range: &Range<usize>) -> Vec<f32> {
    let reps = counts.len() / stride;
    if reps == 0 {
        return Vec::new(); // a sweep without intervals
    }
    let c = View {
        data: &counts[range.start..],
        rows: reps,
        cols: range.len(),
        rs: stride,
        cs: 1,
    };
    let mut ck = vec![0.0f32; reps * k.cols];
    matmul(
        &mut ck,
        false,
        c,
        View::rows(&k.data, k.rows, k.cols),
        rayon::current_num_threads(),
    );
    ck
}

/// Σ_{a≠b} k over the distinct draws of the rows `range` of a sample, for the sample
/// itself (every row once: the sum of the off-diagonal of `k`) and for each resample
/// (rows of `counts`, a B × `stride` matrix): cᵀKc − Σ_i c_i K_ii.
fn self_pairs(k: &Dense32, total: f64, counts: &[f32], stride: usize, range: Range<usize>) -> (f64, Vec<f64>) {
    let p = range.len();
    let diag: Vec<f64> = (0..p).map(|i| k.data[i * p + i] as f64).collect();
    let ones = total - diag.iter().sum::<f64>();
    let forms = symmetric_forms(k, counts, stride, &range);
    let values = forms
        .into_iter()
        .enumerate()
        .map(|(b, form)| {
            let cb = &counts[b * stride + range.start..b * stride + range.end];
            form - cb.iter().zip(&diag).map(|(c, k)| *c as f64 * k).sum::<f64>()
        })
        .collect();
    (ones, values)
}

/// Columns of the symmetric kernel matrix per product in [`symmetric_forms`].
const FORM_BLOCK: usize = 256;

/// cᵀKc for every count row c (rows `range` of the B × `stride` count matrix) and the
/// symmetric `k`, from the blocks on and below the diagonal only (about half the work of
/// C·K): with column block J, Z_J = 2 C_{>J} K_{>J,J} + C_J K_{J,J} (the rows of the
/// blocks below J, then J's own), and cᵀKc = Σ_J Σ_{j∈J} c_j (Z_J)_j.
fn symmetric_forms(k: &Dense32, counts: &[f32], stride: usize, range: &Range<usize>) -> Vec<f64> {
    let (reps, p) = (counts.len() / stride, range.len());
    let mut forms = vec![0.0f64; reps];
    if reps == 0 {
        return forms; // a sweep without intervals
    }
    let c = |rows: Range<usize>| View {
        data: &counts[range.start + rows.start..],
        rows: reps,
        cols: rows.len(),
        rs: stride,
        cs: 1,
    };
    let kv = |rows: Range<usize>, cols: Range<usize>| View {
        data: &k.data[rows.start * p + cols.start..],
        rows: rows.len(),
        cols: cols.len(),
        rs: p,
        cs: 1,
    };
    let threads = rayon::current_num_threads();
    let mut z = vec![0.0f32; reps * FORM_BLOCK.min(p)]; // small: not from the pool, whose buffers the kernel matrices need
    for j0 in (0..p).step_by(FORM_BLOCK) {
        let j = j0..(j0 + FORM_BLOCK).min(p);
        let z = &mut z[..reps * j.len()];
        if j.end < p {
            matmul(z, false, c(j.end..p), kv(j.end..p, j.clone()), threads);
            z.iter_mut().for_each(|v| *v *= 2.0);
        } else {
            z.fill(0.0);
        }
        matmul(z, true, c(j.clone()), kv(j.clone(), j.clone()), threads);
        forms.par_iter_mut().enumerate().for_each(|(b, form)| {
            let cb = &counts[b * stride + range.start + j.start..b * stride + range.start + j.end];
            *form += z[b * j.len()..(b + 1) * j.len()]
                .iter()
                .zip(cb)
                .map(|(a, c)| *a as f64 * *c as f64)
                .sum::<f64>();
        });
    }
    forms
}

/// Σ_{i,j} k(x_i, y_j) over the draws of rows `x.2` of x and `y.2` of y, for the samples
/// themselves and for each resample pair (cₓᵀ K c_y); each side given as (count matrix,
/// its row stride, range).
fn cross_pairs(
    k: &Dense32,
    total: f64,
    x: (&[f32], usize, Range<usize>),
    y: (&[f32], usize, Range<usize>),
) -> (f64, Vec<f64>) {
    let ((cx, sx, rx), (cy, sy, ry)) = (x, y);
    let q = ry.len();
    let ck = counted(k, cx, sx, &rx);
    let values = (0..cx.len() / sx)
        .into_par_iter()
        .map(|b| {
            let cb = &cy[b * sy + ry.start..b * sy + ry.end];
            ck[b * q..(b + 1) * q]
                .iter()
                .zip(cb)
                .map(|(a, c)| *a as f64 * *c as f64)
                .sum::<f64>()
        })
        .collect();
    (total, values)
}

/// Rows of f64 from a validated flat f32 sample.
fn to_f64_rows(x: &[f32], d: usize) -> Vec<Vec<f64>> {
    x.chunks(d).map(|r| r.iter().map(|v| *v as f64).collect()).collect()
}

/// ‖u − v‖².
fn sq_dist(u: &[f64], v: &[f64]) -> f64 {
    u.iter().zip(v).map(|(a, b)| (a - b).powi(2)).sum()
}

/// The median-heuristic bandwidth of one sample `x` (n × `d`, n ≥ 2) alone: h² = median
/// ‖u − v‖² / 2 over the distinct pairs; when there are more than
/// [`MEDIAN_HEURISTIC_POINTS`] rows, the rows ⌊i · N / 1000⌋, i = 0 … 999, are used; the
/// median of an even number of distances is the mean of the middle two. Fixing it once (on
/// the reference data) keeps the kernel, and so the MMD² values, comparable across the
/// points of a sweep. A zero median (all points equal) is an error.
pub fn median_bandwidth_of(x: &[f32], d: usize) -> Result<f64> {
    rows(x, d, "x", 2)?;
    median_bandwidth(&to_f64_rows(x, d), &[])
}

/// The median-heuristic bandwidth over the pooled rows of `x` then `y`.
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
        return Err(Error::invalid(
            "bandwidth",
            "the median pairwise distance is 0 (the points coincide): pass a bandwidth",
        ));
    }
    Ok((median / 2.0).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_forms_equal_the_full_quadratic_forms() {
        // p = 300 spans two column blocks; the count rows are a window of wider rows.
        let (p, stride, offset, reps) = (300, 310, 7, 5);
        let mut data = vec![0.0f32; p * p];
        for i in 0..p {
            for j in 0..=i {
                let v = ((i * 31 + j * 17) % 13) as f32 * 0.125 - 0.5;
                data[i * p + j] = v;
                data[j * p + i] = v;
            }
        }
        let k = Dense32 { rows: p, cols: p, data };
        let counts: Vec<f32> = (0..reps * stride).map(|i| ((i * 7) % 4) as f32).collect();
        let got = symmetric_forms(&k, &counts, stride, &(offset..offset + p));
        for (b, g) in got.iter().enumerate() {
            let c = &counts[b * stride + offset..b * stride + offset + p];
            let want: f64 = (0..p)
                .flat_map(|i| (0..p).map(move |j| (i, j)))
                .map(|(i, j)| c[i] as f64 * k.data[i * p + j] as f64 * c[j] as f64)
                .sum();
            assert!((g - want).abs() < 1e-6 * want.abs().max(1.0), "{b}: {g} vs {want}");
        }
        assert!(symmetric_forms(&k, &[], stride, &(0..p)).is_empty());
    }

    #[test]
    fn half_row_means_equal_a_direct_count() {
        for (rows, cols, skip) in [
            (3, 5, false),
            (10, 10, true),
            (17, 17, true),
            (4, 19, false),
            (1, 1, false),
        ] {
            let data: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 23) as f32) * 0.25 - 1.0).collect();
            let k = Dense32 { rows, cols, data };
            let (got, total) = half_row_means(&k, skip);
            for (h, means) in got.iter().enumerate() {
                for (i, mean) in means.iter().enumerate() {
                    let kept: Vec<f64> = (0..cols)
                        .filter(|&j| j % 2 == h && !(skip && i == j))
                        .map(|j| k.data[i * cols + j] as f64)
                        .collect();
                    let want = kept.iter().sum::<f64>() / kept.len().max(1) as f64;
                    assert!((mean - want).abs() < 1e-12, "{rows}×{cols} row {i} half {h}");
                }
                assert_eq!(means.len(), rows);
            }
            let all: f64 = k.data.iter().map(|&v| v as f64).sum();
            assert!((total - all).abs() < 1e-9);
        }
    }

    #[test]
    fn blocks_are_disjoint_and_cover_both_samples() {
        assert_eq!(block_ranges(10, 7).unwrap(), vec![(0..10, 0..7)]);
        let b = block_ranges(5000, 2000).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b[0], (0..1666, 0..666));
        assert_eq!(b[2], (3333..5000, 1333..2000));
        assert!(block_ranges(5000, 5).is_err());
    }

    #[test]
    fn without_replicates_every_block_still_measures() {
        // Bootstrap off (no resamples) and more rows than one block: the estimate alone.
        let (n, m, d) = (MMD_BLOCK + 10, 40, 2);
        let x: Vec<f32> = (0..n * d).map(|i| ((i * 7919 % 101) as f32) / 50.0 - 1.0).collect();
        let y: Vec<f32> = (0..m * d).map(|i| ((i * 104_729 % 97) as f32) / 40.0 - 1.2).collect();
        let k = KernelReference::new(Kernel::Rbf { bandwidth: 0.7 }, &y, d, Resamples::none(m)).unwrap();
        let r = k.measure(&x, &Resamples::none(n)).unwrap();
        assert!(r.replicates.is_empty());
        let want = mmd2_unbiased(&x, &y, d, Some(0.7)).unwrap();
        assert_eq!(want.blocks, 2);
        assert!((r.value - want.value).abs() < 1e-6, "{} vs {}", r.value, want.value);
    }

    #[test]
    fn cubic_kernel_by_hand() {
        // u·v = 2 in d = 2: (2/2 + 1)³ = 8
        assert_eq!(Kernel::Cubic.eval(&[1.0, 1.0], &[1.0, 1.0]), 8.0);
    }
}
