//! `points/<point_id>.safetensors` + `points/<point_id>.json`: each finished point saved
//! on its own, so that an interrupted sweep resumes where it stopped.
//!
//! The arrays are written first and the JSON last, both atomically: a point is done only
//! when its JSON exists, parses, names the arrays file that is there, and carries the
//! configuration hash of the current run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::point::{check_point_id, ArrayShapes, MetricRow, PointArrays, Reconstruction};
use crate::atomic::write_atomic;
use crate::error::{Error, Result};

/// What is on disk for one point.
#[derive(Debug, Clone, PartialEq)]
pub enum PointStatus {
    /// No JSON for this point: it has not finished.
    Missing,
    /// Finished under the current configuration.
    Done(Box<MetricRow>),
    /// Finished, but under another configuration (its hash is given): rerun it.
    Stale { hash: String },
    /// Present but unreadable or inconsistent (the reason is given): not to be trusted.
    Corrupt(String),
}

/// The JSON sidecar of a point.
#[derive(Debug, Serialize, Deserialize)]
struct PointRecord {
    config_hash: String,
    row: MetricRow,
    shapes: ArrayShapes,
}

fn paths(dir: &Path, point_id: &str) -> Result<(PathBuf, PathBuf)> {
    check_point_id(point_id)?;
    let base = dir.join("points");
    Ok((
        base.join(format!("{point_id}.safetensors")),
        base.join(format!("{point_id}.json")),
    ))
}

