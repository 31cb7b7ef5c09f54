//! `samples.h5` (schema in the README's results-folder section, read by h5py too):
//!
//! - root attributes `experiment`, `config` (YAML text), `ddimlab_version` (UTF-8
//!   strings) and `seed` (u64);
//! - `/points/<point_id>/`: attributes `tau`, `sampler`, `eta` (strings, η as in YAML), `steps`,
//!   `nfe` (i64), `timesteps` (i64 array); float32 datasets `latents` and `samples`
//!   `[n, item…]` and optional `trajectory` `[timesteps + 1, m, item…]`;
//! - `/reconstruction/<point_id>/`: float32 datasets `inputs`, `latents`, `outputs` `[r, item…]`.
//!
//! Strings are variable-length UTF-8, so h5py reads them as `str`.

use std::path::Path;

use hdf5::types::VarLenUnicode;
use hdf5::{Group, Location};

use super::point::{check_point_id, ArrayShapes, MetricRow, PointArrays, Reconstruction};
use crate::atomic::write_with;
use crate::error::{Error, Result};

/// The root attributes of `samples.h5`.
#[derive(Debug, Clone, PartialEq)]
pub struct H5Meta {
    /// The experiment name.
    pub experiment: String,
    /// The resolved experiment YAML, as run.
    pub config_yaml: String,
    /// The experiment seed.
    pub seed: u64,
    /// The ddimlab version that wrote the file.
    pub ddimlab_version: String,
}

/// One point read back from `samples.h5`.
#[derive(Debug, Clone, PartialEq)]
pub struct H5Point {
    /// The tau kind.
    pub tau: String,
    /// η as written in YAML.
    pub eta: String,
    /// The number of steps S asked for.
    pub steps: usize,
    /// Model evaluations actually made per sample pass.
    pub nfe: usize,
    /// The arrays (`timesteps` from the attribute of that name).
    pub arrays: PointArrays,
}

fn put_str(loc: &Location, name: &str, value: &str) -> hdf5::Result<()> {
    let v: VarLenUnicode = value
        .parse()
        .map_err(|e| hdf5::Error::from(format!("attribute {name}: {e}")))?;
    loc.new_attr::<VarLenUnicode>().create(name)?.write_scalar(&v)
}

fn put_f32(group: &Group, name: &str, shape: &[usize], data: &[f32]) -> hdf5::Result<()> {
    group.new_dataset::<f32>().shape(shape).create(name)?.write_raw(data)
}

fn write_point(file: &hdf5::File, row: &MetricRow, arrays: &PointArrays, shapes: &ArrayShapes) -> hdf5::Result<()> {
    let id = row.point_id.as_str();
    let group = file.group("points")?.create_group(id)?;
    put_str(&group, "tau", &row.tau)?;
    put_str(&group, "sampler", &row.sampler)?;
    put_str(&group, "eta", &row.eta)?;
    group
        .new_attr::<i64>()
        .create("steps")?
        .write_scalar(&(row.steps as i64))?;
    group.new_attr::<i64>().create("nfe")?.write_scalar(&(row.nfe as i64))?;
    group
        .new_attr::<i64>()
        .shape([arrays.timesteps.len()])
        .create("timesteps")?
        .write_raw(&arrays.timesteps[..])?;
    put_f32(&group, "latents", &shapes.latents, &arrays.latents)?;
    put_f32(&group, "samples", &shapes.latents, &arrays.samples)?;
    if let (Some(t), Some(shape)) = (&arrays.trajectory, &shapes.trajectory) {
        put_f32(&group, "trajectory", shape, t)?;
    }
    if let (Some(r), Some(shape)) = (&arrays.reconstruction, &shapes.reconstruction) {
        let group = file.group("reconstruction")?.create_group(id)?;
        put_f32(&group, "inputs", shape, &r.inputs)?;
        put_f32(&group, "latents", shape, &r.latents)?;
        put_f32(&group, "outputs", shape, &r.outputs)?;
    }
    Ok(())
}

