//! `metrics.parquet` and `metrics.csv`: one row per sweep point.
//!
//! Columns, in order: `point_id`, `tau`, `sampler`, `eta` (strings), `eta_value` (f64), `steps`,
//! `nfe` (i64), `clip_x0` (bool), `seconds`, `model_seconds` (f64), `diverged` (bool),
//! then one f64 column per metric name (the union over all rows, sorted). A metric a row
//! does not have is null; a metric whose value is NaN stays NaN. [`read_rows`] gives back
//! exactly the rows written: null cells become absent keys, NaN stays NaN.
//!
//! `bootstrap.parquet` keeps every bootstrap replicate of every statistic, long: columns
//! `point_id`, `metric` (strings), `replicate` (i64, 0-based resample index), `value`
//! (f64); the noise floor's under the id [`FLOOR_ID`]. Replicate b of every point and of
//! the floor uses the same resamples, so two points are compared replicate by replicate.
//!
//! `rows.parquet` keeps the per-row values of the statistics that are means over rows every
//! point shares (reconstruction and consistency errors), long: `point_id`, `metric`, `row`
//! (i64, 0-based), `value`; two points are compared row by row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use polars::prelude::*;

use super::point::MetricRow;
use crate::atomic::write_atomic;
use crate::error::{Error, Result};
use crate::metrics::bootstrap::Linear;

/// The fixed columns, in order; metric columns follow.
pub const FIXED_COLUMNS: [&str; 11] = [
    "point_id",
    "tau",
    "sampler",
    "eta",
    "eta_value",
    "steps",
    "nfe",
    "clip_x0",
    "seconds",
    "model_seconds",
    "diverged",
];

/// The rows as one data frame, with the columns described in the module docs.
pub fn frame(rows: &[MetricRow]) -> PolarsResult<DataFrame> {
    let strs = |f: fn(&MetricRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    let f64s = |f: fn(&MetricRow) -> f64| rows.iter().map(f).collect::<Vec<_>>();
    let ints = |f: fn(&MetricRow) -> usize| rows.iter().map(|r| f(r) as i64).collect::<Vec<_>>();
    let bools = |f: fn(&MetricRow) -> bool| rows.iter().map(f).collect::<Vec<_>>();
    let mut columns = vec![
        Column::new("point_id".into(), strs(|r| &r.point_id)),
        Column::new("tau".into(), strs(|r| &r.tau)),
        Column::new("sampler".into(), strs(|r| &r.sampler)),
        Column::new("eta".into(), strs(|r| &r.eta)),
        Column::new("eta_value".into(), f64s(|r| r.eta_value)),
        Column::new("steps".into(), ints(|r| r.steps)),
        Column::new("nfe".into(), ints(|r| r.nfe)),
        Column::new("clip_x0".into(), bools(|r| r.clip_x0)),
        Column::new("seconds".into(), f64s(|r| r.seconds)),
        Column::new("model_seconds".into(), f64s(|r| r.model_seconds)),
        Column::new("diverged".into(), bools(|r| r.diverged)),
    ];
    let names: BTreeSet<&String> = rows.iter().flat_map(|r| r.metrics.keys()).collect();
    for name in names {
        let values: Vec<Option<f64>> = rows.iter().map(|r| r.metrics.get(name).copied()).collect();
        columns.push(Column::new(name.as_str().into(), values));
    }
    DataFrame::new(rows.len(), columns)
}

/// The point id under which `bootstrap.parquet` holds the noise floor's replicates.
pub const FLOOR_ID: &str = "noise_floor";

/// The file of every bootstrap replicate.
pub const BOOTSTRAP_FILE: &str = "bootstrap.parquet";

/// Replicates by point id, then by metric name.
pub type ReplicateMap = BTreeMap<String, BTreeMap<String, Vec<f64>>>;

/// The replicates of `rows` (and of the floor, under [`FLOOR_ID`]) as one long frame.
pub fn bootstrap_frame(rows: &[MetricRow], floor: &BTreeMap<String, Vec<f64>>) -> PolarsResult<DataFrame> {
    let entries = rows
        .iter()
        .map(|r| (r.point_id.as_str(), &r.replicates))
        .chain(std::iter::once((FLOOR_ID, floor)));
    long_frame(entries, "replicate")
}

/// The file of every per-row value (reconstruction and consistency errors).
pub const ROWS_FILE: &str = "rows.parquet";

/// The per-row values of `rows` ([`MetricRow::rows`]) as one long frame: `point_id`,
/// `metric`, `row` (i64, 0-based), `value`.
pub fn rows_frame(rows: &[MetricRow]) -> PolarsResult<DataFrame> {
    long_frame(rows.iter().map(|r| (r.point_id.as_str(), &r.rows)), "row")
}

/// Vectors by point id and metric as a long frame: `point_id`, `metric`, `index` (the
/// position in the vector), `value`.
fn long_frame<'a>(
    entries: impl Iterator<Item = (&'a str, &'a BTreeMap<String, Vec<f64>>)>,
    index_name: &str,
) -> PolarsResult<DataFrame> {
    let (mut ids, mut metrics, mut index, mut values) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (id, map) in entries {
        for (metric, reps) in map {
            for (b, v) in reps.iter().enumerate() {
                ids.push(id);
                metrics.push(metric.as_str());
                index.push(b as i64);
                values.push(*v);
            }
        }
    }
    let height = values.len();
    DataFrame::new(
        height,
        vec![
            Column::new("point_id".into(), ids),
            Column::new("metric".into(), metrics),
            Column::new(index_name.into(), index),
            Column::new("value".into(), values),
        ],
    )
}

