//! Reports: table layout and values, derived findings, figures as valid PNG/SVG, and a
//! partial sweep that reports what it has and names what is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ddimlab::experiment::runner::{run_sweep, SweepOptions};
use ddimlab::experiment::ExperimentConfig;
use ddimlab::model::{EpsModel, MixtureOracle};
use ddimlab::report::claims::{Claim, Claims, Family};
use ddimlab::report::differences::eta_differences;
use ddimlab::report::findings::{across_s_claims, findings, floor_claims};
use ddimlab::report::report;
use ddimlab::report::tables::{eta_by_steps, loglog_slope, with_floor, MetricInfo, SAMPLE_QUALITY};
use ddimlab::store::manifest::NoiseFloor;
use ddimlab::store::MetricRow;
use polars::prelude::*;

/// A seeded standard-normal stream (Box–Muller on a xorshift), for synthetic replicates.
fn normals(seed: u64, n: usize) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut u = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| (-2.0 * u().ln()).sqrt() * (2.0 * std::f64::consts::PI * u()).cos())
        .collect()
}

const B: usize = 200;

/// A row whose metrics each carry B replicates: value + `shared`·z_b (z shared by every
/// point: the paired part) + `own`·w_b (this point's own noise), and the matching
/// normal-interval ends.
fn row(
    tau: &str,
    eta: &str,
    steps: usize,
    nfe: usize,
    metrics: &[(&str, f64)],
    (shared, own): (f64, f64),
) -> MetricRow {
    let id = format!("{tau}_{eta}_S{steps}");
    let z = normals(1, B);
    let mut values = BTreeMap::new();
    let mut replicates = BTreeMap::new();
    for (k, (name, v)) in metrics.iter().enumerate() {
        let w = normals(1000 + (id.len() * 31 + steps * 7 + k) as u64 + eta.len() as u64 * 13, B);
        let reps: Vec<f64> = z.iter().zip(&w).map(|(a, b)| v + shared * a + own * b).collect();
        let half = 1.96 * (shared * shared + own * own).sqrt();
        values.insert(name.to_string(), *v);
        values.insert(format!("{name}_lo"), v - half);
        values.insert(format!("{name}_hi"), v + half);
        replicates.insert(name.to_string(), reps);
    }
    MetricRow {
        point_id: id,
        tau: tau.into(),
        sampler: "ddim".into(),
        eta: eta.into(),
        eta_value: eta.parse().unwrap_or(f64::NAN),
        steps,
        nfe,
        clip_x0: false,
        seconds: 1.0,
        model_seconds: 0.9,
        diverged: false,
        metrics: values,
        replicates,
        linear: BTreeMap::new(),
        rows: BTreeMap::new(),
    }
}

/// fd_inf = 1 / S for η = 0 and 2 / S + η for the others; recon = 1 / S²; replicates
/// with a shared part of sd `shared` and an own part of sd `own`.
fn synthetic(noise: (f64, f64)) -> Vec<MetricRow> {
    let mut rows = Vec::new();
    for tau in ["linear", "quadratic"] {
        for eta in ["0.0", "1.0", "sigma_hat"] {
            for s in [10, 20, 40] {
                let e = match eta {
                    "0.0" => 0.0,
                    "1.0" => 1.0,
                    _ => 0.5,
                };
                let fd = if eta == "0.0" {
                    1.0 / s as f64
                } else {
                    2.0 / s as f64 + e
                };
                let nfe = if tau == "quadratic" && s == 40 { 29 } else { s };
                let mut r = row(tau, eta, s, nfe, &[("fd_inf", fd)], noise);
                with_rows(&mut r, "recon_mse", 1.0 / (s * s) as f64, 1);
                rows.push(r);
            }
        }
    }
    rows
}

/// Rows of a mean over 100 rows every point shares (held-out rows, samples from x_T).
const ROWS: usize = 100;

