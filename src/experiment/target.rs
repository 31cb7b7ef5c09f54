//! What generated samples are compared with: the reference set, the independent real
//! set of the noise-floor row, and the training points (memorisation).
//!
//! - Data drawn from a known Gaussian mixture (`gaussian_mixture`, `grid25`): the
//!   reference is the held-out split; the floor is a fresh draw of the generated size
//!   from the mixture itself.
//! - The empirical oracle (`model.kind: oracle` on any other data set): the target is the
//!   smoothed training set, known exactly; the reference is a draw from it as large as
//!   the training split, the floor a fresh draw of the generated size from it.
//! - Trained models on a data set: the reference is the training split, as the paper's
//!   FID uses the training set; the floor is the held-out split (its first `samples`
//!   points), real data never trained on. A held-out split smaller than `samples` gives
//!   a smaller floor set, which carries more small-sample bias than the points; the line
//!   describing the comparison says so.
//!
//! The floor set has as many rows as the generated samples wherever the data allow, so
//! that a point at the floor and the floor itself carry the same small-sample bias.
//! - A data set with one split (`images`): the reference is that split; there is no
//!   independent set, so no floor and no memorisation ratio.

use crate::data::{sample_mixture, Dataset};
use crate::error::Result;
use crate::rng::{stream, Purpose};

use super::config::{ExperimentConfig, OracleKind};
use super::measure::Comparison;

/// The comparison sets of `cfg` on `data` for `samples` generated points, and a line
/// that says what they are.
pub fn comparison(cfg: &ExperimentConfig, data: &Dataset, samples: usize) -> Result<(Comparison, String)> {
    let d = data.shape().numel();
    let (n_train, n_held) = (data.train.len(), data.heldout.len());
    let first = |values: &[f32], n: usize| values[..n.min(values.len() / d) * d].to_vec();
    if let Some(mix) = &data.mixture {
        let floor = sample_mixture(mix, samples, &mut stream(cfg.seed, Purpose::Floor));
        return Ok((
            Comparison {
                reference: data.heldout.values.clone(),
                floor: Some(floor),
                train: data.train.values.clone(),
            },
            format!(
                "reference: the held-out split ({n_held} draws from the data's mixture); noise floor: \
                 {samples} fresh draws from the same mixture against it"
            ),
        ));
    }
    if let Some(OracleKind::Empirical { std }) = cfg.oracle_kind()? {
        let mixture = super::resources::empirical_mixture(data, std)?;
        let reference = mixture.sample(n_train, &mut stream(cfg.seed, Purpose::Reference));
        let floor = mixture.sample(samples, &mut stream(cfg.seed, Purpose::Floor));
        return Ok((
            Comparison {
                reference,
                floor: Some(floor),
                train: data.train.values.clone(),
            },
            format!(
                "target: the training split smoothed by N(0, {std}²); reference: {n_train} draws from it; \
                 noise floor: {samples} further draws (as many as the samples) against the reference"
            ),
        ));
    }
    if n_train == 0 {
        return Ok((
            Comparison {
                reference: data.heldout.values.clone(),
                floor: None,
                train: Vec::new(),
            },
            format!("reference: the {n_held} images of the data set; no noise floor (the data set has one split)"),
        ));
    }
    let floor = first(&data.heldout.values, samples);
    let floor_n = floor.len() / d;
    let size = if floor_n < samples {
        format!(
            " (the held-out split has fewer points than the {samples} samples: the floor carries more \
             small-sample bias than the points)"
        )
    } else {
        String::new()
    };
    Ok((
        Comparison {
            reference: data.train.values.clone(),
            floor: (floor_n >= 2).then_some(floor),
            train: data.train.values.clone(),
        },
        format!(
            "reference: the training split ({n_train} points, as the paper's FID uses the training set); \
             noise floor: {floor_n} held-out points against it{size}"
        ),
    ))
}
