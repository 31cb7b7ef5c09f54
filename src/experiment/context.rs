//! One point of a sweep: sample from the shared x_T with the point's solver, reconstruct
//! the held-out set (DDIM), and measure; plus the standalone runs that are not plan
//! points (consistency references, the interpolation grid).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};

use crate::error::Result;
use crate::mixture::GaussianMixture;
use crate::model::EpsModel;
use crate::sampler::{encode, slerp, PerSampleNoise, Sampler};
use crate::schedule::{Schedule, Tau, TauKind};
use crate::shape::DataShape;
use crate::store::{MetricRow, PointArrays, Reconstruction};

use super::evaluation::{Evaluated, Evaluation};
use super::measure::{distance, exact_flow, names, Measured, SampleStats};
use super::plan::Point;

/// Times the model evaluations made through it, and reports each one (its batch size)
/// to `tick`, which drives the progress bar one NFE at a time.
pub(super) struct Timed<'a> {
    inner: &'a dyn EpsModel,
    nanos: AtomicU64,
    tick: &'a (dyn Fn(usize) + Sync),
}

impl<'a> Timed<'a> {
    pub(super) fn new(inner: &'a dyn EpsModel, tick: &'a (dyn Fn(usize) + Sync)) -> Self {
        Self {
            inner,
            nanos: AtomicU64::new(0),
            tick,
        }
    }

    pub(super) fn seconds(&self) -> f64 {
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

/// Everything a point needs, shared by all points.
pub(super) struct Context<'a> {
    pub model: &'a dyn EpsModel,
    pub schedule: Schedule,
    pub shape: DataShape,
    pub device: &'a Device,
    pub seed: u64,
    pub batch_size: usize,
    pub trajectory_samples: usize,
    pub latents: Vec<f32>,
    pub recon_inputs: Vec<f32>,
    pub stats: Option<SampleStats>,
    pub mixture: Option<GaussianMixture>,
}

/// The samples of one pass over the sweep's latents.
pub(super) struct Pass {
    /// x_0, one row per sample.
    pub samples: Vec<f32>,
    /// The recorded trajectory of the first samples, when asked.
    pub trajectory: Option<Vec<f32>>,
    /// Model evaluations per sample, counted by the solver.
    pub nfe: usize,
}

/// What a point's consistency is measured against.
pub(super) enum Consistency<'a> {
    /// Not measured.
    Skip,
    /// The point is the reference (distance 0 by construction).
    Itself,
    /// The reference's x_0 from the same latents, as the metrics see it.
    Against(&'a Evaluated),
}

/// Where a point reports model evaluations (the progress bar) and warnings.
pub(super) struct Report<'a> {
    pub on_eval: &'a (dyn Fn(usize) + Sync),
    pub warn: &'a (dyn Fn(&str) + Sync),
}

