//! Noise-prediction models ε_θ(x_t, t) (paper Eq. 1 / Eq. 5's ε_θ).

pub mod oracle;

use candle_core::Tensor;

use crate::error::Result;

pub use oracle::{GaussianMixture, MixtureOracle};

/// A batched noise-prediction model ε_θ(x_t, t).
///
/// `x` has shape `[n, …data shape]` on any candle device and dtype; `t` holds one
/// 0-based training timestep per sample (`t.len() == n`). The result has the shape,
/// device and dtype of `x`.
pub trait EpsModel: Send + Sync {
    /// Predicts the noise ε that produced `x` at timesteps `t`.
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor>;
}
