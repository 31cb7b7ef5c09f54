//! Trainable ε-models: shapes, gradients, checkpoints, training against the oracle.

use std::collections::BTreeMap;

use crate::common::{assert_close, values};
use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use ddimlab::data::{DataKind, DataSpec, StdSpec};
use ddimlab::model::checkpoint::{load_into, named_tensors, read, save_atomic, SeededInit};
use ddimlab::model::{Architecture, EpsModel, MixtureOracle, MlpConfig, Network, Unet, UnetConfig, UnetSpec};
use ddimlab::progress::Progress;
use ddimlab::sampler::SeededNoise;
use ddimlab::schedule::{Schedule, Tau, TauKind};
use ddimlab::shape::DataShape;
use ddimlab::train::{eval_loss, AdamW, TrainSpec, Trainer};

fn image(c: usize, s: usize) -> DataShape {
    DataShape::Image {
        channels: c,
        height: s,
        width: s,
    }
}

fn tiny_unet(shape: DataShape) -> UnetConfig {
    let spec = UnetSpec {
        base_channels: 8,
        channel_mult: vec![1, 2],
        layers_per_block: 1,
        attention_resolutions: vec![4],
        norm_groups: 4,
        attention_head_dim: None,
    };
    UnetConfig::from_spec(&spec, shape).unwrap()
}

#[test]
fn unet_output_has_the_input_shape_for_several_configs() {
    let configs = [
        (
            image(1, 8),
            UnetSpec {
                base_channels: 8,
                channel_mult: vec![1, 2],
                norm_groups: 4,
                ..Default::default()
            },
        ),
        (
            image(3, 16),
            UnetSpec {
                base_channels: 16,
                channel_mult: vec![1, 2, 2],
                layers_per_block: 2,
                attention_resolutions: vec![8],
                norm_groups: 8,
                attention_head_dim: Some(8),
            },
        ),
        (
            image(2, 4),
            UnetSpec {
                base_channels: 8,
                channel_mult: vec![1],
                norm_groups: 2,
                ..Default::default()
            },
        ),
    ];
    for (shape, spec) in configs {
        let config = UnetConfig::from_spec(&spec, shape).unwrap();
        let net = Network::new(&Architecture::Unet { config: config.clone() }, 0, &Device::Cpu).unwrap();
        let x = SeededNoise::new(1)
            .standard_normal(&shape.batch_dims(3), &Device::Cpu, DType::F32)
            .unwrap();
        let y = net.eps(&x, &[0, 500, 999]).unwrap();
        assert_eq!(y.dims(), x.dims(), "{config:?}");
        assert!(values(&y).iter().all(|v| v.is_finite()));
        // Attention appears exactly at the configured resolutions.
        let attn = config.down_block_types.iter().filter(|t| t.starts_with("Attn")).count();
        let want = (0..spec.channel_mult.len())
            .filter(|i| spec.attention_resolutions.contains(&(shape.dims()[1] >> i)))
            .count();
        assert_eq!(attn, want);
    }
    let err = UnetConfig::from_spec(&UnetSpec::default(), DataShape::Vector(2))
        .unwrap_err()
        .to_string();
    assert!(err.contains("use mlp"), "{err}");
    let bad = UnetSpec {
        norm_groups: 5,
        ..Default::default()
    };
    assert!(UnetConfig::from_spec(&bad, image(1, 8))
        .unwrap_err()
        .to_string()
        .contains("groups"));
}

