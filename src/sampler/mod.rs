//! The samplers: one [`Sampler`] over a shared signature (model, schedule, τ, x_T,
//! noise, per-step callback), each solver a short function in its own module, k-diffusion
//! style, its history in local variables.
//!
//! - [`ddim`]: the generalized DDIM step (paper Eq. 12) with its σ family (Eq. 16) and σ̂
//!   (Appendix D.3); η = 0 is Euler's method on the probability-flow ODE (Eq. 14).
//! - [`plms`]: pseudo linear multistep (Liu et al. 2022): Adams–Bashforth on ε through
//!   DDIM's transfer step, with a pseudo-improved-Euler first step.
//! - [`dpmpp`]: DPM-Solver++(2M) (Lu et al. 2022), multistep second order in λ = log(α/σ)
//!   on the data prediction.
//! - [`heun`]: Heun's second-order method in σ = √((1 − ᾱ)/ᾱ) (Karras et al. 2022).
//!
//! Every solver evaluates the model only at timesteps of τ and ends with a step onto clean
//! data (ᾱ_{−1} = 1). The model evaluations of a pass are counted as they happen
//! ([`PassOutput::nfe`]); [`Sampler::nfe`] predicts them for planning. DDIM's encoder
//! ([`encode`], DDIM inversion) serves the reconstruction metric. All coefficients are
//! f64; tensor arithmetic happens in the input's dtype on the input's device.

use std::fmt;

use candle_core::{DType, Tensor};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::kernels;
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

pub mod ddim;
pub mod dpmpp;
pub mod heun;
pub mod plms;

crate::named_enum! {
    /// The solvers a sweep can run (`sweep.samplers`).
    pub enum SamplerKind {
        /// The generalized DDIM step (paper Eq. 12), η and σ̂.
        Ddim = "ddim",
        /// Pseudo linear multistep (Liu et al. 2022).
        Plms = "plms",
        /// DPM-Solver++(2M) (Lu et al. 2022).
        Dpmpp2m = "dpmpp_2m",
        /// Heun's method on the probability-flow ODE (Karras et al. 2022).
        Heun = "heun",
    }
}

/// One solver with its settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// The generalized step with η or σ̂, x̂_0 optionally clipped to [−1, 1].
    Ddim {
        /// η or σ̂.
        eta: Eta,
        /// Clip x̂_0 before it is used (off in the official DDIM sampler).
        clip_x0: bool,
    },
    /// Pseudo linear multistep (deterministic).
    Plms,
    /// DPM-Solver++(2M) (deterministic).
    DpmSolverPp2M,
    /// Heun (deterministic).
    Heun,
}

impl Sampler {
    /// DDIM with η = 0 and no clipping: the deterministic sampler of paper Eq. 14.
    pub const DDIM: Sampler = Sampler::Ddim {
        eta: Eta::DDIM,
        clip_x0: false,
    };

    /// The solver of `kind` with its defaults (DDIM: η = 0, no clipping).
    pub fn of(kind: SamplerKind) -> Self {
        match kind {
            SamplerKind::Ddim => Self::DDIM,
            SamplerKind::Plms => Self::Plms,
            SamplerKind::Dpmpp2m => Self::DpmSolverPp2M,
            SamplerKind::Heun => Self::Heun,
        }
    }

    /// Which solver this is.
    pub fn kind(self) -> SamplerKind {
        match self {
            Sampler::Ddim { .. } => SamplerKind::Ddim,
            Sampler::Plms => SamplerKind::Plms,
            Sampler::DpmSolverPp2M => SamplerKind::Dpmpp2m,
            Sampler::Heun => SamplerKind::Heun,
        }
    }

    /// Model evaluations of one pass over `tau` (n distinct timesteps): DDIM and
    /// DPM-Solver++(2M) one per step (n); PLMS one more for its warm-up step (n + 1 when
    /// n ≥ 2); Heun two per step but one on the last, Euler, step onto data (2n − 1).
    pub fn nfe(self, tau: &Tau) -> usize {
        let n = tau.len();
        match self.kind() {
            SamplerKind::Ddim | SamplerKind::Dpmpp2m => n,
            SamplerKind::Plms => n + usize::from(n >= 2),
            SamplerKind::Heun => 2 * n - 1,
        }
    }
}

