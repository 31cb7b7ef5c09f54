//! What a results folder records besides its points: `manifest.json` (what ran, where,
//! how long) and `noise_floor.json` (the metrics of real data against the reference), and
//! the saved rows of a list of points.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::points::{point_status, PointStatus};
use super::MetricRow;
use crate::atomic::write_atomic;
use crate::error::{Error, Result};

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

impl PointTiming {
    /// The timing of a saved point, `reused` when this run did not compute it.
    pub fn of(row: &MetricRow, reused: bool) -> Self {
        Self {
            id: row.point_id.clone(),
            seconds: row.seconds,
            model_seconds: row.model_seconds,
            nfe: row.nfe,
            diverged: row.diverged,
            reused,
        }
    }
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

    /// Sets the per-point timings and the totals derived from them (point time, model
    /// time, time outside the model and its share).
    pub fn set_points(&mut self, points: Vec<PointTiming>) {
        self.point_seconds = points.iter().map(|p| p.seconds).sum();
        self.model_seconds = points.iter().map(|p| p.model_seconds).sum();
        self.outside_seconds = self.point_seconds - self.model_seconds;
        self.outside_share = if self.point_seconds > 0.0 {
            self.outside_seconds / self.point_seconds
        } else {
            0.0
        };
        self.points = points;
    }

    /// Reads `<out>/manifest.json`.
    pub fn load(out: &Path) -> Result<Self> {
        let path = out.join(Self::FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| Error::file(&path, e))
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

/// The file of the noise-floor row in a results folder.
pub const NOISE_FLOOR_FILE: &str = "noise_floor.json";

/// The noise-floor row: every sample statistic between an independent real set and the
/// reference (what a perfect sampler would score at this sample size).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NoiseFloor {
    /// What the reference and the floor set are.
    pub compared_with: String,
    /// Rows of the floor set (`None`: no floor set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<usize>,
    /// Rows of the generated samples of every point (the floor set has as many where the
    /// data allow; a smaller floor set carries more small-sample bias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
    /// The metrics (with `_lo` / `_hi`); empty without sample statistics or a floor set.
    pub metrics: BTreeMap<String, f64>,
    /// Every metric's bootstrap replicates, paired with the points' (the same reference
    /// resamples).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "super::point::json_f64_vec_map"
    )]
    pub replicates: BTreeMap<String, Vec<f64>>,
    /// Every U-statistic's first-order projection.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub linear: BTreeMap<String, crate::metrics::bootstrap::Linear>,
}

impl NoiseFloor {
    /// Writes it to `<out>/noise_floor.json` (atomically).
    pub fn save(&self, out: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).expect("serialisable");
        write_atomic(&out.join(NOISE_FLOOR_FILE), text.as_bytes())
    }

    /// The floor saved in results folder `out` (an empty one when the file is missing,
    /// e.g. a folder from before floors existed).
    pub fn load(out: &Path) -> Result<Self> {
        let path = out.join(NOISE_FLOOR_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| Error::file(&path, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(&path, e)),
        }
    }
}

/// The saved rows of the points `ids` (in that order) made by configuration `hash`, and
/// the ids not saved (yet).
pub fn saved_rows<'a>(
    out: &Path,
    ids: impl IntoIterator<Item = &'a str>,
    hash: &str,
) -> Result<(Vec<MetricRow>, Vec<String>)> {
    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        match point_status(out, id, hash)? {
            PointStatus::Done(row) => rows.push(*row),
            _ => missing.push(id.to_string()),
        }
    }
    Ok((rows, missing))
}
