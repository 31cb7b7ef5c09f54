//! The experiment YAML: parsing with file/line/column and field-path errors, defaults,
//! and validation before any work starts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::{DataKind, DataSpec};
use crate::error::{Error, Result};
use crate::model::{Architecture, MlpConfig, UnetConfig, UnetSpec};
use crate::schedule::{BetaSchedule, Schedule};
use crate::shape::DataShape;
use crate::train::TrainSpec;

use super::sweep::{default_metrics, MetricKind, SweepSpec};

/// One experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Results go to `results/<name>/`; letters, digits, `_` and `-` only.
    pub name: String,
    /// The one seed of the experiment.
    #[serde(default)]
    pub seed: u64,
    /// `auto`, `cpu`, `cuda` or `cuda:N`.
    #[serde(default = "default_device")]
    pub device: String,
    /// The data set.
    pub data: DataSpec,
    /// The ε-model.
    pub model: ModelSpec,
    /// The forward process.
    #[serde(default)]
    pub schedule: ScheduleSpec,
    /// The sampler settings to run (τ kind × η × S × clip).
    #[serde(default)]
    pub sweep: SweepSpec,
    /// What to measure at each point.
    #[serde(default = "default_metrics")]
    pub metrics: Vec<MetricKind>,
}

fn default_device() -> String {
    "auto".into()
}

crate::named_enum! {
    /// The kinds of ε-model.
    pub enum ModelKind {
        /// The exact ε*: of the data's Gaussian mixture (gaussian_mixture, grid25), or of the
        /// training split smoothed by N(0, std²) (any other data set with a training split).
        Oracle = "oracle",
        /// A residual MLP.
        Mlp = "mlp",
        /// A DDPM-style U-Net.
        Unet = "unet",
    }
}

/// The `model:` block: the kind, its architecture keys, and `train:` or `checkpoint:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// oracle | mlp | unet.
    pub kind: ModelKind,
    /// oracle on a data set that is not a Gaussian mixture: the kernel width h of the
    /// smoothed training set (default [`DEFAULT_EMPIRICAL_STD`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// mlp: hidden width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden: Option<usize>,
    /// mlp: residual blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<usize>,
    /// mlp: time-embedding width.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_dim: Option<usize>,
    /// mlp: LayerNorm on or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_norm: Option<bool>,
    /// unet: channels of the first level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_channels: Option<usize>,
    /// unet: channel multiplier per level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_mult: Option<Vec<usize>>,
    /// unet: ResNet blocks per level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers_per_block: Option<usize>,
    /// unet: spatial sizes with self-attention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_resolutions: Option<Vec<usize>>,
    /// unet: GroupNorm groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub norm_groups: Option<usize>,
    /// unet: channels per attention head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_head_dim: Option<usize>,
    /// How to train it (mlp / unet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub train: Option<TrainSpec>,
    /// A checkpoint to load instead of training (mlp / unet): a `.safetensors` file of
    /// `ddimlab train`, or (unet) a diffusers `UNet2DModel` folder holding `config.json`
    /// and `diffusion_pytorch_model.safetensors`, whose config.json is the architecture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
}

/// The default kernel width h of the empirical oracle, on the [−1, 1] data scale: a
/// tenth of the range, about 1.6 grey levels of the 8×8 digits (whose 17 levels are
/// 0.125 apart). Much smaller than the distance between training digits (median nearest
/// neighbour ≈ 4.5 in 64 dimensions), so samples still look like digits, yet large
/// enough that the target is a smooth density and not the training set itself (h = 0
/// memorises: every sample lands on a training point).
pub const DEFAULT_EMPIRICAL_STD: f64 = 0.2;

/// The widest MLP layer or time embedding accepted.
const MAX_WIDTH: usize = 1 << 16;
/// The most MLP blocks or U-Net layers per block accepted.
const MAX_DEPTH: usize = 256;
/// The most channels of a U-Net level accepted (the CIFAR-10 DDPM U-Net has 256).
const MAX_CHANNELS: usize = 8192;

