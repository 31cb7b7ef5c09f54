//! The one evaluation transform: what every set that is measured goes through before a
//! statistic sees it — the generated samples, the reference set, the noise-floor set, the
//! training points of the memorisation ratio, the consistency reference and both sides of
//! the reconstruction error. A statistic comparing two sets that were transformed
//! differently measures the transform, not the sampler (clamping only the samples of the
//! empirical oracle put every point of the digits sweep far above its floor).
//!
//! - Image data are clamped to the pixel range [−1, 1], as when they are saved as images
//!   (the official DDIM code clamps before computing FID). For the empirical oracle, whose
//!   target (the training set smoothed by N(0, h²)) has mass outside [−1, 1], the
//!   reference and floor draws are clamped too: the clamped target is the law of the
//!   images one would save, and a sampler that reaches the target reaches it after the
//!   clamp as well, since the same map is applied to both sides.
//! - Vector data (mixtures, moons, …) are unbounded: nothing is changed.
//!
//! [`Evaluated`] can only be made by [`Evaluation::apply`], and every statistic of
//! [`super::measure::SampleStats`] takes it, so a set cannot reach a statistic untransformed.

use std::ops::Deref;

use crate::shape::DataShape;

/// The transform of one data kind (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluation {
    /// Values as they are (vector data).
    Raw,
    /// Every value clamped to [−1, 1] (image data).
    ClampPixels,
}

impl Evaluation {
    /// The transform of data of `shape`.
    pub fn of(shape: DataShape) -> Self {
        match shape {
            DataShape::Image { .. } => Evaluation::ClampPixels,
            DataShape::Vector(_) => Evaluation::Raw,
        }
    }

    /// `x` as the statistics see it.
    pub fn apply(self, x: &[f32]) -> Evaluated {
        Evaluated(match self {
            Evaluation::Raw => x.to_vec(),
            Evaluation::ClampPixels => x.iter().map(|v| v.clamp(-1.0, 1.0)).collect(),
        })
    }

    /// What the transform does, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            Evaluation::Raw => "every set is measured as it is",
            Evaluation::ClampPixels => {
                "every set (samples, reference, floor set, training points) is clamped to the pixel range [−1, 1] \
                 before it is measured"
            }
        }
    }
}

/// A flat set of rows that has been through its [`Evaluation`].
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluated(Vec<f32>);

impl Deref for Evaluated {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_are_clamped_and_vectors_kept() {
        let x = [-1.5f32, -0.2, 0.9, 2.0];
        let image = DataShape::Image {
            channels: 1,
            height: 2,
            width: 2,
        };
        assert_eq!(&*Evaluation::of(image).apply(&x), &[-1.0, -0.2, 0.9, 1.0]);
        assert_eq!(&*Evaluation::of(DataShape::Vector(2)).apply(&x), &x);
    }
}
