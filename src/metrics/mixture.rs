//! Mode coverage on Gaussian-mixture data: how much sample mass each component receives.

use rayon::prelude::*;

use super::rows;
use crate::error::{Error, Result};
use crate::mixture::GaussianMixture;

/// The fraction of the samples `x` (n × `d`, row-major) assigned to each component of
/// `mixture`, assigning each sample to the component of largest posterior responsibility
/// under the clean mixture (ᾱ = 1; ties go to the lower index).
pub fn component_masses(x: &[f32], d: usize, mixture: &GaussianMixture) -> Result<Vec<f64>> {
    let assigned = component_of(x, d, mixture)?;
    let mut counts = vec![0usize; mixture.components()];
    for &k in &assigned {
        counts[k] += 1;
    }
    Ok(counts.into_iter().map(|c| c as f64 / assigned.len() as f64).collect())
}

/// The component of largest posterior responsibility of every row of `x` (the
/// assignment [`component_masses`] counts).
pub fn component_of(x: &[f32], d: usize, mixture: &GaussianMixture) -> Result<Vec<usize>> {
    rows(x, d, "x", 1)?;
    if d != mixture.dim() {
        return Err(Error::Shape(format!(
            "samples have d = {d} but the mixture has d = {}",
            mixture.dim()
        )));
    }
    Ok(x.par_chunks(d)
        .map(|row| {
            let point: Vec<f64> = row.iter().map(|v| *v as f64).collect();
            let r = mixture.responsibilities(&point, 1.0);
            (0..r.len()).fold(0, |best, k| if r[k] > r[best] { k } else { best })
        })
        .collect())
}

/// Total variation ½ Σ_k |m_k − w_k| between sample masses and mixture weights.
pub fn mass_error(masses: &[f64], weights: &[f64]) -> Result<f64> {
    if masses.len() != weights.len() {
        return Err(Error::Shape(format!(
            "{} masses but {} weights",
            masses.len(),
            weights.len()
        )));
    }
    Ok(0.5 * masses.iter().zip(weights).map(|(m, w)| (m - w).abs()).sum::<f64>())
}
