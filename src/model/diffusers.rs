//! Loading diffusers `UNet2DModel` checkpoints of the DDPM family, such as Ho et al.'s
//! CIFAR-10 model as published in diffusers format (`google/ddpm-cifar10-32` on the
//! Hugging Face hub): a folder holding `config.json` and
//! `diffusion_pytorch_model.safetensors`. Nothing is downloaded here.
//!
//! The configuration is read in diffusers' own vocabulary; every key that would change
//! the network away from what [`Unet`](super::Unet) computes is refused by name
//! ([`UnetConfig::from_diffusers`]). Weights are matched name by name against the
//! network ([`checkpoint::load_into`]), after renaming the legacy attention parameters
//! of older diffusers checkpoints ([`rename_legacy_attention`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde_json::{Map, Value};

use super::unet::UnetConfig;
use super::{checkpoint, Architecture, Network};
use crate::error::{Error, Result};

/// The configuration file of a diffusers model folder.
pub const CONFIG_FILE: &str = "config.json";
/// The weights file of a diffusers model folder.
pub const WEIGHTS_FILE: &str = "diffusion_pytorch_model.safetensors";

/// What to download into the model folder `dir` when its files are missing.
pub fn download_hint(dir: &Path) -> String {
    format!(
        "download `google/ddpm-cifar10-32` (or another DDPM-family UNet2DModel) from the Hugging Face hub: \
         its files {CONFIG_FILE} and {WEIGHTS_FILE} into {dir}, e.g. \
         `huggingface-cli download google/ddpm-cifar10-32 {CONFIG_FILE} {WEIGHTS_FILE} --local-dir {dir}`",
        dir = dir.display()
    )
}

/// The configuration and weights files of the diffusers model folder `dir`, or an
/// [`Error::Io`] naming what is missing and what to download ([`download_hint`]).
pub fn check_folder(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let missing = |path: &Path, what: &str| Error::file(path, format!("{what} not found; {}", download_hint(dir)));
    if !dir.is_dir() {
        return Err(missing(dir, "diffusers model folder"));
    }
    let config_path = dir.join(CONFIG_FILE);
    let weights_path = dir.join(WEIGHTS_FILE);
    for (path, what) in [(&config_path, "model configuration"), (&weights_path, "model weights")] {
        if !path.is_file() {
            return Err(missing(path, what));
        }
    }
    Ok((config_path, weights_path))
}

fn invalid(key: &str, value: &Value, supported: &str) -> Error {
    Error::invalid(
        format!("config.json: {key}"),
        format!("{value} is not supported; supported: {supported}"),
    )
}

/// Typed access to the keys of a diffusers `config.json`, each falling back to
/// `UNet2DModel.__init__`'s default when absent.
struct Keys<'a>(&'a Map<String, Value>);

impl Keys<'_> {
    fn get<'v>(&'v self, key: &str, default: &'v Value) -> &'v Value {
        self.0.get(key).unwrap_or(default)
    }

    fn usize(&self, key: &str, default: usize) -> Result<usize> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| invalid(key, v, "a non-negative integer")),
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.as_f64().ok_or_else(|| invalid(key, v, "a number")),
        }
    }

    fn bool(&self, key: &str, default: bool) -> Result<bool> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v.as_bool().ok_or_else(|| invalid(key, v, "true or false")),
        }
    }

    /// The value must be `expected` (absent means `default`).
    fn require(&self, key: &str, default: Value, expected: &[Value], supported: &str) -> Result<()> {
        let v = self.get(key, &default);
        if expected.contains(v) {
            Ok(())
        } else {
            Err(invalid(key, v, supported))
        }
    }

    fn strings(&self, key: &str, default: &[&str]) -> Result<Vec<String>> {
        let Some(v) = self.0.get(key) else {
            return Ok(default.iter().map(|s| s.to_string()).collect());
        };
        v.as_array()
            .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_string)).collect())
            .ok_or_else(|| invalid(key, v, "a list of block type names"))
    }

    fn usizes(&self, key: &str, default: &[usize]) -> Result<Vec<usize>> {
        let Some(v) = self.0.get(key) else {
            return Ok(default.to_vec());
        };
        v.as_array()
            .and_then(|a| a.iter().map(|n| n.as_u64().map(|n| n as usize)).collect())
            .ok_or_else(|| invalid(key, v, "a list of non-negative integers"))
    }
}

