//! What an experiment needs of this machine, apart from its configuration: its data set
//! (generated or read, with the empirical oracle's held-out draws), the checkpoint files it
//! names, the memory one sweep point takes and the model time a sweep should take.

use std::path::Path;
use std::time::Instant;

use candle_core::{Device, Tensor};

use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::model::{EmpiricalMixture, EpsModel};
use crate::rng::{item_normals, Purpose};

use super::config::{ExperimentConfig, OracleKind};
use super::plan::Plan;

/// The data set of the experiment. For the empirical oracle the target distribution
/// is the smoothed training set, so the held-out split is replaced by as many draws
/// from it (each labelled with its training point's label): reconstruction inputs,
/// noise floor and held-out loss then all come from the exact target.
pub fn load_data(cfg: &ExperimentConfig) -> Result<Dataset> {
    let mut data = cfg.data.load(cfg.seed)?;
    if let Some(OracleKind::Empirical { std }) = cfg.oracle_kind()? {
        let mixture = empirical_mixture(&data, std)?;
        let mut rng = crate::rng::stream(cfg.seed, crate::rng::Purpose::HeldoutData);
        let (values, picked) = mixture.sample_indexed(data.heldout.len(), &mut rng);
        data.heldout = Split {
            values,
            labels: data
                .train
                .labels
                .as_ref()
                .map(|l| picked.iter().map(|&i| l[i]).collect()),
            shape: data.train.shape,
        };
    }
    Ok(data)
}

/// The smoothed training set of the empirical oracle.
pub fn empirical_mixture(data: &Dataset, std: f64) -> Result<EmpiricalMixture> {
    EmpiricalMixture::new(&data.train.values, data.shape().numel(), std).map_err(|e| Error::invalid("model.std", e))
}

/// Bytes one sweep point needs at the least, whatever the model: x_T, the samples and
/// their measured copy (n × d f32 each, held for the whole point), the bootstrap's
/// resampled copies (one per thread, counted as two), the stored trajectory, the
/// reconstruction arrays, and the sampler's working set for one batch (x, ε, x̂_0 and
/// the noise: four batch × d tensors). The model's own activations come on top.
pub fn point_bytes(cfg: &ExperimentConfig) -> Result<u64> {
    let d = cfg.data_shape()?.numel() as u64;
    let sw = &cfg.sweep;
    let n = sw.samples as u64;
    let recon = sw.reconstruction_samples.unwrap_or(sw.samples) as u64;
    let top = sw
        .steps
        .iter()
        .chain(sw.extra.iter().map(|e| &e.steps))
        .copied()
        .max()
        .unwrap_or(0) as u64;
    let trajectory = sw.trajectory_samples as u64 * (top + 1);
    let batch = (sw.batch_size as u64).min(n);
    Ok(4 * d * (5 * n + 3 * recon + trajectory + 4 * batch))
}

/// Refuses a sweep whose points cannot fit in this machine's memory (Linux:
/// `MemTotal` of /proc/meminfo; elsewhere nothing is checked).
pub(super) fn check_memory(cfg: &ExperimentConfig) -> Result<()> {
    let Some(total) = machine_memory_bytes() else {
        return Ok(());
    };
    let need = point_bytes(cfg)?;
    if need > total {
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        return Err(Error::invalid(
            "sweep.samples",
            format!(
                "{} samples of {} values: one point needs at least {:.1} GiB of memory, this machine has {:.1} GiB; \
                 use fewer samples (or trajectory_samples)",
                cfg.sweep.samples,
                cfg.data_shape()?.numel(),
                gib(need),
                gib(total)
            ),
        ));
    }
    Ok(())
}

/// Checks the files of `model.checkpoint` (parsing does not look at files): a
/// diffusers folder must hold its two files (the error names what to download); a
/// `.safetensors` file must exist and its header must list exactly the variables of
/// the experiment's architecture, with their shapes.
pub fn check_checkpoint(cfg: &ExperimentConfig) -> Result<()> {
    if let Some(dir) = cfg.model.diffusers_dir() {
        return crate::model::diffusers::check_folder(dir).map(|_| ());
    }
    let (Some(file), Some(arch)) = (&cfg.model.checkpoint, cfg.architecture()?) else {
        return Ok(());
    };
    if !file.is_file() {
        return Err(Error::file(
            file,
            "model.checkpoint: no such file (a checkpoint written by `ddimlab train`, \
                      `<results>/model.safetensors`)",
        ));
    }
    let net = crate::model::Network::new(&arch, cfg.seed, &candle_core::Device::Cpu)?;
    crate::model::checkpoint::check_header(&net.varmap, file)
}

/// This machine's memory in bytes (`MemTotal` of /proc/meminfo), when it can be read.
fn machine_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Seconds of model evaluation the sweep of `cfg` should take on `device`: the plan's
/// per-sample evaluations times the measured cost of one batched call of an untrained
/// model of the same architecture (the weights do not change the cost).
pub fn estimate_seconds(cfg: &ExperimentConfig, plan: &Plan, device: &Device) -> Result<f64> {
    let model: Box<dyn EpsModel> = match cfg.architecture()? {
        Some(arch) => Box::new(crate::model::Network::new(&arch, cfg.seed, device)?),
        None => super::training::load_model(cfg, Path::new("."), device)?,
    };
    let shape = cfg.data_shape()?;
    let n = cfg.sweep.batch_size.min(plan.samples);
    let x = Tensor::from_vec(
        item_normals(cfg.seed, Purpose::Latents, 0, n, shape.numel()),
        shape.batch_dims(n),
        device,
    )?;
    let t = vec![cfg.schedule.timesteps / 2; n];
    model.eps(&x, &t)?; // warm-up
    let reps = 3;
    let start = Instant::now();
    for _ in 0..reps {
        model.eps(&x, &t)?;
    }
    let per_sample = start.elapsed().as_secs_f64() / (reps * n) as f64;
    Ok(per_sample * plan.total_evaluations() as f64)
}
