//! The sweep runner, top-down: prepare (plan, folder, metrics, shared x_T) → consistency
//! references → the other points, `jobs` at a time → finalize (tables, `samples.h5`,
//! `config.yaml`, `manifest.json`). Every point is saved on its own as soon as it is done
//! ([`Sweep::load_or_run`]), so an interrupted sweep resumes where it stopped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use candle_core::Device;
use rayon::prelude::*;

use crate::atomic::write_atomic;
use crate::classifier::{load_or_train, ClassifierSpec};
use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::metrics::bootstrap::Bootstrap;
use crate::model::EpsModel;
use crate::progress::Progress;
use crate::rng::{item_normals, Purpose};
use crate::schedule::{Tau, TauKind};
use crate::shape::DataShape;
use crate::store::export::export_point;
use crate::store::h5::{write_samples, H5Meta};
use crate::store::manifest::{Manifest, NoiseFloor, PointTiming};
use crate::store::points::{load_arrays, point_status, save_point, PointStatus};
use crate::store::table::write_tables;
use crate::store::{MetricRow, PointArrays};

use super::config::ExperimentConfig;
use super::context::{Consistency, Context, Report, INTERPOLATION_ID};
use super::evaluation::{Evaluated, Evaluation};
use super::measure::SampleStats;
use super::plan::{Plan, Point, Shard};
use super::sweep::MetricKind;

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

/// The hash that saved points must carry to be reused: the resolved experiment minus
/// the sweep axes and the point lists (adding an S, an η, an extra or a low-NFE point
/// keeps the points already done) and the batch
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
    stripped.sweep.samplers.clear();
    stripped.sweep.clip_x0 = super::sweep::ClipSpec::Each(Vec::new());
    stripped.sweep.batch_size = 0;
    stripped.sweep.export.clear();
    stripped.sweep.extra.clear();
    stripped.sweep.low_nfe = None;
    let weights = match (&cfg.model.checkpoint, cfg.model.diffusers_dir()) {
        (_, Some(dir)) => {
            let (config, weights) = crate::model::diffusers::check_folder(dir)?;
            crate::hashing::file_digest(&[&config, &weights])?
        }
        (Some(file), None) => crate::hashing::file_digest(&[file])?,
        (None, None) => String::new(),
    };
    Ok(crate::hashing::fingerprint(&(
        stripped,
        weights,
        env!("CARGO_PKG_VERSION"),
    )))
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
    let started = (SystemTime::now(), Instant::now());
    let sweep = Sweep::prepare(cfg, model, data, device.0, opts)?;
    let reference_start = Instant::now();
    let references = sweep.references()?;
    let reference_seconds = reference_start.elapsed().as_secs_f64();
    sweep.points(&references)?;
    sweep.interpolation()?;
    sweep.progress.lock().expect("progress lock").finish();
    let store_start = Instant::now();
    let rows = sweep.finalize(data.shape())?;
    let seconds = Seconds {
        started: started.0,
        wall: started.1.elapsed().as_secs_f64(),
        reference: reference_seconds,
        store: store_start.elapsed().as_secs_f64(),
    };
    let manifest = sweep.manifest(model, data, device, seconds)?;
    manifest.save(&opts.out)?;
    Ok(SweepOutcome { manifest, rows })
}

/// A sweep in progress: the plan, the points this run does, and what they share.
struct Sweep<'a> {
    cfg: &'a ExperimentConfig,
    opts: &'a SweepOptions,
    hash: String,
    plan: Plan,
    /// The indices of the plan's points this run does (its shard, or all).
    mine: Vec<usize>,
    ctx: Context<'a>,
    progress: Mutex<Progress>,
    timings: Mutex<BTreeMap<String, PointTiming>>,
    classifier_accuracy: Option<f64>,
    compared_with: String,
}

/// The wall times of a sweep's stages.
struct Seconds {
    started: SystemTime,
    wall: f64,
    reference: f64,
    store: f64,
}