#[test]
fn unet_parameter_names_follow_the_diffusers_layout() {
    let net = Network::new(
        &Architecture::Unet {
            config: tiny_unet(image(1, 8)),
        },
        0,
        &Device::Cpu,
    )
    .unwrap();
    let names: Vec<String> = named_tensors(&net.varmap).into_keys().collect();
    for want in [
        "conv_in.weight",
        "time_embedding.linear_1.weight",
        "down_blocks.0.resnets.0.conv1.weight",
        "down_blocks.0.downsamplers.0.conv.weight",
        "down_blocks.1.attentions.0.to_q.weight",
        "mid_block.attentions.0.group_norm.weight",
        "mid_block.resnets.1.time_emb_proj.bias",
        "up_blocks.0.attentions.1.to_out.0.weight",
        "up_blocks.0.resnets.0.conv_shortcut.weight",
        "up_blocks.0.upsamplers.0.conv.weight",
        "up_blocks.1.resnets.1.norm2.weight",
        "conv_norm_out.weight",
        "conv_out.bias",
    ] {
        assert!(names.iter().any(|n| n == want), "missing {want}: {names:?}");
    }
}

/// Autograd gradients of a tiny f64 U-Net against central finite differences.
#[test]
fn unet_gradients_match_finite_differences() {
    let config = tiny_unet(image(1, 8));
    let varmap = VarMap::new();
    let init = SeededInit::new(varmap.clone(), ddimlab::rng::stream(0, ddimlab::rng::Purpose::Init));
    let vb = VarBuilder::from_backend(Box::new(init), DType::F64, Device::Cpu);
    let unet = Unet::new(&config, vb).unwrap();
    let mut noise = SeededNoise::new(5);
    let x = noise.standard_normal(&[2, 1, 8, 8], &Device::Cpu, DType::F64).unwrap();
    let w = noise.standard_normal(&[2, 1, 8, 8], &Device::Cpu, DType::F64).unwrap();
    let loss = |u: &Unet| (u.forward(&x, &[3, 700]).unwrap() * &w).unwrap().sum_all().unwrap();
    let grads = loss(&unet).backward().unwrap();
    let vars = named_tensors(&varmap);
    let data = varmap.data().lock().unwrap();
    let mut checked = 0;
    for name in [
        "conv_in.weight",
        "down_blocks.1.attentions.0.to_k.weight",
        "mid_block.resnets.0.norm1.weight",
        "up_blocks.1.resnets.0.conv2.bias",
        "time_embedding.linear_1.weight",
        "conv_out.weight",
    ] {
        let var = &data[name];
        let g = values(grads.get(&vars[name]).unwrap_or_else(|| panic!("no grad for {name}")));
        let base = values(var.as_tensor());
        for idx in [0, base.len() / 2, base.len() - 1] {
            let h = 1e-5;
            let eval = |delta: f64| {
                let mut v = base.clone();
                v[idx] += delta;
                var.set(&Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                let l = loss(&unet).to_scalar::<f64>().unwrap();
                var.set(&Tensor::from_vec(base.clone(), var.shape(), &Device::Cpu).unwrap())
                    .unwrap();
                l
            };
            let fd = (eval(h) - eval(-h)) / (2.0 * h);
            assert!(
                (fd - g[idx]).abs() <= 1e-5 * (1.0 + fd.abs()),
                "{name}[{idx}]: autograd {} vs fd {fd}",
                g[idx]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 18);
}

/// The U-Net in f32 on the CPU runs the fast kernels (at 16 × 16 with 8 channels its
/// 3 × 3 convolutions take Winograd's F(2×2, 3×3)); in f64 it runs candle's own ops. The
/// same weights give the same ε to f32 round-off.
#[test]
fn unet_f32_kernels_match_the_f64_reference_at_16x16() {
    let config = tiny_unet(image(3, 16));
    let build = |dtype: DType| {
        let varmap = VarMap::new();
        let init = SeededInit::new(varmap.clone(), ddimlab::rng::stream(3, ddimlab::rng::Purpose::Init));
        let unet = Unet::new(&config, VarBuilder::from_backend(Box::new(init), dtype, Device::Cpu)).unwrap();
        (varmap, unet)
    };
    let (reference_vars, reference) = build(DType::F64);
    let (vars, unet) = build(DType::F32);
    let wanted = named_tensors(&reference_vars);
    for (name, var) in vars.data().lock().unwrap().iter() {
        var.set(&wanted[name].to_dtype(DType::F32).unwrap()).unwrap();
    }
    let x = SeededNoise::new(8)
        .standard_normal(&[3, 3, 16, 16], &Device::Cpu, DType::F64)
        .unwrap();
    let want = reference.forward(&x, &[10, 500, 990]).unwrap();
    let got = unet.forward(&x.to_dtype(DType::F32).unwrap(), &[10, 500, 990]).unwrap();
    let scale = values(&want).iter().fold(0f64, |m, v| m.max(v.abs()));
    assert!(scale > 0.1, "ε of the f64 U-Net is {scale:e} at most");
    assert_close("U-Net ε, f32 kernels against f64", &got, &want, 1e-5);
}

#[test]
fn checkpoints_round_trip_bit_identically_and_refuse_other_shapes() {
    let dir = tempdir("ckpt");
    let arch = Architecture::Unet {
        config: tiny_unet(image(1, 8)),
    };
    let a = Network::new(&arch, 1, &Device::Cpu).unwrap();
    let path = dir.join("m.safetensors");
    save_atomic(&named_tensors(&a.varmap), &path).unwrap();
    let b = Network::new(&arch, 2, &Device::Cpu).unwrap();
    let x = SeededNoise::new(0)
        .standard_normal(&[2, 1, 8, 8], &Device::Cpu, DType::F32)
        .unwrap();
    assert_ne!(
        values(&a.eps(&x, &[10, 20]).unwrap()),
        values(&b.eps(&x, &[10, 20]).unwrap())
    );
    load_into(&b.varmap, &read(&path, &Device::Cpu).unwrap(), "m.safetensors").unwrap();
    let (wa, wb) = (named_tensors(&a.varmap), named_tensors(&b.varmap));
    for (k, t) in &wa {
        assert_eq!(values(t), values(&wb[k]), "{k}");
    }
    assert_eq!(
        values(&a.eps(&x, &[10, 20]).unwrap()),
        values(&b.eps(&x, &[10, 20]).unwrap())
    );
    // A wider network does not fit: the error names the tensors and shapes.
    let mut wide = tiny_unet(image(1, 8));
    wide.block_out_channels = vec![12, 24];
    let c = Network::new(&Architecture::Unet { config: wide }, 0, &Device::Cpu).unwrap();
    let err = load_into(&c.varmap, &read(&path, &Device::Cpu).unwrap(), "m.safetensors")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("conv_in.weight: checkpoint [8, 1, 3, 3], model [12, 1, 3, 3]"),
        "{err}"
    );
    // And an MLP checkpoint lists missing and unexpected names.
    let mlp = Network::new(
        &Architecture::Mlp {
            shape: image(1, 8),
            config: MlpConfig::default(),
        },
        0,
        &Device::Cpu,
    )
    .unwrap();
    let err = load_into(&mlp.varmap, &read(&path, &Device::Cpu).unwrap(), "m.safetensors")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing blocks.0.fc1.weight") && err.contains("unexpected conv_in.weight"),
        "{err}"
    );
    // Same seed, same initial weights.
    let again = Network::new(&arch, 1, &Device::Cpu).unwrap();
    assert_eq!(
        values(&again.eps(&x, &[10, 20]).unwrap()),
        values(&a.eps(&x, &[10, 20]).unwrap())
    );
}

#[test]
fn adamw_matches_the_hand_derivation() {
    // θ₀ = 1, g = (0.5, −2), lr = 0.1, wd = 0.01.
    let var = candle_core::Var::from_tensor(&Tensor::new(&[1.0f64], &Device::Cpu).unwrap()).unwrap();
    let mut opt = AdamW::new(std::slice::from_ref(&var), 0.01).unwrap();
    let (mut theta, mut m, mut v) = (1.0f64, 0.0f64, 0.0f64);
    for (t, g) in [0.5f64, -2.0].into_iter().enumerate() {
        opt.step(
            std::slice::from_ref(&var),
            &[Tensor::new(&[g], &Device::Cpu).unwrap()],
            0.1,
        )
        .unwrap();
        m = 0.9 * m + 0.1 * g;
        v = 0.999 * v + 0.001 * g * g;
        let (mh, vh) = (
            m / (1.0 - 0.9f64.powi(t as i32 + 1)),
            v / (1.0 - 0.999f64.powi(t as i32 + 1)),
        );
        theta = theta * (1.0 - 0.1 * 0.01) - 0.1 * mh / (vh.sqrt() + 1e-8);
        assert!((values(var.as_tensor())[0] - theta).abs() < 1e-12);
    }
    // First step of Adam moves by lr·sign(g) (minus decay): 1·(1 − 0.001) − 0.1.
    let var = candle_core::Var::from_tensor(&Tensor::new(&[1.0f64], &Device::Cpu).unwrap()).unwrap();
    let mut opt = AdamW::new(std::slice::from_ref(&var), 0.01).unwrap();
    opt.step(
        std::slice::from_ref(&var),
        &[Tensor::new(&[3.0f64], &Device::Cpu).unwrap()],
        0.1,
    )
    .unwrap();
    assert!((values(var.as_tensor())[0] - (0.999 - 0.1)).abs() < 1e-7);
}

fn tempdir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ddimlab-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn gmm_spec() -> DataSpec {
    let mut spec = DataSpec::of_kind(DataKind::GaussianMixture);
    spec.weights = Some(vec![0.4, 0.6]);
    spec.means = Some(vec![vec![-0.6, -0.3], vec![0.5, 0.4]]);
    spec.std = Some(StdSpec::Shared(0.15));
    spec.n_train = Some(8000);
    spec.n_heldout = Some(1000);
    spec
}

fn small_mlp() -> Architecture {
    Architecture::Mlp {
        shape: DataShape::Vector(2),
        config: MlpConfig {
            hidden: 128,
            blocks: 2,
            time_dim: 32,
            layer_norm: true,
        },
    }
}

/// Training resumed after an interruption ends bit-identically where an uninterrupted run does.
#[test]
fn interrupted_training_resumes_to_the_same_weights() {
    let data = gmm_spec().load(0).unwrap();
    let schedule = Schedule::ddpm_linear();
    let spec = TrainSpec {
        steps: 40,
        batch_size: 64,
        warmup: 5,
        checkpoint_every: 7,
        ..Default::default()
    };
    let run = |state: Option<&std::path::Path>, stop: Option<usize>, net: &Network| {
        Trainer {
            net,
            data: &data.train,
            schedule: &schedule,
            spec: &spec,
            seed: 9,
            fingerprint: "f",
        }
        .run(state, stop, &mut Progress::hidden())
        .unwrap()
    };
    let whole = Network::new(&small_mlp(), 9, &Device::Cpu).unwrap();
    let report = run(None, None, &whole);
    assert_eq!(report.steps_done, 40);
    let dir = tempdir("resume");
    let state = dir.join("state.safetensors");
    let first = Network::new(&small_mlp(), 9, &Device::Cpu).unwrap();
    assert_eq!(run(Some(&state), Some(17), &first).steps_done, 17);
    assert!(state.exists());
    // A fresh process would start from a fresh network: the state carries everything.
    let second = Network::new(&small_mlp(), 9, &Device::Cpu).unwrap();
    let resumed = run(Some(&state), None, &second);
    assert_eq!((resumed.steps_done, resumed.steps_this_run), (40, 23));
    let (a, b): (BTreeMap<_, _>, BTreeMap<_, _>) = (named_tensors(&whole.varmap), named_tensors(&second.varmap));
    for (k, t) in &a {
        assert_eq!(values(t), values(&b[k]), "{k}");
    }
    // A state saved by another configuration is refused, not resumed.
    let third = Network::new(&small_mlp(), 9, &Device::Cpu).unwrap();
    let err = Trainer {
        net: &third,
        data: &data.train,
        schedule: &schedule,
        spec: &spec,
        seed: 9,
        fingerprint: "another",
    }
    .run(Some(&state), None, &mut Progress::hidden())
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("different configuration") && err.contains("--force"),
        "{err}"
    );
}

