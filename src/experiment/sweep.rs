//! The `sweep:` and `metrics:` blocks of an experiment: which sampler settings to run
//! (τ kind × sampler × η × S, paper Tables 1–2) and what to measure at each.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::sampler::{Churn, Eta, SamplerKind};
use crate::schedule::{Spacing, TauKind, KARRAS_RHO};
use crate::store::export::ExportFormat;

/// One η of the sweep as written in YAML: a number in [0, 1] or `sigma_hat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtaSpec(pub Eta);

impl EtaSpec {
    /// The label used in tables, file names and HDF5 attributes ("0.0", "sigma_hat").
    pub fn label(&self) -> String {
        self.0.to_string()
    }
}

impl fmt::Display for EtaSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for EtaSpec {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            Eta::Value(v) => s.serialize_f64(v),
            Eta::SigmaHat => s.serialize_str("sigma_hat"),
        }
    }
}

impl<'de> Deserialize<'de> for EtaSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Name(String),
        }
        match Raw::deserialize(d)
            .map_err(|_| serde::de::Error::custom("expected a number in [0, 1] or the string `sigma_hat`"))?
        {
            Raw::Number(v) => Eta::new(v)
                .map(EtaSpec)
                .map_err(|_| serde::de::Error::custom(format!("eta {v} is outside [0, 1] (or use `sigma_hat`)"))),
            Raw::Name(s) if s == "sigma_hat" => Ok(EtaSpec(Eta::SigmaHat)),
            Raw::Name(s) => Err(serde::de::Error::custom(format!(
                "unknown eta {s:?}: expected a number in [0, 1] or `sigma_hat`"
            ))),
        }
    }
}

crate::named_enum! {
    /// What a sweep measures at each point.
    pub enum MetricKind {
        /// Held-out x_0 → encode with S steps → decode with S steps (paper Table 2).
        Reconstruction = "reconstruction",
        /// x_0 at S steps vs x_0 of the reference run from the same x_T (paper §5.3).
        Consistency = "consistency",
        /// Generated vs held-out data: Fréchet, MMD², sliced Wasserstein, and per data kind
        /// classifier-feature Fréchet, label coverage or mixture mass error (Table 1's role).
        SampleStats = "sample_stats",
    }
}

/// `clip_x0`: one setting, or a list of settings to ablate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClipSpec {
    /// One setting for every point.
    One(bool),
    /// Every listed setting is a sweep axis.
    Each(Vec<bool>),
}

impl ClipSpec {
    /// The settings swept, in order, without repeats.
    pub fn values(&self) -> Vec<bool> {
        match self {
            ClipSpec::One(b) => vec![*b],
            ClipSpec::Each(v) => {
                let mut out = Vec::new();
                for b in v {
                    if !out.contains(b) {
                        out.push(*b);
                    }
                }
                out
            }
        }
    }
}