/// Every `UNet2DModel` config key this loader knows (diffusers 0.42); others are refused.
const KNOWN_KEYS: &[&str] = &[
    "sample_size",
    "in_channels",
    "out_channels",
    "center_input_sample",
    "time_embedding_type",
    "time_embedding_dim",
    "freq_shift",
    "flip_sin_to_cos",
    "down_block_types",
    "mid_block_type",
    "up_block_types",
    "block_out_channels",
    "layers_per_block",
    "mid_block_scale_factor",
    "downsample_padding",
    "downsample_type",
    "upsample_type",
    "dropout",
    "act_fn",
    "attention_head_dim",
    "norm_num_groups",
    "attn_norm_num_groups",
    "norm_eps",
    "resnet_time_scale_shift",
    "add_attention",
    "class_embed_type",
    "num_class_embeds",
    "num_train_timesteps",
];

impl UnetConfig {
    /// Reads a diffusers `UNet2DModel` `config.json` (its text) of the DDPM family:
    /// `DownBlock2D` / `AttnDownBlock2D` / `UpBlock2D` / `AttnUpBlock2D` levels,
    /// SiLU, positional (sinusoidal) time embedding, default ResNet time conditioning,
    /// mid-block attention, no class embedding. Absent keys take `UNet2DModel`'s
    /// defaults; keys starting with `_` (`_class_name`, `_diffusers_version`, …) are
    /// metadata; `dropout` and, for the positional embedding, `num_train_timesteps`
    /// do not affect inference and are ignored.
    ///
    /// Any other key, or a supported key with a value the network here cannot compute
    /// (e.g. `CrossAttnDownBlock2D`, `time_embedding_type: "fourier"`,
    /// `class_embed_type: "timestep"`), is an [`Error::Invalid`] naming the key, its
    /// value and what is supported.
    pub fn from_diffusers(config_json_text: &str) -> Result<UnetConfig> {
        let map = config_object(config_json_text)?;
        let k = Keys(&map);
        require_supported(&k, &map)?;
        let sample_size = match map.get("sample_size") {
            Some(v) => v
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| invalid("sample_size", v, "one integer (square images)"))?,
            None => {
                return Err(Error::invalid(
                    "config.json: sample_size",
                    "missing; the image side is needed",
                ))
            }
        };
        let (block_out_channels, down_block_types, up_block_types) = levels(&k)?;
        let norm_num_groups = norm_groups(&k, &map, &block_out_channels)?;
        let attention_head_dim = attention_head_dim(&map, &block_out_channels, &down_block_types, &up_block_types)?;
        let downsample_padding = k.usize("downsample_padding", 1)?;
        if downsample_padding > 1 {
            return Err(invalid("downsample_padding", &map["downsample_padding"], "0 or 1"));
        }
        let dropout = k.f64("dropout", 0.0)?;
        if !(0.0..1.0).contains(&dropout) {
            return Err(invalid("dropout", &map["dropout"], "a probability in [0, 1)"));
        }
        Ok(UnetConfig {
            sample_size,
            in_channels: k.usize("in_channels", 3)?,
            out_channels: k.usize("out_channels", 3)?,
            block_out_channels,
            down_block_types,
            up_block_types,
            layers_per_block: k.usize("layers_per_block", 2)?,
            norm_num_groups,
            norm_eps: k.f64("norm_eps", 1e-5)?,
            attention_head_dim,
            flip_sin_to_cos: k.bool("flip_sin_to_cos", true)?,
            freq_shift: k.f64("freq_shift", 0.0)?,
            downsample_padding,
        })
    }
}

/// The JSON object of `config.json`, refused when it holds a key the loader does not know.
fn config_object(config_json_text: &str) -> Result<serde_json::Map<String, Value>> {
    let value: Value = serde_json::from_str(config_json_text)
        .map_err(|e| Error::invalid("config.json", format!("not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(Error::invalid(
            "config.json",
            "expected a JSON object of UNet2DModel settings",
        ));
    };
    if let Some(key) = map
        .keys()
        .find(|k| !k.starts_with('_') && !KNOWN_KEYS.contains(&k.as_str()))
    {
        return Err(invalid(
            key,
            &map[key],
            "only the UNet2DModel keys of diffusers' DDPM family (this key is unknown to the loader)",
        ));
    }
    Ok(map)
}

