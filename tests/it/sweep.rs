//! `ddimlab sweep` end to end: the plan, the runner's files against the sampler's own
//! results, resume after a real kill, stale-config refusal, and diverging points.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use ddimlab::experiment::plan::Plan;
use ddimlab::experiment::runner::{run_sweep, SweepOptions};
use ddimlab::experiment::ExperimentConfig;
use ddimlab::model::{EpsModel, MixtureOracle};
use ddimlab::rng::{item_normals, Purpose};
use ddimlab::sampler::{Eta, PerSampleNoise, Sampler, SamplerKind};
use ddimlab::schedule::{Tau, TauKind};
use polars::prelude::*;

fn workdir(tag: &str) -> PathBuf {
    crate::common::workdir("sweep", tag)
}

/// A 2-D three-component oracle experiment with the given sweep block.
fn yaml(sweep: &str, samples: usize) -> String {
    format!(
        "name: tiny\nseed: 3\ndevice: cpu\ndata:\n  kind: gaussian_mixture\n  weights: [0.3, 0.2, 0.5]\n  \
         means: [[-0.6, -0.4], [0.6, -0.4], [0.0, 0.5]]\n  std: 0.1\n  n_train: 10\n  n_heldout: 300\n\
         model:\n  kind: oracle\nsweep:\n{sweep}  samples: {samples}\n  batch_size: 64\n  trajectory_samples: 4\n"
    )
}

fn config(text: &str) -> ExperimentConfig {
    ExperimentConfig::parse(text, Path::new("test.yaml")).unwrap()
}

fn sweep_lib(cfg: &ExperimentConfig, out: &Path) -> ddimlab::experiment::runner::SweepOutcome {
    let data = cfg.data.load(cfg.seed).unwrap();
    let model = MixtureOracle::new(data.mixture.clone().unwrap(), cfg.schedule.build().unwrap());
    let opts = SweepOptions {
        out: out.to_path_buf(),
        force: false,
        jobs: 2,
        shard: None,
    };
    run_sweep(cfg, &model, &data, (&Device::Cpu, "cpu"), &opts).unwrap()
}