/// Sets `name` to the mean of ROWS per-row values value·s_i·(1 + 0.1 w_i): s_i = exp(z_i / 2)
/// shared by every point (a row's difficulty), w_i this point's own noise (from `seed` and
/// the row's id).
fn with_rows(r: &mut MetricRow, name: &str, value: f64, seed: u64) {
    let z = normals(7, ROWS);
    let w = normals(seed * 7919 + r.point_id.len() as u64 * 31 + r.steps as u64, ROWS);
    let per_row: Vec<f64> = z
        .iter()
        .zip(&w)
        .map(|(a, b)| value * (0.5 * a).exp() * (1.0 + 0.1 * b))
        .collect();
    r.metrics.insert(name.into(), per_row.iter().sum::<f64>() / ROWS as f64);
    r.rows.insert(name.into(), per_row);
}

fn settled(rows: &[MetricRow], floor: Option<&MetricRow>) -> Claims {
    let mut family: Vec<Claim> = Vec::new();
    for tau in ["linear", "quadratic"] {
        family.extend(eta_by_steps(rows, &fd_inf(), tau, false).claims());
    }
    for t in eta_differences(rows, floor) {
        family.extend(t.claims());
    }
    family.extend(floor_claims(rows));
    Claims::settle(rows.iter().chain(floor), family).and(Claims::settle_as(
        Family::AcrossS,
        rows.iter(),
        across_s_claims(rows),
    ))
}

fn fd_inf() -> MetricInfo {
    *SAMPLE_QUALITY.iter().find(|m| m.name == "fd_inf").unwrap()
}

#[test]
fn table1_layout_has_eta_rows_step_columns_bold_where_paired_claims_hold_and_daggers() {
    // Replicates with a large shared part (sd 0.05) and a small own part (sd 0.001): the
    // marginal intervals (±0.098) overlap, the paired ones (±0.003) do not.
    let rows = synthetic((0.05, 0.001));
    let m = fd_inf();
    let mut t = eta_by_steps(&rows, &m, "quadratic", false);
    assert_eq!(t.columns, ["S = 10", "S = 20", "S = 40"]);
    let labels: Vec<&str> = t.rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(labels, ["η = 0.0", "η = 1.0", "σ̂ (no clipping)"]);
    assert_eq!(t.rows[1].1[0], Some(1.2));
    t.settle(&settled(&rows, None));
    let md = t.markdown();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 2 + 3);
    assert!(
        lines[2].starts_with("| η = 0.0 | **0.1000 ± 0.09802** | **0.05000 ± 0.09802** | **0.02500 ± 0.09802** †"),
        "{md}"
    );
    assert!(!lines[3].contains("**"), "{md}");
    // The plug-in FD is shown, never ranked.
    let mut plug_in = rows.clone();
    for r in plug_in.iter_mut() {
        let v = r.metrics["fd_inf"];
        r.metrics.insert("fd".into(), v);
        r.replicates.insert("fd".into(), r.replicates["fd_inf"].clone());
    }
    let fd = *SAMPLE_QUALITY.iter().find(|m| m.name == "fd").unwrap();
    let mut t = eta_by_steps(&plug_in, &fd, "quadratic", false);
    assert!(t.claims().is_empty());
    t.settle(&settled(&plug_in, None));
    assert!(!t.markdown().contains("**"));
    // Own noise as large as the differences (sd 0.3): no claim holds, nothing is bold.
    let noisy = synthetic((0.0, 0.3));
    let mut t = eta_by_steps(&noisy, &m, "quadratic", false);
    t.settle(&settled(&noisy, None));
    assert!(
        !t.markdown().lines().nth(2).unwrap().contains("**0.1000"),
        "{}",
        t.markdown()
    );
    // The floor row: appended, never bold.
    let floor = NoiseFloor {
        compared_with: String::new(),
        rows: Some(300),
        samples: Some(300),
        metrics: BTreeMap::from([
            ("fd_inf".to_string(), 0.0),
            ("fd_inf_lo".into(), 0.0),
            ("fd_inf_hi".into(), 0.0001),
        ]),
        replicates: BTreeMap::new(),
        linear: BTreeMap::new(),
    };
    let md = with_floor(eta_by_steps(&rows, &m, "quadratic", false), &m, &floor).markdown();
    assert!(
        md.contains("| noise floor (real vs real) | 0 ± 5.000e-5 | 0 ± 5.000e-5 | 0 ± 5.000e-5 |"),
        "{md}"
    );
    // A floor set smaller than the samples says so.
    let small = NoiseFloor {
        rows: Some(120),
        ..floor
    };
    assert!(with_floor(eta_by_steps(&rows, &m, "quadratic", false), &m, &small)
        .markdown()
        .contains("noise floor (real vs real; 120 rows, the points 300)"));
}

