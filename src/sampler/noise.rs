//! The noise of the stochastic steps: a [`NoiseSource`] is asked for z ~ N(0, I) shaped
//! like the state. [`PerSampleNoise`] gives every sample its own stream (a sample's noise,
//! like its x_T, does not depend on its batch); [`SeededNoise`] is one stream for tests.

use candle_core::{DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::error::{Error, Result};

/// A source of standard-normal noise z for stochastic steps.
pub trait NoiseSource {
    /// Noise shaped like `like` (same shape, device, dtype) for step `step` (0-based, in sampling order).
    fn noise(&mut self, step: usize, like: &Tensor) -> Result<Tensor>;
}

/// Seeded standard-normal noise (ChaCha8), generated on the host so that a seed gives
/// the same numbers on every device.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    rng: ChaCha8Rng,
}

impl SeededNoise {
    /// A noise stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A tensor of i.i.d. N(0, 1) values of the given shape, device and dtype.
    pub fn standard_normal(&mut self, shape: &[usize], device: &candle_core::Device, dtype: DType) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut self.rng)).collect();
        Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
    }
}

impl NoiseSource for SeededNoise {
    fn noise(&mut self, _step: usize, like: &Tensor) -> Result<Tensor> {
        self.standard_normal(like.dims(), like.device(), like.dtype())
    }
}

/// Noise drawn per sample: item `i` of a batch whose first item is sample `first` has
/// its own stream, so a sample's noise (like its x_T) does not depend on the batch it
/// is in, and every point of a sweep sees the same z for the same sample and step.
#[derive(Debug, Clone)]
pub struct PerSampleNoise {
    rngs: Vec<ChaCha8Rng>,
}

impl PerSampleNoise {
    /// Streams for samples `first .. first + n` of `seed`.
    pub fn new(seed: u64, first: usize, n: usize) -> Self {
        Self {
            rngs: (first..first + n)
                .map(|i| crate::rng::stream_at(seed, crate::rng::Purpose::SamplerNoise, i as u64))
                .collect(),
        }
    }
}

impl NoiseSource for PerSampleNoise {
    fn noise(&mut self, _step: usize, like: &Tensor) -> Result<Tensor> {
        if like.dim(0)? != self.rngs.len() {
            return Err(Error::Shape(format!(
                "noise for {} samples asked for a batch of {}",
                self.rngs.len(),
                like.dim(0)?
            )));
        }
        let per = like.elem_count() / self.rngs.len();
        let mut v = vec![0f32; like.elem_count()];
        // Every sample's stream fills its own row, so threads do not change the numbers.
        v.par_chunks_mut(per.max(1))
            .zip(self.rngs.par_iter_mut())
            .with_min_len(64)
            .for_each(|(row, rng)| row.iter_mut().for_each(|z| *z = StandardNormal.sample(rng)));
        Ok(Tensor::from_vec(v, like.dims(), like.device())?.to_dtype(like.dtype())?)
    }
}