fn le_bytes_f32(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Saves one finished point under `dir/points/` (arrays first, then the JSON).
pub fn save_point(dir: &Path, config_hash: &str, row: &MetricRow, arrays: &PointArrays) -> Result<()> {
    let (st_path, json_path) = paths(dir, &row.point_id)?;
    let shapes = arrays.shapes()?;
    let mut named: Vec<(&str, Dtype, Vec<usize>, Vec<u8>)> = vec![
        (
            "timesteps",
            Dtype::I64,
            vec![arrays.timesteps.len()],
            arrays.timesteps.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        (
            "latents",
            Dtype::F32,
            shapes.latents.clone(),
            le_bytes_f32(&arrays.latents),
        ),
        (
            "samples",
            Dtype::F32,
            shapes.latents.clone(),
            le_bytes_f32(&arrays.samples),
        ),
    ];
    if let (Some(t), Some(shape)) = (&arrays.trajectory, &shapes.trajectory) {
        named.push(("trajectory", Dtype::F32, shape.clone(), le_bytes_f32(t)));
    }
    if let (Some(r), Some(shape)) = (&arrays.reconstruction, &shapes.reconstruction) {
        for (name, v) in [
            ("reconstruction.inputs", &r.inputs),
            ("reconstruction.latents", &r.latents),
            ("reconstruction.outputs", &r.outputs),
        ] {
            named.push((name, Dtype::F32, shape.clone(), le_bytes_f32(v)));
        }
    }
    let views = named
        .iter()
        .map(|(name, dtype, shape, bytes)| Ok((*name, TensorView::new(*dtype, shape.clone(), bytes)?)))
        .collect::<std::result::Result<Vec<_>, safetensors::SafeTensorError>>()
        .map_err(|e| Error::file(&st_path, e))?;
    let meta = HashMap::from([("item_shape".to_string(), format!("{:?}", arrays.item_shape))]);
    let bytes = safetensors::tensor::serialize(views, Some(meta)).map_err(|e| Error::file(&st_path, e))?;
    write_atomic(&st_path, &bytes)?;

    let record = PointRecord {
        config_hash: config_hash.to_string(),
        row: row.clone(),
        shapes,
    };
    let json = serde_json::to_vec_pretty(&record).map_err(|e| Error::file(&json_path, e))?;
    write_atomic(&json_path, &json)
}

/// What is on disk for `point_id` under `dir`, judged against `config_hash`.
///
/// Only I/O failures other than a missing file are errors; a file that does not parse,
/// or whose arrays file is missing, is [`PointStatus::Corrupt`].
pub fn point_status(dir: &Path, point_id: &str, config_hash: &str) -> Result<PointStatus> {
    let (st_path, json_path) = paths(dir, point_id)?;
    let text = match std::fs::read(&json_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PointStatus::Missing),
        Err(e) => return Err(Error::io(&json_path, e)),
    };
    let record: PointRecord = match serde_json::from_slice(&text) {
        Ok(r) => r,
        Err(e) => return Ok(PointStatus::Corrupt(format!("{}: {e}", json_path.display()))),
    };
    if record.row.point_id != point_id {
        return Ok(PointStatus::Corrupt(format!(
            "{} holds point {:?}",
            json_path.display(),
            record.row.point_id
        )));
    }
    if !st_path.is_file() {
        return Ok(PointStatus::Corrupt(format!("{} is missing", st_path.display())));
    }
    if record.config_hash != config_hash {
        return Ok(PointStatus::Stale {
            hash: record.config_hash,
        });
    }
    Ok(PointStatus::Done(Box::new(record.row)))
}

/// The row of a point finished under `config_hash`; `None` when it is missing, stale or corrupt.
pub fn load_row(dir: &Path, point_id: &str, config_hash: &str) -> Result<Option<MetricRow>> {
    Ok(match point_status(dir, point_id, config_hash)? {
        PointStatus::Done(row) => Some(*row),
        _ => None,
    })
}

/// The arrays of a saved point.
pub fn load_arrays(dir: &Path, point_id: &str) -> Result<PointArrays> {
    let (st_path, _) = paths(dir, point_id)?;
    let bytes = std::fs::read(&st_path).map_err(|e| Error::io(&st_path, e))?;
    let corrupt = |what: String| Error::file(&st_path, format!("not a valid point arrays file: {what}"));
    let st = SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let get = |name: &str, dtype: Dtype| -> Result<Option<(Vec<usize>, &[u8])>> {
        match st.tensor(name) {
            Ok(v) if v.dtype() == dtype => Ok(Some((v.shape().to_vec(), v.data()))),
            Ok(v) => Err(corrupt(format!("{name} has dtype {:?}, expected {dtype:?}", v.dtype()))),
            Err(safetensors::SafeTensorError::TensorNotFound(_)) => Ok(None),
            Err(e) => Err(corrupt(e.to_string())),
        }
    };
    let required = |name: &str, dtype: Dtype| get(name, dtype)?.ok_or_else(|| corrupt(format!("{name} is missing")));
    let f32s = |b: &[u8]| -> Vec<f32> {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    };
    let (_, ts) = required("timesteps", Dtype::I64)?;
    let (latent_shape, latents) = required("latents", Dtype::F32)?;
    let (_, samples) = required("samples", Dtype::F32)?;
    let recon = [
        "reconstruction.inputs",
        "reconstruction.latents",
        "reconstruction.outputs",
    ]
    .iter()
    .map(|name| get(name, Dtype::F32))
    .collect::<Result<Vec<_>>>()?;
    let reconstruction = match recon.as_slice() {
        [Some(i), Some(l), Some(o)] => Some(Reconstruction {
            inputs: f32s(i.1),
            latents: f32s(l.1),
            outputs: f32s(o.1),
        }),
        [None, None, None] => None,
        _ => return Err(corrupt("reconstruction is incomplete".into())),
    };
    if latent_shape.len() < 2 {
        return Err(corrupt(format!(
            "latents has shape {latent_shape:?}, expected [n, item…]"
        )));
    }
    let arrays = PointArrays {
        item_shape: latent_shape[1..].to_vec(),
        timesteps: ts
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
        latents: f32s(latents),
        samples: f32s(samples),
        trajectory: get("trajectory", Dtype::F32)?.map(|(_, b)| f32s(b)),
        reconstruction,
    };
    arrays.shapes().map_err(|e| corrupt(e.to_string()))?;
    Ok(arrays)
}