/// Which exact ε* an `oracle` model is.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OracleKind {
    /// The data's own Gaussian mixture.
    Mixture,
    /// The training split smoothed by N(0, std² I).
    Empirical {
        /// The kernel width h.
        std: f64,
    },
}

const MLP_KEYS: [&str; 4] = ["hidden", "blocks", "time_dim", "layer_norm"];
const UNET_KEYS: [&str; 6] = [
    "base_channels",
    "channel_mult",
    "layers_per_block",
    "attention_resolutions",
    "norm_groups",
    "attention_head_dim",
];

impl ModelSpec {
    fn present(&self) -> Vec<&'static str> {
        let keys = [
            ("std", self.std.is_some()),
            ("hidden", self.hidden.is_some()),
            ("blocks", self.blocks.is_some()),
            ("time_dim", self.time_dim.is_some()),
            ("layer_norm", self.layer_norm.is_some()),
            ("base_channels", self.base_channels.is_some()),
            ("channel_mult", self.channel_mult.is_some()),
            ("layers_per_block", self.layers_per_block.is_some()),
            ("attention_resolutions", self.attention_resolutions.is_some()),
            ("norm_groups", self.norm_groups.is_some()),
            ("attention_head_dim", self.attention_head_dim.is_some()),
            ("train", self.train.is_some()),
            ("checkpoint", self.checkpoint.is_some()),
        ];
        keys.iter().filter(|(_, p)| *p).map(|(k, _)| *k).collect()
    }

    /// The diffusers model folder named by `checkpoint:`: any path that does not end in
    /// `.safetensors` (decided from the name alone, so parsing needs no files).
    pub fn diffusers_dir(&self) -> Option<&Path> {
        self.checkpoint
            .as_deref()
            .filter(|p| p.extension().is_none_or(|e| e != "safetensors"))
    }

    /// The trainable architecture for data of `shape` (`None` for the oracle and for a
    /// diffusers folder, whose architecture is its config.json), after checking that
    /// every key fits the kind.
    pub fn architecture(&self, shape: DataShape) -> Result<Option<Architecture>> {
        if let Some(dir) = self.diffusers_dir() {
            self.check_diffusers_folder(dir)?;
            return Ok(None);
        }
        self.check_keys()?;
        if let Some(train) = &self.train {
            train.validate()?;
        }
        Ok(match self.kind {
            ModelKind::Oracle => None,
            ModelKind::Mlp => Some(Architecture::Mlp {
                shape,
                config: self.mlp_config()?,
            }),
            ModelKind::Unet => Some(Architecture::Unet {
                config: UnetConfig::from_spec(&self.unet_spec()?, shape)?,
            }),
        })
    }

    /// A diffusers folder is a U-Net whose every setting comes from its config.json.
    fn check_diffusers_folder(&self, dir: &Path) -> Result<()> {
        if self.kind != ModelKind::Unet {
            return Err(invalid(
                "checkpoint",
                format!(
                    "{} is read as a diffusers UNet2DModel folder, which needs kind unet \
                     (a checkpoint file of ddimlab ends in .safetensors)",
                    dir.display()
                ),
            ));
        }
        if let Some(key) = self.present().into_iter().find(|k| *k != "checkpoint") {
            return Err(invalid(
                key,
                format!(
                    "not allowed with a diffusers checkpoint folder: the architecture comes from {}; \
                     remove `{key}`",
                    dir.join(crate::model::diffusers::CONFIG_FILE).display()
                ),
            ));
        }
        Ok(())
    }

    /// Every key given is one of the kind's, and a trained kind says how it gets weights.
    fn check_keys(&self) -> Result<()> {
        let allowed: Vec<&str> = match self.kind {
            ModelKind::Oracle => vec!["std"],
            ModelKind::Mlp => MLP_KEYS.iter().chain(&["train", "checkpoint"]).copied().collect(),
            ModelKind::Unet => UNET_KEYS.iter().chain(&["train", "checkpoint"]).copied().collect(),
        };
        if let Some(key) = self.present().into_iter().find(|k| !allowed.contains(k)) {
            let kind = self.kind;
            let keys = allowed.join(", ");
            return Err(invalid(key, format!("not used by kind {kind}; its keys are: {keys}")));
        }
        if self.kind != ModelKind::Oracle && self.train.is_none() && self.checkpoint.is_none() {
            return Err(invalid(
                "train",
                "a trained model needs `train:` (how to train it) or `checkpoint:` (a file)".into(),
            ));
        }
        Ok(())
    }

    /// The MLP of the keys given (defaults for the others), within the sizes built here.
    fn mlp_config(&self) -> Result<MlpConfig> {
        let d = MlpConfig::default();
        let config = MlpConfig {
            hidden: self.hidden.unwrap_or(d.hidden),
            blocks: self.blocks.unwrap_or(d.blocks),
            time_dim: self.time_dim.unwrap_or(d.time_dim),
            layer_norm: self.layer_norm.unwrap_or(d.layer_norm),
        };
        for (key, v, max) in [
            ("hidden", config.hidden, MAX_WIDTH),
            ("time_dim", config.time_dim, MAX_WIDTH),
            ("blocks", config.blocks, MAX_DEPTH),
        ] {
            if v > max {
                return Err(invalid(
                    key,
                    format!("{v}: at most {max} (a network this size cannot be built here)"),
                ));
            }
        }
        if config.hidden < 2 {
            return Err(invalid("hidden", format!("{}: must be at least 2", config.hidden)));
        }
        // The sinusoidal embedding pairs sin and cos over d/2 frequencies spaced by
        // 1/(d/2 − 1): d must be even and at least 4.
        if config.time_dim < 4 || !config.time_dim.is_multiple_of(2) {
            return Err(invalid(
                "time_dim",
                format!(
                    "{}: the time embedding needs an even width of at least 4",
                    config.time_dim
                ),
            ));
        }
        Ok(config)
    }

    /// The U-Net of the keys given (defaults for the others), within the sizes built here.
    fn unet_spec(&self) -> Result<UnetSpec> {
        let d = UnetSpec::default();
        let spec = UnetSpec {
            base_channels: self.base_channels.unwrap_or(d.base_channels),
            channel_mult: self.channel_mult.clone().unwrap_or(d.channel_mult),
            layers_per_block: self.layers_per_block.unwrap_or(d.layers_per_block),
            attention_resolutions: self.attention_resolutions.clone().unwrap_or(d.attention_resolutions),
            norm_groups: self.norm_groups.unwrap_or(d.norm_groups),
            attention_head_dim: self.attention_head_dim.or(d.attention_head_dim),
        };
        if spec.layers_per_block == 0 {
            return Err(invalid("layers_per_block", "must be at least 1".into()));
        }
        if spec.layers_per_block > MAX_DEPTH {
            return Err(invalid(
                "layers_per_block",
                format!("{}: at most {MAX_DEPTH}", spec.layers_per_block),
            ));
        }
        let widest = spec
            .channel_mult
            .iter()
            .map(|m| m.saturating_mul(spec.base_channels))
            .max()
            .unwrap_or(0);
        if widest > MAX_CHANNELS {
            return Err(invalid(
                "base_channels",
                format!(
                    "{} × channel_mult gives {widest} channels: at most {MAX_CHANNELS} (a network this size cannot be built here)",
                    spec.base_channels
                ),
            ));
        }
        Ok(spec)
    }
}

