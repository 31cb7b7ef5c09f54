//! The integration tests as one crate, so that polars, HDF5 and candle link once: one
//! module per area, helpers in `common`. `cargo test --release --test it AREA::` runs one
//! area (e.g. `sweep::`).

mod common;

mod broken;
mod cifar;
mod classifier;
mod cli_train;
mod config;
mod coverage;
mod data;
mod empirical;
mod figures;
mod images;
mod intervals;
mod kernels;
mod layering;
mod metrics;
mod models;
mod reference_fixture;
mod report;
mod sampler;
mod schedule;
mod slurm;
mod solvers;
mod store;
mod sweep;
mod unet_fixture;