/// The stochasticity of the sampler: η of paper Eq. 16, or the paper's σ̂ (Appendix D.3).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Eta {
    /// σ_t = η · σ_t(1), η ∈ [0, 1] (Eq. 16).
    Value(f64),
    /// The larger DDPM variance σ̂_t² = 1 − ᾱ_t/ᾱ_prev with η = 1's direction term.
    SigmaHat,
}

impl Eta {
    /// η = 0: deterministic DDIM.
    pub const DDIM: Eta = Eta::Value(0.0);

    /// A numeric η, checked to lie in [0, 1].
    pub fn new(eta: f64) -> Result<Self> {
        if eta.is_finite() && (0.0..=1.0).contains(&eta) {
            Ok(Eta::Value(eta))
        } else {
            Err(Error::EtaOutOfRange(eta))
        }
    }

    /// The numeric η, or `None` for σ̂.
    pub fn value(self) -> Option<f64> {
        match self {
            Eta::Value(v) => Some(v),
            Eta::SigmaHat => None,
        }
    }
}

impl fmt::Display for Eta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Eta::Value(v) => write!(f, "{v:?}"),
            Eta::SigmaHat => f.write_str("sigma_hat"),
        }
    }
}

/// σ_t(η) of paper Eq. 16 for a step from ᾱ_t = `a_t` to ᾱ_prev = `a_prev`.
pub fn sigma(a_t: f64, a_prev: f64, eta: f64) -> f64 {
    eta * ((1.0 - a_prev) / (1.0 - a_t)).sqrt() * (1.0 - a_t / a_prev).sqrt()
}

/// The three coefficients of one generalized step (paper Eq. 12):
/// x_next = `x0` · x̂_0 + `eps` · ε + `noise` · z.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepCoefficients {
    /// √ᾱ_next, the weight of the predicted x_0.
    pub x0: f64,
    /// √(1 − ᾱ_next − σ_t²), the weight of the "direction pointing to x_t".
    pub eps: f64,
    /// The scale of the fresh noise.
    pub noise: f64,
}

impl StepCoefficients {
    /// Coefficients of the step from ᾱ_t = `a_t` to ᾱ_next = `a_next` with stochasticity `eta`.
    /// Deterministic (η = 0) steps may go either way (decoding or encoding).
    pub fn new(a_t: f64, a_next: f64, eta: Eta) -> Self {
        let (sigma_direction, noise) = match eta {
            Eta::Value(0.0) => (0.0, 0.0),
            Eta::Value(v) => {
                let s = sigma(a_t, a_next, v);
                (s, s)
            }
            Eta::SigmaHat => {
                let hat = if a_next < 1.0 { (1.0 - a_t / a_next).sqrt() } else { 0.0 };
                (sigma(a_t, a_next, 1.0), hat)
            }
        };
        Self {
            x0: a_next.sqrt(),
            eps: (1.0 - a_next - sigma_direction * sigma_direction).max(0.0).sqrt(),
            noise,
        }
    }

    /// The weights of x_t and ε once x̂_0 (Eq. 9, at ᾱ_t = `a_t`, unclipped) is substituted
    /// into `x0 · x̂_0 + eps · ε`: (x0/√ᾱ_t, eps − x0·√(1 − ᾱ_t)/√ᾱ_t).
    pub fn substituted(&self, a_t: f64) -> (f64, f64) {
        let (sa, sb) = (a_t.sqrt(), (1.0 - a_t).sqrt());
        (self.x0 / sa, self.eps - self.x0 * sb / sa)
    }
}

/// A source of standard-normal noise z for stochastic steps.
pub trait NoiseSource {
    /// Noise shaped like `like` (same shape, device, dtype) for step `step` (0-based, in sampling order).
    fn noise(&mut self, step: usize, like: &Tensor) -> Result<Tensor>;
}

