//! Experiment files: errors name the file, line, column, field and allowed values.

use std::path::Path;

use ddimlab::experiment::ExperimentConfig;

fn parse(text: &str) -> Result<ExperimentConfig, String> {
    ExperimentConfig::parse(text, Path::new("exp.yaml")).map_err(|e| e.to_string())
}

const GOOD: &str = "\
name: gmm
seed: 3
data:
  kind: gaussian_mixture
  weights: [0.5, 0.5]
  means: [[-2.0, 0.0], [2.0, 0.0]]
  std: 0.3
model:
  kind: oracle
";

#[test]
fn a_minimal_file_parses_with_defaults() {
    let cfg = parse(GOOD).unwrap();
    assert_eq!((cfg.name.as_str(), cfg.seed, cfg.device.as_str()), ("gmm", 3, "auto"));
    assert_eq!(cfg.schedule.timesteps, 1000);
    assert!(cfg.architecture().unwrap().is_none());
    // The resolved YAML parses back to the same experiment.
    assert_eq!(parse(&cfg.to_yaml()).unwrap(), cfg);
}

#[test]
fn every_shipped_experiment_validates() {
    for entry in std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            ExperimentConfig::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn unknown_keys_report_file_line_column_and_allowed_fields() {
    let err = parse(&GOOD.replace("  std: 0.3", "  std: 0.3\n  stdev: 1")).unwrap_err();
    assert!(
        err.starts_with("exp.yaml:8:3: data.stdev: unknown field `stdev`"),
        "{err}"
    );
    assert!(err.contains("expected one of") && err.contains("`weights`"), "{err}");
}

#[test]
fn wrong_types_and_enum_values_are_located() {
    let err = parse(&GOOD.replace("seed: 3", "seed: three")).unwrap_err();
    assert!(
        err.starts_with("exp.yaml:2:7: seed: invalid type: string \"three\""),
        "{err}"
    );
    let err = parse(&GOOD.replace("kind: oracle", "kind: transformer")).unwrap_err();
    assert!(
        err.starts_with("exp.yaml:9:9: model.kind: unknown variant `transformer`"),
        "{err}"
    );
    assert!(err.contains("`oracle`, `mlp`, `unet`"), "{err}");
}

#[test]
fn invalid_values_and_combinations_are_refused_with_their_location() {
    // On data that are not a mixture the oracle is the empirical one: its width is checked.
    let moons = GOOD
        .replace("kind: gaussian_mixture", "kind: moons")
        .replace("  weights: [0.5, 0.5]\n", "")
        .replace("  means: [[-2.0, 0.0], [2.0, 0.0]]\n", "")
        .replace("  std: 0.3\n", "");
    assert!(parse(&moons).is_ok());
    let err = parse(&moons.replace("kind: oracle", "kind: oracle\n  std: .nan")).unwrap_err();
    assert!(
        err.contains("exp.yaml:7:3: model.std: NaN: the kernel width must be finite and at least 0"),
        "{err}"
    );
    let err = parse(&GOOD.replace("kind: oracle", "kind: oracle\n  std: 0.1")).unwrap_err();
    assert!(err.contains("model.std: the data are a Gaussian mixture"), "{err}");
    let err = parse(&format!("{GOOD}schedule:\n  beta_start: 0.02\n  beta_end: 0.01\n")).unwrap_err();
    assert!(
        err.starts_with("exp.yaml:10:1: schedule:") && err.contains("beta_start < beta_end"),
        "{err}"
    );
    let err = parse(
        &GOOD
            .replace("device: auto", "")
            .replace("seed: 3", "seed: 3\ndevice: tpu"),
    )
    .unwrap_err();
    assert!(
        err.contains("exp.yaml:3:1: device") && err.contains("auto, cpu, cuda, cuda:N"),
        "{err}"
    );
    let err = parse(&GOOD.replace("name: gmm", "name: a/b")).unwrap_err();
    assert!(err.contains("exp.yaml:1:1: name"), "{err}");
    let mlp = GOOD.replace("kind: oracle", "kind: mlp\n  base_channels: 32\n  train: {steps: 10}");
    let err = parse(&mlp).unwrap_err();
    assert!(
        err.contains("exp.yaml:10:3: model.base_channels: not used by kind mlp"),
        "{err}"
    );
    let err = parse(&GOOD.replace("kind: oracle", "kind: mlp")).unwrap_err();
    assert!(err.contains("model.train: a trained model needs"), "{err}");
    let err = parse(&GOOD.replace("kind: oracle", "kind: mlp\n  train:\n    lr: -1")).unwrap_err();
    assert!(
        err.contains("exp.yaml:11:5: model.train.lr: -1: must be a positive number"),
        "{err}"
    );
}

fn with_sweep(sweep: &str) -> Result<ExperimentConfig, String> {
    parse(&format!("{GOOD}sweep:\n{sweep}"))
}

#[test]
fn the_sweep_block_has_paper_defaults() {
    let cfg = parse(GOOD).unwrap();
    assert_eq!(cfg.sweep.steps, vec![10, 20, 50, 100, 1000]);
    let etas: Vec<String> = cfg.sweep.eta.iter().map(|e| e.label()).collect();
    assert_eq!(etas, ["0.0", "0.2", "0.5", "1.0", "sigma_hat"]);
    assert_eq!(cfg.metrics.len(), 3);
    let cfg = with_sweep("  eta: [0, 1, sigma_hat]\n  clip_x0: [false, true]\n").unwrap();
    assert_eq!(parse(&cfg.to_yaml()).unwrap(), cfg);
}

#[test]
fn bad_sweep_values_name_line_field_and_allowed_values() {
    let err = with_sweep("  steps: [10, 1001]\n").unwrap_err();
    assert!(
        err.starts_with("exp.yaml:11:3: sweep.steps[1]: S = 1001 is outside the allowed range 1..=1000"),
        "{err}"
    );
    let err = with_sweep("  eta: [0.0, 1.5]\n").unwrap_err();
    assert!(err.contains("sweep.eta[1]") && err.contains("outside [0, 1]"), "{err}");
    let err = with_sweep("  eta: [sigmahat]\n").unwrap_err();
    assert!(err.contains("sweep.eta[0]") && err.contains("`sigma_hat`"), "{err}");
    let err = with_sweep("  tau: [cubic]\n").unwrap_err();
    assert!(err.contains("sweep.tau[0]") && err.contains("`quadratic`"), "{err}");
    let err = with_sweep("  samplez: 10\n").unwrap_err();
    assert!(err.starts_with("exp.yaml:11:3: sweep.samplez: unknown field"), "{err}");
    let err = with_sweep("  steps: [10, 10]\n").unwrap_err();
    assert!(err.contains("sweep.steps: lists a value twice"), "{err}");
    let err = with_sweep("  samples: 10\n  trajectory_samples: 11\n").unwrap_err();
    assert!(err.contains("sweep.trajectory_samples"), "{err}");
    let err = with_sweep("  tau: [custom]\n").unwrap_err();
    assert!(
        err.contains("sweep.custom_timesteps") && err.contains("give its timesteps"),
        "{err}"
    );
    let err = with_sweep("  tau: [custom]\n  custom_timesteps: [999, 999]\n").unwrap_err();
    assert!(err.contains("sweep.custom_timesteps") && err.contains("twice"), "{err}");
    let err = with_sweep("  custom_timesteps: [999, 0]\n").unwrap_err();
    assert!(err.contains("tau does not list custom"), "{err}");
    let err = with_sweep("  tau: [karras]\n  karras_rho: 0\n").unwrap_err();
    assert!(err.contains("sweep.karras_rho"), "{err}");
    let err = with_sweep("  churn: {s_churn: -1}\n").unwrap_err();
    assert!(err.contains("sweep.churn") && err.contains("s_churn"), "{err}");
    let err = with_sweep("  dpmpp_min_r: -0.5\n").unwrap_err();
    assert!(err.contains("sweep.dpmpp_min_r") && err.contains("> 0"), "{err}");
    let err = with_sweep("  low_nfe: {nfe: [5, 0]}\n").unwrap_err();
    assert!(err.contains("sweep.low_nfe.nfe[1]"), "{err}");
    let err = with_sweep("  low_nfe: {nfe: []}\n").unwrap_err();
    assert!(
        err.contains("sweep.low_nfe.nfe") && err.contains("at least one"),
        "{err}"
    );
    let err = with_sweep("  samplers: [ddim, unipc4]\n").unwrap_err();
    assert!(err.contains("sweep.samplers[1]") && err.contains("`unipc3`"), "{err}");
    let cfg = with_sweep(
        "  tau: [linear, custom]\n  custom_timesteps: [999, 500, 0]\n  karras_rho: 5\n  dpmpp_min_r: 0.5\n  churn: {s_churn: 10, s_tmin: 0.05, s_noise: 1.003}\n  low_nfe: {nfe: [5, 10], tau: [karras, logsnr], samplers: [ddim, unipc]}\n",
    )
    .unwrap();
    assert_eq!(parse(&cfg.to_yaml()).unwrap(), cfg);
    let err = parse(&format!("{GOOD}metrics: [fid]\n")).unwrap_err();
    assert!(err.contains("metrics[0]") && err.contains("`sample_stats`"), "{err}");
}

const CIFAR: &str = "\
name: cifar
data:
  kind: images
  path: data/test.npz
model:
  kind: unet
  checkpoint: checkpoints/ddpm-cifar10-32
sweep:
  export: [npz, png]
";

#[test]
fn a_diffusers_folder_parses_without_its_files_and_refuses_architecture_keys() {
    let cfg = parse(CIFAR).unwrap();
    assert!(cfg.architecture().unwrap().is_none());
    assert_eq!(
        cfg.model.diffusers_dir(),
        Some(Path::new("checkpoints/ddpm-cifar10-32"))
    );
    let err = ddimlab::experiment::resources::check_checkpoint(&cfg)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("checkpoints/ddpm-cifar10-32: diffusers model folder not found"),
        "{err}"
    );
    assert_eq!(parse(&cfg.to_yaml()).unwrap(), cfg);

    let err = parse(&CIFAR.replace("  kind: unet\n", "  kind: unet\n  base_channels: 64\n")).unwrap_err();
    assert!(
        err.starts_with("exp.yaml:7:3: model.base_channels: not allowed with a diffusers checkpoint folder"),
        "{err}"
    );
    assert!(err.contains("checkpoints/ddpm-cifar10-32/config.json"), "{err}");
    let err = parse(&CIFAR.replace("  kind: unet\n", "  kind: mlp\n")).unwrap_err();
    assert!(err.contains("model.checkpoint") && err.contains("kind unet"), "{err}");
}

#[test]
fn images_cannot_train_and_vector_data_cannot_export() {
    let train = CIFAR.replace(
        "  checkpoint: checkpoints/ddpm-cifar10-32\n",
        "  train:\n    steps: 10\n",
    );
    let err = parse(&train).unwrap_err();
    assert!(
        err.contains("model.train: data kind images has no training split"),
        "{err}"
    );
    let err = parse(&format!("{GOOD}sweep:\n  export: [npz]\n")).unwrap_err();
    assert!(
        err.starts_with("exp.yaml:11:3: sweep.export: exports are images"),
        "{err}"
    );
    let err = parse(&CIFAR.replace("  path: data/test.npz\n", "")).unwrap_err();
    assert!(err.contains("data.path: required for images"), "{err}");
}
