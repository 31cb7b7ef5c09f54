//! The `ddimlab` command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
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
    /// Check an experiment file and print what it resolves to.
    Validate {
        /// The experiment YAML.
        file: PathBuf,
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

fn out_dir(cfg: &ExperimentConfig, out: Option<PathBuf>) -> PathBuf {
    out.unwrap_or_else(|| Path::new("results").join(&cfg.name))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Validate { file } => {
            let cfg = ExperimentConfig::load(&file)?;
            println!("{}: ok", file.display());
            print!("{}", cfg.to_yaml());
        }
        Command::Train {
            file,
            out,
            force,
            stop_after,
        } => {
            let cfg = ExperimentConfig::load(&file)?;
            let dir = out_dir(&cfg, out);
            let (device, described) = ddimlab::device::resolve(&cfg.device)?;
            eprintln!("device: {described}");
            let steps = cfg.model.train.as_ref().map_or(0, |t| t.steps);
            let mut progress = Progress::new("train", steps as u64);
            match train_experiment(&cfg, &dir, force, (&device, &described), stop_after, &mut progress)? {
                TrainOutcome::Reused(card) => eprintln!(
                    "{}: finished checkpoint of this configuration found ({} steps, held-out loss {:.4}); --force retrains",
                    dir.join("model.safetensors").display(),
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
                        dir.join("model.safetensors").display()
                    );
                }
                TrainOutcome::Interrupted { steps_done } => {
                    eprintln!("stopped after step {steps_done}; run again to resume")
                }
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