#[test]
fn findings_name_a_best_eta_only_where_its_paired_claim_holds() {
    let rows = synthetic((0.05, 0.001));
    let f = findings(&rows, &settled(&rows, None)).join("\n");
    assert!(
        f.contains("linear τ, fd_inf: S = 10: η = 0.0 best; S = 20: η = 0.0 best; S = 40: η = 0.0 best."),
        "{f}"
    );
    assert!(
        f.contains(
            "At S = 10, η = 0 against η = 1.0 on 2 (statistic, τ) pairs (Δ and its uncorrected 95 % interval): \
             better on 2"
        ),
        "{f}"
    );
    assert!(f.contains("Statements rest on fd_inf"), "{f}");
    // recon ≈ 1/S² (row noise aside): slope −2, ×0.25 per doubling, every step down told apart.
    assert!(f.contains("fitted MSE ∝ S^-2.01, i.e. ×0.25 per doubling"), "{f}");
    assert!(
        f.contains("linear τ: reconstruction error falls at every larger S (sign test on the 100 held-out rows, after correction, at each step)"),
        "{f}"
    );
    // Flip one cell: the statement must change.
    let mut worse = rows.clone();
    let r = worse
        .iter_mut()
        .find(|r| r.tau == "linear" && r.eta == "0.0" && r.steps == 20)
        .unwrap();
    r.metrics.insert("fd_inf".into(), 99.0);
    r.replicates
        .get_mut("fd_inf")
        .unwrap()
        .iter_mut()
        .for_each(|v| *v += 99.0 - 0.05);
    let f = findings(&worse, &settled(&worse, None)).join("\n");
    assert!(
        f.contains("linear τ, fd_inf: S = 10: η = 0.0 best; S = 20: σ̂ best; S = 40: η = 0.0 best."),
        "{f}"
    );
    // Without replicates, or with own noise as large as the differences, no η is named best.
    let mut bare = rows.clone();
    bare.iter_mut().for_each(|r| r.replicates.clear());
    let f = findings(&bare, &settled(&bare, None)).join("\n");
    assert!(f.contains("S = 10: η = 0.0 ≈ η = 1.0 ≈ σ̂ not told apart"), "{f}");
    assert!(!f.contains(" best"), "{f}");
    let noisy = synthetic((0.0, 0.3));
    let f = findings(&noisy, &settled(&noisy, None)).join("\n");
    assert!(f.contains("S = 40: η = 0.0 ≈"), "{f}");
    // The floor: points whose paired difference to the floor set does not hold are named.
    let floor_row = row("", "floor", 0, 0, &[("fd_inf", 0.05)], (0.05, 0.001));
    let floor_row = MetricRow {
        point_id: ddimlab::store::FLOOR_ID.into(),
        ..floor_row
    };
    let f = findings(&rows, &settled(&rows, Some(&floor_row))).join("\n");
    assert!(
        f.contains(
            "linear τ, fd_inf: not told apart from the noise floor (paired difference to the floor set, after \
             correction), i.e. indistinguishable from real data at this sample size: η = 0.0 at S = 20."
        ),
        "{f}"
    );
    assert!((loglog_slope(&[(1.0, 1.0), (2.0, 0.5), (4.0, 0.25)]).unwrap() + 1.0).abs() < 1e-12);
}

