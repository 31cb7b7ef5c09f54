//! The sweep runner: every point of the plan from the same x_T, in parallel, each saved
//! on its own as soon as it is done (an interrupted sweep resumes where it stopped),
//! then the tables, `samples.h5`, `config.yaml` and `manifest.json`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use candle_core::{Device, Tensor};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::classifier::{load_or_train, ClassifierSpec};
use crate::data::{DataShape, Dataset};
use crate::error::{Error, Result};
use crate::metrics::bootstrap::Bootstrap;
use crate::model::EpsModel;
use crate::progress::Progress;
use crate::rng::{item_normals, Purpose};
use crate::sampler::{encode, generate, slerp, Eta, PerSampleNoise, SamplerOptions};
use crate::schedule::{Schedule, Tau};
use crate::store::export::export_point;
use crate::store::h5::{write_samples, H5Meta};
use crate::store::points::{load_arrays, point_status, save_point, PointStatus};
use crate::store::table::write_tables;
use crate::store::{write_atomic, MetricRow, PointArrays, Reconstruction};

use super::config::ExperimentConfig;
use super::measure::{distance, exact_flow, names, share_reconstruction, SampleStats};
use super::plan::{Plan, Point, Shard};
use super::sweep::{EtaSpec, MetricKind};
use super::training::fingerprint;

/// How to run a sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The results folder.
    pub out: PathBuf,
    /// Redo every point, even those saved by an earlier run of this configuration.
    pub force: bool,
    /// Points run at once (1: one after the other, batches still use every core).
    pub jobs: usize,
    /// Run only this shard's points (`--shard K/N`); `None`: all of them.
    pub shard: Option<Shard>,
}

/// What a sweep did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// ddimlab's version.
    pub ddimlab_version: String,
    /// The git commit ddimlab was built from (`-dirty` with uncommitted changes).
    pub git_commit: String,
    /// The device, in words.
    pub device: String,
    /// The experiment seed.
    pub seed: u64,
    /// Hash of everything that determines the points' results.
    pub config_hash: String,
    /// Unix time the run started and ended, seconds.
    pub started_unix: u64,
    /// Unix time the run ended, seconds.
    pub finished_unix: u64,
    /// Wall time of this invocation, seconds.
    pub wall_seconds: f64,
    /// Σ over points of their wall time (points may overlap when `jobs` > 1).
    pub point_seconds: f64,
    /// Σ over points of the time inside model evaluations.
    pub model_seconds: f64,
    /// Σ point time outside model evaluations (sampler arithmetic, metrics, saving).
    pub outside_seconds: f64,
    /// outside_seconds / point_seconds.
    pub outside_share: f64,
    /// Time to compute the consistency references that are not sweep points.
    pub reference_seconds: f64,
    /// Time to write the tables, samples.h5 and the exports.
    pub store_seconds: f64,
    /// Held-out accuracy of the feature classifier (image data with labels).
    pub classifier_accuracy: Option<f64>,
    /// L_simple of the model on the held-out split (the same noised points for every
    /// model of the same data), when the data set has one.
    #[serde(default)]
    pub heldout_loss: Option<f64>,
    /// What the samples were compared with (reference set and noise floor).
    #[serde(default)]
    pub compared_with: String,
    /// Points run at once.
    pub jobs: usize,
    /// The shard this run did (`K/N`), when it was one.
    #[serde(default)]
    pub shard: Option<String>,
    /// For a merged folder: each shard's folder, wall time and model time.
    #[serde(default)]
    pub shards: Vec<ShardTiming>,
    /// Per point: id, wall time, model time, NFE, diverged, whether it was reused.
    pub points: Vec<PointTiming>,
}

/// One shard of a merged folder in its manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardTiming {
    /// Its results folder.
    pub dir: String,
    /// `K/N`.
    pub shard: Option<String>,
    /// Its wall time, seconds.
    pub wall_seconds: f64,
    /// Its time inside model evaluations, seconds.
    pub model_seconds: f64,
}

impl Manifest {
    /// The manifest's file in a results folder.
    pub const FILE: &'static str = "manifest.json";

    /// Writes it to `<out>/manifest.json` (atomically).
    pub fn save(&self, out: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serialisable");
        write_atomic(&out.join(Self::FILE), text.as_bytes())
    }

    /// Reads `<out>/manifest.json`.
    pub fn load(out: &Path) -> Result<Self> {
        let path = out.join(Self::FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::io(&path, e))
    }
}

/// The timing of one point in the manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PointTiming {
    /// The point.
    pub id: String,
    /// Its wall time, seconds.
    pub seconds: f64,
    /// Time inside model evaluations, seconds.
    pub model_seconds: f64,
    /// Model evaluations per sample pass.
    pub nfe: usize,
    /// NaN/inf produced.
    pub diverged: bool,
    /// Saved by an earlier run and not recomputed.
    pub reused: bool,
}

