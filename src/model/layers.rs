//! The networks' layers over [`crate::kernels`]: the variables (names, shapes and
//! initialisers exactly as candle-nn's `linear`, `conv2d`, `group_norm` create them, so
//! checkpoints and seeded initialisations are unchanged) and a forward pass that runs the
//! fast CPU kernels where they apply and candle's ops elsewhere.

use candle_core::Tensor;
use candle_nn::{Conv2dConfig, Init, VarBuilder};

use crate::error::{Error, Result};
use crate::kernels::{self, ConvParams, Padding};

/// b + shift for a shift [n, d] (one row per sample) or [1, d] (the same for all: then
/// the result is a plain bias vector [d]).
fn shifted_bias(bias: &Tensor, shift: &Tensor) -> Result<Tensor> {
    let b = bias.unsqueeze(0)?.broadcast_add(shift)?;
    Ok(if b.dim(0)? == 1 { b.squeeze(0)? } else { b })
}

/// An affine layer y = x Wᵀ + b (`weight`, `bias`).
#[derive(Debug, Clone)]
pub struct Dense(candle_nn::Linear);

impl Dense {
    /// `d_in → d_out`, initialised as candle-nn's `linear`.
    pub fn new(d_in: usize, d_out: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self(candle_nn::linear(d_in, d_out, vb)?))
    }

    /// The weight [d_out, d_in].
    pub fn weight(&self) -> &Tensor {
        self.0.weight()
    }

    /// The bias [d_out].
    pub fn bias(&self) -> &Tensor {
        self.0.bias().expect("candle_nn::linear has a bias")
    }

    /// y = x Wᵀ + b over the last axis.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::linear(x, self.0.weight(), self.bias())?)
    }

    /// y = x Wᵀ + b + shift for x [n, d_in], with `shift` [n, d_out] or [1, d_out] (added
    /// inside the kernel instead of as a broadcast afterwards).
    pub fn forward_shifted(&self, x: &Tensor, shift: &Tensor) -> Result<Tensor> {
        Ok(kernels::linear(x, self.0.weight(), &shifted_bias(self.bias(), shift)?)?)
    }
}

/// A square-kernel 2-D convolution with bias (`weight` [cout, cin, k, k], `bias`).
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    params: ConvParams,
}

impl Conv {
    /// `cin → cout` with a `k × k` kernel, initialised as candle-nn's `conv2d`.
    pub fn new(cin: usize, cout: usize, k: usize, stride: usize, padding: Padding, vb: VarBuilder) -> Result<Self> {
        let c = candle_nn::conv2d(cin, cout, k, Conv2dConfig::default(), vb)?;
        Ok(Self {
            weight: c.weight().clone(),
            bias: c.bias().expect("candle_nn::conv2d has a bias").clone(),
            params: ConvParams { stride, padding },
        })
    }

    /// A 3×3, stride-1 convolution that keeps the spatial size.
    pub fn same3(cin: usize, cout: usize, vb: VarBuilder) -> Result<Self> {
        Self::new(cin, cout, 3, 1, Padding { begin: 1, end: 1 }, vb)
    }

    /// The weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// conv(x) + b for x [n, cin, h, w].
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(kernels::conv2d(x, &self.weight, &self.bias, self.params)?)
    }

    /// conv(x) + b + shift, with `shift` [n, cout] one value per image and channel (added
    /// inside the kernel instead of as a broadcast afterwards).
    pub fn forward_shifted(&self, x: &Tensor, shift: &Tensor) -> Result<Tensor> {
        Ok(kernels::conv2d(
            x,
            &self.weight,
            &shifted_bias(&self.bias, shift)?,
            self.params,
        )?)
    }
}

/// GroupNorm over [n, c, …] (`weight` = γ, `bias` = β), optionally fused with SiLU.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    weight: Tensor,
    bias: Tensor,
    groups: usize,
    eps: f64,
}

impl GroupNorm {
    /// `groups` groups over `channels`, γ = 1, β = 0 (as candle-nn's `group_norm`).
    pub fn new(groups: usize, channels: usize, eps: f64, vb: VarBuilder) -> Result<Self> {
        if groups == 0 || !channels.is_multiple_of(groups) {
            return Err(Error::invalid(
                "norm groups",
                format!("{groups} groups do not divide {channels} channels"),
            ));
        }
        Ok(Self {
            weight: vb.get_with_hints(channels, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(channels, "bias", Init::Const(0.0))?,
            groups,
            eps,
        })
    }

    /// The normalisation, followed by SiLU when `silu`.
    pub fn forward(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        Ok(kernels::group_norm(
            x,
            &self.weight,
            &self.bias,
            self.groups,
            self.eps,
            silu,
        )?)
    }
}

/// LayerNorm over the last axis of [n, d] (`weight` = γ, `bias` = β), ε = 1e-5.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    /// γ = 1, β = 0.
    pub fn new(size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            weight: vb.get_with_hints(size, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(size, "bias", Init::Const(0.0))?,
        })
    }

    /// γ and β.
    pub fn params(&self) -> (&Tensor, &Tensor) {
        (&self.weight, &self.bias)
    }

    /// The normalisation, followed by SiLU when `silu`.
    pub fn forward(&self, x: &Tensor, silu: bool) -> Result<Tensor> {
        Ok(kernels::layer_norm(x, &self.weight, &self.bias, 1e-5, silu)?)
    }
}
