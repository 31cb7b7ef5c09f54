//! The `ddimlab` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ddimlab::experiment::plan::Plan;
use ddimlab::experiment::resources::estimate_seconds;
use ddimlab::experiment::runner::{sweep_experiment, SweepOptions};
use ddimlab::experiment::training::{train_experiment, TrainOutcome};
use ddimlab::experiment::ExperimentConfig;
use ddimlab::progress::Progress;

/// DDIM step-vs-quality experiments (Song, Meng & Ermon, ICLR 2021).
#[derive(Debug, Parser)]
#[command(name = "ddimlab", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check an experiment file; print what it resolves to, the sweep plan and its cost.
    Validate {
        /// The experiment YAML.
        file: PathBuf,
        /// Model checkpoint overriding `model.checkpoint` (a diffusers folder or a .safetensors file).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Run the experiment's sweep into <out> (training its model first if needed).
    Sweep {
        /// The experiment YAML.
        file: PathBuf,
        /// Results folder (default: results/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Redo every point, even those an earlier run of this configuration saved.
        #[arg(long)]
        force: bool,
        /// Points run at once (default: 1; batches already use every core).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=256))]
        jobs: u64,
        /// Model checkpoint overriding `model.checkpoint` (a diffusers folder or a .safetensors file).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// Run only shard K of N (K = 0 … N−1, e.g. $SLURM_ARRAY_TASK_ID/N), balanced by model
        /// evaluations; join the shard folders with `ddimlab merge`.
        #[arg(long, value_name = "K/N")]
        shard: Option<ddimlab::experiment::plan::Shard>,
    },
    /// Join the results folders of a sharded sweep into OUT (tables, samples.h5, manifest, report).
    Merge {
        /// The merged results folder.
        out: PathBuf,
        /// The shard folders (`ddimlab sweep … --shard K/N --out DIR`).
        #[arg(required = true)]
        shards: Vec<PathBuf>,
    },
    /// Write report.md, tables/*.csv and figures/* of a results folder (a sweep does this at its end).
    Report {
        /// The results folder (results/<name>).
        dir: PathBuf,
    },
    /// Compare several results folders: the headline deciding statistic at S = 10, 20, 50 for η = 0,
    /// 1 and σ̂ of every model with intervals and noise floors, and which η each model's paired
    /// claims single out.
    Compare {
        /// Results folders (results/<name>), in the order of the table.
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
        /// Where to write the Markdown.
        #[arg(long, default_value = "results/compare.md")]
        out: PathBuf,
        /// Also replace the results section of this README (between its results markers).
        #[arg(long)]
        readme: Option<PathBuf>,
    },
    /// Train the experiment's model into <out>/model.safetensors (+ model.json).
    Train {
        /// The experiment YAML.
        file: PathBuf,
        /// Results folder (default: results/<name>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Retrain even when a finished checkpoint of this configuration exists.
        #[arg(long)]
        force: bool,
        /// Stop after this many steps (the state is kept; the next run resumes).
        #[arg(long, hide = true)]
        stop_after: Option<usize>,
    },
}

/// mimalloc instead of the system allocator: sampling allocates and frees tensors of a
/// few hundred KB at every step, which glibc's malloc keeps returning to the kernel
/// (measured on the digits sweep: half the wall time went to page faults).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn out_dir(cfg: &ExperimentConfig, out: Option<PathBuf>) -> PathBuf {
    out.unwrap_or_else(|| Path::new("results").join(&cfg.name))
}

/// The experiment of `file`, with `model.checkpoint` replaced by `checkpoint` when given.
fn load(file: &Path, checkpoint: Option<PathBuf>) -> anyhow::Result<ExperimentConfig> {
    let mut cfg = ExperimentConfig::load(file)?;
    if let Some(dir) = checkpoint {
        cfg.override_checkpoint(dir)?;
    }
    Ok(cfg)
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate { file, checkpoint } => validate(&file, checkpoint),
        Command::Sweep {
            file,
            out,
            force,
            jobs,
            checkpoint,
            shard,
        } => {
            let cfg = load(&file, checkpoint)?;
            let opts = SweepOptions {
                out: out_dir(&cfg, out),
                force,
                jobs: jobs as usize,
                shard,
            };
            sweep(&cfg, &opts)
        }
        Command::Report { dir } => write_report(&dir),
        Command::Merge { out, shards } => merge(&out, &shards),
        Command::Compare { dirs, out, readme } => compare(&dirs, &out, readme.as_deref()),
        Command::Train {
            file,
            out,
            force,
            stop_after,
        } => train(&file, out, force, stop_after),
    }
}

/// `ddimlab validate`: the resolved experiment, its plan, and its estimated cost.
fn validate(file: &Path, checkpoint: Option<PathBuf>) -> anyhow::Result<()> {
    let cfg = load(file, checkpoint)?;
    ddimlab::experiment::resources::check_checkpoint(&cfg)?;
    println!("{}: ok", file.display());
    print!("{}", cfg.to_yaml());
    let heldout = cfg.data.sizes()?.1;
    let plan = Plan::new(&cfg, heldout)?;
    println!("\n{} points", plan.points.len());
    print!("{}", plan.describe());
    let (device, described) = ddimlab::device::resolve(&cfg.device)?;
    let seconds = estimate_seconds(&cfg, &plan, &device)?;
    println!(
        "total: {} per-sample model evaluations, about {seconds:.0} s of model time on {described} \
         (plus training, if the model is not trained yet)",
        plan.total_evaluations()
    );
    println!(
        "memory: at least {:.1} MiB per point (samples, their copies, trajectory, reconstruction, one batch), \
         plus the model's activations",
        ddimlab::experiment::resources::point_bytes(&cfg)? as f64 / (1u64 << 20) as f64
    );
    Ok(())
}

