//! `metrics.parquet` and `metrics.csv`: one row per sweep point.
//!
//! Columns, in order: `point_id`, `tau`, `sampler`, `eta` (strings), `eta_value` (f64), `steps`,
//! `nfe` (i64), `clip_x0` (bool), `seconds`, `model_seconds` (f64), `diverged` (bool),
//! then one f64 column per metric name (the union over all rows, sorted). A metric a row
//! does not have is null; a metric whose value is NaN stays NaN. [`read_rows`] gives back
//! exactly the rows written: null cells become absent keys, NaN stays NaN.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use polars::prelude::*;

use super::point::MetricRow;
use super::write_atomic;
use crate::error::{Error, Result};

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

/// Writes `dir/metrics.parquet` and `dir/metrics.csv`, each atomically.
pub fn write_tables(rows: &[MetricRow], dir: &Path) -> Result<()> {
    let mut df = frame(rows).map_err(|e| Error::io(dir, e))?;
    let parquet = dir.join("metrics.parquet");
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(&mut df)
        .map_err(|e| Error::io(&parquet, e))?;
    write_atomic(&parquet, &bytes)?;

    let csv = dir.join("metrics.csv");
    let mut bytes = Vec::new();
    CsvWriter::new(&mut bytes)
        .finish(&mut df)
        .map_err(|e| Error::io(&csv, e))?;
    write_atomic(&csv, &bytes)
}

/// Reads the rows back from a `metrics.parquet` written by [`write_tables`].
pub fn read_rows(parquet_path: &Path) -> Result<Vec<MetricRow>> {
    let err = |e: PolarsError| Error::io(parquet_path, e);
    let file = std::fs::File::open(parquet_path).map_err(|e| Error::io(parquet_path, e))?;
    let df = ParquetReader::new(file).finish().map_err(err)?;
    let col = |name: &str| df.column(name).map_err(err);
    let missing = |name: &str, i: usize| Error::io(parquet_path, format!("column {name:?} is null in row {i}"));
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
            })
        })
        .collect()
}