/// An invalid `model.<field>`.
fn invalid(field: &str, message: String) -> Error {
    Error::invalid(format!("model.{field}"), message)
}

/// The `schedule:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// linear | quadratic | cosine.
    #[serde(default = "default_kind")]
    pub kind: BetaSchedule,
    /// T.
    #[serde(default = "default_timesteps")]
    pub timesteps: usize,
    /// β_0 (linear, quadratic).
    #[serde(default = "default_beta_start")]
    pub beta_start: f64,
    /// β_{T−1} (linear, quadratic).
    #[serde(default = "default_beta_end")]
    pub beta_end: f64,
}

fn default_kind() -> BetaSchedule {
    BetaSchedule::Linear
}
fn default_timesteps() -> usize {
    1000
}
fn default_beta_start() -> f64 {
    1e-4
}
fn default_beta_end() -> f64 {
    0.02
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        Self {
            kind: default_kind(),
            timesteps: default_timesteps(),
            beta_start: default_beta_start(),
            beta_end: default_beta_end(),
        }
    }
}

impl ScheduleSpec {
    /// The schedule, or an error naming the field.
    pub fn build(&self) -> Result<Schedule> {
        Schedule::new(self.kind, self.timesteps, self.beta_start, self.beta_end)
            .map_err(|e| Error::invalid("schedule", e))
    }
}

