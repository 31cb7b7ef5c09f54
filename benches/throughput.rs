//! ddimlab's speed next to PyTorch's on this machine, as ratios from one run: `make bench`
//! first runs `scripts/bench/torch_bench.py` (PyTorch + diffusers, same architectures, same
//! thread count) and hands its JSON over in `DDIMLAB_TORCH_JSON`; this binary then times
//! the same workloads in ddimlab and writes `results/benchmarks.md` (and prints it). Where
//! PyTorch could not be run, `DDIMLAB_TORCH_NOTE` says why and only ddimlab is measured.
//!
//! `cargo bench --bench throughput -- NAME…` runs only the sections whose names
//! (`nfe`, `training`, `cifar10`, `gemm`, `sweep`, `metrics`, `metric_cost`) are given, and prints them without
//! writing the file.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use candle_core::Tensor;
use ddimlab::experiment::runner::{sweep_experiment, SweepOptions};
use ddimlab::experiment::ExperimentConfig;

use candle_core::{DType, Device};
use ddimlab::data::{DataKind, DataSpec};
use ddimlab::model::{
    Architecture, EmpiricalMixture, EmpiricalOracle, EpsModel, MixtureOracle, MlpConfig, Network, UnetConfig, UnetSpec,
};
use ddimlab::progress::Progress;
use ddimlab::sampler::SeededNoise;
use ddimlab::schedule::Schedule;
use ddimlab::shape::DataShape;
use ddimlab::train::{TrainSpec, Trainer};

/// The same allocator as the `ddimlab` binary, so the numbers are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn mlp_digits() -> Architecture {
    let shape = DataShape::Image {
        channels: 1,
        height: 8,
        width: 8,
    };
    Architecture::Mlp {
        shape,
        config: MlpConfig {
            hidden: 128,
            blocks: 2,
            time_dim: 64,
            layer_norm: true,
        },
    }
}

fn unet_digits() -> Architecture {
    let shape = DataShape::Image {
        channels: 1,
        height: 8,
        width: 8,
    };
    let spec = UnetSpec {
        base_channels: 32,
        channel_mult: vec![1, 2],
        norm_groups: 8,
        ..Default::default()
    };
    Architecture::Unet {
        config: UnetConfig::from_spec(&spec, shape).unwrap(),
    }
}

/// Training samples per second at `batch`: the time of `warm + steps` steps minus that of
/// `warm` steps (as PyTorch's median step time, it leaves out the first steps).
fn train_rate(arch: &Architecture, batch: usize, warm: usize, steps: usize) -> f64 {
    let data = DataSpec::of_kind(DataKind::Digits).load(0).unwrap();
    let schedule = Schedule::ddpm_linear();
    let seconds = |steps: usize| {
        let net = Network::new(arch, 0, &Device::Cpu).unwrap();
        let spec = TrainSpec {
            steps,
            batch_size: batch,
            ..Default::default()
        };
        let start = Instant::now();
        Trainer {
            net: &net,
            data: &data.train,
            schedule: &schedule,
            spec: &spec,
            seed: 0,
            fingerprint: "bench",
        }
        .run(None, None, &mut Progress::hidden())
        .unwrap();
        start.elapsed().as_secs_f64()
    };
    let base = seconds(warm);
    (steps * batch) as f64 / (seconds(warm + steps) - base).max(1e-9)
}

/// Median seconds per model evaluation of a batch of `shape[0]`, after one warm-up call.
fn eval_seconds(model: &dyn EpsModel, shape: &[usize], reps: usize) -> f64 {
    let x = SeededNoise::new(0)
        .standard_normal(shape, &Device::Cpu, DType::F32)
        .unwrap();
    let t = vec![500; shape[0]];
    model.eps(&x, &t).unwrap();
    median((0..reps).map(|_| {
        let start = Instant::now();
        model.eps(&x, &t).unwrap();
        start.elapsed().as_secs_f64()
    }))
}