/// Seeded standard-normal noise (ChaCha8), generated on the host so that a seed gives
/// the same numbers on every device.
#[derive(Debug, Clone)]
pub struct SeededNoise {
    rng: ChaCha8Rng,
}

impl SeededNoise {
    /// A noise stream for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// A tensor of i.i.d. N(0, 1) values of the given shape, device and dtype.
    pub fn standard_normal(&mut self, shape: &[usize], device: &candle_core::Device, dtype: DType) -> Result<Tensor> {
        let n: usize = shape.iter().product();
        let v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(&mut self.rng)).collect();
        Ok(Tensor::from_vec(v, shape, device)?.to_dtype(dtype)?)
    }
}

impl NoiseSource for SeededNoise {
    fn noise(&mut self, _step: usize, like: &Tensor) -> Result<Tensor> {
        self.standard_normal(like.dims(), like.device(), like.dtype())
    }
}

/// Noise drawn per sample: item `i` of a batch whose first item is sample `first` has
/// its own stream, so a sample's noise (like its x_T) does not depend on the batch it
/// is in, and every point of a sweep sees the same z for the same sample and step.
#[derive(Debug, Clone)]
pub struct PerSampleNoise {
    rngs: Vec<ChaCha8Rng>,
}

impl PerSampleNoise {
    /// Streams for samples `first .. first + n` of `seed`.
    pub fn new(seed: u64, first: usize, n: usize) -> Self {
        Self {
            rngs: (first..first + n)
                .map(|i| crate::rng::stream_at(seed, crate::rng::Purpose::SamplerNoise, i as u64))
                .collect(),
        }
    }
}

impl NoiseSource for PerSampleNoise {
    fn noise(&mut self, _step: usize, like: &Tensor) -> Result<Tensor> {
        if like.dim(0)? != self.rngs.len() {
            return Err(Error::Shape(format!(
                "noise for {} samples asked for a batch of {}",
                self.rngs.len(),
                like.dim(0)?
            )));
        }
        let per = like.elem_count() / self.rngs.len();
        let mut v = vec![0f32; like.elem_count()];
        // Every sample's stream fills its own row, so threads do not change the numbers.
        v.par_chunks_mut(per.max(1))
            .zip(self.rngs.par_iter_mut())
            .with_min_len(64)
            .for_each(|(row, rng)| row.iter_mut().for_each(|z| *z = StandardNormal.sample(rng)));
        Ok(Tensor::from_vec(v, like.dims(), like.device())?.to_dtype(like.dtype())?)
    }
}

/// The intermediate states of one pass.
#[derive(Debug, Clone)]
pub struct Trajectory {
    /// The starting state, then the state after every step (`steps + 1` tensors).
    pub states: Vec<Tensor>,
    /// x̂_0 (the "denoised" prediction) each step moved towards (`steps` tensors).
    pub x0_preds: Vec<Tensor>,
    /// The timestep of every state (`None`: clean data, ᾱ = 1).
    pub timesteps: Vec<Option<usize>>,
}

/// The result of one sampling, encoding or decoding pass.
#[derive(Debug, Clone)]
pub struct PassOutput {
    /// The final state: x_0 for sampling/decoding, x_{τ_S} for encoding.
    pub x: Tensor,
    /// Model evaluations the pass made, counted as they happened.
    pub nfe: usize,
    /// Every intermediate state, when asked for.
    pub trajectory: Option<Trajectory>,
}

/// What a solver reports after each step (k-diffusion's `callback` dictionary).
#[derive(Debug, Clone, Copy)]
pub struct Step<'a> {
    /// 0-based step index, in sampling order.
    pub index: usize,
    /// The timestep of the new state (`None`: clean data, ᾱ = 1).
    pub t: Option<usize>,
    /// The new state.
    pub x: &'a Tensor,
    /// The x̂_0 the step moved towards.
    pub denoised: &'a Tensor,
}