impl ExperimentConfig {
    /// Parses and validates `text` (the contents of `file`, used in messages).
    pub fn parse(text: &str, file: &Path) -> Result<Self> {
        if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            return Err(Error::Config {
                message: format!(
                    "{}: the file is empty: an experiment needs at least `name`, `data` and `model` \
                     (see experiments/*.yaml)",
                    file.display()
                ),
            });
        }
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let config: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let loc = inner
                .location()
                .map(|l| format!("{}:{}: ", l.line(), l.column()))
                .unwrap_or_default();
            let message = strip_location(&inner.to_string());
            let field = if path == "." {
                String::new()
            } else {
                format!("{path}: ")
            };
            Error::Config {
                message: format!("{}:{loc}{field}{message}", file.display()),
            }
        })?;
        config.validate().map_err(|e| locate_error(e, text, file))?;
        Ok(config)
    }

    /// Reads, parses and validates an experiment file.
    pub fn load(file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(file).map_err(|e| Error::io(file, e))?;
        Self::parse(&text, file)
    }

    /// Checks every value and combination (no data is generated, nothing is trained).
    pub fn validate(&self) -> Result<()> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::invalid(
                "name",
                format!(
                    "{:?}: use letters, digits, `_` and `-` (it names the results folder)",
                    self.name
                ),
            ));
        }
        crate::device::parse(&self.device)?;
        self.schedule.build()?;
        self.sweep.validate(self.schedule.timesteps)?;
        if self.metrics.is_empty() {
            return Err(Error::invalid(
                "metrics",
                "list at least one of reconstruction, consistency, sample_stats",
            ));
        }
        self.data.validate()?;
        self.architecture()?;
        if self.model.train.is_some() && self.data.kind == DataKind::Images {
            return Err(Error::invalid(
                "model.train",
                "data kind images has no training split (every image is held out); \
                          load a trained model with `checkpoint:` instead",
            ));
        }
        if !self.sweep.export.is_empty() && matches!(self.data_shape()?, DataShape::Vector(_)) {
            return Err(Error::invalid(
                "sweep.export",
                format!(
                    "exports are images; data kind {} is vector data: remove `export`",
                    self.data.kind
                ),
            ));
        }
        self.oracle_kind()?;
        super::resources::check_memory(self)?;
        Ok(())
    }

    /// Which oracle `model.kind: oracle` is (`None` for trained models), after checking
    /// that it fits the data: the mixture's own for mixture data (no `std`), the smoothed
    /// training split otherwise (which needs a training split).
    pub fn oracle_kind(&self) -> Result<Option<OracleKind>> {
        if self.model.kind != ModelKind::Oracle {
            return Ok(None);
        }
        let invalid = |field: &str, message: String| Error::Invalid {
            field: field.into(),
            message,
        };
        if self.data.mixture()?.is_some() {
            if self.model.std.is_some() {
                return Err(invalid(
                    "model.std",
                    "the data are a Gaussian mixture, whose own std the oracle uses: remove `model.std` \
                     (it is the kernel width of the empirical oracle of other data sets)"
                        .into(),
                ));
            }
            return Ok(Some(OracleKind::Mixture));
        }
        if self.data.kind == DataKind::Images {
            return Err(invalid(
                "model.kind",
                "oracle needs a training split (its ε* is that of the smoothed training set); \
                 data kind images has none: use mlp or unet with a checkpoint"
                    .into(),
            ));
        }
        let std = self.model.std.unwrap_or(DEFAULT_EMPIRICAL_STD);
        if !(std.is_finite() && std >= 0.0) {
            return Err(invalid(
                "model.std",
                format!("{std}: the kernel width must be finite and at least 0 (0: the training set itself)"),
            ));
        }
        Ok(Some(OracleKind::Empirical { std }))
    }

    /// The shape of one data point (without generating the data).
    pub fn data_shape(&self) -> Result<DataShape> {
        self.data.shape()
    }

    /// Sets `model.checkpoint` to `checkpoint` (the `--checkpoint` flag) and validates the
    /// result again.
    pub fn override_checkpoint(&mut self, checkpoint: PathBuf) -> Result<()> {
        self.model.checkpoint = Some(checkpoint);
        self.validate().map_err(|e| Error::Config {
            message: format!("with --checkpoint: {e}"),
        })
    }

    /// The trainable architecture (`None` for the oracle).
    pub fn architecture(&self) -> Result<Option<Architecture>> {
        self.model.architecture(self.data_shape()?)
    }

    /// The resolved experiment as YAML (every default filled in where the schema has one).
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(self).expect("configs serialise")
    }
}