/// The `sweep:` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepSpec {
    /// S values (1 ≤ S ≤ T).
    #[serde(default = "default_steps")]
    pub steps: Vec<usize>,
    /// η values: numbers in [0, 1] and/or `sigma_hat`.
    #[serde(default = "default_eta")]
    pub eta: Vec<EtaSpec>,
    /// Solvers: ddim | plms | ipndm | dpmpp_2m | dpmpp_3m | dpmpp_2m_sde | unipc | unipc3 |
    /// euler | heun. η and `clip_x0` are DDIM's axes; the other solvers run once per
    /// (τ kind, S), unclipped.
    #[serde(default = "default_samplers", skip_serializing_if = "Vec::is_empty")]
    pub samplers: Vec<SamplerKind>,
    /// τ kinds: linear | quadratic | trailing | uniform | logsnr | karras | custom.
    #[serde(default = "default_tau")]
    pub tau: Vec<TauKind>,
    /// ρ of the `karras` τ kind (Karras et al. 2022 use 7).
    #[serde(default = "default_rho", skip_serializing_if = "is_default_rho")]
    pub karras_rho: f64,
    /// The timesteps of the `custom` τ kind (its S is their number; `steps` does not apply).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_timesteps: Vec<usize>,
    /// EDM's churn for `euler` and `heun` (S_churn, S_tmin, S_tmax, S_noise); none: deterministic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churn: Option<Churn>,
    /// DPM-Solver++(2M): first order on a step whose r = h_{i−1}/h is below this (none:
    /// diffusers' rule). Fixes its step onto t = 0 on linear and uniform τ.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpmpp_min_r: Option<f64>,
    /// Equal-NFE points for the report's low-NFE section (none: no section).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_nfe: Option<LowNfe>,
    /// Clip x̂_0 to [−1, 1]: a bool, or a list to ablate.
    #[serde(default = "default_clip")]
    pub clip_x0: ClipSpec,
    /// Samples generated per point (all points share the same x_T).
    #[serde(default = "default_samples")]
    pub samples: usize,
    /// Samples per model call.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Held-out points encoded and decoded for the reconstruction error
    /// (default: all held-out points, at most `samples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconstruction_samples: Option<usize>,
    /// S of the consistency reference (linear τ, η = 0); default: the largest swept S.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_steps: Option<usize>,
    /// Samples whose whole trajectory is stored in samples.h5 (0: none).
    #[serde(default)]
    pub trajectory_samples: usize,
    /// Random directions of the sliced Wasserstein distance.
    #[serde(default = "default_projections")]
    pub projections: usize,
    /// Sample files to write per point under `exports/` (image data only; default none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export: Vec<ExportFormat>,
    /// Bootstrap replicates behind each sample-quality metric's 95 % interval (0: none).
    #[serde(default = "default_bootstrap")]
    pub bootstrap: usize,
    /// Single points outside the grid (each τ kind, no clipping), e.g. η = 1 at S = 1000
    /// without paying for every η at S = 1000.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<ExtraPoint>,
}

/// `sweep.low_nfe`: for every τ kind and solver listed, the largest S whose pass makes
/// at most each target's model evaluations (DDIM at η = 0, unclipped). Only points: η,
/// clipping and the S grid do not apply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LowNfe {
    /// The NFE targets, e.g. [5, 10, 20].
    pub nfe: Vec<usize>,
    /// τ kinds (default: `sweep.tau`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tau: Vec<TauKind>,
    /// Solvers (default: `sweep.samplers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub samplers: Vec<SamplerKind>,
}

/// One point outside the sweep grid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraPoint {
    /// S.
    pub steps: usize,
    /// η or `sigma_hat`.
    pub eta: EtaSpec,
}

fn default_bootstrap() -> usize {
    200
}

fn default_steps() -> Vec<usize> {
    vec![10, 20, 50, 100, 1000]
}
fn default_eta() -> Vec<EtaSpec> {
    [0.0, 0.2, 0.5, 1.0]
        .into_iter()
        .map(|v| EtaSpec(Eta::Value(v)))
        .chain([EtaSpec(Eta::SigmaHat)])
        .collect()
}
fn default_samplers() -> Vec<SamplerKind> {
    vec![SamplerKind::Ddim]
}
fn default_rho() -> f64 {
    KARRAS_RHO
}
fn is_default_rho(rho: &f64) -> bool {
    *rho == KARRAS_RHO
}
fn default_tau() -> Vec<TauKind> {
    vec![TauKind::Linear, TauKind::Quadratic]
}
fn default_clip() -> ClipSpec {
    ClipSpec::One(false)
}
fn default_samples() -> usize {
    2000
}
fn default_batch_size() -> usize {
    500
}
fn default_projections() -> usize {
    32
}

/// The default `metrics:` list: all three families.
pub fn default_metrics() -> Vec<MetricKind> {
    vec![
        MetricKind::Reconstruction,
        MetricKind::Consistency,
        MetricKind::SampleStats,
    ]
}

impl Default for SweepSpec {
    fn default() -> Self {
        Self {
            steps: default_steps(),
            eta: default_eta(),
            samplers: default_samplers(),
            tau: default_tau(),
            karras_rho: default_rho(),
            custom_timesteps: Vec::new(),
            churn: None,
            dpmpp_min_r: None,
            low_nfe: None,
            clip_x0: default_clip(),
            samples: default_samples(),
            batch_size: default_batch_size(),
            reconstruction_samples: None,
            reference_steps: None,
            trajectory_samples: 0,
            projections: default_projections(),
            export: Vec::new(),
            bootstrap: default_bootstrap(),
            extra: Vec::new(),
        }
    }
}