fn create_file(tmp: &Path, meta: &H5Meta) -> hdf5::Result<hdf5::File> {
    let file = hdf5::File::create(tmp)?;
    put_str(&file, "experiment", &meta.experiment)?;
    put_str(&file, "config", &meta.config_yaml)?;
    put_str(&file, "ddimlab_version", &meta.ddimlab_version)?;
    file.new_attr::<u64>().create("seed")?.write_scalar(&meta.seed)?;
    file.create_group("points")?;
    file.create_group("reconstruction")?;
    Ok(file)
}

fn write_all(tmp: &Path, meta: &H5Meta, points: impl Iterator<Item = Result<(MetricRow, PointArrays)>>) -> Result<()> {
    let file = create_file(tmp, meta).map_err(|e| Error::file(tmp, e))?;
    for point in points {
        let (row, arrays) = point?;
        check_point_id(&row.point_id)?;
        let shapes = arrays.shapes()?;
        if file.link_exists(&format!("points/{}", row.point_id)) {
            return Err(Error::invalid(
                "point_id",
                format!("point {:?} is listed twice", row.point_id),
            ));
        }
        write_point(&file, &row, &arrays, &shapes)
            .map_err(|e| Error::file(tmp, format!("point {}: {e}", row.point_id)))?;
    }
    file.close().map_err(|e| Error::file(tmp, e))
}

/// Writes `samples.h5` at `path`, one point at a time (memory stays flat), through
/// a temporary file and a rename ([`write_with`]). The first error from `points` aborts
/// the write and leaves any previous file at `path` untouched.
pub fn write_samples(
    path: &Path,
    meta: &H5Meta,
    points: impl Iterator<Item = Result<(MetricRow, PointArrays)>>,
) -> Result<()> {
    write_with(path, |tmp| write_all(tmp, meta, points))
}

fn get_str(loc: &Location, name: &str) -> hdf5::Result<String> {
    Ok(loc.attr(name)?.read_scalar::<VarLenUnicode>()?.as_str().to_string())
}

fn get_usize(loc: &Location, name: &str) -> hdf5::Result<usize> {
    let v = loc.attr(name)?.read_scalar::<i64>()?;
    usize::try_from(v).map_err(|_| format!("attribute {name} = {v} is negative").into())
}

/// The root attributes of a `samples.h5`.
pub fn read_meta(path: &Path) -> Result<H5Meta> {
    let read = || -> hdf5::Result<H5Meta> {
        let file = hdf5::File::open(path)?;
        Ok(H5Meta {
            experiment: get_str(&file, "experiment")?,
            config_yaml: get_str(&file, "config")?,
            seed: file.attr("seed")?.read_scalar::<u64>()?,
            ddimlab_version: get_str(&file, "ddimlab_version")?,
        })
    };
    read().map_err(|e| Error::file(path, e))
}

/// One point of a `samples.h5`, with its attributes.
pub fn read_point(path: &Path, point_id: &str) -> Result<H5Point> {
    check_point_id(point_id)?;
    let read = || -> hdf5::Result<H5Point> {
        let file = hdf5::File::open(path)?;
        let group = file.group(&format!("points/{point_id}"))?;
        let latents = group.dataset("latents")?;
        let shape = latents.shape();
        let item_shape = shape.get(1..).unwrap_or_default().to_vec();
        let trajectory = match group.link_exists("trajectory") {
            true => Some(group.dataset("trajectory")?.read_raw::<f32>()?),
            false => None,
        };
        let reconstruction = match file.link_exists(&format!("reconstruction/{point_id}")) {
            true => {
                let r = file.group(&format!("reconstruction/{point_id}"))?;
                Some(Reconstruction {
                    inputs: r.dataset("inputs")?.read_raw::<f32>()?,
                    latents: r.dataset("latents")?.read_raw::<f32>()?,
                    outputs: r.dataset("outputs")?.read_raw::<f32>()?,
                })
            }
            false => None,
        };
        Ok(H5Point {
            tau: get_str(&group, "tau")?,
            eta: get_str(&group, "eta")?,
            steps: get_usize(&group, "steps")?,
            nfe: get_usize(&group, "nfe")?,
            arrays: PointArrays {
                item_shape,
                timesteps: group.attr("timesteps")?.read_raw::<i64>()?,
                latents: latents.read_raw::<f32>()?,
                samples: group.dataset("samples")?.read_raw::<f32>()?,
                trajectory,
                reconstruction,
            },
        })
    };
    read().map_err(|e| Error::file(path, e))
}