/// The trained MLP's ε approaches the exact ε* on held-out x_t, and DDIM samples land on the modes.
#[test]
fn trained_mlp_approaches_the_oracle_and_samples_the_modes() {
    let spec = gmm_spec();
    let data = spec.load(0).unwrap();
    let mixture = data.mixture.clone().unwrap();
    let schedule = Schedule::ddpm_linear();
    let oracle = MixtureOracle::new(mixture.clone(), schedule.clone());
    let train = TrainSpec {
        steps: 1500,
        batch_size: 256,
        lr: 2e-3,
        warmup: 100,
        ema: 0.99,
        ..Default::default()
    };
    let net = Network::new(&small_mlp(), 0, &Device::Cpu).unwrap();
    let untrained_loss = eval_loss(&net, &data.heldout, &schedule, 0, 1, &Device::Cpu).unwrap();
    Trainer {
        net: &net,
        data: &data.train,
        schedule: &schedule,
        spec: &train,
        seed: 0,
        fingerprint: "f",
    }
    .run(None, None, &mut Progress::hidden())
    .unwrap();
    // Relative MSE to ε* on held-out x_t at t drawn uniformly.
    let mut rng = ddimlab::rng::stream(1, ddimlab::rng::Purpose::Evaluation);
    let idx: Vec<usize> = (0..data.heldout.len()).collect();
    let (x_t, _, t) = ddimlab::train::noised_batch(&data.heldout, &idx, &schedule, &mut rng, &Device::Cpu).unwrap();
    let (got, want) = (
        values(&net.eps(&x_t, &t).unwrap()),
        values(&oracle.eps(&x_t, &t).unwrap()),
    );
    let err: f64 = got.iter().zip(&want).map(|(a, b)| (a - b).powi(2)).sum();
    let norm: f64 = want.iter().map(|b| b * b).sum();
    let rel = err / norm;
    assert!(rel < 0.02, "relative MSE to the oracle {rel}");
    let oracle_loss = eval_loss(&oracle, &data.heldout, &schedule, 0, 1, &Device::Cpu).unwrap();
    let trained_loss = eval_loss(&net, &data.heldout, &schedule, 0, 1, &Device::Cpu).unwrap();
    assert!(
        trained_loss < oracle_loss * 1.05 && trained_loss < untrained_loss / 2.0,
        "{trained_loss} vs oracle {oracle_loss}, untrained {untrained_loss}"
    );
    // DDIM samples at S = 50 land on the modes with the right masses.
    let n = 1000;
    let x_t = SeededNoise::new(2)
        .standard_normal(&[n, 2], &Device::Cpu, DType::F32)
        .unwrap();
    let tau = Tau::new(TauKind::Linear, 50, 1000).unwrap();
    let x0 = values(&crate::common::decode(&net, &schedule, &tau, &x_t, false).unwrap().x);
    let mut near = [0usize; 2];
    for p in x0.chunks(2) {
        for (k, m) in mixture.means().iter().enumerate() {
            if ((p[0] - m[0]).powi(2) + (p[1] - m[1]).powi(2)).sqrt() < 3.0 * 0.15 {
                near[k] += 1;
            }
        }
    }
    let on_modes = (near[0] + near[1]) as f64 / n as f64;
    assert!(on_modes > 0.9, "{on_modes} of samples within 3 std of a mode");
    let first = near[0] as f64 / (near[0] + near[1]) as f64;
    assert!((first - 0.4).abs() < 0.06, "mass of the first mode {first}");
}

