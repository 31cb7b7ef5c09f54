//! Throughput of training and of model evaluations on this machine, written as a
//! Markdown table to `results/benchmarks.md` (and printed). Run with `make bench`.
//!
//! `cargo bench --bench throughput -- NAME…` runs only the sections whose names
//! (`training`, `nfe`, `cifar10`) are given, and prints them without writing the file.

use std::fmt::Write as _;
use std::time::Instant;

use candle_core::{DType, Device};
use ddimlab::data::{DataKind, DataShape, DataSpec};
use ddimlab::model::{Architecture, EpsModel, MixtureOracle, MlpConfig, Network, UnetConfig, UnetSpec};
use ddimlab::progress::Progress;
use ddimlab::sampler::SeededNoise;
use ddimlab::schedule::Schedule;
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

/// Training samples per second over `steps` steps at `batch`.
fn train_rate(arch: &Architecture, batch: usize, steps: usize) -> (f64, usize) {
    let data = DataSpec::of_kind(DataKind::Digits).load(0).unwrap();
    let net = Network::new(arch, 0, &Device::Cpu).unwrap();
    let spec = TrainSpec {
        steps,
        batch_size: batch,
        ..Default::default()
    };
    let schedule = Schedule::ddpm_linear();
    let report = Trainer {
        net: &net,
        data: &data.train,
        schedule: &schedule,
        spec: &spec,
        seed: 0,
    }
    .run(None, None, &mut Progress::hidden())
    .unwrap();
    ((steps * batch) as f64 / report.seconds, net.parameter_count())
}

/// Seconds per model evaluation of a batch of `n`.
fn eval_seconds(model: &dyn EpsModel, shape: &[usize], reps: usize) -> f64 {
    let x = SeededNoise::new(0)
        .standard_normal(shape, &Device::Cpu, DType::F32)
        .unwrap();
    let t = vec![500; shape[0]];
    model.eps(&x, &t).unwrap();
    let start = Instant::now();
    for _ in 0..reps {
        model.eps(&x, &t).unwrap();
    }
    start.elapsed().as_secs_f64() / reps as f64
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

fn training(out: &mut String) {
    writeln!(out, "## Training throughput (digits 8×8, L_simple, AdamW + EMA)\n").unwrap();
    writeln!(
        out,
        "| model | parameters | batch | samples/s | steps/s |\n| --- | ---: | ---: | ---: | ---: |"
    )
    .unwrap();
    for (name, arch, batch, steps) in [
        ("mlp 128×2 (experiments/digits.yaml)", mlp_digits(), 256, 200),
        ("unet 32×[1,2]", unet_digits(), 64, 30),
    ] {
        let (rate, params) = train_rate(&arch, batch, steps);
        writeln!(
            out,
            "| {name} | {params} | {batch} | {rate:.0} | {:.1} |",
            rate / batch as f64
        )
        .unwrap();
    }
}

fn nfe(out: &mut String) {
    writeln!(out, "## Cost of one model evaluation (NFE), batch of 500\n").unwrap();
    writeln!(out, "| model | ms / NFE | µs / sample |\n| --- | ---: | ---: |").unwrap();
    let mlp = Network::new(&mlp_digits(), 0, &Device::Cpu).unwrap();
    let unet = Network::new(&unet_digits(), 0, &Device::Cpu).unwrap();
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
    let rows: [(&str, &dyn EpsModel, Vec<usize>, usize); 3] = [
        ("oracle, 2-D mixture (K = 2)", &oracle, vec![500, 2], 200),
        ("mlp 128×2, digits", &mlp, vec![500, 1, 8, 8], 50),
        ("unet 32×[1,2], digits", &unet, vec![500, 1, 8, 8], 5),
    ];
    for (name, model, shape, reps) in rows {
        let s = eval_seconds(model, &shape, reps);
        writeln!(out, "| {name} | {:.2} | {:.2} |", s * 1e3, s * 1e6 / 500.0).unwrap();
    }
}

/// The full-size CIFAR-10 DDPM U-Net (random weights: the cost does not depend on them).
fn cifar10(out: &mut String) {
    let config = UnetConfig::from_diffusers(DDPM_CIFAR10_CONFIG).unwrap();
    let net = Network::new(&Architecture::Unet { config }, 0, &Device::Cpu).unwrap();
    writeln!(
        out,
        "## CIFAR-10 DDPM U-Net (google/ddpm-cifar10-32 architecture, {:.1} M parameters, random weights)\n",
        net.parameter_count() as f64 / 1e6
    )
    .unwrap();
    writeln!(out, "| batch | ms / NFE | ms / sample |\n| ---: | ---: | ---: |").unwrap();
    for (batch, reps) in [(1, 3), (8, 2)] {
        let s = eval_seconds(&net, &[batch, 3, 32, 32], reps);
        writeln!(out, "| {batch} | {:.0} | {:.0} |", s * 1e3, s * 1e3 / batch as f64).unwrap();
    }
}

/// A benchmark section: appends its Markdown to the report.
type Section = fn(&mut String);

fn main() {
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let mut out = String::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    writeln!(out, "# ddimlab benchmarks\n").unwrap();
    writeln!(
        out,
        "CPU only (`make bench`), {cores} cores, ddimlab {}.",
        env!("CARGO_PKG_VERSION")
    )
    .unwrap();
    let sections: [(&str, Section); 3] = [("training", training), ("nfe", nfe), ("cifar10", cifar10)];
    for (name, section) in sections {
        if only.is_empty() || only.iter().any(|o| o == name) {
            out.push('\n');
            section(&mut out);
        }
    }
    print!("{out}");
    if only.is_empty() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/benchmarks.md");
        std::fs::write(&path, out).unwrap();
        eprintln!("wrote {}", path.display());
    }
}
