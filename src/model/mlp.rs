//! A residual MLP ε-model for vector data and flattened images.
//!
//! ε_θ(x, t) = W_out · SiLU(LN(h_B)), h_0 = W_in x, h_{b+1} = h_b + W_2 SiLU(W_1 LN(h_b) + W_t SiLU(e(t))),
//! with e(t) = MLP(sinusoidal(t)) (DDPM's time embedding).

use candle_core::{Module, Tensor};
use candle_nn::{linear, Linear, VarBuilder};
use serde::{Deserialize, Serialize};

use super::time::timestep_embedding;
use super::EpsModel;
use crate::data::DataShape;
use crate::error::Result;

/// Architecture of [`Mlp`] (the `model:` keys of an `mlp` experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MlpConfig {
    /// Width of the hidden layers.
    #[serde(default = "default_hidden")]
    pub hidden: usize,
    /// Number of residual blocks.
    #[serde(default = "default_blocks")]
    pub blocks: usize,
    /// Width of the sinusoidal time embedding.
    #[serde(default = "default_time_dim")]
    pub time_dim: usize,
    /// LayerNorm before every block and the output.
    #[serde(default = "default_true")]
    pub layer_norm: bool,
}

fn default_hidden() -> usize {
    256
}
fn default_blocks() -> usize {
    3
}
fn default_time_dim() -> usize {
    64
}
fn default_true() -> bool {
    true
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: default_hidden(),
            blocks: default_blocks(),
            time_dim: default_time_dim(),
            layer_norm: true,
        }
    }
}

/// A LayerNorm built from differentiable primitives (candle-nn's fused one has no backward).
#[derive(Debug, Clone)]
struct Norm {
    weight: Tensor,
    bias: Tensor,
}

impl Norm {
    fn new(size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", candle_nn::Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", candle_nn::Init::Const(0.0))?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::layer_norm_slow(x, &self.weight, &self.bias, 1e-5)?)
    }
}

fn maybe_norm(on: bool, size: usize, vb: VarBuilder) -> Result<Option<Norm>> {
    on.then(|| Norm::new(size, vb)).transpose()
}

fn apply(norm: &Option<Norm>, x: &Tensor) -> Result<Tensor> {
    norm.as_ref().map_or_else(|| Ok(x.clone()), |n| n.forward(x))
}

#[derive(Debug, Clone)]
struct Block {
    norm: Option<Norm>,
    fc1: Linear,
    time: Linear,
    fc2: Linear,
}

/// The residual MLP ε-model.
#[derive(Debug, Clone)]
pub struct Mlp {
    shape: DataShape,
    config: MlpConfig,
    time1: Linear,
    time2: Linear,
    input: Linear,
    blocks: Vec<Block>,
    out_norm: Option<Norm>,
    output: Linear,
}

impl Mlp {
    /// Builds the network for data of `shape`, taking (or creating) its variables from `vb`.
    pub fn new(shape: DataShape, config: &MlpConfig, vb: VarBuilder) -> Result<Self> {
        let (d, h, td) = (shape.numel(), config.hidden, config.time_dim);
        let blocks = (0..config.blocks)
            .map(|b| {
                let vb = vb.pp(format!("blocks.{b}"));
                Ok(Block {
                    norm: maybe_norm(config.layer_norm, h, vb.pp("norm"))?,
                    fc1: linear(h, h, vb.pp("fc1"))?,
                    time: linear(td, h, vb.pp("time_proj"))?,
                    fc2: linear(h, h, vb.pp("fc2"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            shape,
            config: config.clone(),
            time1: linear(td, td, vb.pp("time_embedding.linear_1"))?,
            time2: linear(td, td, vb.pp("time_embedding.linear_2"))?,
            input: linear(d, h, vb.pp("input"))?,
            blocks,
            out_norm: maybe_norm(config.layer_norm, h, vb.pp("out_norm"))?,
            output: linear(h, d, vb.pp("output"))?,
        })
    }

    /// The forward pass: `x` is `[n, …shape]`, `t` one timestep per row.
    pub fn forward(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        let n = x.dim(0)?;
        let flat = x.reshape((n, self.shape.numel()))?;
        let temb = timestep_embedding(t, self.config.time_dim, false, 1.0, x.device(), x.dtype())?;
        let temb = self.time2.forward(&self.time1.forward(&temb)?.silu()?)?.silu()?;
        let mut h = self.input.forward(&flat)?;
        for b in &self.blocks {
            let r = b.fc1.forward(&apply(&b.norm, &h)?)?;
            let r = (r + b.time.forward(&temb)?)?.silu()?;
            h = (h + b.fc2.forward(&r)?)?;
        }
        let out = self.output.forward(&apply(&self.out_norm, &h)?.silu()?)?;
        Ok(out.reshape(x.shape())?)
    }
}

impl EpsModel for Mlp {
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        let dtype = x.dtype();
        let y = self.forward(&x.to_dtype(self.input.weight().dtype())?, t)?;
        Ok(if y.dtype() == dtype { y } else { y.to_dtype(dtype)? })
    }
}