#[test]
fn training_on_digits_beats_an_untrained_net_on_heldout_loss() {
    let data = DataSpec::of_kind(DataKind::Digits).load(0).unwrap();
    let schedule = Schedule::ddpm_linear();
    let arch = Architecture::Mlp {
        shape: data.shape(),
        config: MlpConfig {
            hidden: 128,
            blocks: 2,
            time_dim: 32,
            layer_norm: true,
        },
    };
    let net = Network::new(&arch, 0, &Device::Cpu).unwrap();
    let before = eval_loss(&net, &data.heldout, &schedule, 0, 4, &Device::Cpu).unwrap();
    let spec = TrainSpec {
        steps: 400,
        batch_size: 128,
        lr: 2e-3,
        warmup: 50,
        ema: 0.98,
        ..Default::default()
    };
    Trainer {
        net: &net,
        data: &data.train,
        schedule: &schedule,
        spec: &spec,
        seed: 0,
        fingerprint: "f",
    }
    .run(None, None, &mut Progress::hidden())
    .unwrap();
    let after = eval_loss(&net, &data.heldout, &schedule, 0, 4, &Device::Cpu).unwrap();
    assert!(after < before / 3.0, "held-out L_simple {before} → {after}");
}

/// A batch whose samples share one timestep embeds it once (one row broadcast by the
/// layers); a mixed batch embeds every row. Both must give the same ε for the same (x, t).
#[test]
fn shared_and_per_sample_timesteps_give_the_same_eps() {
    let shape = image(1, 8);
    let mlp = Architecture::Mlp {
        shape,
        config: MlpConfig {
            hidden: 32,
            blocks: 2,
            time_dim: 16,
            layer_norm: true,
        },
    };
    let unet = Architecture::Unet {
        config: tiny_unet(shape),
    };
    for arch in [mlp, unet] {
        let net = Network::new(&arch, 3, &Device::Cpu).unwrap();
        let x = SeededNoise::new(4)
            .standard_normal(&[3, 1, 8, 8], &Device::Cpu, DType::F32)
            .unwrap();
        let shared = values(&net.eps(&x, &[500, 500, 500]).unwrap());
        let mixed = values(&net.eps(&x, &[500, 500, 20]).unwrap());
        let row = 64;
        for (a, b) in shared[..2 * row].iter().zip(&mixed[..2 * row]) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        assert!(shared[2 * row..]
            .iter()
            .zip(&mixed[2 * row..])
            .any(|(a, b)| (a - b).abs() > 1e-4));
    }
}