/// Times the model evaluations made through it, and reports each one (its batch size)
/// to `tick`, which drives the progress bar one NFE at a time.
struct Timed<'a> {
    inner: &'a dyn EpsModel,
    nanos: AtomicU64,
    tick: &'a (dyn Fn(usize) + Sync),
}

impl<'a> Timed<'a> {
    fn new(inner: &'a dyn EpsModel, tick: &'a (dyn Fn(usize) + Sync)) -> Self {
        Self {
            inner,
            nanos: AtomicU64::new(0),
            tick,
        }
    }

    fn seconds(&self) -> f64 {
        self.nanos.load(Ordering::Relaxed) as f64 * 1e-9
    }
}

impl EpsModel for Timed<'_> {
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        let start = Instant::now();
        let out = self.inner.eps(x, t);
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        (self.tick)(t.len());
        out
    }
}

/// The hash that saved points must carry to be reused: the resolved experiment minus
/// the sweep axes (adding an S or an η keeps the points already done) and the batch
/// size and the export formats (results do not depend on them), plus the hash of the
/// checkpoint's bytes when the model is loaded from one (for a diffusers folder, its
/// config.json and weights).
pub fn results_hash(cfg: &ExperimentConfig) -> Result<String> {
    let mut stripped = cfg.clone();
    stripped.name.clear();
    stripped.device.clear();
    stripped.sweep.steps.clear();
    stripped.sweep.eta.clear();
    stripped.sweep.tau.clear();
    stripped.sweep.clip_x0 = super::sweep::ClipSpec::Each(Vec::new());
    stripped.sweep.batch_size = 0;
    stripped.sweep.export.clear();
    stripped.sweep.extra.clear();
    let weights = match (&cfg.model.checkpoint, cfg.model.diffusers_dir()) {
        (_, Some(dir)) => {
            let (config, weights) = crate::model::diffusers::check_folder(dir)?;
            file_digest(&[&config, &weights])?
        }
        (Some(file), None) => file_digest(&[file])?,
        (None, None) => String::new(),
    };
    Ok(fingerprint(&(stripped, weights, env!("CARGO_PKG_VERSION"))))
}

