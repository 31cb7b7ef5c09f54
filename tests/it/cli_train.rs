//! `ddimlab train` end to end: checkpoint + sidecar, reuse, resume, --force, refusal.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ddimlab"))
}

fn workdir(tag: &str) -> PathBuf {
    crate::common::workdir("cli", tag)
}

fn experiment(dir: &Path, steps: usize, seed: u64) -> PathBuf {
    let path = dir.join("tiny.yaml");
    std::fs::write(
        &path,
        format!(
            "name: tiny\nseed: {seed}\ndevice: cpu\ndata:\n  kind: moons\n  n_train: 500\n  n_heldout: 100\n\
             model:\n  kind: mlp\n  hidden: 32\n  blocks: 1\n  time_dim: 16\n  train:\n    steps: {steps}\n    batch_size: 32\n    checkpoint_every: 5\n"
        ),
    )
    .unwrap();
    path
}

fn run(args: &[&str]) -> (bool, String) {
    let out = bin().args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn train_writes_reuses_resumes_and_refuses() {
    let dir = workdir("train");
    let exp = experiment(&dir, 30, 0);
    let out = dir.join("out");
    let (e, o) = (exp.to_str().unwrap(), out.to_str().unwrap());
    // Interrupted half-way: a state is left, no model.
    let (ok, err) = run(&["train", e, "--out", o, "--stop-after", "12"]);
    assert!(ok, "{err}");
    assert!(out.join("train_state.safetensors").exists() && !out.join("model.safetensors").exists());
    // Resumed: finishes, writes model + sidecar, removes the state.
    let (ok, err) = run(&["train", e, "--out", o]);
    assert!(ok, "{err}");
    assert!(!out.join("train_state.safetensors").exists());
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["steps"], 30);
    assert_eq!(card["architecture"]["kind"], "mlp");
    assert_eq!(card["ddimlab_version"], env!("CARGO_PKG_VERSION"));
    assert!(card["heldout_loss"].as_f64().unwrap() > 0.0);
    let resumed = std::fs::read(out.join("model.safetensors")).unwrap();
    // Re-running reuses it.
    let (ok, err) = run(&["train", e, "--out", o]);
    assert!(
        ok && err.contains("finished checkpoint of this configuration found"),
        "{err}"
    );
    // --force retrains from scratch, uninterrupted: the same bytes as the resumed run.
    let (ok, err) = run(&["train", e, "--out", o, "--force"]);
    assert!(ok, "{err}");
    assert_eq!(std::fs::read(out.join("model.safetensors")).unwrap(), resumed);
    // A different configuration is refused, not mixed.
    let exp2 = experiment(&dir, 30, 1);
    let (ok, err) = run(&["train", exp2.to_str().unwrap(), "--out", o]);
    assert!(
        !ok && err.contains("different configuration") && err.contains("--force"),
        "{err}"
    );
    // An interrupted state of one configuration is never resumed by another (fewer steps
    // and another lr here): refused, and --force starts the new one over.
    let out2 = dir.join("out2");
    let o2 = out2.to_str().unwrap();
    let (ok, err) = run(&["train", e, "--out", o2, "--stop-after", "12"]);
    assert!(ok, "{err}");
    let changed = std::fs::read_to_string(&exp)
        .unwrap()
        .replace("steps: 30", "steps: 8\n    lr: 0.5");
    std::fs::write(&exp, changed).unwrap();
    let (ok, err) = run(&["train", e, "--out", o2]);
    assert!(
        !ok && err.contains("interrupted training") && err.contains("--force"),
        "{err}"
    );
    assert!(!out2.join("model.json").exists());
    let (ok, err) = run(&["train", e, "--out", o2, "--force"]);
    assert!(ok, "{err}");
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out2.join("model.json")).unwrap()).unwrap();
    assert_eq!(card["steps"], 8);

    a_foreign_checkpoint_and_a_held_lock_are_refused(&dir, &out, e);
}

#[test]
fn help_version_and_bad_files() {
    let out = bin().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = bin().arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(help.contains("train") && help.contains("validate"), "{help}");
    let (ok, err) = run(&["validate", "/no/such/file.yaml"]);
    assert!(!ok && err.contains("/no/such/file.yaml"), "{err}");
    let dir = workdir("bad");
    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "name: x\ndata: {kind: digits}\nmodel: {kind: oracle, std: -1}\n").unwrap();
    let (ok, err) = run(&["validate", bad.to_str().unwrap()]);
    assert!(
        !ok && err.contains("model.std: -1: the kernel width must be finite and at least 0"),
        "{err}"
    );
    std::fs::write(&bad, "name: x\ndata: {kind: grid25}\nmodel: {kind: oracle, std: 0.2}\n").unwrap();
    let (ok, err) = run(&["validate", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("remove `model.std`"), "{err}");
    std::fs::write(&bad, "name: x\ndata: {kind: digits}\nmodel: {kind: oracle}\n").unwrap();
    let (ok, err) = run(&["validate", bad.to_str().unwrap()]);
    assert!(ok, "the empirical oracle on digits is valid: {err}");
}

/// `--jobs 0` (and beyond 256) is refused before anything runs, naming the allowed range.
#[test]
fn sweep_refuses_jobs_out_of_range() {
    let dir = workdir("jobs");
    let exp = experiment(&dir, 5, 0);
    for bad in ["0", "257"] {
        let (ok, err) = run(&[
            "sweep",
            exp.to_str().unwrap(),
            "--jobs",
            bad,
            "--out",
            dir.join("o").to_str().unwrap(),
        ]);
        assert!(!ok, "--jobs {bad} accepted");
        assert!(
            err.contains("--jobs") && (err.contains("1..=256") || err.contains("1..257")),
            "{err}"
        );
    }
    assert!(!dir.join("o").exists());
}

/// `validate` opens the checkpoint's header (a model of another width is refused by name),
/// and a held folder lock refuses a second process, naming the holder.
fn a_foreign_checkpoint_and_a_held_lock_are_refused(dir: &Path, out: &Path, e: &str) {
    let o = out.to_str().unwrap();
    let model = out.join("model.safetensors");
    let wide = dir.join("wide.yaml");
    let text = std::fs::read_to_string(experiment(dir, 30, 0)).unwrap();
    let text = text.replace("hidden: 32", "hidden: 48").replace(
        "  train:\n    steps: 30\n    batch_size: 32\n    checkpoint_every: 5\n",
        "",
    ) + &format!("  checkpoint: {}\n", model.display());
    std::fs::write(&wide, text).unwrap();
    let (ok, err) = run(&["validate", wide.to_str().unwrap()]);
    assert!(
        !ok && err.contains("does not fit the experiment's architecture"),
        "{err}"
    );

    // One process per results folder: a held lock refuses a second one, naming the holder.
    let lock = ddimlab::store::lock::FolderLock::acquire(out, "a test").unwrap();
    let (ok, err) = run(&["train", e, "--out", o]);
    assert!(
        !ok && err.contains("in use by another ddimlab process") && err.contains("a test"),
        "{err}"
    );
    drop(lock);
    let (ok, err) = run(&["train", e, "--out", o]);
    assert!(ok, "{err}");
}