impl<'a> Sweep<'a> {
    /// Plans the sweep, checks and creates the folder, sets up the sample statistics
    /// (training or loading the feature classifier) and saves the noise floor.
    fn prepare(
        cfg: &'a ExperimentConfig,
        model: &'a dyn EpsModel,
        data: &Dataset,
        device: &'a Device,
        opts: &'a SweepOptions,
    ) -> Result<Self> {
        let hash = results_hash(cfg)?;
        let plan = Plan::new(cfg, data.heldout.len())?;
        prepare_folder(&opts.out, &plan, &hash, opts.force)?;
        let mine: Vec<usize> = match opts.shard {
            Some(shard) => plan.shard(shard),
            None => (0..plan.points.len()).collect(),
        };
        let evaluations: usize = mine.iter().map(|&i| plan.point_evaluations(&plan.points[i])).sum();
        let progress = Progress::new("sweep", (evaluations + plan.reference_evaluations()) as u64);
        let (stats, classifier_accuracy, compared_with) = sample_stats(cfg, data, &plan, device, &opts.out, &progress)?;
        noise_floor(stats.as_ref(), &compared_with, plan.samples)?.save(&opts.out)?;
        let d = data.shape().numel();
        let ctx = Context {
            model,
            schedule: cfg.schedule.build()?,
            shape: data.shape(),
            device,
            seed: cfg.seed,
            batch_size: cfg.sweep.batch_size,
            trajectory_samples: cfg.sweep.trajectory_samples,
            latents: item_normals(cfg.seed, Purpose::Latents, 0, plan.samples, d),
            recon_inputs: data.heldout.values[..plan.reconstruction_samples * d].to_vec(),
            stats,
            mixture: data.mixture.clone(),
        };
        Ok(Self {
            cfg,
            opts,
            hash,
            plan,
            mine,
            ctx,
            progress: Mutex::new(progress),
            timings: Mutex::new(BTreeMap::new()),
            classifier_accuracy,
            compared_with,
        })
    }

    /// The consistency reference of every τ kind (a sweep point, or a standalone run),
    /// as the metrics see its samples.
    fn references(&self) -> Result<BTreeMap<TauKind, Evaluated>> {
        let (on_eval, warn) = (|n: usize| self.tick(n), |line: &str| self.warn(line));
        let report = Report {
            on_eval: &on_eval,
            warn: &warn,
        };
        let mut references = BTreeMap::new();
        for r in &self.plan.references {
            let point = r.point.map(|i| &self.plan.points[i]);
            let id = point.map_or_else(|| reference_id(&r.tau), |p| p.id.clone());
            let evaluations = point.map_or(r.tau.len() * self.plan.samples, |p| self.plan.point_evaluations(p));
            let ran = self.load_or_run(&id, evaluations, || match point {
                Some(p) => self.ctx.run_point(p, Consistency::Itself, &report),
                None => self.ctx.reference(&id, &r.tau, &on_eval),
            })?;
            let samples = match ran {
                Some(arrays) => arrays.samples,
                None => load_arrays(&self.opts.out, &id)?.samples,
            };
            references.insert(r.tau.kind(), self.ctx.evaluated(&samples));
        }
        Ok(references)
    }