fn invalid(field: &str, message: String) -> Error {
    Error::invalid(format!("sweep.{field}"), message)
}

impl SweepSpec {
    /// Checks every value against the forward process of `timesteps` steps.
    pub fn validate(&self, timesteps: usize) -> Result<()> {
        self.validate_lists()?;
        self.validate_steps(timesteps)?;
        self.validate_spacing_and_solvers(timesteps)?;
        self.validate_sizes()
    }

    /// The lists: none empty, none with a value twice, DDIM among the samplers.
    fn validate_lists(&self) -> Result<()> {
        for (field, empty) in [
            ("steps", self.steps.is_empty()),
            ("eta", self.eta.is_empty()),
            ("tau", self.tau.is_empty()),
            ("samplers", self.samplers.is_empty()),
            ("clip_x0", self.clip_x0.values().is_empty()),
        ] {
            if empty {
                return Err(invalid(field, "must list at least one value".into()));
            }
        }
        if !self.samplers.contains(&SamplerKind::Ddim) {
            return Err(invalid(
                "samplers",
                "must include ddim: the consistency reference and the reconstruction are DDIM's, and the other \
                 solvers are compared with it"
                    .into(),
            ));
        }
        for (field, list_len, distinct) in [
            ("steps", self.steps.len(), dedup_len(&self.steps)),
            ("tau", self.tau.len(), dedup_len(&self.tau)),
            ("samplers", self.samplers.len(), dedup_len(&self.samplers)),
            ("export", self.export.len(), dedup_len(&self.export)),
            (
                "eta",
                self.eta.len(),
                dedup_len(&self.eta.iter().map(EtaSpec::label).collect::<Vec<_>>()),
            ),
        ] {
            if distinct != list_len {
                return Err(invalid(field, "lists a value twice".into()));
            }
        }
        Ok(())
    }

    /// Every S (the sweep's, the extra points', the reference's) within 1..=T.
    fn validate_steps(&self, timesteps: usize) -> Result<()> {
        let fields = self.steps.iter().enumerate().map(|(i, &s)| (format!("steps[{i}]"), s));
        let extra = self
            .extra
            .iter()
            .enumerate()
            .map(|(i, e)| (format!("extra[{i}].steps"), e.steps));
        let reference = self.reference_steps.map(|s| ("reference_steps".to_string(), s));
        for (field, s) in fields.chain(extra).chain(reference) {
            if s == 0 || s > timesteps {
                return Err(invalid(
                    &field,
                    format!("S = {s} is outside the allowed range 1..={timesteps} (schedule.timesteps)"),
                ));
            }
        }
        Ok(())
    }

    /// The sizes: samples, batches, projections, replicates, reconstruction and trajectory rows.
    fn validate_sizes(&self) -> Result<()> {
        for (field, v) in [
            ("samples", self.samples),
            ("batch_size", self.batch_size),
            ("projections", self.projections),
            ("reconstruction_samples", self.reconstruction_samples.unwrap_or(1)),
        ] {
            if v == 0 {
                return Err(invalid(field, "must be at least 1".into()));
            }
        }
        if self.samples < 2 {
            return Err(invalid(
                "samples",
                "must be at least 2 (sample statistics fit covariances)".into(),
            ));
        }
        if self.bootstrap == 1 {
            return Err(invalid(
                "bootstrap",
                "1 replicate gives no interval: use at least 2 (200 is the default), or 0 for none".into(),
            ));
        }
        if self.trajectory_samples > self.samples {
            return Err(invalid(
                "trajectory_samples",
                format!(
                    "{} is more than sweep.samples = {}",
                    self.trajectory_samples, self.samples
                ),
            ));
        }
        Ok(())
    }

