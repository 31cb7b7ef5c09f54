//! Noise schedules and sampling subsequences (pure math, f64).
//!
//! Conventions (see `ARCHITECTURE.md`): timesteps are 0-based training indices
//! t ∈ {0, …, T−1}, ᾱ_t = ∏_{s ≤ t} (1 − β_s) (paper §2, Eq. 2 with α_t := ᾱ_t in the
//! DDIM paper's notation), and ᾱ_{−1} = 1, so the step after the first element of a
//! tau subsequence lands on clean data.

use crate::error::{Error, Result};

crate::named_enum! {
    /// How β_t varies over the T training timesteps.
    pub enum BetaSchedule {
        /// β_t linear from `beta_start` to `beta_end` (Ho et al. 2020; DDIM's CIFAR-10 setting).
        Linear = "linear",
        /// √β_t linear from √`beta_start` to √`beta_end` (DDPM's "quad" schedule).
        Quadratic = "quadratic",
        /// Nichol & Dhariwal (2021): ᾱ(u) ∝ cos²((u + 0.008)/1.008 · π/2), β clipped at 0.999.
        Cosine = "cosine",
    }
}

/// The upper clip of β in the cosine schedule (Nichol & Dhariwal 2021, §3.2).
pub const COSINE_MAX_BETA: f64 = 0.999;
/// The offset s of the cosine schedule (Nichol & Dhariwal 2021, Eq. 17).
pub const COSINE_OFFSET: f64 = 0.008;

/// A discrete forward process: β_t and ᾱ_t for t = 0 … T−1, in f64.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    betas: Vec<f64>,
    alpha_bars: Vec<f64>,
}

/// The largest T a schedule accepts (its ᾱ table is T values; DDPM uses 1,000, and a
/// larger T is never a sampling-step count anyone needs).
pub const MAX_TIMESTEPS: usize = 1_000_000;