#[test]
fn reconstruction_and_consistency_statements_rest_on_their_paired_claims() {
    // recon ≈ 1/S² on shared rows: every step down holds (each row falls 4×, its own noise
    // 10 %). Then S = 40 set to S = 20's value (a tie: each row up or down by its own noise
    // alone), and to twice it (a rise): the statement says so, step by step.
    let rows = synthetic((0.05, 0.001));
    // per τ: two steps (10 → 20 → 40); no consistency measured
    assert_eq!(across_s_claims(&rows).len(), 4);
    // the findings with S = 40's reconstruction rows set around `mean`
    let with_s40 = |mean: f64| {
        let mut v = rows.clone();
        for r in v.iter_mut().filter(|r| r.steps == 40) {
            with_rows(r, "recon_mse", mean, 2);
        }
        findings(&v, &settled(&v, None)).join("\n")
    };
    let f = with_s40(1.0 / 400.0);
    assert!(
        f.contains(
            "linear τ: reconstruction error falls at 1 of 2 steps to a larger S (sign test on the 100 held-out rows, \
             after correction); not told apart at S = 20 → 40: median Δ = "
        ),
        "{f}"
    );
    let f = with_s40(2.0 / 400.0);
    assert!(
        f.contains("after correction); rises at S = 20 → 40: median Δ = "),
        "{f}"
    );
    // Without the per-row values nothing is told apart.
    let mut bare = rows.clone();
    bare.iter_mut().for_each(|r| r.rows.clear());
    let f = findings(&bare, &settled(&bare, None)).join("\n");
    assert!(f.contains("falls at 0 of 2 steps to a larger S"), "{f}");
    // Consistency at the smallest S: η = 1 farther from the reference than η = 0 on every
    // sample, σ̂ as close as η = 0 (own noise only); η = 0's MSE ∝ S^−2: distance ∝ S^−1.
    let mut cons = rows.clone();
    for r in cons.iter_mut() {
        let v = match (r.eta.as_str(), r.steps) {
            ("1.0", 10) => 0.05,
            ("0.0", s) | ("sigma_hat", s) => 1.0 / (s * s) as f64,
            (_, s) => 0.5 / s as f64,
        };
        with_rows(r, "consistency_mse", v, 3);
    }
    assert_eq!(across_s_claims(&cons).len(), 8);
    let f = findings(&cons, &settled(&cons, None)).join("\n");
    assert!(
        f.contains("linear τ, η = 0: MSE to the reference run ∝ S^-2.00, so the distance shrinks like S^-1.00"),
        "{f}"
    );
    assert!(
        f.contains("(sign test on the 100 samples; the median difference η − η = 0 with its 95 % interval) they are farther from it, after correction, for η = 1.0 0.0"),
        "{f}"
    );
    assert!(f.contains("; not farther (or not told apart) for σ̂"), "{f}");
}

fn workdir(tag: &str) -> PathBuf {
    crate::common::workdir("report", tag)
}

/// (width, height) from a PNG's IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&b[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    (be(16), be(20))
}

fn check_figure(stem: &Path) {
    let (w, h) = png_size(&stem.with_extension("png"));
    assert!(w >= 400 && h >= 300, "{}: {w}×{h}", stem.display());
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains(&format!("width=\"{w}\"")),
        "{}",
        stem.display()
    );
}

fn sweep(cfg: &ExperimentConfig, model: &dyn EpsModel, out: &Path) {
    let data = cfg.data.load(cfg.seed).unwrap();
    let opts = SweepOptions {
        out: out.to_path_buf(),
        force: false,
        jobs: 1,
        shard: None,
    };
    run_sweep(cfg, model, &data, (&Device::Cpu, "cpu"), &opts).unwrap();
}

