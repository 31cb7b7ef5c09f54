//! The samplers: one [`Sampler`] over a shared signature (model, schedule, τ, x_T,
//! noise, per-step callback), each solver a short function in its own module, k-diffusion
//! style, its history in local variables.
//!
//! - [`ddim`]: the generalized DDIM step (paper Eq. 12) with its σ family (Eq. 16) and σ̂
//!   (Appendix D.3); η = 0 is Euler's method on the probability-flow ODE (Eq. 14). DDIM's
//!   own math (η, σ, the step coefficients, the encoder) lives there.
//! - [`plms`]: pseudo linear multistep (Liu et al. 2022): Adams–Bashforth on ε through
//!   DDIM's transfer step, with a pseudo-improved-Euler first step.
//! - [`ipndm`]: improved PNDM (Zhang & Chen 2023): the same Adams–Bashforth with a
//!   lower-order warm-up instead of the extra evaluation.
//! - [`dpmpp_2m`], [`dpmpp_3m`]: DPM-Solver++(2M) and (3M) (Lu et al. 2022), multistep in
//!   λ = log(α/σ) on the data prediction; [`dpmpp_2m_sde`]: its SDE variant.
//! - [`unipc`]: UniPC-bh2 of order 2 or 3 (Zhao et al. 2023), predictor-corrector.
//! - [`heun`]: Heun's second-order method in σ = √((1 − ᾱ)/ᾱ) (Karras et al. 2022), and
//!   Euler's (the same without the corrector), each with EDM's optional [`churn`].
//!
//! Every solver evaluates the model only at timesteps of τ (churn at rounded timesteps)
//! and ends with a step onto clean data (ᾱ_{−1} = 1). The model evaluations of a pass are
//! counted as they happen ([`PassOutput::nfe`]); [`Sampler::nfe`] predicts them for
//! planning. The stochastic samplers draw z from a [`NoiseSource`] ([`noise`]). All
//! coefficients are f64; tensor arithmetic happens in the input's dtype on the input's
//! device.

use candle_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::model::EpsModel;
use crate::schedule::{Schedule, Tau};

pub mod churn;
pub mod ddim;
pub mod dpmpp_2m;
pub mod dpmpp_2m_sde;
pub mod dpmpp_3m;
pub mod heun;
pub mod ipndm;
pub mod lambda;
pub mod noise;
pub mod plms;
pub mod unipc;

pub use churn::Churn;

pub use ddim::{ddim_step, encode, sigma, Eta, StepCoefficients};
pub use noise::{NoiseSource, PerSampleNoise, SeededNoise};

crate::named_enum! {
    /// The solvers a sweep can run (`sweep.samplers`); each name is also its module's.
    pub enum SamplerKind {
        /// The generalized DDIM step (paper Eq. 12), η and σ̂.
        Ddim = "ddim",
        /// Pseudo linear multistep (Liu et al. 2022).
        Plms = "plms",
        /// Improved PNDM (Zhang & Chen 2023).
        Ipndm = "ipndm",
        /// DPM-Solver++(2M) (Lu et al. 2022).
        Dpmpp2m = "dpmpp_2m",
        /// DPM-Solver++(3M) (Lu et al. 2022).
        Dpmpp3m = "dpmpp_3m",
        /// DPM-Solver++(2M) SDE (stochastic; Lu et al. 2022).
        Dpmpp2mSde = "dpmpp_2m_sde",
        /// UniPC-bh2 of order 2 (Zhao et al. 2023).
        Unipc = "unipc",
        /// UniPC-bh2 of order 3 (Zhao et al. 2023).
        Unipc3 = "unipc3",
        /// Euler's method in σ (Karras et al. 2022), with optional churn.
        Euler = "euler",
        /// Heun's method on the probability-flow ODE (Karras et al. 2022), with optional churn.
        Heun = "heun",
    }
}

/// The solvers' settings besides η and clipping (from the sweep).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Options {
    /// EDM's churn for Euler and Heun.
    pub churn: Churn,
    /// DPM-Solver++(2M): first order where r = h_{i−1}/h is below this.
    pub dpmpp_min_r: Option<f64>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            churn: Churn::NONE,
            dpmpp_min_r: None,
        }
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
    /// Improved PNDM (deterministic).
    Ipndm,
    /// DPM-Solver++(2M) (deterministic).
    Dpmpp2m {
        /// First order on a step whose r = h_{i−1}/h falls below this (none: diffusers' rule,
        /// second order on every step but the first and the last).
        min_r: Option<f64>,
    },
    /// DPM-Solver++(3M) (deterministic).
    Dpmpp3m,
    /// DPM-Solver++(2M) SDE (stochastic).
    Dpmpp2mSde,
    /// UniPC-bh2 of order 2 or 3 (deterministic).
    Unipc {
        /// 2 or 3.
        order: usize,
    },
    /// Euler in σ, with churn (deterministic without: then it is DDIM with η = 0).
    Euler {
        /// EDM's churn.
        churn: Churn,
    },
    /// Heun, with churn (deterministic without).
    Heun {
        /// EDM's churn.
        churn: Churn,
    },
}