/// The low-NFE points: for every τ kind and solver listed, the largest S within each
/// target (Heun: 2n − 1 ≤ target; PLMS: n + 1), added once, with their own τ kinds.
#[test]
fn low_nfe_points_take_the_largest_s_within_each_target() {
    let cfg = config(&yaml(
        "  steps: [10]\n  eta: [0.0]\n  tau: [linear]\n  samplers: [ddim, heun, plms, unipc]\n  \
         low_nfe: {nfe: [5, 10], tau: [karras, linear]}\n",
        20,
    ));
    let plan = Plan::new(&cfg, 300).unwrap();
    let ids: Vec<&str> = plan.points.iter().map(|p| p.id.as_str()).collect();
    for id in [
        "karras_eta0.0_S5",
        "karras_eta0.0_S10",
        "karras_heun_S3",
        "karras_heun_S5",
        "karras_plms_S4",
        "karras_plms_S9",
        "karras_unipc_S10",
        "linear_heun_S5",
        "linear_eta0.0_S5",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    // linear S = 10 is on the grid already: not added twice.
    assert_eq!(ids.iter().filter(|i| **i == "linear_eta0.0_S10").count(), 1);
    assert!(plan
        .points
        .iter()
        .filter(|p| p.tau.kind() == ddimlab::schedule::TauKind::Karras)
        .all(|p| p.nfe() <= 10));
    // No consistency reference is made for a τ kind only the low-NFE points use.
    assert!(plan.references.iter().all(|r| r.tau.kind() == TauKind::Linear));
}

#[test]
fn plan_expands_every_axis_with_stable_ids() {
    let cfg = config(&yaml(
        "  steps: [5, 10]\n  eta: [0.0, 1.0, sigma_hat]\n  tau: [linear, quadratic]\n  clip_x0: [false, true]\n  samplers: [ddim, plms, dpmpp_2m, heun]\n",
        20,
    ));
    let plan = Plan::new(&cfg, 300).unwrap();
    // DDIM: τ × clip × η × S; the deterministic solvers: τ × S, unclipped.
    assert_eq!(plan.points.len(), 2 * 3 * 2 * 2 + 3 * 2 * 2);
    let ids: Vec<&str> = plan.points.iter().map(|p| p.id.as_str()).collect();
    for id in [
        "linear_eta0.0_S5",
        "quadratic_sigma_hat_S10_clip",
        "linear_eta1.0_S10",
        "linear_plms_S5",
        "quadratic_dpmpp_2m_S10",
        "linear_heun_S10",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    // Each point's evaluations are its solver's NFE per sample (quadratic S = 5 has 5 timesteps).
    let heun = plan.points.iter().find(|p| p.id == "quadratic_heun_S5").unwrap();
    assert_eq!(plan.point_evaluations(heun), (2 * 5 - 1) * 20);
    assert!(plan
        .points
        .iter()
        .filter(|p| p.sampler.kind() != SamplerKind::Ddim)
        .all(|p| !p.clip_x0() && !p.owns_reconstruction));
    // Reconstruction is η-free: one owner per (tau, S, clip), the first η.
    let owners = plan.points.iter().filter(|p| p.owns_reconstruction).count();
    assert_eq!(owners, 2 * 2 * 2);
    assert!(plan
        .points
        .iter()
        .filter(|p| p.owns_reconstruction)
        .all(|p| p.sampler == Sampler::DDIM
            || p.sampler
                == Sampler::Ddim {
                    eta: Eta::DDIM,
                    clip_x0: true
                }));
    // References: one per tau kind at the largest S, reusing the sweep point.
    assert_eq!(plan.references.len(), 2);
    for r in &plan.references {
        let p = &plan.points[r.point.unwrap()];
        assert_eq!((p.tau.steps(), p.sampler), (10, Sampler::DDIM));
    }
    let evals: usize = plan.points.iter().map(|p| plan.point_evaluations(p)).sum();
    assert_eq!(plan.total_evaluations(), evals);
}

#[test]
fn outputs_match_the_sampler_run_directly() {
    let cfg = config(&yaml(
        "  steps: [4, 9]\n  eta: [0.0, 0.5, sigma_hat]\n  tau: [linear, trailing]\n",
        150,
    ));
    let out = workdir("files");
    let outcome = sweep_lib(&cfg, &out);
    assert_eq!(outcome.rows.len(), 12);

    // Recompute one stochastic point with the sampler itself: same x_T, same noise.
    let data = cfg.data.load(cfg.seed).unwrap();
    let schedule = cfg.schedule.build().unwrap();
    let model = MixtureOracle::new(data.mixture.clone().unwrap(), schedule.clone());
    let latents = item_normals(cfg.seed, Purpose::Latents, 0, 150, 2);
    let x_t = Tensor::from_vec(latents.clone(), (150, 2), &Device::Cpu).unwrap();
    let tau = Tau::new(TauKind::Trailing, 9, 1000).unwrap();
    let ddim = Sampler::Ddim {
        eta: Eta::Value(0.5),
        clip_x0: false,
    };
    let direct = ddim
        .run(
            &model,
            &schedule,
            &tau,
            &x_t,
            &mut PerSampleNoise::new(3, 0, 150),
            false,
        )
        .unwrap();
    let direct: Vec<f32> = direct.x.flatten_all().unwrap().to_vec1().unwrap();

    // HDF5: schema of the README results-folder section, values equal the direct run (batches of 64 vs one of 150).
    let file = hdf5::File::open(out.join("samples.h5")).unwrap();
    let g = file.group("points/trailing_eta0.5_S9").unwrap();
    let samples = g.dataset("samples").unwrap();
    assert_eq!(samples.shape(), vec![150, 2]);
    let got: Vec<f32> = samples.read_raw().unwrap();
    for (a, b) in got.iter().zip(&direct) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    let lat: Vec<f32> = g.dataset("latents").unwrap().read_raw().unwrap();
    assert_eq!(lat, latents);
    let ts: Vec<i64> = g.attr("timesteps").unwrap().read_raw().unwrap();
    assert_eq!(ts, tau.timesteps().iter().map(|&t| t as i64).collect::<Vec<_>>());
    assert_eq!(g.dataset("trajectory").unwrap().shape(), vec![10, 4, 2]);
    let rec = file.group("reconstruction/linear_eta0.0_S9").unwrap();
    assert_eq!(rec.dataset("inputs").unwrap().shape(), vec![150, 2]);

    tables_hold_the_rows(&out, &outcome.rows);
    // The η = 0 reference is its own consistency reference; η > 0 is not consistent.
    let consistency = |id: &str| outcome.rows.iter().find(|r| r.point_id == id).unwrap().metrics["consistency_mse"];
    assert_eq!(consistency("linear_eta0.0_S9"), 0.0);
    assert!(consistency("linear_eta0.0_S4") > 0.0);
    assert!(consistency("linear_sigma_hat_S9") > consistency("linear_eta0.0_S4"));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["points"].as_array().unwrap().len(), 12);
    assert!(manifest["model_seconds"].as_f64().unwrap() > 0.0);
    assert!(out.join("config.yaml").exists());
}

#[test]
fn results_do_not_depend_on_batch_size_and_stale_points_are_refused() {
    let sweep = "  steps: [5]\n  eta: [1.0]\n  tau: [linear]\n";
    let out = workdir("batch");
    let a = sweep_lib(&config(&yaml(sweep, 100)), &out.join("a"));
    let b = sweep_lib(
        &config(&yaml(sweep, 100).replace("batch_size: 64", "batch_size: 7")),
        &out.join("b"),
    );
    assert_eq!(a.rows[0].metrics["fd"], b.rows[0].metrics["fd"]);
    assert_eq!(a.manifest.config_hash, b.manifest.config_hash);
    // A different seed must not mix with the saved points.
    let other = config(&yaml(sweep, 100).replace("seed: 3", "seed: 4"));
    let data = other.data.load(other.seed).unwrap();
    let model = MixtureOracle::new(data.mixture.clone().unwrap(), other.schedule.build().unwrap());
    let mut opts = SweepOptions {
        out: out.join("a"),
        force: false,
        jobs: 1,
        shard: None,
    };
    let err = run_sweep(&other, &model, &data, (&Device::Cpu, "cpu"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("different configuration") && err.contains("--force"),
        "{err}"
    );
    opts.force = true;
    let redone = run_sweep(&other, &model, &data, (&Device::Cpu, "cpu"), &opts).unwrap();
    assert_ne!(redone.rows[0].metrics["fd"], a.rows[0].metrics["fd"]);
}

/// ε that is NaN at t = 500 and exact elsewhere: only τ that visit 500 diverge.
struct NanAt500(MixtureOracle);

impl EpsModel for NanAt500 {
    fn eps(&self, x: &Tensor, t: &[usize]) -> ddimlab::Result<Tensor> {
        let e = self.0.eps(x, t)?;
        Ok(if t[0] == 500 { (e * f64::NAN)? } else { e })
    }
}

#[test]
fn a_diverging_point_is_recorded_and_the_sweep_goes_on() {
    let cfg = config(&yaml("  steps: [2, 3]\n  eta: [0.0]\n  tau: [linear]\n", 50));
    let data = cfg.data.load(cfg.seed).unwrap();
    let model = NanAt500(MixtureOracle::new(
        data.mixture.clone().unwrap(),
        cfg.schedule.build().unwrap(),
    ));
    let opts = SweepOptions {
        out: workdir("nan"),
        force: false,
        jobs: 1,
        shard: None,
    };
    let outcome = run_sweep(&cfg, &model, &data, (&Device::Cpu, "cpu"), &opts).unwrap();
    let s2 = &outcome.rows[0]; // tau {0, 500}
    let s3 = &outcome.rows[1]; // tau {0, 333, 666}
    assert!(s2.diverged && s2.metrics["fd"].is_nan() && s2.metrics["recon_mse"].is_nan());
    assert!(!s3.diverged && s3.metrics["fd"].is_finite());
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ddimlab"))
}

/// Rows of metrics.parquet without the timing columns, as text (for equality).
fn table_without_times(dir: &Path) -> String {
    let df = ParquetReader::new(std::fs::File::open(dir.join("metrics.parquet")).unwrap())
        .finish()
        .unwrap();
    let df = df.drop_many(["seconds", "model_seconds"]);
    format!("{:?}", df)
}

#[test]
fn a_killed_sweep_resumes_to_the_same_results() {
    let dir = workdir("kill");
    let exp = dir.join("exp.yaml");
    std::fs::write(
        &exp,
        yaml(
            "  steps: [10, 50, 200, 1000]\n  eta: [0.0, 0.5]\n  tau: [linear, quadratic]\n",
            400,
        ),
    )
    .unwrap();
    let (killed, whole) = (dir.join("killed"), dir.join("whole"));
    let mut child = bin()
        .args(["sweep", exp.to_str().unwrap(), "--out", killed.to_str().unwrap()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it (SIGKILL, a real signal) once some but not all points are saved.
    let start = Instant::now();
    let saved = |d: &Path| {
        std::fs::read_dir(d.join("points")).map_or(0, |r| {
            r.filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "json"))
                .count()
        })
    };
    while saved(&killed) < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no point saved in 2 minutes"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "sweep finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = saved(&killed);
    assert!(done_before < 16 && !killed.join("metrics.parquet").exists());

    let resumed = bin()
        .args(["sweep", exp.to_str().unwrap(), "--out", killed.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    let log = String::from_utf8_lossy(&resumed.stderr);
    assert!(log.contains("reused from an earlier run"), "{log}");
    let whole_run = bin()
        .args(["sweep", exp.to_str().unwrap(), "--out", whole.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(whole_run.status.success());
    assert_eq!(table_without_times(&killed), table_without_times(&whole));
    let read = |d: &Path| -> Vec<f32> {
        hdf5::File::open(d.join("samples.h5"))
            .unwrap()
            .dataset("points/quadratic_eta0.5_S200/samples")
            .unwrap()
            .read_raw()
            .unwrap()
    };
    assert_eq!(read(&killed), read(&whole));
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(killed.join("manifest.json")).unwrap()).unwrap();
    let reused = manifest["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["reused"].as_bool().unwrap())
        .count();
    assert_eq!(reused, done_before, "every point saved before the kill is reused");
}

#[test]
fn three_shards_and_a_merge_equal_one_run() {
    let cfg = config(&yaml(
        "  steps: [3, 6, 12]\n  eta: [0.0, 1.0, sigma_hat]\n  tau: [linear, quadratic]\n",
        60,
    ));
    let data = cfg.data.load(cfg.seed).unwrap();
    let model = MixtureOracle::new(data.mixture.clone().unwrap(), cfg.schedule.build().unwrap());
    let dir = workdir("shards");
    let run = |out: &Path, shard: Option<&str>| {
        let opts = SweepOptions {
            out: out.to_path_buf(),
            force: false,
            jobs: 1,
            shard: shard.map(|s| s.parse().unwrap()),
        };
        run_sweep(&cfg, &model, &data, (&Device::Cpu, "cpu"), &opts).unwrap()
    };
    let whole = run(&dir.join("whole"), None);
    // Every non-reference point is in exactly one shard; the shards' work is balanced.
    let plan = Plan::new(&cfg, 300).unwrap();
    let shards: Vec<Vec<usize>> = (0..3).map(|k| plan.shard(format!("{k}/3").parse().unwrap())).collect();
    let refs: Vec<usize> = plan.references.iter().filter_map(|r| r.point).collect();
    for i in 0..plan.points.len() {
        let times = shards.iter().filter(|s| s.contains(&i)).count();
        assert_eq!(times, if refs.contains(&i) { 3 } else { 1 }, "{}", plan.points[i].id);
    }
    let work: Vec<usize> = shards
        .iter()
        .map(|s| {
            s.iter()
                .filter(|i| !refs.contains(i))
                .map(|&i| plan.point_evaluations(&plan.points[i]))
                .sum()
        })
        .collect();
    let (lo, hi) = (*work.iter().min().unwrap(), *work.iter().max().unwrap());
    let largest = plan.points.iter().map(|p| plan.point_evaluations(p)).max().unwrap();
    assert!(hi - lo <= largest, "{work:?}");

    let parts: Vec<PathBuf> = (0..3).map(|k| dir.join(format!("shard{k}"))).collect();
    for (k, part) in parts.iter().enumerate() {
        let outcome = run(part, Some(&format!("{k}/3")));
        assert_eq!(outcome.manifest.shard.as_deref(), Some(format!("{k}/3").as_str()));
    }
    let merged = dir.join("merged");
    let outcome = ddimlab::experiment::merge::merge(&merged, &parts).unwrap();
    assert!(outcome.missing.is_empty(), "{:?}", outcome.missing);
    assert_eq!(outcome.manifest.shards.len(), 3);
    // The same metrics (timing aside) and the same samples.h5 arrays as one run.
    let strip = |mut rows: Vec<ddimlab::store::MetricRow>| {
        for r in &mut rows {
            (r.seconds, r.model_seconds) = (0.0, 0.0);
        }
        rows
    };
    // (with every bootstrap replicate and per-row value: merge carries bootstrap.parquet and
    // rows.parquet)
    assert!(whole
        .rows
        .iter()
        .any(|r| !r.rows.is_empty() && !r.replicates.is_empty()));
    let merged_rows = ddimlab::store::read_results(&merged).unwrap().0;
    // (compared as text: σ̂ rows carry eta_value NaN, which is never == itself)
    assert_eq!(
        format!("{:?}", strip(merged_rows)),
        format!("{:?}", strip(whole.rows.clone()))
    );
    for r in &whole.rows {
        let a = ddimlab::store::read_point(&dir.join("whole/samples.h5"), &r.point_id).unwrap();
        let b = ddimlab::store::read_point(&merged.join("samples.h5"), &r.point_id).unwrap();
        assert_eq!(a.arrays, b.arrays, "{}", r.point_id);
    }
    merge_refuses_what_it_cannot_join(&dir, &parts, &model, &data);
    let partial = ddimlab::experiment::merge::merge(&dir.join("m3"), &parts[..2]).unwrap();
    assert!(!partial.missing.is_empty());
    merge_reads_before_it_writes_and_replaces_its_output_whole(&dir, &parts, &merged);
    assert!("3/3".parse::<ddimlab::experiment::plan::Shard>().is_err());
    assert!("1/0".parse::<ddimlab::experiment::plan::Shard>().is_err());
}

/// Every folder and file under `from`, copied to `to`.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// The files under `dir` (relative paths) with their bytes, the lock file left out.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if !path.ends_with(ddimlab::store::lock::LOCK_FILE) {
                files.push((
                    path.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&path).unwrap(),
                ));
            }
        }
    }
    files.sort();
    files
}

/// A merge checks every point record of every shard before it writes anything (a corrupt
/// one refuses the merge and no output folder appears), and builds its output beside the
/// old one before moving it in: a failure while writing (a point's arrays unreadable) leaves the old output
/// byte for byte as it was and no staging folder behind.
fn merge_reads_before_it_writes_and_replaces_its_output_whole(dir: &Path, parts: &[PathBuf], merged: &Path) {
    let merge = ddimlab::experiment::merge::merge;
    let bad = dir.join("bad_shard");
    copy_tree(&parts[2], &bad);
    let shards = [parts[0].clone(), parts[1].clone(), bad.clone()];
    let json = std::fs::read_dir(bad.join("points"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json") && !p.to_string_lossy().contains("reference"))
        .unwrap();
    let good = std::fs::read(&json).unwrap();
    std::fs::write(&json, b"{ not json").unwrap();
    let err = merge(&dir.join("m5"), &shards).unwrap_err().to_string();
    let id = json.file_stem().unwrap().to_string_lossy().to_string();
    assert!(err.contains(&id) && err.contains("cannot be merged"), "{err}");
    assert!(
        !dir.join("m5").exists(),
        "nothing is written before every input is read"
    );

    std::fs::write(&json, good).unwrap();
    std::fs::write(json.with_extension("safetensors"), b"truncated").unwrap();
    let before = tree(merged);
    let err = merge(merged, &shards).unwrap_err().to_string();
    assert!(err.contains(&id), "{err}");
    assert_eq!(tree(merged), before, "a failed merge leaves its output as it was");
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // A merge that succeeds replaces the files it writes and keeps the others (a trained
    // model, shards kept inside the output).
    std::fs::write(merged.join("kept.txt"), b"from before").unwrap();
    merge(merged, parts).unwrap();
    assert_eq!(std::fs::read(merged.join("kept.txt")).unwrap(), b"from before");
    assert_eq!(tree(merged).len(), before.len() + 1);
}

/// Parquet and CSV in `out`: one row per point, the same numbers as the runner returned.
fn tables_hold_the_rows(out: &Path, rows: &[ddimlab::store::MetricRow]) {
    let pq = ParquetReader::new(std::fs::File::open(out.join("metrics.parquet")).unwrap())
        .finish()
        .unwrap();
    let csv = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(out.join("metrics.csv")))
        .unwrap()
        .finish()
        .unwrap();
    for df in [&pq, &csv] {
        assert_eq!(df.height(), 12);
        for col in [
            "tau",
            "eta",
            "eta_value",
            "steps",
            "nfe",
            "seconds",
            "fd",
            "mmd2",
            "swd",
            "mass_error",
        ] {
            assert!(df.column(col).is_ok(), "column {col}");
        }
    }
    let ids = pq.column("point_id").unwrap().str().unwrap().clone();
    let fd = pq.column("fd").unwrap().f64().unwrap().clone();
    let recon = pq.column("recon_mse").unwrap().f64().unwrap().clone();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(ids.get(i).unwrap(), row.point_id);
        assert_eq!(fd.get(i).unwrap(), row.metrics["fd"]);
        // reconstruction is η-free: every row of a (tau, S) carries the owner's value
        assert!(recon.get(i).unwrap().is_finite(), "{}", row.point_id);
    }
}

/// A shard of another configuration is refused, and so are an output among the shards and
/// a shard listed twice; a refused merge changes nothing of its inputs.
fn merge_refuses_what_it_cannot_join(
    dir: &Path,
    parts: &[PathBuf],
    model: &MixtureOracle,
    data: &ddimlab::data::Dataset,
) {
    // A shard of another configuration is refused; a missing shard is listed.
    let other = config(&yaml("  steps: [3]\n  eta: [0.0]\n  tau: [linear]\n", 61));
    let odd = dir.join("odd");
    let opts = SweepOptions {
        out: odd.clone(),
        force: false,
        jobs: 1,
        shard: None,
    };
    run_sweep(&other, model, data, (&Device::Cpu, "cpu"), &opts).unwrap();
    let err = ddimlab::experiment::merge::merge(&dir.join("m2"), &[parts[0].clone(), odd])
        .unwrap_err()
        .to_string();
    assert!(err.contains("only shards of one sweep can be merged"), "{err}");
    // The output may not be a shard, nor inside one, and a shard may not be listed twice;
    // a refused merge changes nothing of its inputs.
    let floor = parts[0].join("noise_floor.json");
    let before = std::fs::read(&floor).unwrap();
    let merge = |out: &Path, shards: &[PathBuf]| ddimlab::experiment::merge::merge(out, shards);
    let err = merge(&parts[0], &[parts[0].clone(), parts[1].clone()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("is the shard") && err.contains("new folder"), "{err}");
    let err = merge(&parts[1].join("sub"), parts).unwrap_err().to_string();
    assert!(err.contains("inside the shard"), "{err}");
    let err = merge(&parts[1].join("..").join("shard0"), parts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is the shard"), "{err}");
    let err = merge(&dir.join("m4"), &[parts[0].clone(), parts[0].clone()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("listed twice"), "{err}");
    assert_eq!(std::fs::read(&floor).unwrap(), before);
    assert!(!dir.join("m4").exists());
}