/// SHA-256 (hex) of the bytes of `files`, one after the other, streamed.
fn file_digest(files: &[&Path]) -> Result<String> {
    let mut hasher = Sha256::new();
    for file in files {
        let mut f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
        std::io::copy(&mut f, &mut hasher).map_err(|e| Error::io(file, e))?;
    }
    Ok(hasher.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// Everything a point needs, shared by all points.
struct Context<'a> {
    model: &'a dyn EpsModel,
    schedule: Schedule,
    shape: DataShape,
    device: &'a Device,
    seed: u64,
    batch_size: usize,
    trajectory_samples: usize,
    latents: Vec<f32>,
    recon_inputs: Vec<f32>,
    stats: Option<SampleStats>,
    mixture: Option<crate::model::oracle::GaussianMixture>,
}

impl Context<'_> {
    fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// Samples as the metrics see them: images are clamped to the pixel range [−1, 1],
    /// as when they are saved (the official DDIM code clamps before computing FID);
    /// vector data are unbounded and left as they are. The stored samples stay raw.
    fn as_evaluated(&self, x: &[f32]) -> Vec<f32> {
        match self.shape {
            DataShape::Image { .. } => x.iter().map(|v| v.clamp(-1.0, 1.0)).collect(),
            DataShape::Vector(_) => x.to_vec(),
        }
    }

    /// Runs `pass` over `x` (rows of one item each) in batches; the first batch holds
    /// the first `first_batch` rows when that is non-zero (the trajectory batch).
    fn batched(
        &self,
        x: &[f32],
        first_batch: usize,
        mut pass: impl FnMut(usize, &Tensor) -> Result<(Tensor, Option<Vec<Tensor>>)>,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        let d = self.numel();
        let n = x.len() / d;
        let mut out = Vec::with_capacity(x.len());
        let mut trajectory = None;
        let mut first = 0;
        while first < n {
            let size = if first == 0 && first_batch > 0 {
                first_batch
            } else {
                self.batch_size
            }
            .min(n - first);
            let xt = Tensor::from_slice(
                &x[first * d..(first + size) * d],
                self.shape.batch_dims(size),
                self.device,
            )?;
            let (y, states) = pass(first, &xt)?;
            out.extend(y.flatten_all()?.to_vec1::<f32>()?);
            if let Some(states) = states {
                trajectory = Some(Tensor::stack(&states, 0)?.flatten_all()?.to_vec1::<f32>()?);
            }
            first += size;
        }
        Ok((out, trajectory))
    }

    /// x_0 from `latents` (rows; sample i of the sweep is row i) with the given sampler
    /// settings, recording the trajectory of the first `record` rows.
    #[allow(clippy::too_many_arguments)]
    fn sample(
        &self,
        model: &dyn EpsModel,
        latents: &[f32],
        tau: &Tau,
        eta: Eta,
        clip_x0: bool,
        record: usize,
    ) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
        self.batched(latents, record, |first, x| {
            let opts = SamplerOptions {
                eta,
                clip_x0,
                record_trajectory: first == 0 && record > 0,
            };
            let mut noise = PerSampleNoise::new(self.seed, first, x.dim(0)?);
            let out = generate(model, &self.schedule, tau, x, &opts, &mut noise)?;
            Ok((out.x, out.trajectory.map(|t| t.states)))
        })
    }

    /// Held-out x_0 → x_T (encode) → x_0 (decode), both over `tau` (paper Table 2).
    fn reconstruct(&self, model: &dyn EpsModel, tau: &Tau, clip_x0: bool) -> Result<Reconstruction> {
        let (latents, _) = self.batched(&self.recon_inputs, 0, |_, x| {
            Ok((encode(model, &self.schedule, tau, x, false)?.x, None))
        })?;
        // A diverged encoding cannot be decoded (the sampler refuses NaN input): its
        // outputs are NaN, and the point records the divergence.
        let outputs = if non_finite(&latents) > 0 {
            vec![f32::NAN; latents.len()]
        } else {
            self.sample(model, &latents, tau, Eta::DDIM, clip_x0, 0)?.0
        };
        Ok(Reconstruction {
            inputs: self.recon_inputs.clone(),
            latents,
            outputs,
        })
    }

    /// Runs one point and measures it.
    fn run_point(
        &self,
        p: &Point,
        consistency: Consistency,
        on_eval: &(dyn Fn(usize) + Sync),
        warn: &(dyn Fn(&str) + Sync),
    ) -> Result<(MetricRow, PointArrays)> {
        let start = Instant::now();
        let timed = Timed::new(self.model, on_eval);
        let (samples, trajectory) = self.sample(
            &timed,
            &self.latents,
            &p.tau,
            p.eta.0,
            p.clip_x0,
            self.trajectory_samples,
        )?;
        let reconstruction = if p.owns_reconstruction {
            Some(self.reconstruct(&timed, &p.tau, p.clip_x0)?)
        } else {
            None
        };
        let mut metrics = BTreeMap::new();
        let bad = non_finite(&samples);
        if bad > 0 {
            warn(&format!(
                "warning: point {} diverged ({bad} non-finite values in its samples); its metrics are NaN",
                p.id
            ));
        }
        let evaluated = self.as_evaluated(&samples);
        if let Some(stats) = &self.stats {
            if bad == 0 {
                metrics.extend(stats.measure(&evaluated)?);
            } else {
                metrics.extend(stats.names().into_iter().map(|n| (n.to_string(), f64::NAN)));
            }
        }
        let reference = match consistency {
            Consistency::Skip => None,
            Consistency::Itself => Some(evaluated.as_slice()),
            Consistency::Against(r) => Some(r),
        };
        if let Some(r) = reference {
            metrics.extend(nan_if_bad(
                bad,
                distance(&evaluated, r, names::CONSISTENCY_MSE, names::CONSISTENCY_PSNR),
                &[names::CONSISTENCY_MSE, names::CONSISTENCY_PSNR],
            )?);
            let top = p.tau.timesteps().last().copied();
            if let Some(exact) = self
                .mixture
                .as_ref()
                .and_then(|m| exact_flow(m, &self.latents, self.schedule.alpha_bar(top)))
            {
                let mse = if bad == 0 {
                    crate::metrics::mse_unit(&samples, &exact)?
                } else {
                    f64::NAN
                };
                metrics.insert(names::CONSISTENCY_EXACT_MSE.into(), mse);
            }
        }
        if let Some(rec) = &reconstruction {
            let bad_rec = non_finite(&rec.outputs);
            if bad_rec > 0 {
                warn(&format!(
                    "warning: point {}: the reconstruction diverged ({bad_rec} non-finite values)",
                    p.id
                ));
            }
            metrics.extend(nan_if_bad(
                bad_rec,
                distance(
                    &self.as_evaluated(&rec.outputs),
                    &rec.inputs,
                    names::RECON_MSE,
                    names::RECON_PSNR,
                ),
                &[names::RECON_MSE, names::RECON_PSNR],
            )?);
        }
        let seconds = start.elapsed().as_secs_f64();
        let row = MetricRow {
            point_id: p.id.clone(),
            tau: p.tau.kind().name().into(),
            eta: p.eta.label(),
            eta_value: p.eta.0.value().unwrap_or(f64::NAN),
            steps: p.tau.steps(),
            nfe: p.tau.nfe(),
            clip_x0: p.clip_x0,
            seconds,
            model_seconds: timed.seconds(),
            diverged: bad > 0,
            metrics,
        };
        let arrays = PointArrays {
            item_shape: self.shape.dims(),
            timesteps: p.tau.timesteps().iter().map(|&t| t as i64).collect(),
            latents: self.latents.clone(),
            samples,
            trajectory,
            reconstruction,
        };
        Ok((row, arrays))
    }
}