#[test]
fn a_mixture_sweep_reports_tables_figures_and_missing_points() {
    let cfg = ExperimentConfig::parse(
        "name: r\nseed: 1\ndevice: cpu\ndata:\n  kind: grid25\n  n_train: 10\n  n_heldout: 400\nmodel:\n  kind: oracle\n\
         sweep:\n  steps: [5, 10, 40]\n  eta: [0.0, 1.0, sigma_hat]\n  tau: [linear, quadratic]\n  samples: 300\n",
        Path::new("r.yaml"),
    )
    .unwrap();
    let data = cfg.data.load(cfg.seed).unwrap();
    let model = MixtureOracle::new(data.mixture.clone().unwrap(), cfg.schedule.build().unwrap());
    let out = workdir("gmm");
    sweep(&cfg, &model, &out);
    let summary = report(&out).unwrap();
    assert_eq!((summary.points, summary.missing.len()), (18, 0));
    let md = std::fs::read_to_string(&summary.path).unwrap();
    for heading in [
        "## What this run shows",
        "## Sample quality (Table 1 layout)",
        "## Reconstruction error",
        "## Consistency",
        "## Ablations",
        "## Timing",
    ] {
        assert!(md.contains(heading), "{heading}");
    }
    // The CSV of a Table-1 table equals the metrics table's numbers.
    let csv = CsvReadOptions::default()
        .try_into_reader_with_file_path(Some(out.join("tables/fd_linear.csv")))
        .unwrap()
        .finish()
        .unwrap();
    // 3 η rows and the noise floor; the label, then each S with its interval's ends.
    assert_eq!(csv.shape(), (4, 10));
    let pq = ParquetReader::new(std::fs::File::open(out.join("metrics.parquet")).unwrap())
        .finish()
        .unwrap();
    let ids = pq.column("point_id").unwrap().str().unwrap().clone();
    let fd = pq.column("fd").unwrap().f64().unwrap().clone();
    let at = |id: &str| {
        (0..pq.height())
            .find(|&i| ids.get(i) == Some(id))
            .map(|i| fd.get(i).unwrap())
            .unwrap()
    };
    let col = csv.column("S = 10").unwrap().f64().unwrap().clone();
    assert_eq!(col.get(2).unwrap(), at("linear_sigma_hat_S10"));
    assert_eq!(col.get(0).unwrap(), at("linear_eta0.0_S10"));
    let lo = pq.column("fd_lo").unwrap().f64().unwrap().clone();
    let csv_lo = csv.column("S = 10 lo").unwrap().f64().unwrap().clone();
    let i0 = (0..pq.height())
        .find(|&i| ids.get(i) == Some("linear_eta0.0_S10"))
        .unwrap();
    assert_eq!(csv_lo.get(0), lo.get(i0));
    let floor = ddimlab::store::manifest::NoiseFloor::load(&out).unwrap();
    assert_eq!(col.get(3), floor.metrics.get("fd").copied());
    for stem in &summary.figures {
        check_figure(stem);
    }
    assert!(summary.figures.iter().any(|f| f.ends_with("samples_linear")));

    // Lose two points: the report still works and names them.
    for id in ["quadratic_eta1.0_S40", "linear_sigma_hat_S5"] {
        std::fs::remove_file(out.join("points").join(format!("{id}.json"))).unwrap();
    }
    let summary = report(&out).unwrap();
    assert_eq!(summary.missing, ["linear_sigma_hat_S5", "quadratic_eta1.0_S40"]);
    let md = std::fs::read_to_string(&summary.path).unwrap();
    assert!(md.contains("2 of 18 points missing"), "{md}");
}

/// ε = x·c(t): a cheap stand-in with image-shaped data.
struct Shrink;

impl EpsModel for Shrink {
    fn eps(&self, x: &Tensor, _t: &[usize]) -> ddimlab::Result<Tensor> {
        Ok((x * 0.5)?)
    }
}

#[test]
fn an_image_sweep_draws_sample_grids() {
    let cfg = ExperimentConfig::parse(
        "name: img\nseed: 1\ndevice: cpu\ndata:\n  kind: digits\nmodel:\n  kind: mlp\n  train:\n    steps: 1\n\
         sweep:\n  steps: [10, 20]\n  eta: [0.0, 1.0]\n  tau: [linear]\n  samples: 40\nmetrics: [reconstruction, consistency]\n",
        Path::new("img.yaml"),
    )
    .unwrap();
    let out = workdir("img");
    sweep(&cfg, &Shrink, &out);
    let summary = report(&out).unwrap();
    let grid = summary.figures.iter().find(|f| f.ends_with("samples_linear")).unwrap();
    check_figure(grid);
}

