//! Reports: table layout and values, derived findings, figures as valid PNG/SVG, and a
//! partial sweep that reports what it has and names what is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use ddimlab::experiment::runner::{run_sweep, SweepOptions};
use ddimlab::experiment::ExperimentConfig;
use ddimlab::model::{EpsModel, MixtureOracle};
use ddimlab::report::findings::findings;
use ddimlab::report::report;
use ddimlab::report::tables::{eta_by_steps, loglog_slope, with_floor, SAMPLE_QUALITY};
use ddimlab::store::MetricRow;
use polars::prelude::*;

fn row(tau: &str, eta: &str, steps: usize, nfe: usize, metrics: &[(&str, f64)]) -> MetricRow {
    MetricRow {
        point_id: format!("{tau}_{eta}_S{steps}"),
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
        metrics: metrics
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect::<BTreeMap<_, _>>(),
    }
}

/// fd = a / S for η = 0 and 2a / S + η for the others; recon = 1 / S².
fn synthetic() -> Vec<MetricRow> {
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
                let recon = 1.0 / (s * s) as f64;
                rows.push(row(
                    tau,
                    eta,
                    s,
                    nfe,
                    &[
                        ("fd", fd),
                        ("fd_lo", fd - 0.01),
                        ("fd_hi", fd + 0.01),
                        ("recon_mse", recon),
                    ],
                ));
            }
        }
    }
    rows
}

#[test]
fn table1_layout_has_eta_rows_step_columns_bold_best_and_daggers() {
    let rows = synthetic();
    let fd = SAMPLE_QUALITY.iter().find(|m| m.name == "fd").unwrap();
    let t = eta_by_steps(&rows, fd, "quadratic", false);
    assert_eq!(t.columns, ["S = 10", "S = 20", "S = 40"]);
    let labels: Vec<&str> = t.rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(labels, ["η = 0.0", "η = 1.0", "σ̂ (no clipping)"]);
    assert_eq!(t.rows[1].1[0], Some(1.2));
    let md = t.markdown();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 2 + 3);
    assert!(
        lines[2].starts_with("| η = 0.0 | **0.1000 ± 0.01000** | **0.05000 ± 0.01000** | **0.02500 ± 0.01000** †"),
        "{md}"
    );
    assert!(
        lines[3].contains("| 1.200 ± 0.01000 |") && !lines[3].contains("**"),
        "{md}"
    );
    // Overlapping intervals: no cell of that column is bold.
    let mut wide = rows.clone();
    for r in wide.iter_mut().filter(|r| r.steps == 10) {
        let v = r.metrics["fd"];
        r.metrics.insert("fd_lo".into(), v - 5.0);
        r.metrics.insert("fd_hi".into(), v + 5.0);
    }
    let md = eta_by_steps(&wide, fd, "quadratic", false).markdown();
    assert!(
        md.lines()
            .nth(2)
            .unwrap()
            .starts_with("| η = 0.0 | 0.1000 ± 5.000 | **"),
        "{md}"
    );
    // The floor row: appended, never bold.
    let floor = BTreeMap::from([("fd".to_string(), 0.0), ("fd_lo".into(), 0.0), ("fd_hi".into(), 0.0001)]);
    let md = with_floor(eta_by_steps(&rows, fd, "quadratic", false), fd, &floor).markdown();
    assert!(
        md.contains("| noise floor (real vs real) | 0 ± 5.000e-5 | 0 ± 5.000e-5 | 0 ± 5.000e-5 |"),
        "{md}"
    );
    assert!(md.contains("**0.1000 ± 0.01000**"), "{md}");
}

#[test]
fn findings_name_a_best_eta_only_where_intervals_separate() {
    let rows = synthetic();
    let none = BTreeMap::new();
    let f = findings(&rows, &none).join("\n");
    assert!(
        f.contains("linear τ, fd: S = 10: η = 0.0 best; S = 20: η = 0.0 best; S = 40: η = 0.0 best."),
        "{f}"
    );
    assert!(
        f.contains("At S = 10, η = 0 against η = 1.0 on 2 (metric, τ) pairs: better with separated intervals on 2"),
        "{f}"
    );
    // recon = 1/S²: slope −2, ×0.25 per doubling.
    assert!(f.contains("fitted MSE ∝ S^-2.00, i.e. ×0.25 per doubling"), "{f}");
    // Flip one cell: the statement must change.
    let mut worse = rows.clone();
    worse
        .iter_mut()
        .find(|r| r.tau == "linear" && r.eta == "0.0" && r.steps == 20)
        .unwrap()
        .metrics
        .extend([("fd".to_string(), 99.0), ("fd_lo".into(), 98.9), ("fd_hi".into(), 99.1)]);
    let f = findings(&worse, &none).join("\n");
    assert!(
        f.contains("linear τ, fd: S = 10: η = 0.0 best; S = 20: σ̂ best; S = 40: η = 0.0 best."),
        "{f}"
    );
    // Without intervals, or with wide ones, no η is named best.
    let mut bare = rows.clone();
    for r in &mut bare {
        r.metrics.retain(|k, _| !k.ends_with("_lo") && !k.ends_with("_hi"));
    }
    let f = findings(&bare, &none).join("\n");
    assert!(
        f.contains("S = 10: η = 0.0 ≈ η = 1.0 ≈ σ̂ indistinguishable at this sample size"),
        "{f}"
    );
    assert!(!f.contains(" best"), "{f}");
    // The floor: points whose interval overlaps it are named.
    let floor = BTreeMap::from([
        ("fd".to_string(), 0.05),
        ("fd_lo".into(), 0.045),
        ("fd_hi".into(), 0.055),
    ]);
    let f = findings(&rows, &floor).join("\n");
    assert!(
        f.contains(
            "linear τ, fd: at the noise floor (0.05000 ± 0.005000), i.e. indistinguishable from real data at \
                    this sample size: η = 0.0 at S = 20."
        ),
        "{f}"
    );
    assert!((loglog_slope(&[(1.0, 1.0), (2.0, 0.5), (4.0, 0.25)]).unwrap() + 1.0).abs() < 1e-12);
}

fn workdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ddimlab-report-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
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
        "#### Fréchet distance (data space)",
        "| emp | empirical oracle (training set ⊛ N(0, 0.05²)) |",
        "| mix | exact mixture oracle |",
        "| emp: η = 0.0 |",
        "| emp: σ̂ (no clipping) |",
        "| emp: noise floor |",
        "| mix: noise floor |",
        "[emp/report.md](emp/report.md)",
        "- **emp**: linear τ, fd: S = 10:",
        "| emp | empirical oracle (training set ⊛ N(0, 0.05²)) | 0.",
        "| model, η | S = 10 | S = 20 | S = 50 |",
    ] {
        assert!(md.contains(needle), "{needle}\n{md}");
    }
    // The cell of (emp, η = 0, S = 5) is that point's fd.
    let fd = rows.iter().find(|r| r.point_id == "linear_eta0.0_S10").unwrap().metrics["fd"];
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