/// The file of every first-order projection.
pub const PROJECTIONS_FILE: &str = "projections.parquet";

/// The first-order projections of `rows` (and of the floor, under [`FLOOR_ID`]) as one
/// long frame: `point_id`, `metric`, `side` (`samples` | `reference`), `half` (0 | 1, the
/// half of the other rows the estimate comes from), `row`, `value`.
pub fn projections_frame(rows: &[MetricRow], floor: &BTreeMap<String, Linear>) -> PolarsResult<DataFrame> {
    let (mut ids, mut metrics, mut sides, mut halves, mut index, mut values) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let entries = rows
        .iter()
        .map(|r| (r.point_id.as_str(), &r.linear))
        .chain(std::iter::once((FLOOR_ID, floor)));
    for (id, map) in entries {
        for (metric, l) in map {
            for (side, both) in [("samples", &l.samples), ("reference", &l.reference)] {
                for (half, v) in both.iter().enumerate() {
                    for (i, x) in v.iter().enumerate() {
                        ids.push(id);
                        metrics.push(metric.as_str());
                        sides.push(side);
                        halves.push(half as i64);
                        index.push(i as i64);
                        values.push(*x);
                    }
                }
            }
        }
    }
    DataFrame::new(
        values.len(),
        vec![
            Column::new("point_id".into(), ids),
            Column::new("metric".into(), metrics),
            Column::new("side".into(), sides),
            Column::new("half".into(), halves),
            Column::new("row".into(), index),
            Column::new("value".into(), values),
        ],
    )
}

/// Reads `projections.parquet` back: point id → metric → projection.
pub fn read_projections(path: &Path) -> Result<BTreeMap<String, BTreeMap<String, Linear>>> {
    let err = |e: PolarsError| Error::file(path, e);
    let df = read_parquet(path)?;
    let col = |name: &str| df.column(name).map_err(err);
    let (ids, metrics, sides) = (
        col("point_id")?.str().map_err(err)?,
        col("metric")?.str().map_err(err)?,
        col("side")?.str().map_err(err)?,
    );
    let values = col("value")?.f64().map_err(err)?;
    let halves = col("half")?.i64().map_err(err)?;
    let mut out: BTreeMap<String, BTreeMap<String, Linear>> = BTreeMap::new();
    for i in 0..df.height() {
        let bad = || Error::file(path, format!("row {i} has a null cell"));
        let (id, metric, side) = (
            ids.get(i).ok_or_else(bad)?,
            metrics.get(i).ok_or_else(bad)?,
            sides.get(i).ok_or_else(bad)?,
        );
        let l = out.entry(id.into()).or_default().entry(metric.into()).or_default();
        let v = values.get(i).ok_or_else(bad)?;
        let half = match halves.get(i).ok_or_else(bad)? {
            0 => 0,
            1 => 1,
            other => return Err(Error::file(path, format!("row {i}: half {other}, expected 0 or 1"))),
        };
        match side {
            "samples" => l.samples[half].push(v),
            "reference" => l.reference[half].push(v),
            other => return Err(Error::file(path, format!("row {i}: unknown side {other:?}"))),
        }
    }
    Ok(out)
}