    /// The τ kinds' settings (ρ, the custom list), their churn, and the equal-NFE targets.
    fn validate_spacing_and_solvers(&self, timesteps: usize) -> Result<()> {
        let custom = self.tau.contains(&TauKind::Custom) || self.low_nfe_tau().contains(&TauKind::Custom);
        if custom == self.custom_timesteps.is_empty() {
            return Err(invalid(
                "custom_timesteps",
                if custom {
                    "tau lists custom: give its timesteps, e.g. custom_timesteps: [999, 700, 400, 100, 0]".into()
                } else {
                    "is set but tau does not list custom".into()
                },
            ));
        }
        if custom {
            crate::schedule::Tau::custom(&self.custom_timesteps, timesteps)
                .map_err(|e| invalid("custom_timesteps", e.to_string()))?;
        }
        if !(self.karras_rho.is_finite() && self.karras_rho > 0.0) {
            return Err(invalid(
                "karras_rho",
                format!("{}: must be a number > 0", self.karras_rho),
            ));
        }
        if let Some(c) = &self.churn {
            c.validate()?;
        }
        if let Some(r) = self.dpmpp_min_r {
            if !(r.is_finite() && r > 0.0) {
                return Err(invalid("dpmpp_min_r", format!("{r}: must be a number > 0 (e.g. 0.5)")));
            }
        }
        let Some(low) = &self.low_nfe else { return Ok(()) };
        if low.nfe.is_empty() {
            return Err(invalid(
                "low_nfe.nfe",
                "must list at least one target, e.g. [5, 10, 20]".into(),
            ));
        }
        if let Some(i) = low.nfe.iter().position(|&n| n == 0 || n > timesteps) {
            return Err(invalid(
                &format!("low_nfe.nfe[{i}]"),
                format!("{} is outside the allowed range 1..={timesteps}", low.nfe[i]),
            ));
        }
        for (field, list_len, distinct) in [
            ("low_nfe.nfe", low.nfe.len(), dedup_len(&low.nfe)),
            ("low_nfe.tau", low.tau.len(), dedup_len(&low.tau)),
            ("low_nfe.samplers", low.samplers.len(), dedup_len(&low.samplers)),
        ] {
            if distinct != list_len {
                return Err(invalid(field, "lists a value twice".into()));
            }
        }
        Ok(())
    }

    /// The NFE targets of the low-NFE section (empty: none).
    pub fn low_nfe_targets(&self) -> &[usize] {
        self.low_nfe.as_ref().map_or(&[], |l| &l.nfe)
    }

    /// The τ kinds of the low-NFE points.
    pub fn low_nfe_tau(&self) -> Vec<TauKind> {
        match &self.low_nfe {
            Some(l) if !l.tau.is_empty() => l.tau.clone(),
            Some(_) => self.tau.clone(),
            None => Vec::new(),
        }
    }

    /// The solvers of the low-NFE points.
    pub fn low_nfe_samplers(&self) -> Vec<SamplerKind> {
        match &self.low_nfe {
            Some(l) if !l.samplers.is_empty() => l.samplers.clone(),
            Some(_) => self.samplers.clone(),
            None => Vec::new(),
        }
    }

    /// The solvers' settings besides η and clipping.
    pub fn solver_options(&self) -> crate::sampler::Options {
        crate::sampler::Options {
            churn: self.churn.unwrap_or(Churn::NONE),
            dpmpp_min_r: self.dpmpp_min_r,
        }
    }

    /// The settings of the τ kinds beyond the integer formulas.
    pub fn spacing(&self) -> Spacing {
        Spacing {
            karras_rho: self.karras_rho,
            custom: self.custom_timesteps.clone(),
        }
    }

    /// The S values swept for τ kind `kind`: `steps`, or for `custom` the list's length.
    pub fn steps_for(&self, kind: TauKind) -> Vec<usize> {
        match kind {
            TauKind::Custom => vec![self.custom_timesteps.len()],
            _ => self.steps.clone(),
        }
    }

    /// S of the consistency reference.
    pub fn reference_steps(&self) -> usize {
        self.reference_steps
            .unwrap_or_else(|| self.steps.iter().copied().max().unwrap_or(1))
    }
}

fn dedup_len<T: PartialEq>(v: &[T]) -> usize {
    v.iter().enumerate().filter(|(i, x)| !v[..*i].contains(x)).count()
}