impl Context<'_> {
    fn numel(&self) -> usize {
        self.shape.numel()
    }

    /// `x` as the metrics see it: through the data's one [`Evaluation`] (the one the
    /// sample statistics apply to every set they compare). The stored samples stay raw.
    pub fn evaluated(&self, x: &[f32]) -> Evaluated {
        Evaluation::of(self.shape).apply(x)
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

    /// x_0 from `latents` (rows; sample i of the sweep is row i) with `sampler`,
    /// recording the trajectory of the first `record` rows.
    pub fn sample(
        &self,
        model: &dyn EpsModel,
        latents: &[f32],
        tau: &Tau,
        sampler: Sampler,
        record: usize,
    ) -> Result<Pass> {
        let mut nfe = 0;
        let (samples, trajectory) = self.batched(latents, record, |first, x| {
            let mut noise = PerSampleNoise::new(self.seed, first, x.dim(0)?);
            let out = sampler.run(model, &self.schedule, tau, x, &mut noise, first == 0 && record > 0)?;
            nfe = out.nfe;
            Ok((out.x, out.trajectory.map(|t| t.states)))
        })?;
        Ok(Pass {
            samples,
            trajectory,
            nfe,
        })
    }

    /// Held-out x_0 → x_T (DDIM encode) → x_0 (DDIM decode), both over `tau` (paper Table 2).
    fn reconstruct(&self, model: &dyn EpsModel, tau: &Tau, clip_x0: bool) -> Result<Reconstruction> {
        let (latents, _) = self.batched(&self.recon_inputs, 0, |_, x| {
            Ok((encode(model, &self.schedule, tau, x, false)?.x, None))
        })?;
        // A diverged encoding cannot be decoded (the sampler refuses NaN input): its
        // outputs are NaN, and the point records the divergence.
        let outputs = if non_finite(&latents) > 0 {
            vec![f32::NAN; latents.len()]
        } else {
            let decoder = Sampler::Ddim {
                eta: crate::sampler::Eta::DDIM,
                clip_x0,
            };
            self.sample(model, &latents, tau, decoder, 0)?.samples
        };
        Ok(Reconstruction {
            inputs: self.recon_inputs.clone(),
            latents,
            outputs,
        })
    }

    /// Runs one point and measures it.
    pub fn run_point(&self, p: &Point, consistency: Consistency, report: &Report) -> Result<(MetricRow, PointArrays)> {
        let start = Instant::now();
        let timed = Timed::new(self.model, report.on_eval);
        let pass = self.sample(&timed, &self.latents, &p.tau, p.sampler, self.trajectory_samples)?;
        let reconstruction = match p.owns_reconstruction {
            true => Some(self.reconstruct(&timed, &p.tau, p.clip_x0())?),
            false => None,
        };
        let bad = non_finite(&pass.samples);
        if bad > 0 {
            (report.warn)(&format!(
                "warning: point {} diverged ({bad} non-finite values in its samples); its metrics are NaN",
                p.id
            ));
        }
        let mut measured = self.sample_metrics(p, &pass.samples, bad, consistency)?;
        if let Some(rec) = &reconstruction {
            measured.extend(self.reconstruction_metrics(p, rec, report)?);
        }
        let metrics = measured.with_intervals();
        let (replicates, linear, rows) = (measured.replicates, measured.linear, measured.rows);
        let row = MetricRow {
            point_id: p.id.clone(),
            tau: p.tau.kind().name().into(),
            sampler: p.sampler.kind().name().into(),
            eta: p.eta_label(),
            eta_value: match p.sampler {
                Sampler::Ddim { eta, .. } => eta.value().unwrap_or(f64::NAN),
                _ => f64::NAN,
            },
            steps: p.tau.steps(),
            nfe: pass.nfe,
            clip_x0: p.clip_x0(),
            seconds: start.elapsed().as_secs_f64(),
            model_seconds: timed.seconds(),
            diverged: bad > 0,
            metrics,
            replicates,
            linear,
            rows,
        };
        let arrays = PointArrays {
            item_shape: self.shape.dims(),
            timesteps: p.tau.timesteps().iter().map(|&t| t as i64).collect(),
            latents: self.latents.clone(),
            samples: pass.samples,
            trajectory: pass.trajectory,
            reconstruction,
        };
        Ok((row, arrays))
    }

    /// Sample statistics (with their replicates), and consistency with the reference and
    /// with the exact flow (single-Gaussian oracle), each an MSE over the samples with the
    /// samples' own; NaN under every name when `bad` > 0 samples diverged.
    fn sample_metrics(&self, p: &Point, samples: &[f32], bad: usize, consistency: Consistency) -> Result<Measured> {
        let evaluated = self.evaluated(samples);
        let mut out = Measured::default();
        if let Some(stats) = &self.stats {
            out.extend(match bad {
                0 => stats.measure(&evaluated)?,
                _ => Measured::nan(&stats.names()),
            });
        }
        let reference = match consistency {
            Consistency::Skip => return Ok(out),
            Consistency::Itself => &evaluated,
            Consistency::Against(r) => r,
        };
        let (d, keys) = (self.numel(), [names::CONSISTENCY_MSE, names::CONSISTENCY_PSNR]);
        out.extend(nan_if_bad(bad, &keys, || {
            distance(&evaluated, reference, d, keys[0], Some(keys[1]))
        })?);
        let top = self.schedule.alpha_bar(p.tau.timesteps().last().copied());
        let bottom = self.schedule.alpha_bar(Some(0));
        if let Some(exact) = self
            .mixture
            .as_ref()
            .and_then(|m| exact_flow(m, &self.latents, top, bottom))
        {
            let key = names::CONSISTENCY_EXACT_MSE;
            out.extend(nan_if_bad(bad, &[key], || distance(samples, &exact, d, key, None))?);
        }
        Ok(out)
    }

    /// The reconstruction error of the held-out set, with each held-out row's (the same
    /// rows at every point).
    fn reconstruction_metrics(&self, p: &Point, rec: &Reconstruction, report: &Report) -> Result<Measured> {
        let bad = non_finite(&rec.outputs);
        if bad > 0 {
            (report.warn)(&format!(
                "warning: point {}: the reconstruction diverged ({bad} non-finite values)",
                p.id
            ));
        }
        let keys = [names::RECON_MSE, names::RECON_PSNR];
        let (outputs, inputs) = (self.evaluated(&rec.outputs), self.evaluated(&rec.inputs));
        nan_if_bad(bad, &keys, || {
            distance(&outputs, &inputs, self.numel(), keys[0], Some(keys[1]))
        })
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
    /// The standalone consistency reference over `tau` (DDIM, η = 0): a saved point
    /// without metrics.
    pub fn reference(&self, id: &str, tau: &Tau, on_eval: &(dyn Fn(usize) + Sync)) -> Result<(MetricRow, PointArrays)> {
        let start = Instant::now();
        let timed = Timed::new(self.model, on_eval);
        let pass = self.sample(&timed, &self.latents, tau, Sampler::DDIM, 0)?;
        Ok(self.bare_point(id, tau, self.latents.clone(), pass, start, timed.seconds()))
    }

    /// Decodes slerp interpolations between pairs of the sweep's latents with DDIM
    /// (η = 0, linear τ, S = 50; paper §5.4): `latents` holds the interpolated x_T and
    /// `samples` the decoded images, pair by pair, `INTERPOLATION_POINTS` per pair.
    pub fn interpolate(&self, samples: usize) -> Result<(MetricRow, PointArrays)> {
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
        let t = self.schedule.timesteps();
        let tau = Tau::new(TauKind::Linear, INTERPOLATION_STEPS.min(t), t)?;
        let timed = Timed::new(self.model, &|_| {});
        let pass = self.sample(&timed, &latents, &tau, Sampler::DDIM, 0)?;
        Ok(self.bare_point(INTERPOLATION_ID, &tau, latents, pass, start, timed.seconds()))
    }

    /// A saved point without metrics, decoded with DDIM at η = 0 and no clipping.
    fn bare_point(
        &self,
        id: &str,
        tau: &Tau,
        latents: Vec<f32>,
        pass: Pass,
        start: Instant,
        model_seconds: f64,
    ) -> (MetricRow, PointArrays) {
        let row = MetricRow {
            point_id: id.into(),
            tau: tau.kind().name().into(),
            sampler: Sampler::DDIM.kind().name().into(),
            eta: crate::sampler::Eta::DDIM.to_string(),
            eta_value: 0.0,
            steps: tau.steps(),
            nfe: pass.nfe,
            clip_x0: false,
            seconds: start.elapsed().as_secs_f64(),
            model_seconds,
            diverged: non_finite(&pass.samples) > 0,
            metrics: BTreeMap::new(),
            replicates: BTreeMap::new(),
            linear: BTreeMap::new(),
            rows: BTreeMap::new(),
        };
        let arrays = PointArrays {
            item_shape: self.shape.dims(),
            timesteps: tau.timesteps().iter().map(|&t| t as i64).collect(),
            latents,
            samples: pass.samples,
            trajectory: None,
            reconstruction: None,
        };
        (row, arrays)
    }
}

pub(super) fn non_finite(v: &[f32]) -> usize {
    v.iter().filter(|x| !x.is_finite()).count()
}

/// The metrics `value` computes, or NaN under every name in `keys` when `bad` > 0 (the
/// metrics of a diverged set are not numbers worth keeping, and must not fail the sweep).
fn nan_if_bad(bad: usize, keys: &[&str], value: impl FnOnce() -> Result<Measured>) -> Result<Measured> {
    match bad {
        0 => value(),
        _ => Ok(Measured::nan(keys)),
    }
}