impl Schedule {
    /// Builds a schedule of `timesteps` steps. `beta_start` / `beta_end` are used by the
    /// linear and quadratic kinds and ignored by the cosine kind.
    pub fn new(kind: BetaSchedule, timesteps: usize, beta_start: f64, beta_end: f64) -> Result<Self> {
        if !(1..=MAX_TIMESTEPS).contains(&timesteps) {
            return Err(Error::Schedule(format!(
                "timesteps = {timesteps}: T must be between 1 and {MAX_TIMESTEPS}"
            )));
        }
        let betas = match kind {
            BetaSchedule::Linear | BetaSchedule::Quadratic => {
                if !(beta_start.is_finite() && beta_end.is_finite()) {
                    return Err(Error::Schedule(format!(
                        "beta_start = {beta_start}, beta_end = {beta_end}: both must be finite"
                    )));
                }
                if !(beta_start > 0.0 && beta_end < 1.0 && beta_start < beta_end) {
                    return Err(Error::Schedule(format!(
                        "beta_start = {beta_start}, beta_end = {beta_end}: need 0 < beta_start < beta_end < 1"
                    )));
                }
                let (lo, hi) = match kind {
                    BetaSchedule::Linear => (beta_start, beta_end),
                    _ => (beta_start.sqrt(), beta_end.sqrt()),
                };
                let square = kind == BetaSchedule::Quadratic;
                linspace(lo, hi, timesteps)
                    .map(|b| if square { b * b } else { b })
                    .collect()
            }
            BetaSchedule::Cosine => {
                let f = |u: f64| {
                    ((u + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * std::f64::consts::FRAC_PI_2)
                        .cos()
                        .powi(2)
                };
                let n = timesteps as f64;
                (0..timesteps)
                    .map(|i| (1.0 - f((i + 1) as f64 / n) / f(i as f64 / n)).min(COSINE_MAX_BETA))
                    .collect()
            }
        };
        Ok(Self::from_betas(betas))
    }

    /// The linear schedule of DDPM / DDIM: β from 1e-4 to 0.02 over T = 1000 steps.
    pub fn ddpm_linear() -> Self {
        Self::new(BetaSchedule::Linear, 1000, 1e-4, 0.02).expect("the DDPM defaults are valid")
    }

    fn from_betas(betas: Vec<f64>) -> Self {
        let alpha_bars = betas
            .iter()
            .scan(1.0, |prod, b| {
                *prod *= 1.0 - b;
                Some(*prod)
            })
            .collect();
        Self { betas, alpha_bars }
    }

    /// T, the number of training timesteps.
    pub fn timesteps(&self) -> usize {
        self.betas.len()
    }

    /// β_t for t = 0 … T−1.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// ᾱ_t for t = 0 … T−1.
    pub fn alpha_bars(&self) -> &[f64] {
        &self.alpha_bars
    }

    /// ᾱ_t, with the convention ᾱ_{−1} = 1 for `t = None`.
    pub fn alpha_bar(&self, t: Option<usize>) -> f64 {
        t.map_or(1.0, |t| self.alpha_bars[t])
    }
}

/// `n` evenly spaced values from `lo` to `hi` inclusive (numpy's `linspace`).
fn linspace(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f64> {
    let step = if n > 1 { (hi - lo) / (n - 1) as f64 } else { 0.0 };
    (0..n).map(move |i| if i + 1 == n && n > 1 { hi } else { lo + step * i as f64 })
}

crate::named_enum! {
    /// How the S sampling timesteps are picked from the T training timesteps (paper §4.2, Appendix D.2).
    pub enum TauKind {
        /// τ_i = ⌊i·T/S⌋, i = 0 … S−1 (the official code's `range(0, T, T // S)` when S divides T).
        Linear = "linear",
        /// τ_i = ⌊i²·0.8T/(S−1)²⌋ in exact integer arithmetic; tops out at 0.8 T; repeats dropped.
        Quadratic = "quadratic",
        /// {round(T − i·T/S) − 1 : i = 0 … S−1} (Lin et al. 2023), starts at T−1; round half to even.
        Trailing = "trailing",
        /// round(i·(T−1)/(S−1)), i = 0 … S−1: numpy's `linspace(0, T − 1, S)` rounded (diffusers'
        /// `timestep_spacing = "linspace"`); unlike `linear` it reaches T − 1.
        Uniform = "uniform",
        /// Uniform in λ = log(α/σ) between the ends of the schedule (Lu et al. 2022, DPM-Solver's
        /// recommendation; diffusers' `use_lu_lambdas`), each σ served at its rounded timestep.
        Logsnr = "logsnr",
        /// σ_i = (σ_max^{1/ρ} + i/(S−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ (Karras et al. 2022, Eq. 5;
        /// ρ = `sweep.karras_rho`, 7 by default), each σ served at its rounded timestep.
        Karras = "karras",
        /// An explicit list of timesteps (`sweep.custom_timesteps`); S is its length.
        Custom = "custom",
    }
}

/// ρ of the Karras spacing when none is given (Karras et al. 2022, §3).
pub const KARRAS_RHO: f64 = 7.0;

/// What the spacings beyond the integer formulas need: ρ of `karras` and the list of
/// `custom`.
#[derive(Debug, Clone, PartialEq)]
pub struct Spacing {
    /// ρ of the Karras spacing (> 0).
    pub karras_rho: f64,
    /// The timesteps of the `custom` kind (any order, each below T, no repeats).
    pub custom: Vec<usize>,
}

impl Default for Spacing {
    fn default() -> Self {
        Self {
            karras_rho: KARRAS_RHO,
            custom: Vec::new(),
        }
    }
}

/// σ = √((1 − ᾱ_t)/ᾱ_t) of every training timestep, the variance-exploding noise level
/// of x/√ᾱ (Karras et al. 2022; increasing in t).
pub fn sigmas(schedule: &Schedule) -> Vec<f64> {
    schedule.alpha_bars().iter().map(|a| ((1.0 - a) / a).sqrt()).collect()
}

/// log σ, with σ floored at 1e-10 (diffusers' `_sigma_to_t`): the table
/// [`timestep_of_sigma`] searches is built with it.
pub fn log_sigma(sigma: f64) -> f64 {
    sigma.max(1e-10).ln()
}

/// The timestep that serves noise level `sigma`: log σ interpolated linearly between the
/// two training timesteps around it (diffusers' `_sigma_to_t`), clipped to [0, T − 1],
/// then rounded half to even (numpy's `round`). The solvers then use ᾱ of that integer
/// timestep, so the model and the update always see the same noise level.
pub fn timestep_of_sigma(log_sigmas: &[f64], sigma: f64) -> usize {
    let n = log_sigmas.len();
    if n == 1 {
        return 0;
    }
    let l = log_sigma(sigma);
    let low = log_sigmas
        .iter()
        .filter(|&&s| l >= s)
        .count()
        .saturating_sub(1)
        .min(n - 2);
    let (a, b) = (log_sigmas[low], log_sigmas[low + 1]);
    let w = ((a - l) / (a - b)).clamp(0.0, 1.0);
    let t = (1.0 - w) * low as f64 + w * (low + 1) as f64;
    let r = t.round_ties_even();
    r as usize
}

/// A sampling subsequence τ of the training timesteps (paper §4.2).
///
/// `steps` is the S that was asked for; `timesteps` holds the distinct timesteps in
/// ascending order, so `len()` (DDIM's model evaluations of one pass) can be smaller than
/// `steps` when the quadratic formula repeats a timestep (a step t → t is a no-op).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tau {
    kind: TauKind,
    steps: usize,
    timesteps: Vec<usize>,
}

impl Tau {
    /// The subsequence of an integer-formula kind (linear, quadratic, trailing, uniform)
    /// with S = `steps` out of T = `timesteps`; the σ-spaced kinds need the schedule
    /// ([`Tau::spaced`]).
    ///
    /// Errors when S < 1 or S > T, naming the value and the allowed range.
    pub fn new(kind: TauKind, steps: usize, timesteps: usize) -> Result<Self> {
        if steps < 1 || steps > timesteps {
            return Err(Error::StepsOutOfRange { steps, timesteps });
        }
        let (s, t) = (steps as u128, timesteps as u128);
        let ts = (0..s).map(|i| {
            Ok(match kind {
                TauKind::Linear => i * t / s,
                TauKind::Quadratic if s == 1 => 0,
                TauKind::Quadratic => 4 * t * i * i / (5 * (s - 1) * (s - 1)),
                TauKind::Trailing => round_half_even(t * (s - i), s) - 1,
                TauKind::Uniform if s == 1 => 0,
                TauKind::Uniform => round_half_even(i * (t - 1), s - 1),
                TauKind::Logsnr | TauKind::Karras | TauKind::Custom => {
                    return Err(Error::Schedule(format!(
                        "τ kind {kind} is spaced by the noise schedule: use Tau::spaced"
                    )))
                }
            } as usize)
        });
        Ok(Self::distinct(kind, steps, ts.collect::<Result<_>>()?))
    }

