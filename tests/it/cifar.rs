//! The CIFAR-10 experiment end to end through the `ddimlab` binary, on a tiny grid with
//! the fixture-sized diffusers UNet (8×8 RGB) and images from an .npz.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ndarray::{Array4, ArrayD};
use ndarray_npy::{NpzReader, NpzWriter};

fn workdir(tag: &str) -> PathBuf {
    crate::common::workdir("cifar", tag)
}

/// experiments/cifar10.yaml with a tiny grid, CPU and `data` as its images.
fn experiment(dir: &Path, data: &Path) -> PathBuf {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/cifar10.yaml"))
        .unwrap()
        .replace("device: auto", "device: cpu")
        .replace("path: data/cifar10_test.npz", &format!("path: {}", data.display()))
        .replace("image_size: 32", "image_size: 8")
        .replace("steps: [10, 20, 50, 100, 1000]", "steps: [2, 4]")
        .replace("eta: [0.0, 0.2, 0.5, 1.0, sigma_hat]", "eta: [0.0, 1.0]")
        .replace("samples: 10000", "samples: 16")
        .replace("batch_size: 256", "batch_size: 16");
    assert!(text.contains("tau: [quadratic]") && text.contains("export: [npz, png]"));
    let path = dir.join("cifar10_tiny.yaml");
    std::fs::write(&path, text).unwrap();
    path
}

fn ddimlab(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ddimlab")).args(args).output().unwrap()
}

#[test]
fn a_tiny_cifar_sweep_runs_from_a_diffusers_folder_and_exports_samples() {
    let dir = workdir("run");
    let checkpoint = dir.join("ddpm-tiny");
    std::fs::create_dir_all(&checkpoint).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/unet_tiny");
    for file in ["config.json", "diffusion_pytorch_model.safetensors"] {
        std::fs::copy(fixture.join(file), checkpoint.join(file)).unwrap();
    }
    let data = dir.join("test.npz");
    let images = Array4::from_shape_fn((12, 8, 8, 3), |(i, y, x, c)| {
        ((i * 29 + y * 13 + x * 7 + c * 60) % 256) as u8
    });
    let mut npz = NpzWriter::new(std::fs::File::create(&data).unwrap());
    npz.add_array("arr_0", &images).unwrap();
    npz.finish().unwrap();
    let yaml = experiment(&dir, &data);
    let out = dir.join("results");

    let run = ddimlab(&[
        Path::new("sweep"),
        &yaml,
        Path::new("--checkpoint"),
        &checkpoint,
        Path::new("--out"),
        &out,
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    for file in ["metrics.parquet", "samples.h5", "manifest.json", "config.yaml"] {
        assert!(out.join(file).is_file(), "{file} missing; {stderr}");
    }
    assert!(std::fs::read_to_string(out.join("config.yaml"))
        .unwrap()
        .contains(&checkpoint.display().to_string()));
    let h5 = hdf5::File::open(out.join("samples.h5")).unwrap();
    for steps in [2, 4] {
        for eta in ["0.0", "1.0"] {
            let id = format!("quadratic_eta{eta}_S{steps}");
            let samples: Vec<f32> = h5.dataset(&format!("points/{id}/samples")).unwrap().read_raw().unwrap();
            let mut npz = NpzReader::new(std::fs::File::open(out.join(format!("exports/{id}.npz"))).unwrap()).unwrap();
            let arr: ArrayD<u8> = npz.by_name("arr_0").unwrap();
            assert_eq!(arr.shape(), &[16, 8, 8, 3], "{id}");
            let first = samples[0]; // sample 0, channel 0, pixel (0, 0)
            assert_eq!(
                arr[[0, 0, 0, 0]],
                ((first + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
            );
            assert!(out.join(format!("exports/{id}.png")).is_file(), "{id}");
        }
    }
}

#[test]
fn a_missing_checkpoint_folder_stops_sweep_and_validate_with_the_download_command() {
    let dir = workdir("missing");
    let data = dir.join("nothing-here.npz"); // never read: the checkpoint is checked first
    let yaml = experiment(&dir, &data);
    let missing = dir.join("ddpm-cifar10-32");
    for command in ["sweep", "validate"] {
        let run = ddimlab(&[Path::new(command), &yaml, Path::new("--checkpoint"), &missing]);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{command}: {stderr}");
        assert!(stderr.contains(&missing.display().to_string()), "{command}: {stderr}");
        assert!(
            stderr.contains(
                "huggingface-cli download google/ddpm-cifar10-32 config.json diffusion_pytorch_model.safetensors"
            ),
            "{command}: {stderr}"
        );
        assert!(
            !stderr.contains("nothing-here"),
            "{command} read the data first: {stderr}"
        );
    }
    assert!(!dir.join("results").exists());
}
