//! The diffusers loader against reference outputs of diffusers' own `UNet2DModel`
//! (tests/fixtures/unet_tiny*, made by scripts/reference/make_unet_fixture.py).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::common::device;
use candle_core::{DType, Device, Tensor};
use ddimlab::model::checkpoint::read;
use ddimlab::model::diffusers::{rename_legacy_attention, CONFIG_FILE, WEIGHTS_FILE};
use ddimlab::model::{load_diffusers, EpsModel, Network, UnetConfig};
use ddimlab::Error;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A fresh, empty folder under the system temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ddimlab-unet-fixture-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Largest |eps(x, t) − expected| over every case of `dir/cases.safetensors`, on the
/// test device (`crate::common::device`, where the net is too).
fn max_error(net: &Network, dir: &Path) -> f32 {
    let cases = read(&dir.join("cases.safetensors"), &device()).unwrap();
    let mut worst = 0f32;
    for i in 0.. {
        let Some(x) = cases.get(&format!("case{i}.x")) else {
            assert!(i >= 5, "fixture has only {i} cases");
            break;
        };
        let t: Vec<usize> = cases[&format!("case{i}.t")]
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|t| t as usize)
            .collect();
        let y = net.eps(x, &t).unwrap();
        assert!(y.device().same_device(&device()), "eps left the device");
        let err = (y - &cases[&format!("case{i}.eps")])
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        eprintln!("{} case {i} t = {t:?}: max abs error {err:e}", dir.display());
        worst = worst.max(err);
    }
    worst
}

#[test]
fn ddpm_layout_matches_diffusers() {
    let dir = fixture("unet_tiny");
    let (config, net) = load_diffusers(&dir, &device()).unwrap();
    assert_eq!(config.attention_head_dim, None);
    assert_eq!(config.downsample_padding, 0);
    assert!(!config.flip_sin_to_cos);
    assert_eq!(config.freq_shift, 1.0);
    assert_eq!(config.norm_eps, 1e-6);
    let err = max_error(&net, &dir);
    assert!(err < 1e-4, "max abs error {err}");
}

#[test]
fn multi_head_defaults_match_diffusers() {
    let dir = fixture("unet_tiny_heads");
    let (config, net) = load_diffusers(&dir, &device()).unwrap();
    assert_eq!(config.attention_head_dim, Some(4));
    assert_eq!(config.downsample_padding, 1);
    assert!(config.flip_sin_to_cos);
    assert_eq!(config.freq_shift, 0.0);
    let err = max_error(&net, &dir);
    assert!(err < 1e-4, "max abs error {err}");
}

/// Writes `tensors` with `config.json` of `from` as a diffusers folder.
fn write_folder(dir: &Path, from: &Path, tensors: &HashMap<String, Tensor>) {
    std::fs::copy(from.join(CONFIG_FILE), dir.join(CONFIG_FILE)).unwrap();
    candle_core::safetensors::save(tensors, dir.join(WEIGHTS_FILE)).unwrap();
    std::fs::copy(from.join("cases.safetensors"), dir.join("cases.safetensors")).unwrap();
}

