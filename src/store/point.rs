//! The record of one sweep point: its metrics row and its arrays.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// One row of `metrics.parquet` / `metrics.csv`: one sweep point.
///
/// In JSON, non-finite floats are kept faithfully: NaN is written as `null`, ±infinity
/// as the strings `"inf"` / `"-inf"`, and read back as such.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// e.g. `linear_eta0.2_S10`; must be a safe file and HDF5 group name (see [`check_point_id`]).
    pub point_id: String,
    /// `linear` | `quadratic` | `trailing`.
    pub tau: String,
    /// `ddim` | `plms` | `dpmpp_2m` | `heun` (rows saved before samplers existed are DDIM's).
    #[serde(default = "ddim")]
    pub sampler: String,
    /// η as written in YAML: `0.0`, `0.2`, `sigma_hat`; `-` for solvers without η.
    pub eta: String,
    /// η as a number; NaN for `sigma_hat`.
    #[serde(with = "json_f64")]
    pub eta_value: f64,
    /// The number of steps S asked for.
    pub steps: usize,
    /// Model evaluations actually made per sample pass.
    pub nfe: usize,
    /// Whether the predicted x_0 was clipped to [-1, 1].
    pub clip_x0: bool,
    /// Wall time of the point.
    #[serde(with = "json_f64")]
    pub seconds: f64,
    /// Time spent inside model evaluations.
    #[serde(with = "json_f64")]
    pub model_seconds: f64,
    /// Whether NaN or infinity was produced.
    pub diverged: bool,
    /// Metric name → value; NaN where not computed.
    #[serde(with = "json_f64_map")]
    pub metrics: BTreeMap<String, f64>,
    /// Metric name → its bootstrap replicates, in resample order (replicate b of every
    /// point of a sweep uses the same resamples, so two points compare pairwise); empty
    /// without intervals. `bootstrap.parquet` holds them; `metrics.parquet` does not.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "json_f64_vec_map")]
    pub replicates: BTreeMap<String, Vec<f64>>,
    /// Metric name → its first-order projection onto each generated and reference row
    /// (MMD², KID): with the replicates, the spread of a statistic and of a difference.
    /// `projections.parquet` holds them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub linear: BTreeMap<String, crate::metrics::bootstrap::Linear>,
    /// Metric name → its value on each row, for the means over rows that every point of a
    /// sweep shares (reconstruction error: the held-out rows; consistency: the samples from
    /// x_T), in row order: two points compare row by row (a sign test,
    /// [`crate::metrics::paired::sign_test`]). `rows.parquet` holds them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", with = "json_f64_vec_map")]
    pub rows: BTreeMap<String, Vec<f64>>,
}

impl MetricRow {
    /// A row with no point, no metrics (a base to fill in).
    pub fn empty() -> Self {
        Self {
            point_id: String::new(),
            tau: String::new(),
            sampler: String::new(),
            eta: String::new(),
            eta_value: f64::NAN,
            steps: 0,
            nfe: 0,
            clip_x0: false,
            seconds: 0.0,
            model_seconds: 0.0,
            diverged: false,
            metrics: BTreeMap::new(),
            replicates: BTreeMap::new(),
            linear: BTreeMap::new(),
            rows: BTreeMap::new(),
        }
    }
}

fn ddim() -> String {
    crate::sampler::SamplerKind::Ddim.name().into()
}

/// The arrays of one point: `n` items, each of shape `item_shape` (e.g. `[2]` or `[1, 8, 8]`),
/// all flattened row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointArrays {
    /// The shape of one item.
    pub item_shape: Vec<usize>,
    /// The tau actually used (ascending).
    pub timesteps: Vec<i64>,
    /// x_T, n × item.
    pub latents: Vec<f32>,
    /// x_0 decoded from `latents`, n × item.
    pub samples: Vec<f32>,
    /// `[timesteps.len() + 1, m, item…]`: the states visited by the first `m` items, if
    /// recorded (`m` is inferred from the length). With no repeated timesteps,
    /// `timesteps.len() == steps`.
    pub trajectory: Option<Vec<f32>>,
    /// Held-out data encoded to latents and decoded back.
    pub reconstruction: Option<Reconstruction>,
}

/// A reconstruction round trip of `r` held-out items; each field is r × item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconstruction {
    /// Held-out x_0.
    pub inputs: Vec<f32>,
    /// Their encoded x_T.
    pub latents: Vec<f32>,
    /// x_0 decoded from those latents.
    pub outputs: Vec<f32>,
}

/// The full shapes of a point's arrays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayShapes {
    /// `[n, item…]`, also the shape of `samples`.
    pub latents: Vec<usize>,
    /// `[timesteps.len() + 1, m, item…]`.
    pub trajectory: Option<Vec<usize>>,
    /// `[r, item…]`, the shape of each reconstruction array.
    pub reconstruction: Option<Vec<usize>>,
}