    /// The subsequence of any kind for `schedule`: the integer formulas as [`Tau::new`];
    /// `logsnr` and `karras` place S noise levels between σ_max = σ(T − 1) and
    /// σ_min = σ(0) and serve each at its rounded timestep ([`timestep_of_sigma`]);
    /// `custom` takes `spacing.custom` (then `steps` must be its length). Timesteps that
    /// round to the same integer are kept once, so n (and the NFE) can be below S.
    pub fn spaced(kind: TauKind, steps: usize, schedule: &Schedule, spacing: &Spacing) -> Result<Self> {
        let t = schedule.timesteps();
        if !matches!(kind, TauKind::Logsnr | TauKind::Karras | TauKind::Custom) {
            return Self::new(kind, steps, t);
        }
        if kind == TauKind::Custom {
            return Self::custom(&spacing.custom, t);
        }
        if steps < 1 || steps > t {
            return Err(Error::StepsOutOfRange { steps, timesteps: t });
        }
        let sigma = sigmas(schedule);
        let log_sigmas: Vec<f64> = sigma.iter().map(|&s| log_sigma(s)).collect();
        let (lo, hi) = (log_sigmas[0], log_sigmas[t - 1]);
        let ramp = linspace(0.0, 1.0, steps);
        let levels: Vec<f64> = match kind {
            TauKind::Logsnr => ramp.map(|r| (hi + r * (lo - hi)).exp()).collect(),
            _ => {
                let rho = spacing.karras_rho;
                if !(rho.is_finite() && rho > 0.0) {
                    return Err(Error::Schedule(format!(
                        "karras_rho = {rho}: must be a positive number"
                    )));
                }
                let (max_inv, min_inv) = (sigma[t - 1].powf(1.0 / rho), sigma[0].powf(1.0 / rho));
                ramp.map(|r| (max_inv + r * (min_inv - max_inv)).powf(rho)).collect()
            }
        };
        let ts = levels.iter().map(|&s| timestep_of_sigma(&log_sigmas, s)).collect();
        Ok(Self::distinct(kind, steps, ts))
    }