    /// This run's points that are not consistency references, `jobs` at a time.
    fn points(&self, references: &BTreeMap<TauKind, Evaluated>) -> Result<()> {
        let (on_eval, warn) = (|n: usize| self.tick(n), |line: &str| self.warn(line));
        let report = Report {
            on_eval: &on_eval,
            warn: &warn,
        };
        let is_reference = |i: &usize| self.plan.references.iter().any(|r| r.point == Some(*i));
        let todo: Vec<&Point> = self
            .mine
            .iter()
            .filter(|i| !is_reference(i))
            .map(|&i| &self.plan.points[i])
            .collect();
        let run_one = |p: &&Point| {
            let consistency = match references.get(&p.tau.kind()) {
                Some(r) => Consistency::Against(r),
                None => Consistency::Skip,
            };
            let evaluations = self.plan.point_evaluations(p);
            self.load_or_run(&p.id, evaluations, || self.ctx.run_point(p, consistency, &report))
                .map(drop)
        };
        if self.opts.jobs <= 1 {
            return todo.iter().try_for_each(run_one);
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(self.opts.jobs)
            .build()
            .map_err(|e| Error::invalid("--jobs", e))?
            .install(|| todo.par_iter().try_for_each(run_one))
    }

    /// The latent interpolation grid of image data (by shard 0 of a sharded sweep).
    fn interpolation(&self) -> Result<()> {
        if matches!(self.ctx.shape, DataShape::Image { .. }) && self.opts.shard.is_none_or(|s| s.index == 0) {
            self.load_or_run(INTERPOLATION_ID, 0, || self.ctx.interpolate(self.plan.samples))?;
        }
        Ok(())
    }

    /// The point `id` made by this configuration: reused when it is saved (its
    /// `evaluations` then count as done on the progress bar), otherwise `run` and saved
    /// at once, its arrays returned (`None` for a reused point, whose arrays stay on
    /// disk). Its timing goes to the manifest.
    fn load_or_run(
        &self,
        id: &str,
        evaluations: usize,
        run: impl FnOnce() -> Result<(MetricRow, PointArrays)>,
    ) -> Result<Option<PointArrays>> {
        let (row, arrays) = match point_status(&self.opts.out, id, &self.hash)? {
            PointStatus::Done(row) => {
                self.tick(evaluations);
                (*row, None)
            }
            _ => {
                let (row, arrays) = run()?;
                save_point(&self.opts.out, &self.hash, &row, &arrays)?;
                (row, Some(arrays))
            }
        };
        let timing = PointTiming::of(&row, arrays.is_none());
        self.timings
            .lock()
            .expect("timings lock")
            .insert(timing.id.clone(), timing);
        Ok(arrays)
    }

    fn tick(&self, evaluations: usize) {
        self.progress.lock().expect("progress lock").inc(evaluations as u64);
    }

    fn warn(&self, line: &str) {
        self.progress.lock().expect("progress lock").println(line);
    }

    /// The saved rows of this run's points, written out (see [`finalize`]).
    fn finalize(&self, shape: DataShape) -> Result<Vec<MetricRow>> {
        let (mut rows, mut missing) = self.plan.saved_rows(&self.opts.out, &self.hash)?;
        let ids: Vec<&str> = self.mine.iter().map(|&i| self.plan.points[i].id.as_str()).collect();
        rows.retain(|r| ids.contains(&r.point_id.as_str()));
        missing.retain(|id| ids.contains(&id.as_str()));
        if !missing.is_empty() {
            return Err(Error::file(
                &self.opts.out.join("points"),
                format!("points not saved after the sweep ran: {}", missing.join(", ")),
            ));
        }
        finalize(&self.opts.out, self.cfg, &rows, shape)?;
        Ok(rows)
    }

    /// What ran, where and how long.
    fn manifest(&self, model: &dyn EpsModel, data: &Dataset, device: (&Device, &str), s: Seconds) -> Result<Manifest> {
        let mut timings = self.timings.lock().expect("timings lock");
        let points: Vec<PointTiming> = self.plan.points.iter().filter_map(|p| timings.remove(&p.id)).collect();
        let heldout_loss = match data.heldout.len() {
            0 => None,
            _ => Some(super::training::heldout_loss(
                model,
                data,
                &self.ctx.schedule,
                self.cfg.seed,
                device.0,
            )?),
        };
        let mut manifest = Manifest {
            ddimlab_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: env!("DDIMLAB_GIT_COMMIT").into(),
            device: device.1.into(),
            seed: self.cfg.seed,
            config_hash: self.hash.clone(),
            started_unix: unix(s.started),
            finished_unix: unix(SystemTime::now()),
            wall_seconds: s.wall,
            point_seconds: 0.0,
            model_seconds: 0.0,
            outside_seconds: 0.0,
            outside_share: 0.0,
            reference_seconds: s.reference,
            store_seconds: s.store,
            classifier_accuracy: self.classifier_accuracy,
            heldout_loss,
            compared_with: self.compared_with.clone(),
            jobs: self.opts.jobs,
            shard: self.opts.shard.map(|s| s.to_string()),
            shards: Vec::new(),
            points: Vec::new(),
        };
        manifest.set_points(points);
        Ok(manifest)
    }
}

/// The sample statistics of a sweep that measures them (with the feature classifier of
/// labelled image data, trained or loaded), the classifier's held-out accuracy, and what
/// the samples are compared with.
fn sample_stats(
    cfg: &ExperimentConfig,
    data: &Dataset,
    plan: &Plan,
    device: &Device,
    out: &Path,
    progress: &Progress,
) -> Result<(Option<SampleStats>, Option<f64>, String)> {
    let (comparison, compared_with) = super::target::comparison(cfg, data, plan.samples)?;
    if !cfg.metrics.contains(&MetricKind::SampleStats) {
        return Ok((None, None, compared_with));
    }
    let classifier = match (&data.train.labels, data.shape()) {
        (Some(_), DataShape::Image { .. }) => {
            progress.println("feature classifier: training or loading (FID analogue)");
            let spec = ClassifierSpec::default();
            Some(load_or_train(
                out,
                data,
                &spec,
                cfg.seed,
                device,
                &mut Progress::hidden(),
            )?)
        }
        _ => None,
    };
    let accuracy = classifier.as_ref().map(|c| c.heldout_accuracy);
    let bootstrap = match cfg.sweep.bootstrap {
        0 => None,
        b => Some(Bootstrap::new(b, cfg.seed)?),
    };
    let stats = SampleStats::new(
        comparison,
        data.shape().numel(),
        Evaluation::of(data.shape()),
        cfg.sweep.projections,
        cfg.seed,
        bootstrap,
        data.mixture.clone(),
        classifier.map(|c| c.classifier),
    )?;
    Ok((Some(stats), accuracy, compared_with))
}

/// The noise-floor row of a sweep: the floor set measured like every point (with its
/// replicates, paired with the points'), its size and the samples' size.
fn noise_floor(stats: Option<&SampleStats>, compared_with: &str, samples: usize) -> Result<NoiseFloor> {
    let measured = match stats {
        Some(s) => s.floor()?,
        None => None,
    };
    Ok(NoiseFloor {
        compared_with: compared_with.into(),
        rows: stats.and_then(SampleStats::floor_rows),
        samples: Some(samples),
        metrics: measured.as_ref().map(|m| m.with_intervals()).unwrap_or_default(),
        replicates: measured.as_ref().map(|m| m.replicates.clone()).unwrap_or_default(),
        linear: measured.map(|m| m.linear).unwrap_or_default(),
    })
}

/// The id under which the standalone consistency reference of a τ kind is saved.
fn reference_id(tau: &Tau) -> String {
    format!("reference_{}_S{}", tau.kind(), tau.steps())
}

/// Every id a run of `plan` may save under `points/`: the sweep's points and the
/// standalone consistency references.
pub(super) fn saved_ids(plan: &Plan) -> impl Iterator<Item = String> + '_ {
    plan.points
        .iter()
        .map(|p| p.id.clone())
        .chain(plan.references.iter().map(|r| reference_id(&r.tau)))
}

