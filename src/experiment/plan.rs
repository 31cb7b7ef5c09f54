//! The sweep plan: τ kind × sampler × (for DDIM) clip × η × S expanded into points,
//! before any work starts.

use std::fmt::Write as _;

use crate::error::Result;
use crate::sampler::{Eta, Sampler, SamplerKind};
use crate::schedule::Tau;

use super::config::ExperimentConfig;
use super::sweep::MetricKind;

/// One sampler setting of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Stable name (see [`Point::name`]).
    pub id: String,
    /// The subsequence (kind, S, the distinct timesteps).
    pub tau: Tau,
    /// The solver, with η and clipping for DDIM.
    pub sampler: Sampler,
    /// Reconstruction is DDIM's (η = 0 both ways, whatever the point's η), so it runs once
    /// per (τ, S, clip): at the DDIM point with the sweep's first η.
    pub owns_reconstruction: bool,
}

impl Point {
    /// The name of a point: DDIM's `<tau>_eta<η>_S<S>` (`<tau>_sigma_hat_S<S>` for σ̂),
    /// `_clip` when clipped (only DDIM has η, so its name needs no solver); the other
    /// solvers' `<tau>_<sampler>_S<S>`.
    pub fn name(tau: &Tau, sampler: Sampler) -> String {
        let (kind, s) = (tau.kind(), tau.steps());
        match sampler {
            Sampler::Ddim { eta, clip_x0 } => {
                let eta = match eta {
                    Eta::Value(_) => format!("eta{eta}"),
                    Eta::SigmaHat => eta.to_string(),
                };
                let clip = if clip_x0 { "_clip" } else { "" };
                format!("{kind}_{eta}_S{s}{clip}")
            }
            other => format!("{kind}_{}_S{s}", other.kind()),
        }
    }

    fn new(tau: Tau, sampler: Sampler, owns_reconstruction: bool) -> Self {
        Self {
            id: Self::name(&tau, sampler),
            tau,
            sampler,
            owns_reconstruction,
        }
    }

    /// The η label of the tables ("0.0", "sigma_hat"; "-" for the deterministic solvers).
    pub fn eta_label(&self) -> String {
        match self.sampler {
            Sampler::Ddim { eta, .. } => eta.to_string(),
            _ => NO_ETA.into(),
        }
    }

    /// Whether x̂_0 is clipped.
    pub fn clip_x0(&self) -> bool {
        matches!(self.sampler, Sampler::Ddim { clip_x0: true, .. })
    }

    /// Model evaluations of one sampling pass.
    pub fn nfe(&self) -> usize {
        self.sampler.nfe(&self.tau)
    }
}

/// The largest S whose pass with `sampler` over `tau(S)` makes at most `target` model
/// evaluations (`None` when even S = 1 makes more), scanned over S = 1 … target (a pass
/// makes at least one evaluation per distinct timestep, n ≤ S).
fn steps_within(sampler: Sampler, target: usize, tau: impl Fn(usize) -> Result<Tau>) -> Result<Option<usize>> {
    let mut best = None;
    for s in 1..=target {
        let t = match tau(s) {
            Ok(t) => t,
            Err(e) if s == 1 => return Err(e),
            Err(_) => break, // S beyond T
        };
        if sampler.nfe(&t) <= target {
            best = Some(s);
        } else if s == 1 {
            break;
        }
    }
    Ok(best)
}

/// The η column of a solver without η.
pub const NO_ETA: &str = "-";

/// Shard `index` of `count` (`--shard K/N`, K = 0 … N − 1, as a Slurm array task id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// K.
    pub index: usize,
    /// N ≥ 1.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("{s:?}: expected K/N with 0 ≤ K < N, e.g. 0/4 (K as $SLURM_ARRAY_TASK_ID)");
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count): (usize, usize) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Self { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A consistency reference: η = 0, no clipping, S = `sweep.reference_steps`, over the
/// τ kind of the points it serves (so both start from x_T at the same timestep).
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Its subsequence.
    pub tau: Tau,
    /// The index of the sweep point that is the same run, if there is one (its samples
    /// then serve as the reference and nothing is computed twice).
    pub point: Option<usize>,
}

/// Every point of a sweep and the shared work.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Points in sweep order (τ kind, then sampler, then DDIM's clip and η, then S; then
    /// `sweep.extra`).
    pub points: Vec<Point>,
    /// One consistency reference per τ kind, when consistency is measured.
    pub references: Vec<Reference>,
    /// Samples per point.
    pub samples: usize,
    /// Held-out points encoded and decoded per reconstruction.
    pub reconstruction_samples: usize,
    /// What is measured.
    pub metrics: Vec<MetricKind>,
}

