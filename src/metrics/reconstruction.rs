//! Reconstruction error: how far decoded samples are from their targets.
//!
//! The DDIM paper (Song et al. 2021) reports reconstruction from x_T (Table 2) as the
//! per-dimension mean squared error on the data's [0, 1] scale; the same measure compares
//! two trajectories started from one x_T for the consistency property of §5.3.

use super::rows;
use crate::error::{Error, Result};

/// Mean squared error on the [0, 1] scale, mean(((a − b)/2)²), of two equally long
/// inputs on the model's [−1, 1] scale (DDIM paper, Table 2).
pub fn mse_unit(a: &[f32], b: &[f32]) -> Result<f64> {
    same_len(a, b)?;
    let n = rows(a, 1, "a", 1)?;
    rows(b, 1, "b", 1)?;
    Ok(sum_sq_unit(a, b) / n as f64)
}

/// [`mse_unit`] of each of the n rows of `a` and `b` (n × `d`, row-major).
pub fn per_row_mse_unit(a: &[f32], b: &[f32], d: usize) -> Result<Vec<f64>> {
    same_len(a, b)?;
    rows(a, d, "a", 1)?;
    rows(b, d, "b", 1)?;
    Ok(a.chunks(d)
        .zip(b.chunks(d))
        .map(|(ra, rb)| sum_sq_unit(ra, rb) / d as f64)
        .collect())
}

/// Peak signal-to-noise ratio in dB, 10 · log10(1 / `mse`), for peak 1 on the [0, 1]
/// scale of [`mse_unit`]; +∞ when `mse` is 0.
pub fn psnr(mse: f64) -> f64 {
    -10.0 * mse.log10()
}

fn same_len(a: &[f32], b: &[f32]) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::Shape(format!("a has {} values but b has {}", a.len(), b.len())));
    }
    Ok(())
}

/// Σ ((a − b)/2)² in f64.
fn sum_sq_unit(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| ((*x as f64 - *y as f64) / 2.0).powi(2))
        .sum()
}
