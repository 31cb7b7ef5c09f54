//! `ddimlab train`: train an experiment's model into `results/<name>/model.safetensors`
//! with a JSON sidecar, reuse a finished checkpoint, resume an interrupted run; and
//! load the experiment's ε-model for sampling.

use std::path::{Path, PathBuf};

use crate::hashing::fingerprint;
use candle_core::Device;
use serde::{Deserialize, Serialize};

use super::config::{ExperimentConfig, ModelKind, OracleKind, ScheduleSpec};
use crate::atomic::write_atomic;
use crate::data::{DataSpec, Dataset};
use crate::error::{Error, Result};
use crate::model::checkpoint::{load_into, named_tensors, read, save_atomic};
use crate::model::diffusers::{load_diffusers, CONFIG_FILE};
use crate::model::{Architecture, EmpiricalOracle, EpsModel, MixtureOracle, Network};
use crate::progress::Progress;
use crate::shape::DataShape;
use crate::train::{eval_loss, TrainSpec, Trainer};

/// The JSON sidecar of a trained checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelCard {
    /// The network.
    pub architecture: Architecture,
    /// The forward process it was trained for.
    pub schedule: ScheduleSpec,
    /// The data it was trained on.
    pub data: DataSpec,
    /// The experiment seed.
    pub seed: u64,
    /// The training hyper-parameters.
    pub train: TrainSpec,
    /// Optimiser steps done.
    pub steps: usize,
    /// Mean training L_simple over the last 100 steps.
    pub final_loss: f64,
    /// L_simple of the EMA weights on the held-out split.
    pub heldout_loss: f64,
    /// Trainable scalars.
    pub parameters: usize,
    /// Wall time of the last training invocation, seconds.
    pub train_seconds: f64,
    /// Device it was trained on.
    pub device: String,
    /// ddimlab's version.
    pub ddimlab_version: String,
    /// Hash of everything above that determines the weights (seed, data, model, schedule).
    pub fingerprint: String,
}

/// Where training writes.
#[derive(Debug, Clone)]
pub struct TrainPaths {
    /// The EMA weights.
    pub model: PathBuf,
    /// The sidecar.
    pub card: PathBuf,
    /// The resumable state (deleted when training finishes).
    pub state: PathBuf,
}

impl TrainPaths {
    /// The files under `out_dir`.
    pub fn new(out_dir: &Path) -> Self {
        Self {
            model: out_dir.join("model.safetensors"),
            card: out_dir.join("model.json"),
            state: out_dir.join("train_state.safetensors"),
        }
    }
}

/// How a `train` call ended.
#[derive(Debug, Clone)]
pub enum TrainOutcome {
    /// A finished checkpoint of the same configuration was already there.
    Reused(ModelCard),
    /// Training ran to the end.
    Trained(ModelCard),
    /// Training stopped early (`stop_after`); the state is saved for resuming.
    Interrupted {
        /// Steps done so far.
        steps_done: usize,
    },
}

fn training_fingerprint(cfg: &ExperimentConfig, arch: &Architecture, train: &TrainSpec) -> String {
    fingerprint(&(cfg.seed, &cfg.data, arch, train, &cfg.schedule))
}

/// The finished card under `paths`, when there is one whose fingerprint is `want`.
fn finished_card(paths: &TrainPaths, want: &str) -> Result<Option<ModelCard>> {
    if !(paths.card.exists() && paths.model.exists()) {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&paths.card).map_err(|e| Error::io(&paths.card, e))?;
    let card: ModelCard = serde_json::from_str(&text).map_err(|e| Error::file(&paths.card, e))?;
    if card.fingerprint != want {
        return Err(Error::file(
            &paths.card,
            "a checkpoint trained with a different configuration (seed, data, model or schedule) is here; \
                      rerun with --force to retrain, or give the experiment another name",
        ));
    }
    Ok(Some(card))
}

