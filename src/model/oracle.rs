//! The exact optimal ε for Gaussian-mixture data ([`GaussianMixture`]): a model with
//! zero model error. The minimiser of the denoising objective (paper Eq. 5) is
//! ε*(x_t, t) = (x_t − √ᾱ_t E[x_0 | x_t]) / √(1 − ᾱ_t), with the mixture's posterior mean.

use candle_core::Tensor;
use rayon::prelude::*;

use super::EpsModel;
use crate::error::Result;
use crate::mixture::GaussianMixture;
use crate::schedule::Schedule;

/// The exact ε* of a [`GaussianMixture`] under a [`Schedule`], as an [`EpsModel`].
///
/// Computed in f64 on the host whatever the input's device and dtype; the result is
/// returned on the input's device in the input's dtype.
#[derive(Debug, Clone)]
pub struct MixtureOracle {
    mixture: GaussianMixture,
    schedule: Schedule,
}

impl MixtureOracle {
    /// The oracle for data from `mixture` noised by `schedule`.
    pub fn new(mixture: GaussianMixture, schedule: Schedule) -> Self {
        Self { mixture, schedule }
    }

    /// The mixture this oracle is exact for.
    pub fn mixture(&self) -> &GaussianMixture {
        &self.mixture
    }
}

impl EpsModel for MixtureOracle {
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        let d = self.mixture.dim();
        let xs = super::host_rows(x, t, d, self.schedule.timesteps(), "oracle")?;
        let mut eps = vec![0.0; xs.len()];
        eps.par_chunks_mut(d)
            .zip(xs.par_chunks(d))
            .zip(t.par_iter())
            .for_each(|((e, xi), &ti)| {
                let a = self.schedule.alpha_bar(Some(ti));
                self.mixture.posterior_mean(xi, a, e);
                let (sa, s1a) = (a.sqrt(), (1.0 - a).sqrt());
                for (ej, xj) in e.iter_mut().zip(xi) {
                    *ej = (xj - sa * *ej) / s1a;
                }
            });
        Ok(Tensor::from_vec(eps, x.shape(), x.device())?.to_dtype(x.dtype())?)
    }
}