impl Plan {
    /// Expands the sweep of a validated experiment; `heldout` is the held-out split size.
    pub fn new(cfg: &ExperimentConfig, heldout: usize) -> Result<Self> {
        let sweep = &cfg.sweep;
        let schedule = cfg.schedule.build()?;
        let spacing = sweep.spacing();
        let tau = |kind, s| Tau::spaced(kind, s, &schedule, &spacing);
        let options = sweep.solver_options();
        let clips = sweep.clip_x0.values();
        let recon = cfg.metrics.contains(&MetricKind::Reconstruction);
        let mut points = Vec::new();
        for &kind in &sweep.tau {
            for &solver in &sweep.samplers {
                if solver != SamplerKind::Ddim {
                    for s in sweep.steps_for(kind) {
                        points.push(Point::new(tau(kind, s)?, Sampler::configured(solver, &options), false));
                    }
                    continue;
                }
                for &clip_x0 in &clips {
                    for (j, eta) in sweep.eta.iter().enumerate() {
                        for s in sweep.steps_for(kind) {
                            let sampler = Sampler::Ddim { eta: eta.0, clip_x0 };
                            points.push(Point::new(tau(kind, s)?, sampler, j == 0 && recon));
                        }
                    }
                }
            }
        }
        let mut extra = Vec::new();
        for &kind in &sweep.tau {
            for e in &sweep.extra {
                let sampler = Sampler::Ddim {
                    eta: e.eta.0,
                    clip_x0: false,
                };
                extra.push(Point::new(tau(kind, e.steps)?, sampler, false));
            }
        }
        for kind in sweep.low_nfe_tau() {
            for solver in sweep.low_nfe_samplers() {
                let sampler = Sampler::configured(solver, &options);
                for &target in sweep.low_nfe_targets() {
                    if let Some(s) = steps_within(sampler, target, |s| tau(kind, s))? {
                        extra.push(Point::new(tau(kind, s)?, sampler, false));
                    }
                }
            }
        }
        for point in extra {
            if !points.iter().any(|p| p.id == point.id) {
                points.push(point);
            }
        }
        let mut references = Vec::new();
        if cfg.metrics.contains(&MetricKind::Consistency) {
            for &kind in &sweep.tau {
                let tau = tau(kind, sweep.reference_steps())?;
                let point = points.iter().position(|p| p.tau == tau && p.sampler == Sampler::DDIM);
                references.push(Reference { tau, point });
            }
        }
        Ok(Self {
            points,
            references,
            samples: sweep.samples,
            reconstruction_samples: sweep.reconstruction_samples.unwrap_or(sweep.samples).min(heldout),
            metrics: cfg.metrics.clone(),
        })
    }

    /// Model evaluations of one point counted per sample: its sampling pass, plus DDIM's
    /// encode and decode of the reconstruction set where it owns one.
    pub fn point_evaluations(&self, p: &Point) -> usize {
        let recon = if p.owns_reconstruction {
            2 * self.reconstruction_samples
        } else {
            0
        };
        p.nfe() * self.samples + p.tau.len() * recon
    }

    /// The indices of the points shard `shard` runs. Consistency-reference points are in
    /// every shard (each needs their samples, computed identically everywhere); the other
    /// points are dealt longest-first by their model evaluations (ties by id), each to
    /// the shard with the least work so far (ties to the lower index): deterministic,
    /// balanced, every point in exactly one shard.
    pub fn shard(&self, shard: Shard) -> Vec<usize> {
        let references: Vec<usize> = self.references.iter().filter_map(|r| r.point).collect();
        let mut others: Vec<usize> = (0..self.points.len()).filter(|i| !references.contains(i)).collect();
        others.sort_by(|&a, &b| {
            let (pa, pb) = (&self.points[a], &self.points[b]);
            self.point_evaluations(pb)
                .cmp(&self.point_evaluations(pa))
                .then_with(|| pa.id.cmp(&pb.id))
        });
        let mut load = vec![0usize; shard.count];
        let mut mine = references;
        for i in others {
            let k = (0..shard.count).min_by_key(|&k| (load[k], k)).expect("count ≥ 1");
            load[k] += self.point_evaluations(&self.points[i]);
            if k == shard.index {
                mine.push(i);
            }
        }
        mine.sort_unstable();
        mine
    }

    /// The saved rows of every planned point (plan order) made by configuration `hash`,
    /// with each DDIM (τ, S, clip) group's reconstruction shared onto all its rows, and
    /// the ids of the points not saved (yet).
    pub fn saved_rows(&self, out: &std::path::Path, hash: &str) -> Result<(Vec<crate::store::MetricRow>, Vec<String>)> {
        let ids = self.points.iter().map(|p| p.id.as_str());
        let (mut rows, missing) = crate::store::manifest::saved_rows(out, ids, hash)?;
        super::measure::share_reconstruction(&mut rows);
        Ok((rows, missing))
    }

    /// Per-sample model evaluations of the references that are not sweep points.
    pub fn reference_evaluations(&self) -> usize {
        self.references
            .iter()
            .filter(|r| r.point.is_none())
            .map(|r| r.tau.len() * self.samples)
            .sum()
    }

    /// Per-sample model evaluations of the whole sweep.
    pub fn total_evaluations(&self) -> usize {
        self.points.iter().map(|p| self.point_evaluations(p)).sum::<usize>() + self.reference_evaluations()
    }

    /// A table of the points (for `ddimlab validate`).
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>8} {:>6} {:>5} {:>12}",
            "point", "tau", "sampler", "S", "nfe", "evaluations"
        );
        for p in &self.points {
            let _ = writeln!(
                out,
                "{:<28} {:>9} {:>8} {:>6} {:>5} {:>12}{}",
                p.id,
                p.tau.kind().name(),
                p.sampler.kind().name(),
                p.tau.steps(),
                p.nfe(),
                self.point_evaluations(p),
                if p.tau.len() != p.tau.steps() {
                    "  (nfe < S: repeated timesteps dropped)"
                } else {
                    ""
                }
            );
        }
        for r in &self.references {
            let _ = match r.point {
                Some(i) => writeln!(
                    out,
                    "consistency reference ({}): point {}",
                    r.tau.kind(),
                    self.points[i].id
                ),
                None => writeln!(
                    out,
                    "consistency reference ({}): eta 0, S = {} ({} evaluations)",
                    r.tau.kind(),
                    r.tau.steps(),
                    r.tau.len() * self.samples
                ),
            };
        }
        out
    }
}
