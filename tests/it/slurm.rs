//! `scripts/slurm/sweep_array.sbatch` end to end, with a stand-in `sbatch` that runs each
//! job at once (array tasks one after the other, with SLURM_ARRAY_TASK_ID set).

use std::path::Path;
use std::process::Command;

const FAKE_SBATCH: &str = r#"#!/usr/bin/env bash
# Stand-in for Slurm's sbatch: runs --wrap now; --array=0-M runs it once per task.
array=""; wrap=""
for a in "$@"; do
  case "$a" in
    --array=*) array=${a#--array=} ;;
    --wrap=*) wrap=${a#--wrap=} ;;
  esac
done
if [ -n "$array" ]; then
  for k in $(seq ${array%-*} ${array#*-}); do SLURM_ARRAY_TASK_ID=$k bash -c "$wrap" >&2 || exit 1; done
else
  bash -c "$wrap" >&2 || exit 1
fi
echo $RANDOM
"#;

#[test]
fn the_array_script_trains_once_shards_and_merges() {
    let dir = std::env::temp_dir().join(format!("ddimlab-slurm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let sbatch = dir.join("bin/sbatch");
    std::fs::write(&sbatch, FAKE_SBATCH).unwrap();
    Command::new("chmod").arg("+x").arg(&sbatch).status().unwrap();
    let exp = dir.join("tiny.yaml");
    std::fs::write(
        &exp,
        "name: tiny\nseed: 1\ndevice: cpu\ndata:\n  kind: moons\n  n_train: 300\n  n_heldout: 60\n\
         model:\n  kind: mlp\n  hidden: 16\n  blocks: 1\n  time_dim: 8\n  train:\n    steps: 20\n    batch_size: 32\n\
         sweep:\n  steps: [4, 8]\n  eta: [0.0, 1.0]\n  tau: [linear]\n  samples: 60\n  bootstrap: 10\n",
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/slurm/sweep_array.sbatch");
    let path = format!("{}:{}", dir.join("bin").display(), std::env::var("PATH").unwrap());
    let out = Command::new("bash")
        .arg(&script)
        .arg(&exp)
        .arg("2")
        .current_dir(&dir)
        .env("PATH", path)
        .env("DDIMLAB", env!("CARGO_BIN_EXE_ddimlab"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("submitted: train"),
        "{err}"
    );
    let root = dir.join("results/tiny");
    assert!(root.join("train/model.safetensors").exists());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["shards"].as_array().unwrap().len(), 2);
    assert!(root.join("report.md").exists() && root.join("samples.h5").exists());
    let rows = ddimlab::store::read_rows(&root.join("metrics.parquet")).unwrap();
    assert_eq!(rows.len(), 4);
}
