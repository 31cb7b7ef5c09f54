//! A DDPM-style U-Net (Ho et al. 2020, Appendix B) with diffusers' `UNet2DModel`
//! parameter layout: `conv_in`, `time_embedding.linear_{1,2}`, `down_blocks.i.resnets.j`
//! / `.attentions.j` / `.downsamplers.0.conv`, `mid_block`, `up_blocks.i…`,
//! `conv_norm_out`, `conv_out`. Blocks are `DownBlock2D` / `AttnDownBlock2D` /
//! `UpBlock2D` / `AttnUpBlock2D`; ResNet blocks take the time embedding; dropout is
//! not used (inference, and the small models trained here).

use candle_core::{Tensor, D};
use candle_nn::VarBuilder;
use serde::{Deserialize, Serialize};

use super::layers::{Conv, Dense, GroupNorm};
use super::time::{embedded_timesteps, timestep_embedding};
use super::EpsModel;
use crate::error::{Error, Result};
use crate::kernels::Padding;
use crate::shape::DataShape;

/// The `model:` keys of a `unet` experiment: a compact description of the architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnetSpec {
    /// Channels of the first level.
    #[serde(default = "default_base")]
    pub base_channels: usize,
    /// Channel multiplier of each level (one level per entry).
    #[serde(default = "default_mult")]
    pub channel_mult: Vec<usize>,
    /// ResNet blocks per level on the way down (one more on the way up).
    #[serde(default = "default_layers")]
    pub layers_per_block: usize,
    /// Spatial sizes at which levels get self-attention.
    #[serde(default = "default_attn")]
    pub attention_resolutions: Vec<usize>,
    /// Groups of every GroupNorm.
    #[serde(default = "default_groups")]
    pub norm_groups: usize,
    /// Channels per attention head (`None`: one head).
    #[serde(default)]
    pub attention_head_dim: Option<usize>,
}

fn default_base() -> usize {
    32
}
fn default_mult() -> Vec<usize> {
    vec![1, 2]
}
fn default_layers() -> usize {
    1
}
fn default_attn() -> Vec<usize> {
    vec![4]
}
fn default_groups() -> usize {
    8
}

impl Default for UnetSpec {
    fn default() -> Self {
        Self {
            base_channels: default_base(),
            channel_mult: default_mult(),
            layers_per_block: default_layers(),
            attention_resolutions: default_attn(),
            norm_groups: default_groups(),
            attention_head_dim: None,
        }
    }
}

/// The full architecture, in the vocabulary of diffusers' `UNet2DModel` `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnetConfig {
    /// Image side (square images).
    pub sample_size: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Output channels of every level.
    pub block_out_channels: Vec<usize>,
    /// `DownBlock2D` or `AttnDownBlock2D` per level.
    pub down_block_types: Vec<String>,
    /// `UpBlock2D` or `AttnUpBlock2D` per level (deepest first).
    pub up_block_types: Vec<String>,
    /// ResNet blocks per down level.
    pub layers_per_block: usize,
    /// Groups of every GroupNorm.
    pub norm_num_groups: usize,
    /// GroupNorm epsilon.
    pub norm_eps: f64,
    /// Channels per attention head (`None`: one head per attention block).
    pub attention_head_dim: Option<usize>,
    /// Time embedding layout: [cos | sin] when true.
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the time embedding (DDPM: 1).
    pub freq_shift: f64,
    /// Padding of the stride-2 downsampling convolutions: 1 pads every side, 0 pads
    /// only the right and bottom (TensorFlow's `SAME`, as in the DDPM checkpoints).
    #[serde(default = "default_downsample_padding")]
    pub downsample_padding: usize,
}

fn default_downsample_padding() -> usize {
    1
}