fn median(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// PyTorch's numbers (`scripts/bench/torch_bench.py`'s JSON), or why there are none.
struct Torch {
    json: Option<serde_json::Value>,
    note: String,
}

impl Torch {
    fn load() -> Self {
        let note = std::env::var("DDIMLAB_TORCH_NOTE").unwrap_or_default();
        let Ok(path) = std::env::var("DDIMLAB_TORCH_JSON") else {
            let why = if note.is_empty() {
                "DDIMLAB_TORCH_JSON not set (run `make bench`)".to_string()
            } else {
                note
            };
            return Self { json: None, note: why };
        };
        match std::fs::read_to_string(&path).map(|t| serde_json::from_str::<serde_json::Value>(&t)) {
            Ok(Ok(v)) => Self { json: Some(v), note },
            Ok(Err(e)) => Self {
                json: None,
                note: format!("{path}: not PyTorch benchmark JSON: {e}"),
            },
            Err(e) => Self {
                json: None,
                note: format!("{path}: {e}"),
            },
        }
    }

    fn get(&self, key: &str) -> Option<f64> {
        self.json.as_ref()?.get(key)?.as_f64()
    }

    fn describe(&self) -> String {
        match &self.json {
            Some(j) => format!(
                "PyTorch {} + diffusers {} ({} threads, CPU capability {})",
                j["torch_version"].as_str().unwrap_or("?"),
                j["diffusers_version"].as_str().unwrap_or("?"),
                j["threads"],
                j["cpu_capability"].as_str().unwrap_or("?"),
            ),
            None => format!("PyTorch not measured: {}", self.note),
        }
    }
}

/// A time (lower is better) or a rate (higher is better).
#[derive(Clone, Copy)]
enum Unit {
    Ms,
    PerSecond,
}

/// One workload measured on both sides; the ratio is ddimlab's speed ÷ PyTorch's.
fn row(out: &mut String, name: &str, unit: Unit, ours: f64, torch: Option<f64>) {
    let fmt = |v: f64| match unit {
        Unit::Ms if v < 10.0 => format!("{v:.2} ms"),
        Unit::Ms => format!("{v:.0} ms"),
        Unit::PerSecond => format!("{v:.0} /s"),
    };
    let (theirs, ratio) = match torch {
        Some(t) => {
            let r = match unit {
                Unit::Ms => t / ours,
                Unit::PerSecond => ours / t,
            };
            (fmt(t), format!("**{r:.2}×**"))
        }
        None => ("—".into(), "—".into()),
    };
    writeln!(out, "| {name} | {} | {theirs} | {ratio} |", fmt(ours)).unwrap();
}

fn table_head(out: &mut String, title: &str) {
    writeln!(out, "## {title}\n").unwrap();
    writeln!(
        out,
        "| workload | ddimlab | PyTorch | ddimlab speed ÷ PyTorch |\n| --- | ---: | ---: | ---: |"
    )
    .unwrap();
}

fn nfe(out: &mut String, torch: &Torch) {
    table_head(out, "One model evaluation (NFE), batch 500 unless stated, digits 8×8");
    let mlp = Network::new(&mlp_digits(), 0, &Device::Cpu).unwrap();
    let unet = Network::new(&unet_digits(), 0, &Device::Cpu).unwrap();
    let s = eval_seconds(&mlp, &[500, 1, 8, 8], 200);
    row(
        out,
        &format!("mlp 128×2 ({} parameters)", mlp.parameter_count()),
        Unit::Ms,
        s * 1e3,
        torch.get("mlp_nfe_ms"),
    );
    let s = eval_seconds(&unet, &[500, 1, 8, 8], 9);
    let name = format!("unet 32×[1,2] ({} parameters)", unet.parameter_count());
    row(out, &name, Unit::Ms, s * 1e3, torch.get("unet_digits_nfe_ms"));
    let mixture = DataSpec {
        weights: Some(vec![0.5, 0.5]),
        means: Some(vec![vec![-2.0, 0.0], vec![2.0, 0.0]]),
        std: Some(ddimlab::data::StdSpec::Shared(0.3)),
        ..DataSpec::of_kind(DataKind::GaussianMixture)
    }
    .mixture()
    .unwrap()
    .unwrap();
    let oracle = MixtureOracle::new(mixture, Schedule::ddpm_linear());
    let s = eval_seconds(&oracle, &[500, 2], 200);
    row(out, "exact oracle, 2-D mixture (K = 2)", Unit::Ms, s * 1e3, None);
    // The points torch_bench.py's empirical_oracle lays out: N = 1,297, d = 64, h = 0.2.
    let points: Vec<f32> = (0..1297 * 64)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    let mixture = EmpiricalMixture::new(&points, 64, 0.2).unwrap();
    let oracle = EmpiricalOracle::new(mixture, Schedule::ddpm_linear());
    let s = eval_seconds(&oracle, &[2000, 64], 30);
    let name = "empirical oracle, N = 1,297 points in 64-d, batch 2,000 (f64)";
    row(out, name, Unit::Ms, s * 1e3, torch.get("oracle_digits_nfe_ms"));
}

fn training(out: &mut String, torch: &Torch) {
    table_head(out, "Training, digits 8×8 (L_simple, AdamW, grad clip, EMA)");
    let r = train_rate(&mlp_digits(), 256, 20, 200);
    row(
        out,
        "mlp 128×2, batch 256",
        Unit::PerSecond,
        r,
        torch.get("mlp_train_samples_per_s"),
    );
    let r = train_rate(&unet_digits(), 64, 3, 20);
    row(
        out,
        "unet 32×[1,2], batch 64",
        Unit::PerSecond,
        r,
        torch.get("unet_digits_train_samples_per_s"),
    );
}

/// The `config.json` of Ho et al.'s CIFAR-10 model in diffusers format
/// (`google/ddpm-cifar10-32`): 35.7 M parameters, attention at 16×16.
const DDPM_CIFAR10_CONFIG: &str = r#"{
  "_class_name": "UNet2DModel",
  "act_fn": "silu",
  "attention_head_dim": null,
  "block_out_channels": [128, 256, 256, 256],
  "center_input_sample": false,
  "down_block_types": ["DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"],
  "downsample_padding": 0,
  "flip_sin_to_cos": false,
  "freq_shift": 1,
  "in_channels": 3,
  "layers_per_block": 2,
  "mid_block_scale_factor": 1,
  "norm_eps": 1e-06,
  "norm_num_groups": 32,
  "out_channels": 3,
  "sample_size": 32,
  "time_embedding_type": "positional",
  "up_block_types": ["UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"]
}"#;