impl Sampler {
    /// DDIM with η = 0 and no clipping: the deterministic sampler of paper Eq. 14.
    pub const DDIM: Sampler = Sampler::Ddim {
        eta: Eta::DDIM,
        clip_x0: false,
    };

    /// DPM-Solver++(2M) as diffusers runs it.
    pub const DPMPP_2M: Sampler = Sampler::Dpmpp2m { min_r: None };

    /// The solver of `kind` with its defaults (DDIM: η = 0, no clipping; no churn).
    pub fn of(kind: SamplerKind) -> Self {
        Self::configured(kind, &Options::default())
    }

    /// The solver of `kind` with the sweep's `options` (churn for Euler and Heun, the
    /// smallest r of DPM-Solver++(2M)'s second-order steps).
    pub fn configured(kind: SamplerKind, options: &Options) -> Self {
        let churn = options.churn;
        match kind {
            SamplerKind::Ddim => Self::DDIM,
            SamplerKind::Plms => Self::Plms,
            SamplerKind::Ipndm => Self::Ipndm,
            SamplerKind::Dpmpp2m => Self::Dpmpp2m {
                min_r: options.dpmpp_min_r,
            },
            SamplerKind::Dpmpp3m => Self::Dpmpp3m,
            SamplerKind::Dpmpp2mSde => Self::Dpmpp2mSde,
            SamplerKind::Unipc => Self::Unipc { order: 2 },
            SamplerKind::Unipc3 => Self::Unipc { order: 3 },
            SamplerKind::Euler => Self::Euler { churn },
            SamplerKind::Heun => Self::Heun { churn },
        }
    }

    /// Which solver this is.
    pub fn kind(self) -> SamplerKind {
        match self {
            Sampler::Ddim { .. } => SamplerKind::Ddim,
            Sampler::Plms => SamplerKind::Plms,
            Sampler::Ipndm => SamplerKind::Ipndm,
            Sampler::Dpmpp2m { .. } => SamplerKind::Dpmpp2m,
            Sampler::Dpmpp3m => SamplerKind::Dpmpp3m,
            Sampler::Dpmpp2mSde => SamplerKind::Dpmpp2mSde,
            Sampler::Unipc { order: 3 } => SamplerKind::Unipc3,
            Sampler::Unipc { .. } => SamplerKind::Unipc,
            Sampler::Euler { .. } => SamplerKind::Euler,
            Sampler::Heun { .. } => SamplerKind::Heun,
        }
    }

    /// Model evaluations of one pass over `tau` (n distinct timesteps): one per step
    /// (n) for every solver but PLMS, one more for its warm-up step (n + 1 when n ≥ 2),
    /// and Heun, two per step but one on the last, Euler, step onto data (2n − 1).
    pub fn nfe(self, tau: &Tau) -> usize {
        let n = tau.len();
        match self.kind() {
            SamplerKind::Plms => n + usize::from(n >= 2),
            SamplerKind::Heun => 2 * n - 1,
            _ => n,
        }
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
    /// evaluations and recording the trajectory when asked. `noise` is used only by the
    /// stochastic settings (DDIM with η > 0 or σ̂, DPM-Solver++(2M) SDE, churn).
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
        let (m, sch) = (&counted, schedule);
        let x = match self {
            Sampler::Ddim { eta, clip_x0 } => ddim::sample(m, sch, tau, x_t, noise, callback, eta, clip_x0)?,
            Sampler::Plms => plms::sample(m, sch, tau, x_t, callback)?,
            Sampler::Ipndm => ipndm::sample(m, sch, tau, x_t, callback)?,
            Sampler::Dpmpp2m { min_r } => dpmpp_2m::sample(m, sch, tau, x_t, callback, min_r)?,
            Sampler::Dpmpp3m => dpmpp_3m::sample(m, sch, tau, x_t, callback)?,
            Sampler::Dpmpp2mSde => dpmpp_2m_sde::sample(m, sch, tau, x_t, noise, callback)?,
            Sampler::Unipc { order } => unipc::sample(m, sch, tau, x_t, callback, order)?,
            Sampler::Euler { churn } => heun::sample(m, sch, tau, x_t, noise, callback, churn, false)?,
            Sampler::Heun { churn } => heun::sample(m, sch, tau, x_t, noise, callback, churn, true)?,
        };
        Ok(PassOutput {
            x,
            nfe: counted.calls(),
            trajectory: rec.map(Recorder::finish),
        })
    }
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
}