/// The per-step callback of a solver. Solvers form x̂_0 for it only when one is given.
pub type Callback<'a> = Option<&'a mut dyn FnMut(Step<'_>)>;

/// Reports step `index`, which moved to `x` at timestep `t`, to `callback` when there is
/// one, with the x̂_0 that `denoised` forms (only then).
fn report(
    callback: &mut Callback<'_>,
    index: usize,
    t: Option<usize>,
    x: &Tensor,
    denoised: impl FnOnce() -> Result<Tensor>,
) -> Result<()> {
    if let Some(cb) = callback.as_mut() {
        let denoised = denoised()?;
        cb(Step {
            index,
            t,
            x,
            denoised: &denoised,
        });
    }
    Ok(())
}

impl Sampler {
    /// Runs this solver from x_{τ_S} = `x_t` down to x_0 over `tau`, counting the model
    /// evaluations and recording the trajectory when asked. `noise` is used only by
    /// stochastic DDIM (η > 0 or σ̂).
    pub fn run(
        self,
        model: &dyn EpsModel,
        schedule: &Schedule,
        tau: &Tau,
        x_t: &Tensor,
        noise: &mut dyn NoiseSource,
        record: bool,
    ) -> Result<PassOutput> {
        check_input(schedule, tau, x_t, "sampler input x_T")?;
        let counted = Counted::new(model);
        let mut rec = record.then(|| Recorder::new(x_t, tau.timesteps().last().copied()));
        let mut push = |s: Step<'_>| {
            if let Some(r) = rec.as_mut() {
                r.push(s.x, s.denoised, s.t);
            }
        };
        let callback: Callback<'_> = if record { Some(&mut push) } else { None };
        let x = match self {
            Sampler::Ddim { eta, clip_x0 } => {
                ddim::sample(&counted, schedule, tau, x_t, noise, callback, eta, clip_x0)?
            }
            Sampler::Plms => plms::sample(&counted, schedule, tau, x_t, callback)?,
            Sampler::DpmSolverPp2M => dpmpp::sample_2m(&counted, schedule, tau, x_t, callback)?,
            Sampler::Heun => heun::sample(&counted, schedule, tau, x_t, callback)?,
        };
        Ok(PassOutput {
            x,
            nfe: counted.calls(),
            trajectory: rec.map(Recorder::finish),
        })
    }
}

/// Generates x_0 from x_{τ_S} = `x_t` with the generalized DDIM step (Eq. 12) over `tau`.
pub fn generate(
    model: &dyn EpsModel,
    schedule: &Schedule,
    tau: &Tau,
    x_t: &Tensor,
    opts: &SamplerOptions,
    noise: &mut dyn NoiseSource,
) -> Result<PassOutput> {
    let sampler = Sampler::Ddim {
        eta: opts.eta,
        clip_x0: opts.clip_x0,
    };
    sampler.run(model, schedule, tau, x_t, noise, opts.record_trajectory)
}

/// DDIM settings of one pass besides τ (see [`generate`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerOptions {
    /// η or σ̂.
    pub eta: Eta,
    /// Clip x̂_0 to [−1, 1] before it is used (off in the official DDIM sampler).
    pub clip_x0: bool,
    /// Keep every intermediate state.
    pub record_trajectory: bool,
}

impl Default for SamplerOptions {
    fn default() -> Self {
        Self {
            eta: Eta::DDIM,
            clip_x0: false,
            record_trajectory: false,
        }
    }
}

/// Deterministic DDIM decoding (η = 0) from x_{τ_S} to x_0: the Eq. 14 ODE, discretized.
pub fn decode(model: &dyn EpsModel, schedule: &Schedule, tau: &Tau, x_t: &Tensor, record: bool) -> Result<PassOutput> {
    let opts = SamplerOptions {
        record_trajectory: record,
        ..SamplerOptions::default()
    };
    // η = 0 never asks for noise; a fixed seed keeps the signature honest.
    generate(model, schedule, tau, x_t, &opts, &mut SeededNoise::new(0))
}