impl PointArrays {
    /// The shapes of the arrays, or an error when their lengths do not fit `item_shape`.
    pub fn shapes(&self) -> Result<ArrayShapes> {
        let item: usize = self.item_shape.iter().product();
        if self.item_shape.is_empty() || item == 0 {
            return Err(Error::Shape(format!(
                "item_shape {:?} must be non-empty with no zero dimension",
                self.item_shape
            )));
        }
        let lead = |what: &str, len: usize, per: usize| -> Result<usize> {
            if !len.is_multiple_of(per) {
                return Err(Error::Shape(format!(
                    "{what} has {len} values, not a multiple of {per} (item_shape {:?})",
                    self.item_shape
                )));
            }
            Ok(len / per)
        };
        let with_item = |lead: &[usize]| [lead, &self.item_shape[..]].concat();
        let n = lead("latents", self.latents.len(), item)?;
        if self.samples.len() != self.latents.len() {
            return Err(Error::Shape(format!(
                "samples has {} values but latents has {}",
                self.samples.len(),
                self.latents.len()
            )));
        }
        let states = self.timesteps.len() + 1;
        let trajectory = match &self.trajectory {
            Some(t) => Some(with_item(&[states, lead("trajectory", t.len(), states * item)?])),
            None => None,
        };
        let reconstruction = match &self.reconstruction {
            Some(r) => {
                let rows = lead("reconstruction inputs", r.inputs.len(), item)?;
                if r.latents.len() != r.inputs.len() || r.outputs.len() != r.inputs.len() {
                    return Err(Error::Shape(format!(
                        "reconstruction inputs, latents and outputs have {}, {} and {} values",
                        r.inputs.len(),
                        r.latents.len(),
                        r.outputs.len()
                    )));
                }
                Some(with_item(&[rows]))
            }
            None => None,
        };
        Ok(ArrayShapes {
            latents: with_item(&[n]),
            trajectory,
            reconstruction,
        })
    }
}

/// Checks that `id` is safe as a file name and an HDF5 group name: non-empty, ASCII
/// letters, digits, `.`, `_`, `-` and `+` only, not starting with `.`.
pub fn check_point_id(id: &str) -> Result<()> {
    let ok =
        !id.is_empty() && !id.starts_with('.') && id.chars().all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "point_id",
            format!(
                "{id:?} is not a safe file/group name (use ASCII letters, digits, '.', '_', '-', '+'; no leading '.')"
            ),
        ))
    }
}

/// An f64 in JSON: a number, `null` for NaN, `"inf"` / `"-inf"` for infinities.
#[derive(Debug, Clone, Copy)]
struct JsonF64(f64);

impl Serialize for JsonF64 {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self.0 {
            x if x.is_nan() => s.serialize_none(),
            x if x == f64::INFINITY => s.serialize_str("inf"),
            x if x == f64::NEG_INFINITY => s.serialize_str("-inf"),
            x => s.serialize_f64(x),
        }
    }
}

impl<'de> Deserialize<'de> for JsonF64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Number(f64),
            Text(String),
        }
        match Option::<Repr>::deserialize(d)? {
            None => Ok(JsonF64(f64::NAN)),
            Some(Repr::Number(x)) => Ok(JsonF64(x)),
            Some(Repr::Text(t)) => match t.as_str() {
                "inf" => Ok(JsonF64(f64::INFINITY)),
                "-inf" => Ok(JsonF64(f64::NEG_INFINITY)),
                "nan" => Ok(JsonF64(f64::NAN)),
                other => Err(serde::de::Error::custom(format!(
                    "expected a number, null, \"inf\" or \"-inf\", found {other:?}"
                ))),
            },
        }
    }
}

mod json_f64 {
    use super::JsonF64;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        JsonF64(*x).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(JsonF64::deserialize(d)?.0)
    }
}

mod json_f64_map {
    use super::JsonF64;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(map.iter().map(|(k, v)| (k, JsonF64(*v))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        let map = BTreeMap::<String, JsonF64>::deserialize(d)?;
        Ok(map.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}

pub(crate) mod json_f64_vec_map {
    use super::JsonF64;
    use serde::{Deserialize, Deserializer, Serializer};
    use std::collections::BTreeMap;

    /// Each value list with NaN as `null` and ±∞ as strings.
    pub fn serialize<S: Serializer>(map: &BTreeMap<String, Vec<f64>>, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(
            map.iter()
                .map(|(k, v)| (k, v.iter().map(|x| JsonF64(*x)).collect::<Vec<_>>())),
        )
    }

    /// The inverse of [`serialize`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<f64>>, D::Error> {
        let map = BTreeMap::<String, Vec<JsonF64>>::deserialize(d)?;
        Ok(map
            .into_iter()
            .map(|(k, v)| (k, v.into_iter().map(|x| x.0).collect()))
            .collect())
    }
}