#[test]
fn legacy_attention_names_and_conv_shaped_weights_load() {
    let src = fixture("unet_tiny");
    let current = read(&src.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
    let legacy: HashMap<String, Tensor> = current
        .iter()
        .map(|(name, t)| {
            let renamed = name
                .replace(".to_q.", ".query.")
                .replace(".to_k.", ".key.")
                .replace(".to_v.", ".value.")
                .replace(".to_out.0.", ".proj_attn.");
            // Older conversions stored the projections as 1×1 convolutions.
            let t = if renamed.ends_with("query.weight") {
                t.unsqueeze(2).unwrap().unsqueeze(3).unwrap()
            } else {
                t.clone()
            };
            (renamed, t)
        })
        .collect();
    assert!(legacy.keys().any(|k| k == "mid_block.attentions.0.proj_attn.bias"));
    assert!(legacy.keys().any(|k| k == "down_blocks.1.attentions.0.query.weight"));

    // In memory: exactly the current names and shapes come back.
    let renamed = rename_legacy_attention(legacy.clone()).unwrap();
    let mut want: Vec<_> = current.iter().map(|(k, t)| (k.clone(), t.dims().to_vec())).collect();
    let mut got: Vec<_> = renamed.iter().map(|(k, t)| (k.clone(), t.dims().to_vec())).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    // Names outside attention blocks are left alone, even if they end the same way.
    let other = HashMap::from([(
        "x.key.weight".to_string(),
        Tensor::zeros((2, 2, 1, 1), DType::F32, &Device::Cpu).unwrap(),
    )]);
    let kept = rename_legacy_attention(other).unwrap();
    assert_eq!(kept["x.key.weight"].dims(), &[2, 2, 1, 1]);

    // Through the loader, with the same outputs.
    let dir = scratch("legacy");
    write_folder(&dir, &src, &legacy);
    let (_, net) = load_diffusers(&dir, &device()).unwrap();
    let err = max_error(&net, &dir);
    assert!(err < 1e-4, "max abs error {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn float16_weights_are_converted() {
    let src = fixture("unet_tiny");
    let half: HashMap<String, Tensor> = read(&src.join(WEIGHTS_FILE), &Device::Cpu)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.to_dtype(DType::F16).unwrap()))
        .collect();
    let dir = scratch("f16");
    write_folder(&dir, &src, &half);
    let (_, net) = load_diffusers(&dir, &device()).unwrap();
    assert!(net.varmap.all_vars().iter().all(|v| v.dtype() == DType::F32));
    // Rounding the weights to half precision moves the outputs a little, not a lot.
    let err = max_error(&net, &dir);
    assert!(err > 0.0 && err < 0.05, "max abs error {err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn weights_that_do_not_fit_are_listed() {
    let src = fixture("unet_tiny");
    let mut tensors = read(&src.join(WEIGHTS_FILE), &Device::Cpu).unwrap();
    tensors.remove("conv_out.bias").unwrap();
    tensors.insert(
        "extra.weight".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = scratch("misfit");
    write_folder(&dir, &src, &tensors);
    let msg = load_diffusers(&dir, &Device::Cpu).err().unwrap().to_string();
    assert!(
        msg.contains("missing conv_out.bias") && msg.contains("unexpected extra.weight"),
        "{msg}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fixture_config() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string(fixture("unet_tiny").join(CONFIG_FILE)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The error for the fixture config with `key` set to `value`.
fn refusal(key: &str, value: serde_json::Value) -> String {
    let mut map = fixture_config();
    map.insert(key.into(), value);
    let text = serde_json::to_string(&map).unwrap();
    match UnetConfig::from_diffusers(&text) {
        Err(e @ Error::Invalid { .. }) => e.to_string(),
        other => panic!("{key}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn unsupported_configs_are_refused_by_name() {
    use serde_json::json;
    let cases = [
        (
            "down_block_types",
            json!(["DownBlock2D", "CrossAttnDownBlock2D"]),
            "CrossAttnDownBlock2D",
        ),
        (
            "up_block_types",
            json!(["AttnSkipUpBlock2D", "UpBlock2D"]),
            "AttnSkipUpBlock2D",
        ),
        ("time_embedding_type", json!("fourier"), "fourier"),
        ("class_embed_type", json!("timestep"), "timestep"),
        ("num_class_embeds", json!(10), "10"),
        ("resnet_time_scale_shift", json!("scale_shift"), "scale_shift"),
        ("center_input_sample", json!(true), "true"),
        ("act_fn", json!("gelu"), "gelu"),
        ("add_attention", json!(false), "false"),
        ("mid_block_type", json!(null), "null"),
        ("downsample_type", json!("resnet"), "resnet"),
        ("mid_block_scale_factor", json!(2.0), "2.0"),
        ("attention_head_dim", json!(3), "3"),
        ("norm_num_groups", json!(3), "3"),
        ("time_embedding_dim", json!(64), "64"),
        ("some_future_option", json!(1), "some_future_option"),
    ];
    for (key, value, shown) in cases {
        let msg = refusal(key, value);
        assert!(
            msg.contains(key) && msg.contains(shown) && msg.contains("supported"),
            "{key}: {msg}"
        );
    }
    // Harmless at inference: dropout, num_train_timesteps, metadata.
    let mut map = fixture_config();
    map.insert("dropout".into(), json!(0.1));
    map.insert("num_train_timesteps".into(), json!(1000));
    map.insert("_name_or_path".into(), json!("somewhere"));
    UnetConfig::from_diffusers(&serde_json::to_string(&map).unwrap()).unwrap();
}

#[test]
fn absent_keys_take_the_diffusers_defaults() {
    let c = UnetConfig::from_diffusers(r#"{"sample_size": 32}"#).unwrap();
    assert_eq!(c.block_out_channels, vec![224, 448, 672, 896]);
    assert_eq!(c.down_block_types[1], "AttnDownBlock2D");
    assert_eq!(c.up_block_types[3], "UpBlock2D");
    assert_eq!((c.in_channels, c.out_channels, c.layers_per_block), (3, 3, 2));
    assert_eq!((c.norm_num_groups, c.norm_eps), (32, 1e-5));
    assert_eq!(c.attention_head_dim, Some(8));
    assert!(c.flip_sin_to_cos);
    assert_eq!((c.freq_shift, c.downsample_padding), (0.0, 1));
}

#[test]
fn missing_folder_or_files_say_what_to_download() {
    let dir = scratch("missing");
    let gone = dir.join("ddpm-cifar10-32");
    let msg = load_diffusers(&gone, &Device::Cpu).err().unwrap().to_string();
    assert!(msg.contains(&gone.display().to_string()), "{msg}");
    assert!(
        msg.contains("google/ddpm-cifar10-32") && msg.contains("diffusion_pytorch_model.safetensors"),
        "{msg}"
    );
    std::fs::create_dir_all(&gone).unwrap();
    std::fs::copy(fixture("unet_tiny").join(CONFIG_FILE), gone.join(CONFIG_FILE)).unwrap();
    let msg = load_diffusers(&gone, &Device::Cpu).err().unwrap().to_string();
    assert!(msg.contains(&gone.join(WEIGHTS_FILE).display().to_string()), "{msg}");
    assert!(msg.contains("google/ddpm-cifar10-32"), "{msg}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn configs_saved_before_downsample_padding_keep_symmetric_padding() {
    let mut value = serde_json::to_value(UnetConfig::from_diffusers(r#"{"sample_size": 8}"#).unwrap()).unwrap();
    value.as_object_mut().unwrap().remove("downsample_padding");
    let old: UnetConfig = serde_json::from_value(value).unwrap();
    assert_eq!(old.downsample_padding, 1);
}