/// Refuses every setting whose value the network here cannot compute (the class, the
/// embedding and block kinds, the activation, …), each with what is supported.
fn require_supported(k: &Keys, map: &serde_json::Map<String, Value>) -> Result<()> {
    if let Some(class) = map.get("_class_name") {
        if class != "UNet2DModel" {
            return Err(invalid("_class_name", class, "\"UNet2DModel\""));
        }
    }
    k.require("center_input_sample", false.into(), &[false.into()], "false")?;
    k.require(
        "time_embedding_type",
        "positional".into(),
        &["positional".into()],
        "\"positional\"",
    )?;
    k.require(
        "mid_block_type",
        "UNetMidBlock2D".into(),
        &["UNetMidBlock2D".into()],
        "\"UNetMidBlock2D\"",
    )?;
    k.require("downsample_type", "conv".into(), &["conv".into()], "\"conv\"")?;
    k.require("upsample_type", "conv".into(), &["conv".into()], "\"conv\"")?;
    k.require("act_fn", "silu".into(), &["silu".into(), "swish".into()], "\"silu\"")?;
    k.require(
        "resnet_time_scale_shift",
        "default".into(),
        &["default".into()],
        "\"default\"",
    )?;
    k.require(
        "add_attention",
        true.into(),
        &[true.into()],
        "true (mid-block attention)",
    )?;
    k.require(
        "class_embed_type",
        Value::Null,
        &[Value::Null],
        "null (no class embedding)",
    )?;
    k.require(
        "num_class_embeds",
        Value::Null,
        &[Value::Null],
        "null (no class embedding)",
    )?;
    let scale = k.f64("mid_block_scale_factor", 1.0)?;
    if scale != 1.0 {
        return Err(invalid("mid_block_scale_factor", &map["mid_block_scale_factor"], "1"));
    }

    Ok(())
}