impl UnetConfig {
    /// The architecture described by `spec` for images of `shape`.
    pub fn from_spec(spec: &UnetSpec, shape: DataShape) -> Result<Self> {
        let DataShape::Image {
            channels,
            height,
            width,
        } = shape
        else {
            return Err(Error::invalid(
                "model.kind",
                format!("unet needs image data [c, h, w], the data are vectors {shape}; use mlp"),
            ));
        };
        if height != width {
            return Err(Error::invalid("model.kind", "unet needs square images"));
        }
        let levels = spec.channel_mult.len();
        if levels == 0 || (height >> (levels - 1)) << (levels - 1) != height {
            return Err(Error::invalid(
                "model.channel_mult",
                format!(
                    "{levels} levels halve the {height}-pixel side {} times: it must stay whole",
                    levels.max(1) - 1
                ),
            ));
        }
        let block_out_channels: Vec<usize> = spec.channel_mult.iter().map(|m| m * spec.base_channels).collect();
        if spec.norm_groups == 0 {
            return Err(Error::invalid(
                "model.norm_groups",
                "0: GroupNorm needs at least 1 group (a divisor of every level's channels)",
            ));
        }
        if let Some(c) = block_out_channels
            .iter()
            .find(|c| **c == 0 || *c % spec.norm_groups != 0)
        {
            return Err(Error::invalid(
                "model.norm_groups",
                format!("{} groups do not divide {c} channels", spec.norm_groups),
            ));
        }
        let attn: Vec<bool> = (0..levels)
            .map(|i| spec.attention_resolutions.contains(&(height >> i)))
            .collect();
        if let Some(d) = spec.attention_head_dim {
            // Attention runs at the attended levels and in the middle block (the last level).
            let attended = (0..levels).filter(|&i| attn[i]).chain([levels - 1]);
            if let Some(c) = attended.map(|i| block_out_channels[i]).find(|c| d == 0 || c % d != 0) {
                return Err(Error::invalid("model.attention_head_dim", format!(
                        "{d}: must be a head size ≥ 1 that divides the {c} channels attended to (or leave it out: one head)"
                    )));
            }
        }
        let down = attn
            .iter()
            .map(|a| if *a { "AttnDownBlock2D" } else { "DownBlock2D" }.to_string())
            .collect();
        let up = attn
            .iter()
            .rev()
            .map(|a| if *a { "AttnUpBlock2D" } else { "UpBlock2D" }.to_string())
            .collect();
        Ok(Self {
            sample_size: height,
            in_channels: channels,
            out_channels: channels,
            block_out_channels,
            down_block_types: down,
            up_block_types: up,
            layers_per_block: spec.layers_per_block,
            norm_num_groups: spec.norm_groups,
            norm_eps: 1e-5,
            attention_head_dim: spec.attention_head_dim,
            flip_sin_to_cos: false,
            freq_shift: 1.0,
            downsample_padding: default_downsample_padding(),
        })
    }

    pub(crate) fn has_attention(kind: &str) -> Result<bool> {
        match kind {
            "DownBlock2D" | "UpBlock2D" => Ok(false),
            "AttnDownBlock2D" | "AttnUpBlock2D" => Ok(true),
            other => Err(Error::invalid(
                "block type",
                format!(
                    "{other:?} is not supported; supported: DownBlock2D, AttnDownBlock2D, UpBlock2D, AttnUpBlock2D"
                ),
            )),
        }
    }
}

/// diffusers' `ResnetBlock2D` (default time-embedding norm, output scale 1).
#[derive(Debug, Clone)]
struct ResnetBlock {
    norm1: GroupNorm,
    conv1: Conv,
    time_emb_proj: Dense,
    norm2: GroupNorm,
    conv2: Conv,
    conv_shortcut: Option<Conv>,
}

