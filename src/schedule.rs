//! Noise schedules and sampling subsequences (pure math, f64).
//!
//! Conventions (see `docs/DESIGN.md`): timesteps are 0-based training indices
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
    }
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
    /// The subsequence of kind `kind` with S = `steps` out of T = `timesteps`.
    ///
    /// Errors when S < 1 or S > T, naming the value and the allowed range.
    pub fn new(kind: TauKind, steps: usize, timesteps: usize) -> Result<Self> {
        if steps < 1 || steps > timesteps {
            return Err(Error::StepsOutOfRange { steps, timesteps });
        }
        let (s, t) = (steps as u128, timesteps as u128);
        let mut ts: Vec<usize> = (0..s)
            .map(|i| match kind {
                TauKind::Linear => i * t / s,
                TauKind::Quadratic if s == 1 => 0,
                TauKind::Quadratic => 4 * t * i * i / (5 * (s - 1) * (s - 1)),
                TauKind::Trailing => round_half_even(t * (s - i), s) - 1,
            } as usize)
            .collect();
        ts.sort_unstable();
        ts.dedup();
        Ok(Self {
            kind,
            steps,
            timesteps: ts,
        })
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