#[test]
fn empirical_oracle_sweeps_compare_across_models_and_splice_the_readme() {
    let root = workdir("compare");
    let configs = [
        "name: emp\nseed: 2\ndevice: cpu\ndata:\n  kind: moons\n  n_train: 200\n  n_heldout: 100\nmodel:\n  kind: oracle\n  std: 0.05\n\
         sweep:\n  steps: [10, 20]\n  eta: [0.0, 1.0, sigma_hat]\n  tau: [linear]\n  samples: 100\n  bootstrap: 20\n\
         \x20 extra:\n    - {steps: 50, eta: 1.0}\nmetrics: [sample_stats]\n",
        "name: mix\nseed: 2\ndevice: cpu\ndata:\n  kind: grid25\n  n_train: 50\n  n_heldout: 150\nmodel:\n  kind: oracle\n\
         sweep:\n  steps: [10, 20]\n  eta: [0.0, 1.0]\n  tau: [linear]\n  samples: 100\n  bootstrap: 20\nmetrics: [sample_stats]\n",
    ];
    let mut dirs = Vec::new();
    for text in configs {
        let cfg = ExperimentConfig::parse(text, Path::new("c.yaml")).unwrap();
        let out = root.join(&cfg.name);
        let opts = SweepOptions {
            out: out.clone(),
            force: false,
            jobs: 1,
            shard: None,
        };
        let outcome = ddimlab::experiment::runner::sweep_experiment(&cfg, &opts).unwrap();
        assert!(outcome.manifest.heldout_loss.is_some_and(|l| l.is_finite() && l > 0.0));
        dirs.push(out);
    }
    // The extra point ran for η = 1 only; the floor was drawn from the smoothed training set.
    let rows = ddimlab::store::read_rows(&dirs[0].join("metrics.parquet")).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.point_id.as_str()).collect();
    assert!(
        ids.contains(&"linear_eta1.0_S50") && !ids.contains(&"linear_eta0.0_S50"),
        "{ids:?}"
    );
    let floor = ddimlab::store::manifest::NoiseFloor::load(&dirs[0]).unwrap();
    assert!(
        floor.compared_with.contains("smoothed by N(0, 0.05²)"),
        "{}",
        floor.compared_with
    );
    assert!(floor.metrics.contains_key("fd_lo") && floor.metrics.contains_key("nn_ratio"));

    let md = ddimlab::report::compare(&dirs, &root).unwrap();
    for needle in [
        "#### Fréchet distance (data space), bias-corrected (FD∞)",
        "| emp | empirical oracle (training set ⊛ N(0, 0.05²)) |",
        "| mix | exact mixture oracle |",
        "| emp: η = 0.0 |",
        "| emp: σ̂ (no clipping) |",
        "| emp: noise floor (real vs real) |",
        "| mix: noise floor (real vs real) |",
        "[emp/report.md](emp/report.md)",
        "- **emp**: linear τ, fd_inf: S = 10:",
        "| emp | empirical oracle (training set ⊛ N(0, 0.05²)) | 0.",
        "| model, η | S = 10 | S = 20 | S = 50 |",
    ] {
        assert!(md.contains(needle), "{needle}\n{md}");
    }
    // The cell of (emp, η = 0, S = 10) is that point's fd_inf.
    let fd = rows.iter().find(|r| r.point_id == "linear_eta0.0_S10").unwrap().metrics["fd_inf"];
    let value = ddimlab::report::tables::format_value(fd);
    assert!(
        md.contains(&format!("| emp: η = 0.0 | {value} ± ")) || md.contains(&format!("| emp: η = 0.0 | **{value} ± ")),
        "{value}\n{md}"
    );

    // The README splice keeps everything outside the markers and is idempotent.
    let readme = root.join("README.md");
    let (begin, end) = (
        ddimlab::report::compare::README_BEGIN,
        ddimlab::report::compare::README_END,
    );
    std::fs::write(&readme, format!("# Title\n\nintro\n\n{begin}\nold\n{end}\n\nafter\n")).unwrap();
    ddimlab::report::splice_readme(&readme, &md).unwrap();
    let once = std::fs::read_to_string(&readme).unwrap();
    assert!(once.starts_with("# Title\n\nintro\n\n") && once.ends_with(&format!("{end}\n\nafter\n")));
    assert!(once.contains(&md) && !once.contains("\nold\n"));
    ddimlab::report::splice_readme(&readme, &md).unwrap();
    assert_eq!(std::fs::read_to_string(&readme).unwrap(), once);
    std::fs::write(&readme, "no markers\n").unwrap();
    let err = ddimlab::report::splice_readme(&readme, &md).unwrap_err().to_string();
    assert!(err.contains("markers"), "{err}");
}