/// Trains the model of `cfg` into `out_dir` (see the module docs).
pub fn train_experiment(
    cfg: &ExperimentConfig,
    out_dir: &Path,
    force: bool,
    device: (&Device, &str),
    stop_after: Option<usize>,
    progress: &mut Progress,
) -> Result<TrainOutcome> {
    let train = cfg.model.train.clone().ok_or_else(|| {
        Error::invalid(
            "model.train",
            match cfg.model.kind {
                ModelKind::Oracle => "the oracle is exact and needs no training",
                _ => "no `train:` block: this model is loaded from its `checkpoint:`",
            },
        )
    })?;
    let arch = cfg
        .architecture()?
        .ok_or_else(|| Error::invalid("model.kind", "the oracle is exact and needs no training"))?;
    let paths = TrainPaths::new(out_dir);
    let want = training_fingerprint(cfg, &arch, &train);
    if force {
        for p in [&paths.model, &paths.card, &paths.state] {
            if p.exists() {
                std::fs::remove_file(p).map_err(|e| Error::io(p, e))?;
            }
        }
    } else if let Some(card) = finished_card(&paths, &want)? {
        return Ok(TrainOutcome::Reused(card));
    }
    let dataset = super::resources::load_data(cfg)?;
    let schedule = cfg.schedule.build()?;
    let net = Network::new(&arch, cfg.seed, device.0)?;
    let trainer = Trainer {
        net: &net,
        data: &dataset.train,
        schedule: &schedule,
        spec: &train,
        seed: cfg.seed,
        fingerprint: &want,
    };
    let report = trainer.run(Some(&paths.state), stop_after, progress)?;
    if report.steps_done < train.steps {
        return Ok(TrainOutcome::Interrupted {
            steps_done: report.steps_done,
        });
    }
    let heldout_loss = heldout_loss(&net, &dataset, &schedule, cfg.seed, device.0)?;
    save_atomic(&named_tensors(&net.varmap), &paths.model)?;
    let card = ModelCard {
        architecture: arch,
        schedule: cfg.schedule.clone(),
        data: cfg.data.clone(),
        seed: cfg.seed,
        train,
        steps: report.steps_done,
        final_loss: report.final_loss,
        heldout_loss,
        parameters: net.parameter_count(),
        train_seconds: report.seconds,
        device: device.1.to_string(),
        ddimlab_version: env!("CARGO_PKG_VERSION").into(),
        fingerprint: want,
    };
    write_atomic(
        &paths.card,
        serde_json::to_string_pretty(&card).expect("serialisable").as_bytes(),
    )?;
    if paths.state.exists() {
        std::fs::remove_file(&paths.state).map_err(|e| Error::io(&paths.state, e))?;
    }
    Ok(TrainOutcome::Trained(card))
}

/// L_simple on the held-out split, over at least 2,000 noised points.
pub fn heldout_loss(
    net: &dyn EpsModel,
    data: &Dataset,
    schedule: &crate::schedule::Schedule,
    seed: u64,
    device: &Device,
) -> Result<f64> {
    let draws = 2000usize.div_ceil(data.heldout.len().max(1));
    eval_loss(net, &data.heldout, schedule, seed, draws, device)
}

/// The ε-model of `cfg`: the exact oracle, the diffusers folder or network file at
/// `model.checkpoint`, or the network trained by `ddimlab train` under `out_dir`.
pub fn load_model(cfg: &ExperimentConfig, out_dir: &Path, device: &Device) -> Result<Box<dyn EpsModel>> {
    match cfg.oracle_kind()? {
        Some(OracleKind::Mixture) => {
            let mixture = cfg.data.mixture()?.expect("validated: oracle data is a mixture");
            return Ok(Box::new(MixtureOracle::new(mixture, cfg.schedule.build()?)));
        }
        Some(OracleKind::Empirical { std }) => {
            let mixture = super::resources::empirical_mixture(&cfg.data.load(cfg.seed)?, std)?;
            return Ok(Box::new(EmpiricalOracle::new(mixture, cfg.schedule.build()?)));
        }
        None => {}
    }
    if let Some(dir) = cfg.model.diffusers_dir() {
        let (config, net) = load_diffusers(dir, device)?;
        let model = DataShape::Image {
            channels: config.in_channels,
            height: config.sample_size,
            width: config.sample_size,
        };
        let data = cfg.data_shape()?;
        if model != data {
            return Err(Error::invalid(
                dir.join(CONFIG_FILE).display(),
                format!(
                    "the model takes images {model} (in_channels, sample_size), the data are {data} \
                     (data.channels, data.image_size)"
                ),
            ));
        }
        return Ok(Box::new(net));
    }
    let arch = cfg
        .architecture()?
        .expect("validated: trained kinds have an architecture");
    let path = match &cfg.model.checkpoint {
        Some(p) => p.clone(),
        None => {
            let paths = TrainPaths::new(out_dir);
            let train = cfg.model.train.as_ref().expect("validated: train or checkpoint");
            if finished_card(&paths, &training_fingerprint(cfg, &arch, train))?.is_none() {
                return Err(Error::file(
                    &paths.model,
                    "no finished checkpoint for this configuration: run `ddimlab train` on the experiment first",
                ));
            }
            paths.model
        }
    };
    let net = Network::new(&arch, cfg.seed, device)?;
    load_into(&net.varmap, &read(&path, device)?, &path.display().to_string())?;
    Ok(Box::new(net))
}