/// `ddimlab sweep`: the sweep, a one-line summary and the report.
fn sweep(cfg: &ExperimentConfig, opts: &SweepOptions) -> anyhow::Result<()> {
    let outcome = sweep_experiment(cfg, opts)?;
    let m = &outcome.manifest;
    let diverged: Vec<&str> = outcome
        .rows
        .iter()
        .filter(|r| r.diverged)
        .map(|r| r.point_id.as_str())
        .collect();
    let reused = m.points.iter().filter(|p| p.reused).count();
    eprintln!(
        "{} points ({} reused from an earlier run) in {:.1} s: model {:.1} s, outside the model {:.1} s ({:.1} %); \
         results in {}",
        m.points.len(),
        reused,
        m.wall_seconds,
        m.model_seconds,
        m.outside_seconds,
        100.0 * m.outside_share,
        opts.out.display()
    );
    if !diverged.is_empty() {
        eprintln!("diverged (NaN/inf, metrics NaN): {}", diverged.join(", "));
    }
    write_report(&opts.out)
}

/// `ddimlab merge`: the shards joined, the report, and an error naming the points no
/// shard saved.
fn merge(out: &Path, shards: &[PathBuf]) -> anyhow::Result<()> {
    let outcome = ddimlab::experiment::merge::merge(out, shards)?;
    eprintln!(
        "merged {} shards into {}: {} points, {:.1} s of shard wall time in all",
        shards.len(),
        out.display(),
        outcome.manifest.points.len(),
        outcome.manifest.wall_seconds
    );
    write_report(out)?;
    if !outcome.missing.is_empty() {
        anyhow::bail!(
            "{} planned points are in no shard (rerun the shards that failed): {}",
            outcome.missing.len(),
            outcome.missing.join(", ")
        );
    }
    Ok(())
}

/// `ddimlab compare`: the folders read once, written to `out` and, with `readme`, into
/// the README's results section (its figures in `docs/` beside it: results/ is not
/// committed).
fn compare(dirs: &[PathBuf], out: &Path, readme: Option<&Path>) -> anyhow::Result<()> {
    let comparison = ddimlab::report::Comparison::load(dirs)?;
    let md = comparison.render(out.parent().unwrap_or(Path::new("")))?;
    ddimlab::atomic::write_atomic(out, format!("# Across models\n\n{md}").as_bytes())?;
    eprintln!("comparison: {}", out.display());
    if let Some(readme) = readme {
        let docs = readme.parent().unwrap_or(Path::new("")).join("docs");
        std::fs::create_dir_all(&docs)?;
        let block = comparison.render(&docs)?.replace("](compare_", "](docs/compare_");
        ddimlab::report::splice_readme(readme, &block)?;
        eprintln!("README results section: {}", readme.display());
    }
    Ok(())
}

/// `ddimlab train`: the experiment's model trained (or its finished checkpoint reused).
fn train(file: &Path, out: Option<PathBuf>, force: bool, stop_after: Option<usize>) -> anyhow::Result<()> {
    let cfg = ExperimentConfig::load(file)?;
    let dir = out_dir(&cfg, out);
    let _lock = ddimlab::store::lock::FolderLock::acquire(&dir, &format!("ddimlab train ({})", cfg.name))?;
    let (device, described) = ddimlab::device::resolve(&cfg.device)?;
    eprintln!("device: {described}");
    let steps = cfg.model.train.as_ref().map_or(0, |t| t.steps);
    let mut progress = Progress::new("train", steps as u64);
    let checkpoint = dir.join("model.safetensors");
    match train_experiment(&cfg, &dir, force, (&device, &described), stop_after, &mut progress)? {
        TrainOutcome::Reused(card) => eprintln!(
            "{}: finished checkpoint of this configuration found ({} steps, held-out loss {:.4}); --force retrains",
            checkpoint.display(),
            card.steps,
            card.heldout_loss
        ),
        TrainOutcome::Trained(card) => {
            progress.finish();
            eprintln!(
                "trained {} parameters for {} steps in {:.1} s: final loss {:.4}, held-out loss {:.4} -> {}",
                card.parameters,
                card.steps,
                card.train_seconds,
                card.final_loss,
                card.heldout_loss,
                checkpoint.display()
            );
        }
        TrainOutcome::Interrupted { steps_done } => eprintln!("stopped after step {steps_done}; run again to resume"),
    }
    Ok(())
}

fn write_report(dir: &Path) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    let summary = ddimlab::report::report(dir)?;
    eprintln!(
        "report: {} ({} points, {} figures, {} tables) in {:.1} s",
        summary.path.display(),
        summary.points,
        summary.figures.len(),
        summary.tables.len(),
        start.elapsed().as_secs_f64()
    );
    if !summary.missing.is_empty() {
        eprintln!("missing points: {}", summary.missing.join(", "));
    }
    Ok(())
}

fn main() -> ExitCode {
    ddimlab::kernels::keep_freed_memory();
    ddimlab::kernels::pin_threads();
    match ddimlab::kernels::on_pool_thread(|| run(Cli::parse())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