impl ResnetBlock {
    fn new(cin: usize, cout: usize, temb: usize, c: &UnetConfig, vb: VarBuilder) -> Result<Self> {
        let shortcut = (cin != cout)
            .then(|| Conv::new(cin, cout, 1, 1, Padding { begin: 0, end: 0 }, vb.pp("conv_shortcut")))
            .transpose()?;
        Ok(Self {
            norm1: GroupNorm::new(c.norm_num_groups, cin, c.norm_eps, vb.pp("norm1"))?,
            conv1: Conv::same3(cin, cout, vb.pp("conv1"))?,
            time_emb_proj: Dense::new(temb, cout, vb.pp("time_emb_proj"))?,
            norm2: GroupNorm::new(c.norm_num_groups, cout, c.norm_eps, vb.pp("norm2"))?,
            conv2: Conv::same3(cout, cout, vb.pp("conv2"))?,
            conv_shortcut: shortcut,
        })
    }

    fn forward(&self, x: &Tensor, temb: &Tensor) -> Result<Tensor> {
        let t = self.time_emb_proj.forward(&temb.silu()?)?;
        let h = self.conv1.forward_shifted(&self.norm1.forward(x, true)?, &t)?;
        let h = self.conv2.forward(&self.norm2.forward(&h, true)?)?;
        let skip = match &self.conv_shortcut {
            Some(c) => c.forward(x)?,
            None => x.clone(),
        };
        Ok((skip + h)?)
    }
}

/// diffusers' spatial self-attention block (`Attention` with a residual connection).
#[derive(Debug, Clone)]
struct AttentionBlock {
    group_norm: GroupNorm,
    to_q: Dense,
    to_k: Dense,
    to_v: Dense,
    to_out: Dense,
    heads: usize,
}

impl AttentionBlock {
    fn new(channels: usize, c: &UnetConfig, vb: VarBuilder) -> Result<Self> {
        let heads = c.attention_head_dim.map_or(1, |d| (channels / d).max(1));
        Ok(Self {
            group_norm: GroupNorm::new(c.norm_num_groups, channels, c.norm_eps, vb.pp("group_norm"))?,
            to_q: Dense::new(channels, channels, vb.pp("to_q"))?,
            to_k: Dense::new(channels, channels, vb.pp("to_k"))?,
            to_v: Dense::new(channels, channels, vb.pp("to_v"))?,
            to_out: Dense::new(channels, channels, vb.pp("to_out.0"))?,
            heads,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (b, c, h, w) = x.dims4()?;
        let hd = c / self.heads;
        // [b, hw, c], made contiguous: candle 0.11's matmul backward is wrong for a
        // transposed (non-contiguous) left operand.
        let seq = self
            .group_norm
            .forward(x, false)?
            .reshape((b, c, h * w))?
            .transpose(1, 2)?
            .contiguous()?;
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, h * w, self.heads, hd))?.transpose(1, 2)?.contiguous()?)
            // [b, heads, hw, hd]
        };
        let q = split(self.to_q.forward(&seq)?)?;
        let k = split(self.to_k.forward(&seq)?)?;
        let v = split(self.to_v.forward(&seq)?)?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (hd as f64).sqrt()))?;
        let attn = candle_nn::ops::softmax(&scores, D::Minus1)?;
        let out = attn.matmul(&v)?.transpose(1, 2)?.reshape((b, h * w, c))?;
        let out = self.to_out.forward(&out)?.transpose(1, 2)?.reshape((b, c, h, w))?;
        Ok((out + x)?)
    }
}

/// diffusers' `Downsample2D` / `Upsample2D` with a convolution.
#[derive(Debug, Clone)]
enum Resample {
    /// Stride-2 3×3 convolution; `downsample_padding = 0` pads only the right and bottom
    /// by one (TensorFlow's `SAME`), otherwise every side by `padding`.
    Down(Conv),
    /// Nearest-neighbour ×2, then a 3×3 convolution.
    Up(Conv),
}

impl Resample {
    fn down(channels: usize, padding: usize, vb: VarBuilder) -> Result<Self> {
        let padding = match padding {
            0 => Padding { begin: 0, end: 1 },
            p => Padding { begin: p, end: p },
        };
        Ok(Self::Down(Conv::new(channels, channels, 3, 2, padding, vb)?))
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Self::Down(conv) => conv.forward(x),
            Self::Up(conv) => {
                let (_, _, h, w) = x.dims4()?;
                conv.forward(&x.upsample_nearest2d(h * 2, w * 2)?)
            }
        }
    }
}

