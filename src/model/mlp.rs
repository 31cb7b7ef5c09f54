//! A residual MLP ε-model for vector data and flattened images.
//!
//! ε_θ(x, t) = W_out · SiLU(LN(h_B)), h_0 = W_in x, h_{b+1} = h_b + W_2 SiLU(W_1 LN(h_b) + W_t SiLU(e(t))),
//! with e(t) = MLP(sinusoidal(t)) (DDPM's time embedding).

use candle_core::Tensor;
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::layers::{Dense, LayerNorm};
use super::time::{embedded_timesteps, timestep_embedding};
use super::EpsModel;
use crate::error::Result;
use crate::kernels::{self, mlp::Affine, mlp::Block as FusedBlock, mlp::MlpForward, mlp::Norm};
use crate::shape::DataShape;

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

fn maybe_norm(on: bool, size: usize, vb: VarBuilder) -> Result<Option<LayerNorm>> {
    on.then(|| LayerNorm::new(size, vb)).transpose()
}

/// LN(x) (then SiLU when `silu`), or x itself without LayerNorm.
fn apply(norm: &Option<LayerNorm>, x: &Tensor, silu: bool) -> Result<Tensor> {
    match (norm, silu) {
        (Some(n), _) => n.forward(x, silu),
        (None, true) => Ok(kernels::silu(x)?),
        (None, false) => Ok(x.clone()),
    }
}

#[derive(Debug, Clone)]
struct Block {
    norm: Option<LayerNorm>,
    fc1: Dense,
    time: Dense,
    fc2: Dense,
}

/// The residual MLP ε-model.
#[derive(Debug, Clone)]
pub struct Mlp {
    shape: DataShape,
    config: MlpConfig,
    time1: Dense,
    time2: Dense,
    input: Dense,
    blocks: Vec<Block>,
    out_norm: Option<LayerNorm>,
    output: Dense,
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
                    fc1: Dense::new(h, h, vb.pp("fc1"))?,
                    time: Dense::new(td, h, vb.pp("time_proj"))?,
                    fc2: Dense::new(h, h, vb.pp("fc2"))?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            shape,
            config: config.clone(),
            time1: Dense::new(td, td, vb.pp("time_embedding.linear_1"))?,
            time2: Dense::new(td, td, vb.pp("time_embedding.linear_2"))?,
            input: Dense::new(d, h, vb.pp("input"))?,
            blocks,
            out_norm: maybe_norm(config.layer_norm, h, vb.pp("out_norm"))?,
            output: Dense::new(h, d, vb.pp("output"))?,
        })
    }

    /// SiLU(e(t)) for the distinct timesteps of the batch ([1, td] when they are shared).
    fn time_embedding(&self, t: &[usize], x: &Tensor) -> Result<Tensor> {
        let t = embedded_timesteps(t);
        let temb = timestep_embedding(t, self.config.time_dim, false, 1.0, x.device(), x.dtype())?;
        let h = kernels::silu(&self.time1.forward(&temb)?)?;
        Ok(kernels::silu(&self.time2.forward(&h)?)?)
    }

    /// The forward pass: `x` is `[n, …shape]`, `t` one timestep per row.
    pub fn forward(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        let n = x.dim(0)?;
        let flat = x.reshape((n, self.shape.numel()))?;
        let temb = self.time_embedding(t, x)?;
        let mut h = self.input.forward(&flat)?;
        for b in &self.blocks {
            // W_1 LN(h) + b_1 + W_t e(t) + b_t in one pass.
            let r = b
                .fc1
                .forward_shifted(&apply(&b.norm, &h, false)?, &b.time.forward(&temb)?)?;
            let r = kernels::silu(&r)?;
            h = (h + b.fc2.forward(&r)?)?;
        }
        let out = self.output.forward(&apply(&self.out_norm, &h, true)?)?;
        Ok(out.reshape(x.shape())?)
    }

    /// The whole inference pass as one kernel ([`crate::kernels::mlp`]) where it applies:
    /// f32 on the CPU, one timestep for the batch (as in sampling). `None` otherwise.
    fn fused(&self, x: &Tensor, t: &[usize]) -> Result<Option<Tensor>> {
        if !kernels::fast(&[x, self.input.weight()]) || embedded_timesteps(t).len() != 1 {
            return Ok(None);
        }
        let temb = self.time_embedding(t, x)?;
        let host = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
        let affine = |l: &Dense, shift: Option<Tensor>| -> Result<Affine> {
            let b = match shift {
                Some(s) => (l.bias() + s.squeeze(0)?)?,
                None => l.bias().clone(),
            };
            Ok(Affine {
                w: host(l.weight())?,
                b: host(&b)?,
            })
        };
        let norm = |n: &Option<LayerNorm>| -> Result<Option<Norm>> {
            n.as_ref()
                .map(|n| {
                    let (gamma, beta) = n.params();
                    Ok(Norm {
                        gamma: host(gamma)?,
                        beta: host(beta)?,
                    })
                })
                .transpose()
        };
        let blocks = self
            .blocks
            .iter()
            .map(|b| {
                Ok(FusedBlock {
                    norm: norm(&b.norm)?,
                    fc1: affine(&b.fc1, Some(b.time.forward(&temb)?))?,
                    fc2: affine(&b.fc2, None)?,
                })
            })
            .collect::<Result<_>>()?;
        let op = MlpForward {
            input: affine(&self.input, None)?,
            blocks,
            out_norm: norm(&self.out_norm)?,
            output: affine(&self.output, None)?,
        };
        let flat = x.reshape((x.dim(0)?, self.shape.numel()))?;
        Ok(Some(flat.apply_op1_no_bwd(&op)?.reshape(x.shape())?))
    }
}

impl EpsModel for Mlp {
    /// ε by the fused kernel where it applies, else by [`Mlp::forward`].
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        super::in_dtype(x, self.input.weight().dtype(), |x| match self.fused(x, t)? {
            Some(y) => Ok(y),
            None => self.forward(x, t),
        })
    }
}