/// Reads `bootstrap.parquet` back: point id → metric → replicates in resample order.
pub fn read_bootstrap(path: &Path) -> Result<ReplicateMap> {
    read_long(path, "replicate")
}

/// Reads `rows.parquet` back: point id → metric → values in row order.
pub fn read_row_values(path: &Path) -> Result<ReplicateMap> {
    read_long(path, "row")
}

/// Reads a frame written by [`long_frame`] back: point id → metric → vector.
fn read_long(path: &Path, index_name: &str) -> Result<ReplicateMap> {
    let err = |e: PolarsError| Error::file(path, e);
    let df = read_parquet(path)?;
    let col = |name: &str| df.column(name).map_err(err);
    let (ids, metrics) = (col("point_id")?.str().map_err(err)?, col("metric")?.str().map_err(err)?);
    let (index, values) = (col(index_name)?.i64().map_err(err)?, col("value")?.f64().map_err(err)?);
    let mut out = ReplicateMap::new();
    for i in 0..df.height() {
        let bad = || Error::file(path, format!("row {i} has a null cell"));
        let (id, metric) = (ids.get(i).ok_or_else(bad)?, metrics.get(i).ok_or_else(bad)?);
        let b = usize::try_from(index.get(i).ok_or_else(bad)?).map_err(|_| bad())?;
        let reps = out.entry(id.into()).or_default().entry(metric.into()).or_default();
        if reps.len() <= b {
            reps.resize(b + 1, f64::NAN);
        }
        reps[b] = values.get(i).unwrap_or(f64::NAN);
    }
    Ok(out)
}

/// A Parquet file as a data frame.
fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    ParquetReader::new(file).finish().map_err(|e| Error::file(path, e))
}

/// Writes `frame` as Parquet to `path`, atomically.
fn write_parquet(mut df: DataFrame, path: &Path) -> Result<()> {
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut df)
        .map_err(|e| Error::file(path, e))?;
    write_atomic(path, &bytes)
}

/// What the floor set adds to the long tables: its replicates and projections.
pub type FloorParts<'a> = (&'a BTreeMap<String, Vec<f64>>, &'a BTreeMap<String, Linear>);

/// Writes `dir/metrics.parquet`, `dir/metrics.csv`, `dir/bootstrap.parquet`,
/// `dir/projections.parquet` (the rows' replicates and projections and the floor's) and
/// `dir/rows.parquet` (the rows' per-row values), each atomically.
pub fn write_tables(rows: &[MetricRow], floor: FloorParts, dir: &Path) -> Result<()> {
    let mut df = frame(rows).map_err(|e| Error::file(dir, e))?;
    write_parquet(df.clone(), &dir.join("metrics.parquet"))?;
    let boot = bootstrap_frame(rows, floor.0).map_err(|e| Error::file(dir, e))?;
    write_parquet(boot, &dir.join(BOOTSTRAP_FILE))?;
    let linear = projections_frame(rows, floor.1).map_err(|e| Error::file(dir, e))?;
    write_parquet(linear, &dir.join(PROJECTIONS_FILE))?;
    let per_row = rows_frame(rows).map_err(|e| Error::file(dir, e))?;
    write_parquet(per_row, &dir.join(ROWS_FILE))?;

    let csv = dir.join("metrics.csv");
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes)
        .finish(&mut df)
        .map_err(|e| Error::file(&csv, e))?;
    write_atomic(&csv, &bytes)
}