/// The full-size CIFAR-10 DDPM U-Net (random weights: the cost does not depend on them).
fn cifar10(out: &mut String, torch: &Torch) {
    let config = UnetConfig::from_diffusers(DDPM_CIFAR10_CONFIG).unwrap();
    let net = Network::new(&Architecture::Unet { config }, 0, &Device::Cpu).unwrap();
    let title = format!(
        "CIFAR-10 DDPM U-Net (google/ddpm-cifar10-32 architecture, {:.1} M parameters, random weights)",
        net.parameter_count() as f64 / 1e6
    );
    table_head(out, &title);
    for (batch, reps, key) in [(1, 5, "cifar_nfe_ms_b1"), (8, 3, "cifar_nfe_ms_b8")] {
        let s = eval_seconds(&net, &[batch, 3, 32, 32], reps);
        row(
            out,
            &format!("one NFE, batch {batch}"),
            Unit::Ms,
            s * 1e3,
            torch.get(key),
        );
    }
}

/// f32 GEMM C[m, n] = A[m, k] · B[k, n] through candle's matmul, against `torch.mm`: the
/// shapes of the JSON (2048³ and the CIFAR U-Net's im2col products at batch 8).
fn gemm(out: &mut String, torch: &Torch) {
    table_head(out, "GEMM (f32, candle matmul vs torch.mm), GFLOP/s");
    let default = serde_json::json!([
        {"name": "square_2048", "m": 2048, "n": 2048, "k": 2048},
        {"name": "conv3x3_128to128_32x32_b8", "m": 128, "n": 8192, "k": 1152},
        {"name": "conv3x3_256to256_16x16_b8", "m": 256, "n": 2048, "k": 2304},
    ]);
    let shapes = torch.json.as_ref().and_then(|j| j.get("gemm")).unwrap_or(&default);
    for s in shapes.as_array().into_iter().flatten() {
        let dim = |k: &str| s[k].as_u64().unwrap_or(0) as usize;
        let (m, n, k) = (dim("m"), dim("n"), dim("k"));
        let a = SeededNoise::new(1)
            .standard_normal(&[m, k], &Device::Cpu, DType::F32)
            .unwrap();
        let b = SeededNoise::new(2)
            .standard_normal(&[k, n], &Device::Cpu, DType::F32)
            .unwrap();
        let mm = |a: &Tensor, b: &Tensor| a.matmul(b).unwrap();
        mm(&a, &b);
        let flops = 2.0 * (m * n * k) as f64;
        let reps = ((2e10 / flops) as usize).clamp(3, 50);
        let sec = median((0..reps).map(|_| {
            let start = Instant::now();
            mm(&a, &b);
            start.elapsed().as_secs_f64()
        }));
        let name = format!("{} ({m}×{k} · {k}×{n})", s["name"].as_str().unwrap_or("gemm"));
        let theirs = s["gflops"].as_f64();
        row(out, &name, Unit::PerSecond, flops / sec / 1e9, theirs);
    }
}