/// Deterministic DDIM encoding (inversion) of clean `x0` to x_{τ_S}: the Eq. 14 ODE run
/// from ᾱ = 1 up through τ. The step τ_{i−1} → τ_i evaluates ε_θ(x_{τ_{i−1}}, τ_i) (the
/// model at the target timestep, as diffusers' `DDIMInverseScheduler`), so the pass
/// makes one evaluation per distinct timestep and decoding undoes it as S grows.
pub fn encode(model: &dyn EpsModel, schedule: &Schedule, tau: &Tau, x0: &Tensor, record: bool) -> Result<PassOutput> {
    check_input(schedule, tau, x0, "encoder input x_0")?;
    let counted = Counted::new(model);
    let mut rec = record.then(|| Recorder::new(x0, None));
    let mut x = x0.clone();
    let mut t_from = None;
    for &t_to in tau.timesteps() {
        let (a_from, a_to) = (schedule.alpha_bar(t_from), schedule.alpha_bar(Some(t_to)));
        let coef = StepCoefficients::new(a_from, a_to, Eta::DDIM);
        let eps = counted.eps(&x, &batch_t(&x, t_to)?)?;
        let x0_pred = predict_x0(&x, &eps, a_from, false)?;
        let next = ((&x0_pred * coef.x0)? + (&eps * coef.eps)?)?;
        if let Some(r) = rec.as_mut() {
            r.push(&next, &x0_pred, Some(t_to));
        }
        x = next;
        t_from = Some(t_to);
    }
    Ok(PassOutput {
        x,
        nfe: counted.calls(),
        trajectory: rec.map(Recorder::finish),
    })
}

/// The deterministic DDIM step (Eq. 12 with σ = 0) from ᾱ_t = `a_t` to ᾱ_next = `a_next`
/// with noise estimate `eps`:
/// x_next = √(ᾱ_next/ᾱ_t) · x_t + (√(1 − ᾱ_next) − √(ᾱ_next (1 − ᾱ_t)/ᾱ_t)) · ε,
/// which is Euler's method on x̄ = x/√ᾱ in σ = √((1 − ᾱ)/ᾱ) (x̄_next = x̄ + (σ_next − σ) ε)
/// and PNDM's transfer φ. PLMS and Heun reuse it with a combined ε; it is DDIM's own
/// η = 0 step without clipping (the same coefficients, [`StepCoefficients::substituted`]).
pub fn ddim_step(x: &Tensor, eps: &Tensor, a_t: f64, a_next: f64) -> Result<Tensor> {
    let (x_coef, eps_coef) = StepCoefficients::new(a_t, a_next, Eta::DDIM).substituted(a_t);
    Ok(kernels::lincomb((x, x_coef), (eps, eps_coef), None)?)
}

/// The timesteps of every call, `t` repeated for a batch of `x`.
fn batch_t(x: &Tensor, t: usize) -> Result<Vec<usize>> {
    Ok(vec![t; x.dim(0)?])
}

/// x̂_0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t (paper Eq. 9), optionally clipped to [−1, 1].
pub fn predict_x0(x: &Tensor, eps: &Tensor, a_t: f64, clip: bool) -> Result<Tensor> {
    let x0 = ((x - (eps * (1.0 - a_t).sqrt())?)? / a_t.sqrt())?;
    Ok(if clip { x0.clamp(-1.0, 1.0)? } else { x0 })
}

/// Refuses inputs the sampler cannot use: no batch dimension, a τ over a different T, NaN/inf.
fn check_input(schedule: &Schedule, tau: &Tau, x: &Tensor, what: &str) -> Result<()> {
    if x.rank() < 2 {
        return Err(Error::Shape(format!(
            "{what} must be [n, …data shape], got {:?}",
            x.dims()
        )));
    }
    if let Some(&top) = tau.timesteps().last() {
        if top >= schedule.timesteps() {
            return Err(Error::StepsOutOfRange {
                steps: tau.steps(),
                timesteps: schedule.timesteps(),
            });
        }
    }
    let bad = count_non_finite(x)?;
    if bad > 0 {
        return Err(Error::NonFinite {
            what: what.to_string(),
            count: bad,
        });
    }
    Ok(())
}

