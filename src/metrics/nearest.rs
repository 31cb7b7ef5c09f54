//! How close samples come to the training points (memorisation).

use rayon::prelude::*;

use super::linalg::{product, to_f64};
use super::rows;
use crate::error::Result;
use crate::kernels::gemm::View;

/// The Euclidean distance from every row of `x` to its nearest row of `train` (both
/// × `d`), from ‖u − v‖² = ‖u‖² + ‖v‖² − 2 u·v with the inner products as one product
/// (negative round-off taken as 0).
pub fn nearest_distances(x: &[f32], train: &[f32], d: usize) -> Result<Vec<f64>> {
    let n = rows(x, d, "x", 1)?;
    let t = rows(train, d, "train", 1)?;
    let (x, train) = (to_f64(x), to_f64(train));
    let norms = |v: &[f64]| -> Vec<f64> { v.chunks(d).map(|r| r.iter().map(|a| a * a).sum()).collect() };
    let (nx, nt) = (norms(&x), norms(&train));
    let g = product(View::rows(&x, n, d), View::rows(&train, t, d).t(), false);
    Ok(g.data
        .par_chunks(t)
        .zip(&nx)
        .map(|(row, a)| {
            row.iter()
                .zip(&nt)
                .map(|(dot, b)| (a + b - 2.0 * dot).max(0.0))
                .fold(f64::INFINITY, f64::min)
                .sqrt()
        })
        .collect())
}