    /// The `custom` subsequence: the listed timesteps (any order), each below T = `timesteps`,
    /// none twice; S is the length of the list.
    pub fn custom(list: &[usize], timesteps: usize) -> Result<Self> {
        if list.is_empty() {
            return Err(Error::Schedule("custom τ: the list of timesteps is empty".into()));
        }
        if let Some(&bad) = list.iter().find(|&&t| t >= timesteps) {
            return Err(Error::Schedule(format!(
                "custom τ: timestep {bad} is outside 0..={} (schedule.timesteps − 1)",
                timesteps - 1
            )));
        }
        let tau = Self::distinct(TauKind::Custom, list.len(), list.to_vec());
        if tau.len() != list.len() {
            return Err(Error::Schedule("custom τ: a timestep is listed twice".into()));
        }
        Ok(tau)
    }

    fn distinct(kind: TauKind, steps: usize, mut ts: Vec<usize>) -> Self {
        ts.sort_unstable();
        ts.dedup();
        Self {
            kind,
            steps,
            timesteps: ts,
        }
    }

    /// The kind of subsequence.
    pub fn kind(&self) -> TauKind {
        self.kind
    }

    /// S, the number of steps asked for.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The distinct timesteps, ascending.
    pub fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// The number of distinct timesteps n (DDIM makes one model evaluation per timestep;
    /// other solvers' counts are [`crate::sampler::Sampler::nfe`]).
    #[allow(clippy::len_without_is_empty)] // never empty: S ≥ 1
    pub fn len(&self) -> usize {
        self.timesteps.len()
    }

    /// The transitions of one sampling pass, in sampling order (noisiest first):
    /// `(t, t_prev)` with `t_prev = None` meaning ᾱ = 1 (clean data).
    pub fn transitions(&self) -> impl DoubleEndedIterator<Item = (usize, Option<usize>)> + '_ {
        let ts = &self.timesteps;
        (0..ts.len())
            .rev()
            .map(move |i| (ts[i], i.checked_sub(1).map(|j| ts[j])))
    }
}

/// `num / den` rounded to the nearest integer, ties to even (numpy's `round`), exactly.
fn round_half_even(num: u128, den: u128) -> u128 {
    let (q, r) = (num / den, num % den);
    match (2 * r).cmp(&den) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q % 2),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_half_even_matches_numpy() {
        // np.round([0.5, 1.5, 2.5, 2.4, 2.6]) = [0, 2, 2, 2, 3]
        assert_eq!(round_half_even(1, 2), 0);
        assert_eq!(round_half_even(3, 2), 2);
        assert_eq!(round_half_even(5, 2), 2);
        assert_eq!(round_half_even(12, 5), 2);
        assert_eq!(round_half_even(13, 5), 3);
    }

    #[test]
    fn linspace_hits_both_ends() {
        let v: Vec<f64> = linspace(1.0, 2.0, 5).collect();
        assert_eq!(v, vec![1.0, 1.25, 1.5, 1.75, 2.0]);
        assert_eq!(linspace(3.0, 4.0, 1).collect::<Vec<_>>(), vec![3.0]);
    }
}
