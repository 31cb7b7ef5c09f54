//! Files of a results folder: per-point checkpoints (`points/`), the metrics table
//! (`metrics.parquet`, `metrics.csv`) and `samples.h5`. I/O only: this module knows
//! nothing of sampling; `experiment` hands it finished rows and arrays.
//!
//! Every write is atomic ([`crate::atomic`]: temporary file in the same folder, fsync,
//! rename), so an interrupted run leaves either the old file or the new one, never half of one.

pub mod export;
pub mod h5;
pub mod lock;
pub mod manifest;
pub mod point;
pub mod points;
pub mod table;

pub use h5::{read_meta, read_point, write_samples, H5Meta, H5Point};
pub use point::{ArrayShapes, MetricRow, PointArrays, Reconstruction};
pub use points::{load_arrays, load_row, point_status, save_point, PointStatus};
pub use table::{read_bootstrap, read_projections, read_results, read_rows, write_tables, ReplicateMap, FLOOR_ID};
