//! Class balance of generated labels (e.g. classifier predictions on samples).

use crate::error::{Error, Result};

/// The fraction of `labels` in each of `classes` classes; every label must be below `classes`.
pub fn histogram(labels: &[u8], classes: usize) -> Result<Vec<f64>> {
    if classes == 0 || labels.is_empty() {
        return Err(Error::invalid(
            "labels",
            format!(
                "{} label(s) in {classes} class(es): both must be at least 1",
                labels.len()
            ),
        ));
    }
    let mut counts = vec![0usize; classes];
    for &l in labels {
        match counts.get_mut(l as usize) {
            Some(c) => *c += 1,
            None => return Err(Error::invalid("labels", format!("label {l} is outside 0..{classes}"))),
        }
    }
    Ok(counts.into_iter().map(|c| c as f64 / labels.len() as f64).collect())
}

/// Total variation ½ Σ_k |p_k − 1/K| between a K-class histogram and the uniform distribution.
pub fn tv_to_uniform(hist: &[f64]) -> f64 {
    let u = 1.0 / hist.len() as f64;
    0.5 * hist.iter().map(|p| (p - u).abs()).sum::<f64>()
}
