//! Sample-quality metrics (pure math in f64; no files, no progress bars).
//!
//! Every function takes samples as a flat row-major `&[f32]` of n rows × `d` columns and
//! reports bad input (ragged rows, too few samples, NaN or infinity) as an [`Error`].
//!
//! - [`reconstruction`]: per-dimension MSE on the [0, 1] scale and PSNR, as in the DDIM
//!   paper's Table 2 (reconstruction from x_T) and for the §5.3 consistency of trajectories.
//! - [`frechet`]: Fréchet distance between fitted Gaussians (Heusel et al. 2017), plug-in
//!   and bias-corrected; [`influence`]: its first-order projection (the rows' influence).
//! - [`mmd`]: unbiased MMD² (Gretton et al. 2012) with the RBF kernel, and KID (the cubic
//!   polynomial kernel, Bińkowski et al. 2018).
//! - [`sliced`]: sliced Wasserstein-2 (Bonneel et al. 2015).
//! - [`nearest`]: distances to the nearest training point.
//! - [`bootstrap`]: seeded resamples, every replicate kept, intervals; [`paired`]: paired
//!   differences of two points and Holm's correction.
//! - [`mixture`]: component masses of samples under a known Gaussian mixture.
//! - [`labels`]: class histograms and their total variation to uniform.

pub mod bootstrap;
pub(crate) mod eigen;
pub mod frechet;
pub(crate) mod influence;
pub mod labels;
pub(crate) mod linalg;
pub mod manifold;
pub mod mixture;
pub mod mmd;
pub mod nearest;
pub mod paired;
pub mod reconstruction;
pub mod sliced;

pub use frechet::{frechet, frechet_distance, Gaussian, Moments, Rooted};
pub use labels::{histogram, tv_to_uniform};
pub use mixture::{component_masses, component_of, mass_error};
pub use mmd::{block_ranges, kid, median_bandwidth_of, mmd2_unbiased, Kernel, KernelReference, Mmd, MMD_BLOCK};
pub use nearest::nearest_distances;
pub use reconstruction::{mse_unit, per_row_mse_unit, psnr};
pub use sliced::{sliced_wasserstein, sliced_wasserstein_counted, SlicedReference, SortedProjections};

use crate::error::{Error, Result};

/// The number of rows of `x` (at least 2; see [`rows`]), for callers outside this module.
pub fn rows_checked(x: &[f32], d: usize, what: &str) -> Result<usize> {
    rows(x, d, what, 2)
}

/// The number of rows of `x` (n × `d`, row-major), after checking that `d ≥ 1`, that `x`
/// holds whole rows, at least `min_rows` of them, and only finite values.
pub(crate) fn rows(x: &[f32], d: usize, what: &str, min_rows: usize) -> Result<usize> {
    if d == 0 {
        return Err(Error::invalid("d", "the dimension must be at least 1"));
    }
    if !x.len().is_multiple_of(d) {
        return Err(Error::Shape(format!(
            "{what} has {} values, not a whole number of rows of d = {d}",
            x.len()
        )));
    }
    let n = x.len() / d;
    if n < min_rows {
        return Err(Error::invalid(
            what,
            format!("{n} sample(s), at least {min_rows} needed"),
        ));
    }
    let count = x.iter().filter(|v| !v.is_finite()).count();
    if count > 0 {
        return Err(Error::NonFinite {
            what: what.into(),
            count,
        });
    }
    Ok(n)
}