/// `block_out_channels` and the down / up block types, one per level, of supported kinds.
fn levels(k: &Keys) -> Result<(Vec<usize>, Vec<String>, Vec<String>)> {
    let block_out_channels = k.usizes("block_out_channels", &[224, 448, 672, 896])?;
    if block_out_channels.is_empty() || block_out_channels.contains(&0) {
        return Err(invalid(
            "block_out_channels",
            &Value::from(block_out_channels),
            "one or more positive channel counts",
        ));
    }
    let down_block_types = k.strings(
        "down_block_types",
        &["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
    )?;
    let up_block_types = k.strings(
        "up_block_types",
        &["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
    )?;
    for (key, types, allowed) in [
        (
            "down_block_types",
            &down_block_types,
            ["DownBlock2D", "AttnDownBlock2D"],
        ),
        ("up_block_types", &up_block_types, ["UpBlock2D", "AttnUpBlock2D"]),
    ] {
        if let Some(bad) = types.iter().find(|t| !allowed.contains(&t.as_str())) {
            return Err(Error::invalid(
                format!("config.json: {key}"),
                format!("block type {bad:?} is not supported; supported: {}", allowed.join(", ")),
            ));
        }
        if types.len() != block_out_channels.len() {
            return Err(Error::invalid(
                format!("config.json: {key}"),
                format!(
                    "{} block types for {} block_out_channels; one per level is needed",
                    types.len(),
                    block_out_channels.len()
                ),
            ));
        }
    }
    Ok((block_out_channels, down_block_types, up_block_types))
}

/// `norm_num_groups`, which must divide every level's channels (and `time_embedding_dim`
/// and `attn_norm_num_groups`, which must be their defaults).
fn norm_groups(k: &Keys, map: &serde_json::Map<String, Value>, block_out_channels: &[usize]) -> Result<usize> {
    let temb = block_out_channels[0] * 4;
    k.require(
        "time_embedding_dim",
        Value::Null,
        &[Value::Null, Value::from(temb)],
        &format!("null or {temb} (4 × block_out_channels[0])"),
    )?;
    let norm_num_groups = k.usize("norm_num_groups", 32)?;
    k.require(
        "attn_norm_num_groups",
        Value::Null,
        &[Value::Null, Value::from(norm_num_groups)],
        &format!("null or {norm_num_groups} (norm_num_groups)"),
    )?;
    if let Some(c) = block_out_channels
        .iter()
        .find(|c| norm_num_groups == 0 || **c % norm_num_groups != 0)
    {
        return Err(invalid(
            "norm_num_groups",
            &map.get("norm_num_groups").cloned().unwrap_or(32.into()),
            &format!("a group count that divides every block_out_channels entry ({c} does not)"),
        ));
    }
    Ok(norm_num_groups)
}

/// `attention_head_dim` (default 8; null: one head), which must divide the channels of
/// every attended level.
fn attention_head_dim(
    map: &serde_json::Map<String, Value>,
    block_out_channels: &[usize],
    down_block_types: &[String],
    up_block_types: &[String],
) -> Result<Option<usize>> {
    let attention_head_dim = match map.get("attention_head_dim") {
        None => Some(8),
        Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .filter(|d| *d > 0)
                .map(|d| d as usize)
                .ok_or_else(|| invalid("attention_head_dim", v, "null (one head) or a positive integer"))?,
        ),
    };
    if let Some(d) = attention_head_dim {
        let levels = block_out_channels.len();
        let attended = (0..levels)
            .filter(|i| down_block_types[*i] == "AttnDownBlock2D" || up_block_types[levels - 1 - *i] == "AttnUpBlock2D")
            .map(|i| block_out_channels[i])
            .chain([block_out_channels[levels - 1]]);
        for c in attended {
            if c % d != 0 {
                return Err(invalid(
                    "attention_head_dim",
                    &Value::from(d),
                    &format!("null or a head size that divides the {c} channels attended to"),
                ));
            }
        }
    }
    Ok(attention_head_dim)
}

/// Renames the attention parameters of older diffusers checkpoints to the current
/// names, as diffusers' `_convert_deprecated_attention_blocks` does:
/// `…attentions.N.{query,key,value,proj_attn}.{weight,bias}` become
/// `…attentions.N.{to_q,to_k,to_v,to_out.0}.…`. Attention weights stored as 1×1
/// convolutions, `[c, c, 1, 1]`, are reshaped to linear weights `[c, c]`. Other
/// names pass unchanged.
pub fn rename_legacy_attention(tensors: HashMap<String, Tensor>) -> Result<HashMap<String, Tensor>> {
    tensors
        .into_iter()
        .map(|(name, tensor)| {
            let parts: Vec<&str> = name.split('.').collect();
            let n = parts.len();
            let in_attention = n >= 4 && parts[n - 4] == "attentions";
            let new = match (in_attention, parts.get(n.wrapping_sub(2)).copied()) {
                (true, Some("query")) => Some("to_q"),
                (true, Some("key")) => Some("to_k"),
                (true, Some("value")) => Some("to_v"),
                (true, Some("proj_attn")) => Some("to_out.0"),
                _ => None,
            };
            let is_projection = matches!(parts.get(n.wrapping_sub(2)).copied(), Some("to_q" | "to_k" | "to_v"))
                || (n >= 3 && parts[n - 3] == "to_out" && parts[n - 2] == "0");
            let name = match new {
                Some(to) => format!("{}.{to}.{}", parts[..n - 2].join("."), parts[n - 1]),
                None => name,
            };
            let tensor = match tensor.dims() {
                [o, i, 1, 1] if new.is_some() || is_projection => tensor.reshape((*o, *i))?,
                _ => tensor,
            };
            Ok((name, tensor))
        })
        .collect()
}

/// Loads a diffusers `UNet2DModel` folder of the DDPM family: `dir/config.json`
/// ([`UnetConfig::from_diffusers`]) and `dir/diffusion_pytorch_model.safetensors`
/// (float32, float16 or bfloat16, converted to [`MODEL_DTYPE`](super::MODEL_DTYPE);
/// legacy attention names renamed by [`rename_legacy_attention`]). The weights must
/// fit the network exactly; otherwise the error lists every missing, unexpected and
/// differently shaped tensor. A missing folder or file is an [`Error::Io`] naming the
/// path and what to download.
pub fn load_diffusers(dir: &Path, device: &Device) -> Result<(UnetConfig, Network)> {
    let (config_path, weights_path) = check_folder(dir)?;
    let text = std::fs::read_to_string(&config_path).map_err(|e| Error::io(&config_path, e))?;
    let config = UnetConfig::from_diffusers(&text).map_err(|e| match e {
        Error::Invalid { field, message } => Error::Invalid {
            field: format!("{}: {field}", dir.display()),
            message,
        },
        other => other,
    })?;
    let net = Network::new(&Architecture::Unet { config: config.clone() }, 0, device)?;
    let tensors = rename_legacy_attention(checkpoint::read(&weights_path, device)?)?;
    checkpoint::load_into(&net.varmap, &tensors, &weights_path.display().to_string())?;
    Ok((config, net))
}