/// A sweep of the four solvers on the single-Gaussian oracle: the rows carry their
/// sampler and counted NFE, DDIM's η tables stay DDIM's, and the report has the
/// samplers-at-equal-NFE tables, figures and fitted orders (DDIM ≈ 1, Heun ≈ 2 against
/// the exact limit).
#[test]
fn a_samplers_sweep_reports_quality_against_nfe_with_fitted_orders() {
    let cfg = ExperimentConfig::parse(
        "name: solvers\nseed: 3\ndevice: cpu\ndata:\n  kind: gaussian_mixture\n  weights: [1.0]\n  means: [[0.3, -0.2]]\n\
         \x20 std: [[0.5, 1.0]]\n  n_train: 10\n  n_heldout: 200\nmodel:\n  kind: oracle\n\
         sweep:\n  steps: [10, 20, 40, 80]\n  eta: [0.0, 1.0]\n  tau: [linear]\n  samplers: [ddim, plms, dpmpp_2m, heun]\n\
         \x20 samples: 200\n  bootstrap: 20\nmetrics: [consistency, sample_stats]\n",
        Path::new("solvers.yaml"),
    )
    .unwrap();
    let out = workdir("solvers");
    let data = cfg.data.load(cfg.seed).unwrap();
    let model = MixtureOracle::new(data.mixture.clone().unwrap(), cfg.schedule.build().unwrap());
    sweep(&cfg, &model, &out);
    let rows = ddimlab::store::read_rows(&out.join("metrics.parquet")).unwrap();
    assert_eq!(rows.len(), 2 * 4 + 3 * 4);
    let nfe = |id: &str| {
        rows.iter()
            .find(|r| r.point_id == id)
            .map(|r| (r.sampler.as_str(), r.nfe))
            .unwrap()
    };
    assert_eq!(nfe("linear_heun_S10"), ("heun", 19));
    assert_eq!(nfe("linear_plms_S10"), ("plms", 11));
    assert_eq!(nfe("linear_dpmpp_2m_S20"), ("dpmpp_2m", 20));
    assert_eq!(nfe("linear_eta1.0_S40"), ("ddim", 40));
    let summary = report(&out).unwrap();
    assert_eq!(summary.points, 20);
    let md = std::fs::read_to_string(&summary.path).unwrap();
    assert!(md.contains("## Samplers at equal NFE"), "{md}");
    assert!(md.contains("| Heun (NFE = 2S − 1) |"), "{md}");
    // The η tables list DDIM's η only.
    let table1 = md
        .split("## Sample quality")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    assert!(!table1.contains("| - |") && table1.contains("η = 1.0"), "{table1}");
    let orders = md
        .lines()
        .find(|l| l.starts_with("- Fitted order on linear τ"))
        .unwrap();
    let p = |name: &str| -> f64 {
        let rest = orders.split(&format!("{name} p = ")).nth(1).unwrap();
        rest.split(' ').next().unwrap().parse().unwrap()
    };
    assert!((0.85..1.15).contains(&p("ddim")), "{orders}");
    assert!((1.8..2.3).contains(&p("heun")), "{orders}");
    let fig = summary
        .figures
        .iter()
        .find(|f| f.ends_with("consistency_exact_mse_samplers_linear"))
        .unwrap();
    check_figure(fig);
    assert!(summary.tables.iter().any(|t| t.ends_with("fd_samplers_linear.csv")));
}