/// The id under which the latent interpolation grid of image data is saved.
pub const INTERPOLATION_ID: &str = "interpolation";
/// Latent pairs of the interpolation grid.
const INTERPOLATION_PAIRS: usize = 4;
/// Interpolation points per pair (α = 0, 1/8, …, 1).
pub const INTERPOLATION_POINTS: usize = 9;
/// S of the interpolation decode (linear τ, η = 0), as in paper §5.4's figures.
const INTERPOLATION_STEPS: usize = 50;

impl Context<'_> {
    /// Decodes slerp interpolations between pairs of the sweep's latents with DDIM
    /// (η = 0, linear τ, S = 50; paper §5.4): `latents` holds the interpolated x_T and
    /// `samples` the decoded images, pair by pair, `INTERPOLATION_POINTS` per pair.
    fn interpolate(&self, samples: usize) -> Result<(MetricRow, PointArrays)> {
        let start = Instant::now();
        let d = self.numel();
        let pairs = INTERPOLATION_PAIRS.min(samples / 2);
        let mut latents = Vec::with_capacity(pairs * INTERPOLATION_POINTS * d);
        for k in 0..pairs {
            let (a, b) = (
                &self.latents[2 * k * d..(2 * k + 1) * d],
                &self.latents[(2 * k + 1) * d..(2 * k + 2) * d],
            );
            for j in 0..INTERPOLATION_POINTS {
                latents.extend(slerp(a, b, j as f64 / (INTERPOLATION_POINTS - 1) as f64));
            }
        }
        let tau = Tau::new(
            crate::schedule::TauKind::Linear,
            INTERPOLATION_STEPS.min(self.schedule.timesteps()),
            self.schedule.timesteps(),
        )?;
        let timed = Timed::new(self.model, &|_| {});
        let (decoded, _) = self.sample(&timed, &latents, &tau, Eta::DDIM, false, 0)?;
        let seconds = start.elapsed().as_secs_f64();
        Ok(self.bare_point(INTERPOLATION_ID, &tau, latents, decoded, seconds, timed.seconds()))
    }

    /// A saved point without metrics, decoded with η = 0 and no clipping (a standalone
    /// consistency reference, the interpolation grid).
    fn bare_point(
        &self,
        id: &str,
        tau: &Tau,
        latents: Vec<f32>,
        samples: Vec<f32>,
        seconds: f64,
        model_seconds: f64,
    ) -> (MetricRow, PointArrays) {
        let row = MetricRow {
            point_id: id.into(),
            tau: tau.kind().name().into(),
            eta: EtaSpec(Eta::DDIM).label(),
            eta_value: 0.0,
            steps: tau.steps(),
            nfe: tau.nfe(),
            clip_x0: false,
            seconds,
            model_seconds,
            diverged: non_finite(&samples) > 0,
            metrics: BTreeMap::new(),
        };
        let arrays = PointArrays {
            item_shape: self.shape.dims(),
            timesteps: tau.timesteps().iter().map(|&t| t as i64).collect(),
            latents,
            samples,
            trajectory: None,
            reconstruction: None,
        };
        (row, arrays)
    }
}

/// What a point's consistency is measured against.
enum Consistency<'a> {
    /// Not measured.
    Skip,
    /// The point is the reference (distance 0 by construction).
    Itself,
    /// The reference's x_0 from the same latents, as the metrics see it.
    Against(&'a [f32]),
}

fn non_finite(v: &[f32]) -> usize {
    v.iter().filter(|x| !x.is_finite()).count()
}

/// The metrics of `value`, or NaN under every name in `keys` when `bad` > 0 (the MSE of
/// a diverged set is not a number worth keeping, and must not fail the sweep).
fn nan_if_bad(bad: usize, value: Result<BTreeMap<String, f64>>, keys: &[&str]) -> Result<BTreeMap<String, f64>> {
    if bad > 0 {
        Ok(keys.iter().map(|k| (k.to_string(), f64::NAN)).collect())
    } else {
        value
    }
}

