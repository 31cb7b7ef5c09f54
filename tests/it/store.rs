//! `store`: per-point files, metrics tables and `samples.h5` round trips.

use std::collections::BTreeMap;

use ddimlab::metrics::bootstrap::Linear;
use std::path::{Path, PathBuf};

use ddimlab::store::{
    load_arrays, load_row, point_status, read_meta, read_point, read_rows, save_point, write_samples, write_tables,
    H5Meta, MetricRow, PointArrays, PointStatus, Reconstruction,
};
use ddimlab::Error;
use hdf5::types::VarLenUnicode;
use polars::prelude::*;

/// A fresh folder under the cargo target dir (kept after the run, for inspection).
fn scratch(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("store").join(tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Rows compared through Debug, where NaN equals NaN (derived PartialEq says it does not).
fn assert_same_rows(a: &[MetricRow], b: &[MetricRow]) {
    assert_eq!(format!("{a:#?}"), format!("{b:#?}"));
}

fn row(point_id: &str, eta: &str, steps: usize, metrics: &[(&str, f64)]) -> MetricRow {
    MetricRow {
        point_id: point_id.into(),
        tau: point_id.split('_').next().unwrap().into(),
        sampler: if eta == "-" { "heun".into() } else { "ddim".into() },
        eta: eta.into(),
        eta_value: eta.parse().unwrap_or(f64::NAN),
        steps,
        nfe: steps - 1,
        clip_x0: steps.is_multiple_of(2),
        seconds: 1.25 * steps as f64,
        model_seconds: 0.5 * steps as f64,
        diverged: false,
        metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        replicates: BTreeMap::new(),
        linear: BTreeMap::new(),
        rows: BTreeMap::new(),
    }
}

fn ramp(len: usize, offset: f32) -> Vec<f32> {
    (0..len).map(|i| offset + i as f32 * 0.25).collect()
}

/// n items of shape `item`, with `steps` timesteps; optional trajectory for m items and r reconstructions.
fn arrays(item: &[usize], n: usize, steps: usize, m: Option<usize>, r: Option<usize>) -> PointArrays {
    let k: usize = item.iter().product();
    PointArrays {
        item_shape: item.to_vec(),
        timesteps: (0..steps as i64).map(|i| i * 100).collect(),
        latents: ramp(n * k, 0.0),
        samples: ramp(n * k, -3.0),
        trajectory: m.map(|m| ramp((steps + 1) * m * k, 7.0)),
        reconstruction: r.map(|r| Reconstruction {
            inputs: ramp(r * k, 1.0),
            latents: ramp(r * k, 2.0),
            outputs: ramp(r * k, 3.0),
        }),
    }
}

fn sweep_rows() -> Vec<MetricRow> {
    vec![
        row(
            "linear_eta0.0_S10",
            "0.0",
            10,
            &[("fid_proxy", 0.5), ("recon_mse", 1e-3)],
        ),
        row(
            "linear_sigma_hat_S10",
            "sigma_hat",
            10,
            &[("fid_proxy", f64::NAN), ("recon_mse", f64::INFINITY)],
        ),
        row("quadratic_eta1.0_S5", "1.0", 5, &[("consistency", -2.5)]),
    ]
}

#[test]
fn point_round_trip_keeps_nan_and_infinity() {
    let dir = scratch("points");
    let rows = sweep_rows();
    let a = arrays(&[1, 4, 4], 3, 10, Some(2), Some(2));
    save_point(&dir, "hash-1", &rows[1], &a).unwrap();
    assert!(dir.join("points/linear_sigma_hat_S10.json").is_file());
    assert!(dir.join("points/linear_sigma_hat_S10.safetensors").is_file());

    let back = load_row(&dir, "linear_sigma_hat_S10", "hash-1").unwrap().unwrap();
    assert!(back.eta_value.is_nan() && back.metrics["fid_proxy"].is_nan());
    assert_eq!(back.metrics["recon_mse"], f64::INFINITY);
    assert_same_rows(&[back], &rows[1..2]);
    assert_eq!(load_arrays(&dir, "linear_sigma_hat_S10").unwrap(), a);

    // Without the optional arrays, and with a 1-D item.
    let plain = arrays(&[2], 5, 10, None, None);
    save_point(&dir, "hash-1", &rows[0], &plain).unwrap();
    assert_eq!(load_arrays(&dir, "linear_eta0.0_S10").unwrap(), plain);
    let json = std::fs::read_to_string(dir.join("points/linear_sigma_hat_S10.json")).unwrap();
    assert!(json.contains("\"inf\"") && json.contains("null"), "{json}");
}

#[test]
fn point_status_distinguishes_missing_stale_and_corrupt() {
    let dir = scratch("status");
    let rows = sweep_rows();
    let id = rows[0].point_id.as_str();
    assert_eq!(point_status(&dir, id, "h").unwrap(), PointStatus::Missing);
    assert_eq!(load_row(&dir, id, "h").unwrap(), None);

    save_point(&dir, "old-hash", &rows[0], &arrays(&[2], 4, 10, None, None)).unwrap();
    assert_eq!(
        point_status(&dir, id, "new-hash").unwrap(),
        PointStatus::Stale {
            hash: "old-hash".into()
        }
    );
    assert_eq!(load_row(&dir, id, "new-hash").unwrap(), None);
    assert_eq!(
        point_status(&dir, id, "old-hash").unwrap(),
        PointStatus::Done(Box::new(rows[0].clone()))
    );

    // A JSON cut short (e.g. written by hand or copied half-way) is not trusted.
    let json_path = dir.join(format!("points/{id}.json"));
    let text = std::fs::read(&json_path).unwrap();
    std::fs::write(&json_path, &text[..text.len() / 2]).unwrap();
    assert!(matches!(
        point_status(&dir, id, "old-hash").unwrap(),
        PointStatus::Corrupt(_)
    ));
    assert_eq!(load_row(&dir, id, "old-hash").unwrap(), None);

    // A valid JSON whose arrays are gone is not trusted either.
    std::fs::write(&json_path, &text).unwrap();
    std::fs::remove_file(dir.join(format!("points/{id}.safetensors"))).unwrap();
    assert!(matches!(
        point_status(&dir, id, "old-hash").unwrap(),
        PointStatus::Corrupt(_)
    ));

    // Garbage arrays are an error, not a panic.
    std::fs::write(dir.join(format!("points/{id}.safetensors")), b"\xff\x00garbage").unwrap();
    assert!(matches!(load_arrays(&dir, id), Err(Error::Io { .. })));
}

#[test]
fn bad_point_ids_and_shapes_are_errors() {
    let dir = scratch("bad");
    let mut r = sweep_rows().remove(0);
    for id in ["../escape", "", ".hidden", "a/b", "sp ace"] {
        r.point_id = id.into();
        let err = save_point(&dir, "h", &r, &arrays(&[2], 1, 3, None, None)).unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{id:?}: {err}");
    }
    r.point_id = "ok".into();
    let mut a = arrays(&[2], 3, 3, Some(1), None);
    a.samples.pop();
    assert!(matches!(save_point(&dir, "h", &r, &a), Err(Error::Shape(_))));
    let mut a = arrays(&[2], 3, 3, Some(1), None);
    a.trajectory.as_mut().unwrap().pop();
    assert!(matches!(save_point(&dir, "h", &r, &a), Err(Error::Shape(_))));
    assert!(!dir.join("points/ok.json").exists());
}

#[test]
fn tables_have_fixed_then_sorted_metric_columns() {
    let dir = scratch("tables");
    let rows = sweep_rows();
    write_tables(&rows, (&BTreeMap::new(), &BTreeMap::new()), &dir).unwrap();
    let names = [
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
        "consistency",
        "fid_proxy",
        "recon_mse",
    ];

    let df = ParquetReader::new(std::fs::File::open(dir.join("metrics.parquet")).unwrap())
        .finish()
        .unwrap();
    let got: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(got, names);
    let (s, f, i, b) = (DataType::String, DataType::Float64, DataType::Int64, DataType::Boolean);
    let dtypes = [&s, &s, &s, &s, &f, &i, &i, &b, &f, &f, &b, &f, &f, &f];
    assert_eq!(df.dtypes().iter().collect::<Vec<_>>(), dtypes);
    assert_eq!(df.height(), 3);
    let col = |n: &str| df.column(n).unwrap();
    let ids: Vec<_> = (0..3).map(|i| col("point_id").str().unwrap().get(i).unwrap()).collect();
    assert_eq!(
        ids,
        ["linear_eta0.0_S10", "linear_sigma_hat_S10", "quadratic_eta1.0_S5"]
    );
    assert_eq!(col("eta").str().unwrap().get(1), Some("sigma_hat"));
    assert!(col("eta_value").f64().unwrap().get(1).unwrap().is_nan());
    assert_eq!(col("steps").i64().unwrap().get(2), Some(5));
    assert_eq!(col("nfe").i64().unwrap().get(2), Some(4));
    assert_eq!(col("clip_x0").bool().unwrap().get(0), Some(true));
    assert_eq!(col("seconds").f64().unwrap().get(0), Some(12.5));
    // Missing metric: null. NaN metric: NaN.
    let consistency = col("consistency").f64().unwrap();
    assert_eq!((consistency.get(0), consistency.get(2)), (None, Some(-2.5)));
    assert!(col("fid_proxy").f64().unwrap().get(1).unwrap().is_nan());
    assert_eq!(col("recon_mse").f64().unwrap().get(1), Some(f64::INFINITY));
    assert_eq!(col("fid_proxy").f64().unwrap().get(2), None);

    let csv = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(dir.join("metrics.csv")))
        .unwrap()
        .finish()
        .unwrap();
    let got: Vec<&str> = csv.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(got, names);
    assert_eq!(csv.height(), 3);
    assert_eq!(csv.column("steps").unwrap().i64().unwrap().get(0), Some(10));
    assert_eq!(csv.column("consistency").unwrap().f64().unwrap().get(0), None);
    assert_eq!(csv.column("eta").unwrap().str().unwrap().get(0), Some("0.0"));

    assert_same_rows(&read_rows(&dir.join("metrics.parquet")).unwrap(), &rows);
    // An empty sweep still writes (and reads back) a table.
    write_tables(&[], (&BTreeMap::new(), &BTreeMap::new()), &dir).unwrap();
    assert!(read_rows(&dir.join("metrics.parquet")).unwrap().is_empty());
}

#[test]
fn every_bootstrap_replicate_is_kept_in_a_long_table_and_read_back() {
    let dir = scratch("bootstrap");
    let mut rows = sweep_rows();
    rows[0].replicates = BTreeMap::from([
        ("fid_proxy".to_string(), vec![0.5, 0.25, f64::NAN]),
        ("recon_mse".to_string(), vec![1.0, 2.0, 3.0]),
    ]);
    rows[2].replicates = BTreeMap::from([("fid_proxy".to_string(), vec![7.0, 8.0, 9.0])]);
    // Per-row values (reconstruction, consistency), NaN kept, in their own long table.
    rows[1].rows = BTreeMap::from([
        ("recon_mse".to_string(), vec![0.5, f64::NAN, 0.125, 0.25]),
        ("consistency_mse".to_string(), vec![1.0, 2.0]),
    ]);
    rows[1].linear = BTreeMap::from([(
        "fid_proxy".to_string(),
        Linear {
            samples: [vec![0.5, -0.5], vec![0.25, -0.25]],
            reference: [vec![1.0, 0.0, -1.0], vec![0.5, 0.0, -0.5]],
        },
    )]);
    let floor = BTreeMap::from([("fid_proxy".to_string(), vec![0.1, 0.2, 0.3])]);
    let floor_linear = BTreeMap::from([(
        "fid_proxy".to_string(),
        Linear {
            samples: [vec![0.25], vec![0.5]],
            reference: [vec![], vec![]],
        },
    )]);
    write_tables(&rows, (&floor, &floor_linear), &dir).unwrap();
    let df = ParquetReader::new(std::fs::File::open(dir.join("bootstrap.parquet")).unwrap())
        .finish()
        .unwrap();
    let got: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(got, ["point_id", "metric", "replicate", "value"]);
    assert_eq!(df.height(), 3 + 3 + 3 + 3);
    let (back, back_floor) = ddimlab::store::read_results(&dir).unwrap();
    assert_same_rows(&back, &rows);
    assert_eq!((back_floor.replicates, back_floor.linear), (floor, floor_linear));
    assert!(dir.join("projections.parquet").is_file());
    let df = ParquetReader::new(std::fs::File::open(dir.join("rows.parquet")).unwrap())
        .finish()
        .unwrap();
    let got: Vec<&str> = df.get_column_names().iter().map(|s| s.as_str()).collect();
    assert_eq!(got, ["point_id", "metric", "row", "value"]);
    assert_eq!(df.height(), 4 + 2);
    // The metrics table holds no replicates.
    assert!(read_rows(&dir.join("metrics.parquet")).unwrap()[0]
        .replicates
        .is_empty());
}

#[test]
fn read_rows_rejects_foreign_files() {
    let dir = scratch("foreign");
    std::fs::write(dir.join("metrics.parquet"), b"not parquet").unwrap();
    assert!(matches!(read_rows(&dir.join("metrics.parquet")), Err(Error::Io { .. })));
    let mut df = df!("point_id" => ["a"], "steps" => [1.5]).unwrap();
    ParquetWriter::new(std::fs::File::create(dir.join("other.parquet")).unwrap())
        .finish(&mut df)
        .unwrap();
    assert!(matches!(read_rows(&dir.join("other.parquet")), Err(Error::Io { .. })));
}

fn meta() -> H5Meta {
    H5Meta {
        experiment: "gmm2d".into(),
        config_yaml: "name: gmm2d\nseed: 7\n# σ̂ ünïcode\n".into(),
        seed: u64::MAX - 1,
        ddimlab_version: "0.1.0".into(),
    }
}

fn h5_points() -> Vec<(MetricRow, PointArrays)> {
    let rows = sweep_rows();
    vec![
        (rows[0].clone(), arrays(&[1, 2, 3], 4, 10, Some(2), Some(3))),
        (rows[1].clone(), arrays(&[1, 2, 3], 4, 10, None, None)),
        (rows[2].clone(), arrays(&[1, 2, 3], 4, 5, Some(4), None)),
    ]
}

fn str_attr(loc: &hdf5::Location, name: &str) -> String {
    loc.attr(name)
        .unwrap()
        .read_scalar::<VarLenUnicode>()
        .unwrap()
        .as_str()
        .to_string()
}

#[test]
fn samples_h5_follows_the_schema() {
    let dir = scratch("h5");
    let path = dir.join("samples.h5");
    let points = h5_points();
    write_samples(&path, &meta(), points.clone().into_iter().map(Ok)).unwrap();
    assert!(!dir.join("samples.h5.tmp").exists());

    let file = hdf5::File::open(&path).unwrap();
    assert_eq!(str_attr(&file, "experiment"), "gmm2d");
    assert_eq!(str_attr(&file, "config"), meta().config_yaml);
    assert_eq!(str_attr(&file, "ddimlab_version"), "0.1.0");
    assert_eq!(file.attr("seed").unwrap().read_scalar::<u64>().unwrap(), u64::MAX - 1);
    let mut ids = file.group("points").unwrap().member_names().unwrap();
    ids.sort();
    assert_eq!(
        ids,
        ["linear_eta0.0_S10", "linear_sigma_hat_S10", "quadratic_eta1.0_S5"]
    );
    assert_eq!(
        file.group("reconstruction").unwrap().member_names().unwrap(),
        ["linear_eta0.0_S10"]
    );

    let g = file.group("points/quadratic_eta1.0_S5").unwrap();
    assert_eq!(str_attr(&g, "tau"), "quadratic");
    assert_eq!(str_attr(&g, "eta"), "1.0");
    assert_eq!(g.attr("steps").unwrap().read_scalar::<i64>().unwrap(), 5);
    assert_eq!(g.attr("nfe").unwrap().read_scalar::<i64>().unwrap(), 4);
    assert_eq!(
        g.attr("timesteps").unwrap().read_raw::<i64>().unwrap(),
        [0, 100, 200, 300, 400]
    );
    let a = &points[2].1;
    let latents = g.dataset("latents").unwrap();
    assert_eq!(latents.shape(), [4, 1, 2, 3]);
    assert_eq!(latents.dtype().unwrap().size(), 4);
    assert_eq!(latents.read_raw::<f32>().unwrap(), a.latents);
    assert_eq!(g.dataset("samples").unwrap().shape(), [4, 1, 2, 3]);
    assert_eq!(g.dataset("samples").unwrap().read_raw::<f32>().unwrap(), a.samples);
    let traj = g.dataset("trajectory").unwrap();
    assert_eq!(traj.shape(), [6, 4, 1, 2, 3]);
    assert_eq!(traj.read_raw::<f32>().unwrap(), *a.trajectory.as_ref().unwrap());
    assert!(!file
        .group("points/linear_sigma_hat_S10")
        .unwrap()
        .link_exists("trajectory"));

    let r = file.group("reconstruction/linear_eta0.0_S10").unwrap();
    let want = points[0].1.reconstruction.as_ref().unwrap();
    for (name, values) in [
        ("inputs", &want.inputs),
        ("latents", &want.latents),
        ("outputs", &want.outputs),
    ] {
        assert_eq!(r.dataset(name).unwrap().shape(), [3, 1, 2, 3]);
        assert_eq!(r.dataset(name).unwrap().read_raw::<f32>().unwrap(), *values);
    }
    drop((g, r, latents, traj, file));

    assert_eq!(read_meta(&path).unwrap(), meta());
    for (row, arrays) in &points {
        let p = read_point(&path, &row.point_id).unwrap();
        assert_eq!((p.tau.as_str(), p.eta.as_str()), (row.tau.as_str(), row.eta.as_str()));
        assert_eq!((p.steps, p.nfe), (row.steps, row.nfe));
        assert_eq!(p.arrays, *arrays);
    }
    assert!(read_point(&path, "no_such_point").is_err());
}

#[test]
fn samples_h5_failures_leave_the_old_file() {
    let dir = scratch("h5fail");
    let path = dir.join("samples.h5");
    write_samples(&path, &meta(), h5_points().into_iter().take(1).map(Ok)).unwrap();

    let failing = h5_points()
        .into_iter()
        .map(Ok)
        .chain(std::iter::once(Err(Error::Shape("stop".into()))));
    assert!(matches!(write_samples(&path, &meta(), failing), Err(Error::Shape(_))));
    let twice = h5_points().into_iter().chain(h5_points()).map(Ok);
    assert!(matches!(
        write_samples(&path, &meta(), twice),
        Err(Error::Invalid { .. })
    ));

    assert!(!dir.join("samples.h5.tmp").exists());
    let file = hdf5::File::open(&path).unwrap();
    assert_eq!(
        file.group("points").unwrap().member_names().unwrap(),
        ["linear_eta0.0_S10"]
    );
    std::fs::write(dir.join("junk.h5"), b"junk").unwrap();
    assert!(matches!(read_meta(&dir.join("junk.h5")), Err(Error::Io { .. })));
}

/// A complete small results folder, kept under the target dir for `scripts/read_results.py`.
#[test]
fn writes_an_example_results_folder() {
    let dir = scratch("results_example");
    let points = h5_points();
    for (row, arrays) in &points {
        save_point(&dir, "example", row, arrays).unwrap();
    }
    let ids: Vec<String> = points.iter().map(|(r, _)| r.point_id.clone()).collect();
    let rows: Vec<MetricRow> = ids
        .iter()
        .map(|id| load_row(&dir, id, "example").unwrap().unwrap())
        .collect();
    write_tables(&rows, (&BTreeMap::new(), &BTreeMap::new()), &dir).unwrap();
    let from_points = rows
        .into_iter()
        .map(|row| Ok((row.clone(), load_arrays(&dir, &row.point_id)?)));
    write_samples(&dir.join("samples.h5"), &meta(), from_points).unwrap();
    let names: BTreeMap<_, _> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| (e.unwrap().file_name().into_string().unwrap(), ()))
        .collect();
    assert_eq!(
        names.keys().collect::<Vec<_>>(),
        [
            "bootstrap.parquet",
            "metrics.csv",
            "metrics.parquet",
            "points",
            "projections.parquet",
            "rows.parquet",
            "samples.h5"
        ]
    );
    println!("example results folder: {}", dir.display());
}
