//! The sweep plan: τ kind × η × S × clip expanded into points, before any work starts.

use std::fmt::Write as _;

use crate::error::Result;
use crate::schedule::{Tau, TauKind};

use super::config::ExperimentConfig;
use super::sweep::{EtaSpec, MetricKind};

/// One sampler setting of the sweep.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Stable name: `<tau>_eta<η>_S<S>` (`<tau>_sigma_hat_S<S>` for σ̂), `_clip` when clipped.
    pub id: String,
    /// The subsequence (kind, S, the distinct timesteps).
    pub tau: Tau,
    /// η or σ̂.
    pub eta: EtaSpec,
    /// Clip x̂_0 to [−1, 1].
    pub clip_x0: bool,
    /// Reconstruction is deterministic (η = 0 whatever the point's η), so it runs once
    /// per (τ, S, clip): at the point with the sweep's first η.
    pub owns_reconstruction: bool,
}

impl Point {
    /// The name of a point.
    pub fn name(tau: &Tau, eta: &EtaSpec, clip_x0: bool) -> String {
        let eta = match eta.0.value() {
            Some(_) => format!("eta{}", eta.label()),
            None => eta.label(),
        };
        let clip = if clip_x0 { "_clip" } else { "" };
        format!("{}_{eta}_S{}{clip}", tau.kind(), tau.steps())
    }
}

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
    /// Points in sweep order (τ kind, then clip, then η, then S; then `sweep.extra`).
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
        let t = cfg.schedule.timesteps;
        let clips = sweep.clip_x0.values();
        let mut points = Vec::new();
        for &kind in &sweep.tau {
            for &clip_x0 in &clips {
                for (j, eta) in sweep.eta.iter().enumerate() {
                    for &s in &sweep.steps {
                        let tau = Tau::new(kind, s, t)?;
                        points.push(Point {
                            id: Point::name(&tau, eta, clip_x0),
                            tau,
                            eta: *eta,
                            clip_x0,
                            owns_reconstruction: j == 0 && cfg.metrics.contains(&MetricKind::Reconstruction),
                        });
                    }
                }
            }
        }
        for &kind in &sweep.tau {
            for extra in &sweep.extra {
                let tau = Tau::new(kind, extra.steps, t)?;
                let id = Point::name(&tau, &extra.eta, false);
                if !points.iter().any(|p| p.id == id) {
                    points.push(Point {
                        id,
                        tau,
                        eta: extra.eta,
                        clip_x0: false,
                        owns_reconstruction: false,
                    });
                }
            }
        }
        let mut references = Vec::new();
        if cfg.metrics.contains(&MetricKind::Consistency) {
            for &kind in &sweep.tau {
                let tau = Tau::new(kind, sweep.reference_steps(), t)?;
                let point = points
                    .iter()
                    .position(|p| p.tau == tau && p.eta.0 == crate::sampler::Eta::DDIM && !p.clip_x0);
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

    /// Per-sample model evaluations of one point: its sampling pass, plus encode and
    /// decode of the reconstruction set where it owns one (counted per sample).
    pub fn point_evaluations(&self, p: &Point) -> usize {
        let recon = if p.owns_reconstruction {
            2 * self.reconstruction_samples
        } else {
            0
        };
        p.tau.nfe() * (self.samples + recon)
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

    /// The reference that serves points of τ kind `kind`.
    pub fn reference_for(&self, kind: TauKind) -> Option<&Reference> {
        self.references.iter().find(|r| r.tau.kind() == kind)
    }

    /// Per-sample model evaluations of the references that are not sweep points.
    pub fn reference_evaluations(&self) -> usize {
        self.references
            .iter()
            .filter(|r| r.point.is_none())
            .map(|r| r.tau.nfe() * self.samples)
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
            "{:<28} {:>9} {:>6} {:>5} {:>12}",
            "point", "tau", "S", "nfe", "evaluations"
        );
        for p in &self.points {
            let _ = writeln!(
                out,
                "{:<28} {:>9} {:>6} {:>5} {:>12}{}",
                p.id,
                p.tau.kind().name(),
                p.tau.steps(),
                p.tau.nfe(),
                self.point_evaluations(p),
                if p.tau.nfe() != p.tau.steps() {
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
                    r.tau.nfe() * self.samples
                ),
            };
        }
        out
    }
}
