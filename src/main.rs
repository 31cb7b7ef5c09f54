//! The `ddimlab` command line.

use clap::Parser;

/// DDIM step-vs-quality experiments (Song, Meng & Ermon, ICLR 2021).
#[derive(Debug, Parser)]
#[command(name = "ddimlab", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