#[test]
fn exact_oracles_reach_their_noise_floor_at_s_equal_t() {
    // A 2-D mixture with its exact oracle, and the digits with the empirical oracle
    // (clamped images). Every point is compared with the floor set on every deciding
    // statistic, the claims settled together as a report settles them (Holm): at S = T,
    // for η = 0 and η = 1, no claim that a point differs from the floor holds; at S = 5
    // some do (the comparison has the power to see a sampler that has not converged).
    // This is a test at the 5 % family-wise level, so a correct sampler fails it for a few
    // per cent of seeds: for the digits, seeds 5 and 6 pass, seed 4 does not (η = 1 at
    // S = 1000 scores below its floor, MMD² p_Holm = 0.026).
    let root = workdir("floor");
    let configs = [
        "name: gmm\nseed: 4\ndevice: cpu\ndata:\n  kind: gaussian_mixture\n  weights: [0.3, 0.7]\n  means: [[-1.0, 0.0], [1.0, 0.5]]\n  std: 0.3\n  n_train: 20\n  n_heldout: 600\nmodel:\n  kind: oracle\n\
         sweep:\n  steps: [5, 1000]\n  eta: [0.0, 1.0]\n  tau: [linear]\n  samples: 400\n  batch_size: 400\nmetrics: [sample_stats]\n",
        "name: dig\nseed: 6\ndevice: cpu\ndata:\n  kind: digits\n  n_heldout: 500\nmodel:\n  kind: oracle\n  std: 0.2\n\
         sweep:\n  steps: [5, 1000]\n  eta: [0.0, 1.0]\n  tau: [linear]\n  samples: 300\n  batch_size: 300\nmetrics: [sample_stats]\n",
    ];
    for text in configs {
        let cfg = ExperimentConfig::parse(text, Path::new("f.yaml")).unwrap();
        let out = root.join(&cfg.name);
        let opts = SweepOptions {
            out: out.clone(),
            force: false,
            jobs: 1,
            shard: None,
        };
        ddimlab::experiment::runner::sweep_experiment(&cfg, &opts).unwrap();
        let floor = NoiseFloor::load(&out).unwrap();
        assert_eq!(
            floor.rows,
            Some(cfg.sweep.samples),
            "the floor set is as large as the samples"
        );
        let (rows, floor_row) = ddimlab::store::read_results(&out).unwrap();
        let floor_row = MetricRow {
            metrics: floor.metrics.clone(),
            ..floor_row
        };
        let deciding = ddimlab::report::tables::deciding(&rows);
        assert!(!deciding.is_empty());
        let claim = |id: &str, metric: &'static str| Claim::Differ {
            metric,
            a: id.into(),
            b: ddimlab::store::FLOOR_ID.into(),
        };
        let family: Vec<Claim> = rows
            .iter()
            .flat_map(|r| deciding.iter().map(|m| claim(&r.point_id, m.name)))
            .collect();
        let claims = Claims::settle(rows.iter().chain([&floor_row]), family);
        assert_eq!(claims.family_size(), rows.len() * deciding.len());
        for m in &deciding {
            for id in ["linear_eta0.0_S1000", "linear_eta1.0_S1000"] {
                let settled = claims.get(&claim(id, m.name)).unwrap();
                assert!(!settled.holds, "{}: {id} − floor, {}: {settled:?}", cfg.name, m.name);
            }
        }
        let separated = deciding
            .iter()
            .filter(|m| claims.holds(&claim("linear_eta0.0_S5", m.name)))
            .count();
        assert!(separated > 0, "{}: S = 5 is at its floor on every statistic", cfg.name);
    }
}