/// The share of a digits MLP sweep's point time spent outside the model (sampler
/// arithmetic, metrics, saving): `experiments/digits.yaml`'s full grid with a briefly
/// trained model (the share depends on the cost of the model, not on its weights), with
/// the bootstrap intervals off: their cost is a choice of `sweep.bootstrap`, not overhead.
fn sweep(out: &mut String, _torch: &Torch) {
    writeln!(
        out,
        "## Time outside the model, digits MLP sweep (bootstrap intervals off)\n"
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut cfg = ExperimentConfig::load(&root.join("experiments/digits.yaml")).unwrap();
    cfg.sweep.bootstrap = 0;
    if let Some(t) = cfg.model.train.as_mut() {
        t.steps = 300;
        t.checkpoint_every = 300;
    }
    let m = run_in_temp(&cfg, "sweep");
    writeln!(
        out,
        "| points | point time | in the model | outside | outside share |\n| ---: | ---: | ---: | ---: | ---: |"
    )
    .unwrap();
    writeln!(
        out,
        "| {} | {:.1} s | {:.1} s | {:.1} s | **{:.1} %** |",
        m.points.len(),
        m.model_seconds + m.outside_seconds,
        m.model_seconds,
        m.outside_seconds,
        100.0 * m.outside_share
    )
    .unwrap();
}

/// How the time outside the model per point grows with the sample count: the gmm2d oracle
/// (model time ≈ 0) at S = 10, η ∈ {0, 1}, all metrics, with `samples` raised from 2,000
/// to 32,000 (the held-out reference stays 2,000).
fn metrics(out: &mut String, _torch: &Torch) {
    writeln!(
        out,
        "## Metric cost against the sample count (gmm2d oracle, S = 10, all metrics, bootstrap intervals off)\n"
    )
    .unwrap();
    writeln!(
        out,
        "| samples | outside the model per point | ÷ the 2,000-sample cost |\n| ---: | ---: | ---: |"
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut base = None;
    for n in [2000, 8000, 32000] {
        let mut cfg = ExperimentConfig::load(&root.join("experiments/gmm2d.yaml")).unwrap();
        cfg.sweep.samples = n;
        cfg.sweep.batch_size = n;
        cfg.sweep.bootstrap = 0;
        cfg.sweep.steps = vec![10];
        cfg.sweep.eta.truncate(1);
        cfg.sweep.tau.truncate(1);
        let m = run_in_temp(&cfg, "metrics");
        let per_point = m.outside_seconds / m.points.len() as f64;
        let b = *base.get_or_insert(per_point);
        writeln!(out, "| {n} | {per_point:.3} s | {:.1}× |", per_point / b).unwrap();
    }
}

/// The cost of the sample statistics of one point with B = 200 bootstrap replicates,
/// next to the model time of one point of the same experiment: 2-D mixture data at 2,000
/// samples against 2,000 reference rows, and digits at 2,000 samples (data space d = 64
/// against the empirical oracle's 1,297 reference draws, and the 128-d classifier features).
fn metric_cost(out: &mut String, _torch: &Torch) {
    use ddimlab::classifier::Classifier;
    use ddimlab::experiment::evaluation::Evaluation;
    use ddimlab::experiment::measure::{Comparison, SampleStats};
    use ddimlab::experiment::target::comparison;
    use ddimlab::metrics::bootstrap::Bootstrap;
    writeln!(
        out,
        "## Sample statistics per point (B = 200 bootstrap replicates, every statistic, 2,000 samples)\n"
    )
    .unwrap();
    writeln!(
        out,
        "| data | statistics | metrics per point | model time per point (S = 10) |\n| --- | --- | ---: | ---: |"
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (file, what) in [
        (
            "experiments/gmm2d.yaml",
            "FD, FD∞, MMD², SWD, precision / recall / density / coverage, mass error (d = 2)",
        ),
        (
            "experiments/digits_oracle.yaml",
            "FD, FD∞, MMD², SWD, the k-NN four, nn_ratio (d = 64); FD, FD∞, KID, the k-NN four, labels, confidence \
             (128-d features)",
        ),
    ] {
        let mut cfg = ExperimentConfig::load(&root.join(file)).unwrap();
        cfg.sweep.samples = 2000;
        let data = ddimlab::experiment::resources::load_data(&cfg).unwrap();
        let (cmp, _) = comparison(&cfg, &data, 2000).unwrap();
        let shape = data.shape();
        let d = shape.numel();
        let classifier = data.train.labels.as_ref().map(|_| {
            let spec = ddimlab::classifier::ClassifierSpec::default();
            Classifier::new(shape, 10, spec.hidden, 0, &Device::Cpu).unwrap()
        });
        let samples = cmp.floor.clone().unwrap();
        let stats = SampleStats::new(
            Comparison { ..cmp },
            d,
            Evaluation::of(shape),
            cfg.sweep.projections,
            cfg.seed,
            Some(Bootstrap::new(200, cfg.seed).unwrap()),
            data.mixture.clone(),
            classifier,
        )
        .unwrap();
        let evaluated = Evaluation::of(shape).apply(&samples);
        stats.measure(&evaluated).unwrap(); // warm-up (reference layouts)
        let seconds = median((0..3).map(|_| {
            let start = Instant::now();
            stats.measure(&evaluated).unwrap();
            start.elapsed().as_secs_f64()
        }));
        let model = ddimlab::experiment::training::load_model(&cfg, Path::new("."), &Device::Cpu).unwrap();
        let x = Tensor::from_vec(samples.clone(), shape.batch_dims(2000), &Device::Cpu).unwrap();
        let t = vec![500; 2000];
        model.eps(&x, &t).unwrap();
        let start = Instant::now();
        model.eps(&x, &t).unwrap();
        let model_point = 10.0 * start.elapsed().as_secs_f64();
        writeln!(
            out,
            "| {} | {what} | **{:.0} ms** | {:.0} ms |",
            cfg.name,
            1e3 * seconds,
            1e3 * model_point
        )
        .unwrap();
    }
}

/// Runs the sweep of `cfg` in a fresh temporary folder (removed afterwards).
fn run_in_temp(cfg: &ExperimentConfig, tag: &str) -> ddimlab::store::manifest::Manifest {
    let dir = std::env::temp_dir().join(format!("ddimlab-bench-{tag}-{}", std::process::id()));
    let opts = SweepOptions {
        out: dir.clone(),
        force: true,
        jobs: 1,
        shard: None,
    };
    let m = sweep_experiment(cfg, &opts).unwrap().manifest;
    std::fs::remove_dir_all(&dir).ok();
    m
}

/// A benchmark section: appends its Markdown to the report.
type Section = fn(&mut String, &Torch);

fn main() {
    ddimlab::kernels::keep_freed_memory();
    ddimlab::kernels::pin_threads();
    // On a thread of rayon's pool, as the `ddimlab` binary runs.
    ddimlab::kernels::on_pool_thread(bench);
}

fn bench() {
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let torch = Torch::load();
    let mut out = String::new();
    writeln!(out, "# ddimlab benchmarks\n").unwrap();
    writeln!(
        out,
        "`make bench`, CPU, {} threads, ddimlab {} next to {}, back to back in one run. \
         Ratios above 1 mean ddimlab is faster.",
        ddimlab::kernels::threads(),
        env!("CARGO_PKG_VERSION"),
        torch.describe()
    )
    .unwrap();
    let sections: [(&str, Section); 7] = [
        ("nfe", nfe),
        ("training", training),
        ("cifar10", cifar10),
        ("gemm", gemm),
        ("sweep", sweep),
        ("metrics", metrics),
        ("metric_cost", metric_cost),
    ];
    for (name, section) in sections {
        if only.is_empty() || only.iter().any(|o| o == name) {
            out.push('\n');
            section(&mut out, &torch);
            eprintln!("bench: {name} done");
        }
    }
    print!("{out}");
    if only.is_empty() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/benchmarks.md");
        std::fs::write(&path, out).unwrap();
        eprintln!("wrote {}", path.display());
    }
}