/// The rows of the results folder `dir` with their replicates, projections and per-row
/// values: `metrics.parquet`, then `bootstrap.parquet`, `projections.parquet` and
/// `rows.parquet` where they exist
/// (folders from before they were kept have none); the floor's come back as a row with
/// the id [`FLOOR_ID`] (its metrics empty: they are in `noise_floor.json`).
pub fn read_results(dir: &Path) -> Result<(Vec<MetricRow>, MetricRow)> {
    let mut rows = read_rows(&dir.join("metrics.parquet"))?;
    let mut floor = MetricRow {
        point_id: FLOOR_ID.into(),
        ..MetricRow::empty()
    };
    let path = dir.join(BOOTSTRAP_FILE);
    if path.exists() {
        let mut reps = read_bootstrap(&path)?;
        for r in rows.iter_mut() {
            r.replicates = reps.remove(&r.point_id).unwrap_or_default();
        }
        floor.replicates = reps.remove(FLOOR_ID).unwrap_or_default();
    }
    let path = dir.join(PROJECTIONS_FILE);
    if path.exists() {
        let mut linear = read_projections(&path)?;
        for r in rows.iter_mut() {
            r.linear = linear.remove(&r.point_id).unwrap_or_default();
        }
        floor.linear = linear.remove(FLOOR_ID).unwrap_or_default();
    }
    let path = dir.join(ROWS_FILE);
    if path.exists() {
        let mut per_row = read_row_values(&path)?;
        for r in rows.iter_mut() {
            r.rows = per_row.remove(&r.point_id).unwrap_or_default();
        }
    }
    Ok((rows, floor))
}

/// Reads the rows back from a `metrics.parquet` written by [`write_tables`].
pub fn read_rows(parquet_path: &Path) -> Result<Vec<MetricRow>> {
    let err = |e: PolarsError| Error::file(parquet_path, e);
    let df = read_parquet(parquet_path)?;
    let col = |name: &str| df.column(name).map_err(err);
    let missing = |name: &str, i: usize| Error::file(parquet_path, format!("column {name:?} is null in row {i}"));
    let (point_id, tau, eta) = (
        col("point_id")?.str().map_err(err)?,
        col("tau")?.str().map_err(err)?,
        col("eta")?.str().map_err(err)?,
    );
    let (steps, nfe) = (col("steps")?.i64().map_err(err)?, col("nfe")?.i64().map_err(err)?);
    let (clip_x0, diverged) = (
        col("clip_x0")?.bool().map_err(err)?,
        col("diverged")?.bool().map_err(err)?,
    );
    // Tables written before samplers existed have no `sampler` column: DDIM's.
    let sampler = df.column("sampler").ok().map(|c| c.str().map_err(err)).transpose()?;
    let eta_value = col("eta_value")?.f64().map_err(err)?;
    let seconds = col("seconds")?.f64().map_err(err)?;
    let model_seconds = col("model_seconds")?.f64().map_err(err)?;
    let metrics = df
        .columns()
        .iter()
        .filter(|c| !FIXED_COLUMNS.contains(&c.name().as_str()))
        .map(|c| Ok((c.name().to_string(), c.f64().map_err(err)?)))
        .collect::<Result<Vec<_>>>()?;

    (0..df.height())
        .map(|i| {
            let str_at = |c: &StringChunked, name| c.get(i).map(str::to_string).ok_or_else(|| missing(name, i));
            let int_at = |c: &Int64Chunked, name| {
                c.get(i)
                    .and_then(|v| usize::try_from(v).ok())
                    .ok_or_else(|| missing(name, i))
            };
            Ok(MetricRow {
                point_id: str_at(point_id, "point_id")?,
                tau: str_at(tau, "tau")?,
                sampler: match sampler {
                    Some(c) => str_at(c, "sampler")?,
                    None => crate::sampler::SamplerKind::Ddim.name().into(),
                },
                eta: str_at(eta, "eta")?,
                eta_value: eta_value.get(i).ok_or_else(|| missing("eta_value", i))?,
                steps: int_at(steps, "steps")?,
                nfe: int_at(nfe, "nfe")?,
                clip_x0: clip_x0.get(i).ok_or_else(|| missing("clip_x0", i))?,
                seconds: seconds.get(i).ok_or_else(|| missing("seconds", i))?,
                model_seconds: model_seconds.get(i).ok_or_else(|| missing("model_seconds", i))?,
                diverged: diverged.get(i).ok_or_else(|| missing("diverged", i))?,
                metrics: metrics
                    .iter()
                    .filter_map(|(name, c)| c.get(i).map(|v| (name.clone(), v)))
                    .collect::<BTreeMap<_, _>>(),
                replicates: BTreeMap::new(),
                linear: BTreeMap::new(),
                rows: BTreeMap::new(),
            })
        })
        .collect()
}
