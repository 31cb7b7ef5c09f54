//! Noise-prediction models ε_θ(x_t, t) (paper Eq. 1 / Eq. 5's ε_θ).
//!
//! [`EpsModel`] is what the sampler needs. [`oracle::MixtureOracle`] is exact for
//! Gaussian-mixture data; [`mlp::Mlp`] and [`unet::Unet`] are trainable candle networks
//! held together by [`Network`], whose variables live in a `VarMap` so they can be
//! trained, saved and loaded ([`checkpoint`]).

pub mod checkpoint;
pub mod diffusers;
pub mod empirical;
pub mod layers;
pub mod mlp;
pub mod oracle;
pub mod time;
pub mod unet;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::shape::DataShape;

pub use diffusers::load_diffusers;
pub use empirical::{EmpiricalMixture, EmpiricalOracle};
pub use mlp::{Mlp, MlpConfig};
pub use oracle::MixtureOracle;
pub use unet::{Unet, UnetConfig, UnetSpec};

/// The dtype networks are trained and stored in.
pub const MODEL_DTYPE: DType = DType::F32;

/// A batched noise-prediction model ε_θ(x_t, t).
///
/// `x` has shape `[n, …data shape]` on any candle device and dtype; `t` holds one
/// 0-based training timestep per sample (`t.len() == n`). The result has the shape,
/// device and dtype of `x`.
pub trait EpsModel: Send + Sync {
    /// Predicts the noise ε that produced `x` at timesteps `t`.
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor>;
}

/// `f` applied to `x` converted to the network's `dtype`, its result converted back to the
/// dtype of `x`: how every network answers [`EpsModel::eps`] for inputs of any dtype.
pub(crate) fn in_dtype(x: &Tensor, dtype: DType, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
    let y = f(&x.to_dtype(dtype)?)?;
    Ok(if y.dtype() == x.dtype() {
        y
    } else {
        y.to_dtype(x.dtype())?
    })
}

/// The values of `x` (`[n, …]`, any device and dtype) as f64 on the host, after checking
/// that it holds n rows of `d` values and that `t` has one timestep < `timesteps` per row:
/// the input check of the host-side oracles (`what` names the oracle in messages).
pub(crate) fn host_rows(x: &Tensor, t: &[usize], d: usize, timesteps: usize, what: &str) -> Result<Vec<f64>> {
    let n = x.dim(0)?;
    if x.elem_count() != n * d || t.len() != n {
        return Err(crate::error::Error::Shape(format!(
            "{what} for {d}-dimensional data got x of shape {:?} and {} timesteps",
            x.dims(),
            t.len()
        )));
    }
    if let Some(bad) = t.iter().find(|t| **t >= timesteps) {
        return Err(crate::error::Error::Shape(format!(
            "timestep {bad} is outside 0..{timesteps}"
        )));
    }
    Ok(x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?)
}

/// A trainable architecture and its hyper-parameters (stored in checkpoint sidecars).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Architecture {
    /// A residual MLP over the flattened data.
    Mlp {
        /// The data shape the network maps.
        shape: DataShape,
        /// Widths and depth.
        config: MlpConfig,
    },
    /// A DDPM-style U-Net (diffusers `UNet2DModel` layout).
    Unet {
        /// The full architecture.
        config: UnetConfig,
    },
}

/// A trainable ε-network with its variables.
pub struct Network {
    /// The architecture it was built from.
    pub architecture: Architecture,
    /// Its variables (trainable parameters), by diffusers-style names.
    pub varmap: VarMap,
    model: NetworkModel,
}

enum NetworkModel {
    Mlp(Mlp),
    Unet(Box<Unet>),
}

impl Network {
    /// A freshly initialised network: candle-nn's default initialisers, drawn from the
    /// seeded stream `Purpose::Init` of `seed`.
    pub fn new(architecture: &Architecture, seed: u64, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let init = checkpoint::SeededInit::new(varmap.clone(), crate::rng::stream(seed, crate::rng::Purpose::Init));
        let vb = VarBuilder::from_backend(Box::new(init), MODEL_DTYPE, device.clone());
        let model = match architecture {
            Architecture::Mlp { shape, config } => NetworkModel::Mlp(Mlp::new(*shape, config, vb)?),
            Architecture::Unet { config } => NetworkModel::Unet(Box::new(Unet::new(config, vb)?)),
        };
        Ok(Self {
            architecture: architecture.clone(),
            varmap,
            model,
        })
    }

    /// The forward pass in the network's own dtype (differentiable).
    pub fn forward(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        match &self.model {
            NetworkModel::Mlp(m) => m.forward(x, t),
            NetworkModel::Unet(u) => u.forward(x, t),
        }
    }

    /// Number of trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }
}

impl EpsModel for Network {
    /// ε without an autograd graph: the weights are training variables, so candle would
    /// otherwise link every sampler state to all the activations before it (a 1000-step
    /// pass would keep 1000 forward passes alive).
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        let eps = match &self.model {
            NetworkModel::Mlp(m) => m.eps(x, t),
            NetworkModel::Unet(u) => u.eps(x, t),
        }?;
        Ok(eps.detach())
    }
}