/// One level: ResNet blocks (each optionally followed by attention) and a resampler.
#[derive(Debug, Clone)]
struct Level {
    resnets: Vec<ResnetBlock>,
    attentions: Vec<AttentionBlock>,
    resample: Option<Resample>,
}

impl Level {
    fn apply(&self, i: usize, h: &Tensor, temb: &Tensor) -> Result<Tensor> {
        let h = self.resnets[i].forward(h, temb)?;
        match self.attentions.get(i) {
            Some(a) => a.forward(&h),
            None => Ok(h),
        }
    }
}

/// The U-Net ε-model.
#[derive(Debug, Clone)]
pub struct Unet {
    config: UnetConfig,
    time1: Dense,
    time2: Dense,
    conv_in: Conv,
    down: Vec<Level>,
    mid: (ResnetBlock, AttentionBlock, ResnetBlock),
    up: Vec<Level>,
    conv_norm_out: GroupNorm,
    conv_out: Conv,
}

impl Unet {
    /// Builds the network, taking (or creating) its variables from `vb`.
    pub fn new(config: &UnetConfig, vb: VarBuilder) -> Result<Self> {
        let c = config;
        let ch = &c.block_out_channels;
        let levels = ch.len();
        if c.down_block_types.len() != levels || c.up_block_types.len() != levels {
            return Err(Error::invalid(
                "unet config",
                format!(
                    "{levels} block_out_channels but {} down and {} up block types",
                    c.down_block_types.len(),
                    c.up_block_types.len()
                ),
            ));
        }
        let temb = ch[0] * 4;
        let down = Self::down_levels(c, temb, &vb)?;
        let last = ch[levels - 1];
        let mvb = vb.pp("mid_block");
        let mid = (
            ResnetBlock::new(last, last, temb, c, mvb.pp("resnets.0"))?,
            AttentionBlock::new(last, c, mvb.pp("attentions.0"))?,
            ResnetBlock::new(last, last, temb, c, mvb.pp("resnets.1"))?,
        );
        let up = Self::up_levels(c, temb, &vb)?;
        Ok(Self {
            config: c.clone(),
            time1: Dense::new(ch[0], temb, vb.pp("time_embedding.linear_1"))?,
            time2: Dense::new(temb, temb, vb.pp("time_embedding.linear_2"))?,
            conv_in: Conv::same3(c.in_channels, ch[0], vb.pp("conv_in"))?,
            down,
            mid,
            up,
            conv_norm_out: GroupNorm::new(c.norm_num_groups, ch[0], c.norm_eps, vb.pp("conv_norm_out"))?,
            conv_out: Conv::same3(ch[0], c.out_channels, vb.pp("conv_out"))?,
        })
    }

    /// The encoder levels (`down_blocks.i`): `layers_per_block` ResNet blocks (with
    /// attention in an `AttnDownBlock2D`), then a stride-2 convolution but at the last level.
    fn down_levels(c: &UnetConfig, temb: usize, vb: &VarBuilder) -> Result<Vec<Level>> {
        let ch = &c.block_out_channels;
        let levels = ch.len();
        let mut down = Vec::with_capacity(levels);
        let mut out_ch = ch[0];
        for (i, kind) in c.down_block_types.iter().enumerate() {
            let attn = UnetConfig::has_attention(kind)?;
            let (in_ch, vb) = (out_ch, vb.pp(format!("down_blocks.{i}")));
            out_ch = ch[i];
            let mut level = Level {
                resnets: Vec::new(),
                attentions: Vec::new(),
                resample: None,
            };
            for j in 0..c.layers_per_block {
                let cin = if j == 0 { in_ch } else { out_ch };
                level
                    .resnets
                    .push(ResnetBlock::new(cin, out_ch, temb, c, vb.pp(format!("resnets.{j}")))?);
                if attn {
                    level
                        .attentions
                        .push(AttentionBlock::new(out_ch, c, vb.pp(format!("attentions.{j}")))?);
                }
            }
            if i + 1 < levels {
                level.resample = Some(Resample::down(
                    out_ch,
                    c.downsample_padding,
                    vb.pp("downsamplers.0.conv"),
                )?);
            }
            down.push(level);
        }
        Ok(down)
    }