/// Spherical linear interpolation between two latents (paper §5.4, after White 2016):
/// slerp(a, b; α) = sin((1−α)θ)/sin θ · a + sin(αθ)/sin θ · b with θ the angle between
/// them, which keeps interpolants at the norm typical of Gaussian x_T (a straight line
/// would pass through low-norm latents the model never saw). Nearly parallel latents
/// fall back to the straight line.
pub fn slerp(a: &[f32], b: &[f32], alpha: f64) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let theta = (dot / (norm(a) * norm(b))).clamp(-1.0, 1.0).acos();
    let (wa, wb) = if theta.sin().abs() < 1e-6 {
        (1.0 - alpha, alpha)
    } else {
        (
            ((1.0 - alpha) * theta).sin() / theta.sin(),
            (alpha * theta).sin() / theta.sin(),
        )
    };
    a.iter()
        .zip(b)
        .map(|(x, y)| (wa * *x as f64 + wb * *y as f64) as f32)
        .collect()
}

/// The number of NaN or infinite entries of `x`.
pub fn count_non_finite(x: &Tensor) -> Result<usize> {
    let v = x.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
    Ok(v.iter().filter(|v| !v.is_finite()).count())
}

/// Counts the evaluations made through it.
struct Counted<'a> {
    inner: &'a dyn EpsModel,
    calls: std::sync::atomic::AtomicUsize,
}

impl<'a> Counted<'a> {
    fn new(inner: &'a dyn EpsModel) -> Self {
        Self {
            inner,
            calls: Default::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl EpsModel for Counted<'_> {
    fn eps(&self, x: &Tensor, t: &[usize]) -> Result<Tensor> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.inner.eps(x, t)
    }
}

struct Recorder(Trajectory);

impl Recorder {
    fn new(start: &Tensor, t: Option<usize>) -> Self {
        Self(Trajectory {
            states: vec![start.clone()],
            x0_preds: Vec::new(),
            timesteps: vec![t],
        })
    }

    fn push(&mut self, state: &Tensor, x0: &Tensor, t: Option<usize>) {
        self.0.states.push(state.clone());
        self.0.x0_preds.push(x0.clone());
        self.0.timesteps.push(t);
    }

    fn finish(self) -> Trajectory {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_range_is_checked() {
        assert!(Eta::new(0.0).is_ok());
        assert!(Eta::new(1.0).is_ok());
        for bad in [-0.1, 1.5, f64::NAN, f64::INFINITY] {
            let msg = Eta::new(bad).unwrap_err().to_string();
            assert!(msg.contains("[0, 1]"), "{msg}");
        }
    }

    #[test]
    fn slerp_ends_at_its_inputs_and_keeps_the_norm_of_orthogonal_unit_vectors() {
        let (a, b) = ([1.0f32, 0.0], [0.0f32, 1.0]);
        assert_eq!(slerp(&a, &b, 0.0), a.to_vec());
        let end = slerp(&a, &b, 1.0);
        assert!((end[0]).abs() < 1e-7 && (end[1] - 1.0).abs() < 1e-7);
        let mid = slerp(&a, &b, 0.5);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((mid[0] - h).abs() < 1e-6 && (mid[1] - h).abs() < 1e-6, "{mid:?}");
        // Parallel inputs: the straight line.
        assert_eq!(slerp(&a, &[2.0, 0.0], 0.5), vec![1.5, 0.0]);
    }

    #[test]
    fn last_step_is_noise_free_for_every_eta() {
        for eta in [Eta::Value(0.5), Eta::Value(1.0), Eta::SigmaHat] {
            let c = StepCoefficients::new(0.7, 1.0, eta);
            assert_eq!((c.x0, c.eps, c.noise), (1.0, 0.0, 0.0), "{eta}");
        }
    }
}