/// The id under which the standalone consistency reference of a τ kind is saved.
fn reference_id(tau: &Tau) -> String {
    format!("reference_{}_S{}", tau.kind(), tau.steps())
}

/// The file of the noise-floor row in a results folder.
pub const NOISE_FLOOR_FILE: &str = "noise_floor.json";

/// The noise-floor row: every sample statistic between an independent real set and the
/// reference (what a perfect sampler would score at this sample size).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NoiseFloor {
    /// What the reference and the floor set are.
    pub compared_with: String,
    /// The metrics (with `_lo` / `_hi`); empty without sample statistics or a floor set.
    pub metrics: BTreeMap<String, f64>,
}

impl NoiseFloor {
    fn measure(stats: Option<&SampleStats>, compared_with: &str) -> Result<Self> {
        Ok(Self {
            compared_with: compared_with.to_string(),
            metrics: match stats {
                Some(s) => s.floor()?.unwrap_or_default(),
                None => BTreeMap::new(),
            },
        })
    }

    /// The floor saved in results folder `out` (an empty one when the file is missing,
    /// e.g. a folder from before floors existed).
    pub fn load(out: &Path) -> Result<Self> {
        let path = out.join(NOISE_FLOOR_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

/// The outcome of a sweep.
#[derive(Debug, Clone)]
pub struct SweepOutcome {
    /// The manifest written to `manifest.json`.
    pub manifest: Manifest,
    /// The rows written to `metrics.parquet`, in plan order.
    pub rows: Vec<MetricRow>,
}

/// Runs the sweep of `cfg` with `model` on `device` (see the module docs).
pub fn run_sweep(
    cfg: &ExperimentConfig,
    model: &dyn EpsModel,
    data: &Dataset,
    device: (&Device, &str),
    opts: &SweepOptions,
) -> Result<SweepOutcome> {
    let started = SystemTime::now();
    let wall = Instant::now();
    let out = &opts.out;
    let hash = results_hash(cfg)?;
    let plan = Plan::new(cfg, data.heldout.len())?;
    prepare_folder(out, &plan, &hash, opts.force)?;

    let shape = data.shape();
    let d = shape.numel();
    let wants = |m: MetricKind| cfg.metrics.contains(&m);
    let mine: Vec<usize> = match opts.shard {
        Some(shard) => plan.shard(shard),
        None => (0..plan.points.len()).collect(),
    };
    let progress = Progress::new(
        "sweep",
        mine.iter()
            .map(|&i| plan.point_evaluations(&plan.points[i]))
            .sum::<usize>() as u64,
    );
    let classifier = match (wants(MetricKind::SampleStats), &data.train.labels, shape) {
        (true, Some(_), DataShape::Image { .. }) => {
            progress.println("feature classifier: training or loading (FID analogue)");
            Some(load_or_train(
                out,
                data,
                &ClassifierSpec::default(),
                cfg.seed,
                device.0,
                &mut Progress::hidden(),
            )?)
        }
        _ => None,
    };
    let classifier_accuracy = classifier.as_ref().map(|c| c.heldout_accuracy);
    let (comparison, compared_with) = super::target::comparison(cfg, data, plan.samples)?;
    let stats = if wants(MetricKind::SampleStats) {
        let bootstrap = match cfg.sweep.bootstrap {
            0 => None,
            b => Some(Bootstrap::new(b, cfg.seed)?),
        };
        Some(SampleStats::new(
            comparison,
            d,
            cfg.sweep.projections,
            cfg.seed,
            bootstrap,
            data.mixture.clone(),
            classifier.map(|c| c.classifier),
        )?)
    } else {
        None
    };
    let floor = NoiseFloor::measure(stats.as_ref(), &compared_with)?;
    write_atomic(
        &out.join(NOISE_FLOOR_FILE),
        serde_json::to_string_pretty(&floor).expect("serialisable").as_bytes(),
    )?;
    let ctx = Context {
        model,
        schedule: cfg.schedule.build()?,
        shape,
        device: device.0,
        seed: cfg.seed,
        batch_size: cfg.sweep.batch_size,
        trajectory_samples: cfg.sweep.trajectory_samples,
        latents: item_normals(cfg.seed, Purpose::Latents, 0, plan.samples, d),
        recon_inputs: data.heldout.values[..plan.reconstruction_samples * d].to_vec(),
        stats,
        mixture: data.mixture.clone(),
    };

    let progress = Mutex::new(progress);
    let on_eval = |evals: usize| progress.lock().expect("progress lock").inc(evals as u64);
    let warn = |line: &str| progress.lock().expect("progress lock").println(line);
    let mut timings: BTreeMap<String, PointTiming> = BTreeMap::new();
    let record = |timings: &mut BTreeMap<String, PointTiming>, row: &MetricRow, reused: bool| {
        timings.insert(
            row.point_id.clone(),
            PointTiming {
                id: row.point_id.clone(),
                seconds: row.seconds,
                model_seconds: row.model_seconds,
                nfe: row.nfe,
                diverged: row.diverged,
                reused,
            },
        );
    };

    // 1. Consistency references: standalone ones, then the sweep points that are one.
    let reference_start = Instant::now();
    let mut references: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    for r in plan.references.iter().filter(|r| r.point.is_none()) {
        let id = reference_id(&r.tau);
        let samples = match point_status(out, &id, &hash)? {
            PointStatus::Done(_) => load_arrays(out, &id)?.samples,
            _ => {
                let start = Instant::now();
                let timed = Timed::new(model, &on_eval);
                let (samples, _) = ctx.sample(&timed, &ctx.latents, &r.tau, Eta::DDIM, false, 0)?;
                let seconds = start.elapsed().as_secs_f64();
                let (row, arrays) = ctx.bare_point(&id, &r.tau, ctx.latents.clone(), samples, seconds, timed.seconds());
                save_point(out, &hash, &row, &arrays)?;
                arrays.samples
            }
        };
        references.insert(r.tau.kind().name().into(), ctx.as_evaluated(&samples));
    }
    let reference_seconds = reference_start.elapsed().as_secs_f64();
    let reference_points: Vec<usize> = plan.references.iter().filter_map(|r| r.point).collect();
    for &i in &reference_points {
        let p = &plan.points[i];
        let samples = match point_status(out, &p.id, &hash)? {
            PointStatus::Done(row) => {
                record(&mut timings, &row, true);
                load_arrays(out, &p.id)?.samples
            }
            _ => {
                let (row, arrays) = ctx.run_point(p, Consistency::Itself, &on_eval, &warn)?;
                save_point(out, &hash, &row, &arrays)?;
                record(&mut timings, &row, false);
                arrays.samples
            }
        };
        references.insert(p.tau.kind().name().into(), ctx.as_evaluated(&samples));
    }

    // 2. The other points, `jobs` at a time.
    let todo: Vec<&Point> = mine
        .iter()
        .filter(|i| !reference_points.contains(i))
        .map(|&i| &plan.points[i])
        .collect();
    let run_one = |p: &&Point| -> Result<(MetricRow, bool)> {
        if let PointStatus::Done(row) = point_status(out, &p.id, &hash)? {
            on_eval(plan.point_evaluations(p));
            return Ok((row, true));
        }
        let reference = match references.get(p.tau.kind().name()) {
            Some(r) => Consistency::Against(r),
            None => Consistency::Skip,
        };
        let (row, arrays) = ctx.run_point(p, reference, &on_eval, &warn)?;
        save_point(out, &hash, &row, &arrays)?;
        Ok((row, false))
    };
    let results: Vec<Result<(MetricRow, bool)>> = if opts.jobs <= 1 {
        todo.iter().map(run_one).collect()
    } else {
        rayon::ThreadPoolBuilder::new()
            .num_threads(opts.jobs)
            .build()
            .map_err(|e| Error::Invalid {
                field: "--jobs".into(),
                message: e.to_string(),
            })?
            .install(|| todo.par_iter().map(run_one).collect())
    };
    for r in results {
        let (row, reused) = r?;
        record(&mut timings, &row, reused);
    }
    if matches!(shape, DataShape::Image { .. })
        && opts.shard.is_none_or(|s| s.index == 0)
        && !matches!(point_status(out, INTERPOLATION_ID, &hash)?, PointStatus::Done(_))
    {
        let (row, arrays) = ctx.interpolate(plan.samples)?;
        save_point(out, &hash, &row, &arrays)?;
    }
    let progress = progress.into_inner().expect("progress lock");
    progress.finish();

    // 3. Tables, samples.h5, config.yaml, manifest.json.
    let store_start = Instant::now();
    let (mut rows, mut missing) = saved_rows(out, &plan, &hash)?;
    let ids: Vec<&str> = mine.iter().map(|&i| plan.points[i].id.as_str()).collect();
    rows.retain(|r| ids.contains(&r.point_id.as_str()));
    missing.retain(|id| ids.contains(&id.as_str()));
    if !missing.is_empty() {
        return Err(Error::Io {
            path: out.join("points").display().to_string(),
            message: format!("points not saved after the sweep ran: {}", missing.join(", ")),
        });
    }
    finalize(out, cfg, &rows, shape)?;
    let store_seconds = store_start.elapsed().as_secs_f64();

    let points: Vec<PointTiming> = plan.points.iter().filter_map(|p| timings.remove(&p.id)).collect();
    let point_seconds: f64 = points.iter().map(|p| p.seconds).sum();
    let model_seconds: f64 = points.iter().map(|p| p.model_seconds).sum();
    let manifest = Manifest {
        ddimlab_version: env!("CARGO_PKG_VERSION").into(),
        git_commit: env!("DDIMLAB_GIT_COMMIT").into(),
        device: device.1.into(),
        seed: cfg.seed,
        config_hash: hash,
        started_unix: unix(started),
        finished_unix: unix(SystemTime::now()),
        wall_seconds: wall.elapsed().as_secs_f64(),
        point_seconds,
        model_seconds,
        outside_seconds: point_seconds - model_seconds,
        outside_share: outside_share(point_seconds, model_seconds),
        reference_seconds,
        store_seconds,
        classifier_accuracy,
        heldout_loss: match data.heldout.len() {
            0 => None,
            _ => Some(super::training::heldout_loss(
                model,
                data,
                &ctx.schedule,
                cfg.seed,
                device.0,
            )?),
        },
        compared_with: floor.compared_with.clone(),
        jobs: opts.jobs,
        shard: opts.shard.map(|s| s.to_string()),
        shards: Vec::new(),
        points,
    };
    manifest.save(out)?;
    Ok(SweepOutcome { manifest, rows })
}

/// Writes the tables of `rows`, `samples.h5` (with each point's exports) and
/// `config.yaml` into the results folder `out`.
fn finalize(out: &Path, cfg: &ExperimentConfig, rows: &[MetricRow], shape: DataShape) -> Result<()> {
    write_tables(rows, out)?;
    let meta = H5Meta {
        experiment: cfg.name.clone(),
        config_yaml: cfg.to_yaml(),
        seed: cfg.seed,
        ddimlab_version: env!("CARGO_PKG_VERSION").into(),
    };
    // Each point's arrays are loaded once, for samples.h5 and for its exports.
    write_samples(
        &out.join("samples.h5"),
        &meta,
        rows.iter().map(|row| {
            let arrays = load_arrays(out, &row.point_id)?;
            export_point(out, &row.point_id, &arrays.samples, shape, &cfg.sweep.export)?;
            Ok((row.clone(), arrays))
        }),
    )?;
    write_atomic(&out.join("config.yaml"), cfg.to_yaml().as_bytes())
}

/// What `merge` did.
#[derive(Debug, Clone)]
pub struct MergeOutcome {
    /// The merged manifest.
    pub manifest: Manifest,
    /// Planned points that no shard saved.
    pub missing: Vec<String>,
}

/// Joins the results folders of the shards of one sweep into `out`: refuses shards of
/// different configurations (config hash), copies every saved point, and writes the
/// tables, `samples.h5`, `config.yaml`, the noise floor and a manifest with the total
/// and per-shard times. Points that no shard saved are listed in the outcome (and left
/// out of the tables, as in a partial sweep).
pub fn merge(out: &Path, shards: &[PathBuf]) -> Result<MergeOutcome> {
    let Some(first) = shards.first() else {
        return Err(Error::Invalid {
            field: "SHARD_DIR".into(),
            message: "name at least one shard folder".into(),
        });
    };
    let manifests = shards.iter().map(|d| Manifest::load(d)).collect::<Result<Vec<_>>>()?;
    let hash = manifests[0].config_hash.clone();
    if let Some((dir, m)) = shards.iter().zip(&manifests).find(|(_, m)| m.config_hash != hash) {
        return Err(Error::Config {
            message: format!(
                "{} ran configuration {} but {} ran {}: only shards of one sweep can be merged",
                dir.display(),
                m.config_hash,
                first.display(),
                hash
            ),
        });
    }
    let _lock = crate::store::lock::FolderLock::acquire(out, "ddimlab merge")?;
    let cfg = ExperimentConfig::load(&first.join("config.yaml"))?;
    for dir in shards {
        copy_points(&dir.join("points"), &out.join("points"))?;
    }
    let floor = first.join(NOISE_FLOOR_FILE);
    if floor.exists() {
        std::fs::copy(&floor, out.join(NOISE_FLOOR_FILE)).map_err(|e| Error::io(&floor, e))?;
    }
    let data = cfg.load_data()?;
    let plan = Plan::new(&cfg, data.heldout.len())?;
    let (rows, missing) = saved_rows(out, &plan, &hash)?;
    finalize(out, &cfg, &rows, data.shape())?;
    let m0 = &manifests[0];
    let timing = |r: &MetricRow| PointTiming {
        id: r.point_id.clone(),
        seconds: r.seconds,
        model_seconds: r.model_seconds,
        nfe: r.nfe,
        diverged: r.diverged,
        reused: false,
    };
    let point_seconds: f64 = rows.iter().map(|r| r.seconds).sum();
    let model_seconds: f64 = rows.iter().map(|r| r.model_seconds).sum();
    let manifest = Manifest {
        started_unix: manifests.iter().map(|m| m.started_unix).min().unwrap_or(0),
        finished_unix: manifests.iter().map(|m| m.finished_unix).max().unwrap_or(0),
        wall_seconds: manifests.iter().map(|m| m.wall_seconds).sum(),
        point_seconds,
        model_seconds,
        outside_seconds: point_seconds - model_seconds,
        outside_share: outside_share(point_seconds, model_seconds),
        reference_seconds: manifests.iter().map(|m| m.reference_seconds).sum(),
        store_seconds: manifests.iter().map(|m| m.store_seconds).sum(),
        shard: None,
        shards: shards
            .iter()
            .zip(&manifests)
            .map(|(d, m)| ShardTiming {
                dir: d.display().to_string(),
                shard: m.shard.clone(),
                wall_seconds: m.wall_seconds,
                model_seconds: m.model_seconds,
            })
            .collect(),
        points: rows.iter().map(timing).collect(),
        ..m0.clone()
    };
    manifest.save(out)?;
    Ok(MergeOutcome { manifest, missing })
}

/// Copies every file of the points folder `from` into `to` (a point saved by several
/// shards — the consistency references — is the same file in each).
fn copy_points(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
    let entries = std::fs::read_dir(from).map_err(|e| Error::io(from, e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::io(from, e))?.path();
        if path.is_file() {
            let name = path.file_name().expect("a file has a name");
            std::fs::copy(&path, to.join(name)).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Refuses a folder holding points of a different configuration (unless `force`, which
/// clears the saved points and outputs), and creates it.
fn prepare_folder(out: &Path, plan: &Plan, hash: &str, force: bool) -> Result<()> {
    if force {
        let points = out.join("points");
        if points.exists() {
            std::fs::remove_dir_all(&points).map_err(|e| Error::io(&points, e))?;
        }
    } else {
        let ids = plan
            .points
            .iter()
            .map(|p| p.id.clone())
            .chain(plan.references.iter().map(|r| reference_id(&r.tau)));
        for id in ids {
            if let PointStatus::Stale { hash: theirs } = point_status(out, &id, hash)? {
                return Err(Error::Config {
                    message: format!(
                        "{}: saved point {id} was made by a different configuration (hash {theirs}, this one {hash}); \
                         rerun with --force to redo the sweep, or use another --out folder",
                        out.display()
                    ),
                });
            }
        }
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))
}

/// The saved rows of every planned point (plan order), with each (τ, S, clip) group's
/// reconstruction shared onto all its rows, and the ids of the points not saved (yet).
pub fn saved_rows(out: &Path, plan: &Plan, hash: &str) -> Result<(Vec<MetricRow>, Vec<String>)> {
    let mut rows = Vec::with_capacity(plan.points.len());
    let mut missing = Vec::new();
    for p in &plan.points {
        match point_status(out, &p.id, hash)? {
            PointStatus::Done(row) => rows.push(row),
            _ => missing.push(p.id.clone()),
        }
    }
    share_reconstruction(&mut rows);
    Ok((rows, missing))
}

/// The share of point time spent outside model evaluations (0 when no point ran).
fn outside_share(point_seconds: f64, model_seconds: f64) -> f64 {
    if point_seconds > 0.0 {
        (point_seconds - model_seconds) / point_seconds
    } else {
        0.0
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks that a checkpoint folder is complete (before anything else), trains the
/// experiment's model if it has a `train:` block and no finished checkpoint, loads the
/// data and the model, and runs the sweep (what `ddimlab sweep` does).
pub fn sweep_experiment(cfg: &ExperimentConfig, opts: &SweepOptions) -> Result<SweepOutcome> {
    cfg.check_checkpoint()?;
    let _lock = crate::store::lock::FolderLock::acquire(&opts.out, &format!("ddimlab sweep ({})", cfg.name))?;
    let (device, described) = crate::device::resolve(&cfg.device)?;
    eprintln!("device: {described}");
    if let Some(train) = cfg.model.train.as_ref().filter(|_| cfg.model.checkpoint.is_none()) {
        let mut progress = Progress::new("train", train.steps as u64);
        let outcome =
            super::training::train_experiment(cfg, &opts.out, false, (&device, &described), None, &mut progress)?;
        progress.finish();
        if let super::training::TrainOutcome::Trained(card) = outcome {
            eprintln!(
                "trained the model in {:.1} s: held-out loss {:.4}",
                card.train_seconds, card.heldout_loss
            );
        }
    }
    let data = cfg.load_data()?;
    let model = super::training::load_model(cfg, &opts.out, &device)?;
    run_sweep(cfg, model.as_ref(), &data, (&device, &described), opts)
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