/// Writes the tables of `rows`, `samples.h5` (with each point's exports) and
/// `config.yaml` into the results folder `out`.
pub(super) fn finalize(out: &Path, cfg: &ExperimentConfig, rows: &[MetricRow], shape: DataShape) -> Result<()> {
    let floor = NoiseFloor::load(out)?;
    write_tables(rows, (&floor.replicates, &floor.linear), out)?;
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

/// Refuses a folder holding points of a different configuration (unless `force`, which
/// clears the saved points and outputs), and creates it.
fn prepare_folder(out: &Path, plan: &Plan, hash: &str, force: bool) -> Result<()> {
    if force {
        let points = out.join("points");
        if points.exists() {
            std::fs::remove_dir_all(&points).map_err(|e| Error::io(&points, e))?;
        }
    } else {
        for id in saved_ids(plan) {
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

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Checks that a checkpoint folder is complete (before anything else), trains the
/// experiment's model if it has a `train:` block and no finished checkpoint, loads the
/// data and the model, and runs the sweep (what `ddimlab sweep` does).
pub fn sweep_experiment(cfg: &ExperimentConfig, opts: &SweepOptions) -> Result<SweepOutcome> {
    super::resources::check_checkpoint(cfg)?;
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
    let data = super::resources::load_data(cfg)?;
    let model = super::training::load_model(cfg, &opts.out, &device)?;
    run_sweep(cfg, model.as_ref(), &data, (&device, &described), opts)
}