/// serde_yaml_ng writes "path: message at line L column C"; the path and location are
/// already in front, so keep the message only.
fn strip_location(message: &str) -> String {
    let message = message.find(" at line ").map_or(message, |i| &message[..i]);
    match message.split_once(": ") {
        Some((head, rest)) if !head.contains(' ') => rest.to_string(),
        _ => message.to_string(),
    }
}

/// Adds `file:line:col` to a validation error by finding its field path in the YAML text.
fn locate_error(e: Error, text: &str, file: &Path) -> Error {
    match e {
        Error::Invalid { field, message } => {
            let loc = locate(text, &field)
                .map(|(l, c)| format!("{l}:{c}: "))
                .unwrap_or_default();
            Error::Config {
                message: format!("{}:{loc}{field}: {message}", file.display()),
            }
        }
        other => Error::Config {
            message: format!("{}: {other}", file.display()),
        },
    }
}

/// The 1-based (line, column) of the key at dotted `path` in block-style YAML, or of
/// its deepest ancestor that is present.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let mut found = None;
    let mut min_indent = 0usize;
    let mut from = 0usize;
    let lines: Vec<&str> = text.lines().collect();
    for key in path.split('.').filter(|k| !k.is_empty()) {
        let key = key.split('[').next().unwrap_or(key);
        let hit = lines.iter().enumerate().skip(from).find_map(|(i, line)| {
            let body = line.trim_start();
            let indent = line.len() - body.len();
            if body.starts_with('#') || body.is_empty() {
                return None;
            }
            if i > from && indent < min_indent {
                return Some(None); // left the parent block
            }
            let body = body.strip_prefix("- ").unwrap_or(body);
            (body.starts_with(&format!("{key}:")) && indent >= min_indent).then_some(Some((i, indent)))
        });
        match hit.flatten() {
            Some((i, indent)) => {
                found = Some((i + 1, indent + 1));
                from = i + 1;
                min_indent = indent + 1;
            }
            None => break,
        }
    }
    found
}