/// The MLP's fused inference kernel (`eps` on the CPU with a shared timestep) against its
/// layer-by-layer forward pass, with and without LayerNorm, for non-trivial γ and β and a
/// batch that spreads over several threads' row blocks.
#[test]
fn fused_mlp_eps_matches_the_layerwise_forward() {
    for layer_norm in [true, false] {
        let arch = Architecture::Mlp {
            shape: image(1, 8),
            config: MlpConfig {
                hidden: 48,
                blocks: 2,
                time_dim: 16,
                layer_norm,
            },
        };
        let net = Network::new(&arch, 5, &Device::Cpu).unwrap();
        for (name, var) in net.varmap.data().lock().unwrap().iter() {
            if name.contains("norm") {
                let noise = SeededNoise::new(name.len() as u64)
                    .standard_normal(var.dims(), &Device::Cpu, DType::F32)
                    .unwrap();
                var.set(&(var.as_tensor() + noise * 0.3).unwrap()).unwrap();
            }
        }
        let x = SeededNoise::new(6)
            .standard_normal(&[101, 1, 8, 8], &Device::Cpu, DType::F32)
            .unwrap();
        let t = vec![321; 101];
        let fused = values(&net.eps(&x, &t).unwrap());
        let layerwise = values(&net.forward(&x, &t).unwrap());
        let scale = layerwise.iter().fold(0f64, |m, v| m.max(v.abs()));
        let err = fused
            .iter()
            .zip(&layerwise)
            .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
        assert!(
            err <= 1e-5 * scale,
            "layer_norm {layer_norm}: {err:e} vs scale {scale:e}"
        );
    }
}