    /// The decoder levels (`up_blocks.i`, deepest first): `layers_per_block + 1` ResNet
    /// blocks over the concatenated skips (with attention in an `AttnUpBlock2D`), then a
    /// nearest ×2 upsampling and convolution but at the last level.
    fn up_levels(c: &UnetConfig, temb: usize, vb: &VarBuilder) -> Result<Vec<Level>> {
        let rev: Vec<usize> = c.block_out_channels.iter().rev().copied().collect();
        let levels = rev.len();
        let mut up = Vec::with_capacity(levels);
        let mut out_ch = rev[0];
        for (i, kind) in c.up_block_types.iter().enumerate() {
            let attn = UnetConfig::has_attention(kind)?;
            let prev = out_ch;
            out_ch = rev[i];
            let in_ch = rev[(i + 1).min(levels - 1)];
            let vb = vb.pp(format!("up_blocks.{i}"));
            let mut level = Level {
                resnets: Vec::new(),
                attentions: Vec::new(),
                resample: None,
            };
            let layers = c.layers_per_block + 1;
            for j in 0..layers {
                let skip = if j + 1 == layers { in_ch } else { out_ch };
                let cin = if j == 0 { prev } else { out_ch };
                level.resnets.push(ResnetBlock::new(
                    cin + skip,
                    out_ch,
                    temb,
                    c,
                    vb.pp(format!("resnets.{j}")),
                )?);
                if attn {
                    level
                        .attentions
                        .push(AttentionBlock::new(out_ch, c, vb.pp(format!("attentions.{j}")))?);
                }
            }
            if i + 1 < levels {
                level.resample = Some(Resample::Up(Conv::same3(out_ch, out_ch, vb.pp("upsamplers.0.conv"))?));
            }
            up.push(level);
        }
        Ok(up)
    }

    /// The architecture.
    pub fn config(&self) -> &UnetConfig {
        &self.config
    }

    /// The forward pass: `x` is `[n, c, h, w]`, `t` one timestep per image.
    pub fn forward(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        let c = &self.config;
        let temb = timestep_embedding(
            embedded_timesteps(t),
            c.block_out_channels[0],
            c.flip_sin_to_cos,
            c.freq_shift,
            x.device(),
            x.dtype(),
        )?;
        let temb = self.time2.forward(&self.time1.forward(&temb)?.silu()?)?;
        let mut h = self.conv_in.forward(x)?;
        let mut skips = vec![h.clone()];
        for level in &self.down {
            for i in 0..level.resnets.len() {
                h = level.apply(i, &h, &temb)?;
                skips.push(h.clone());
            }
            if let Some(resample) = &level.resample {
                h = resample.forward(&h)?;
                skips.push(h.clone());
            }
        }
        h = self.mid.0.forward(&h, &temb)?;
        h = self.mid.1.forward(&h)?;
        h = self.mid.2.forward(&h, &temb)?;
        for level in &self.up {
            for i in 0..level.resnets.len() {
                let skip = skips
                    .pop()
                    .ok_or_else(|| Error::Shape("U-Net skip stack underflow".into()))?;
                h = level.apply(i, &Tensor::cat(&[&h, &skip], 1)?, &temb)?;
            }
            if let Some(resample) = &level.resample {
                h = resample.forward(&h)?;
            }
        }
        self.conv_out.forward(&self.conv_norm_out.forward(&h, true)?)
    }
}

impl EpsModel for Unet {
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        super::in_dtype(x, self.conv_in.weight().dtype(), |x| self.forward(x, t))
    }
}
