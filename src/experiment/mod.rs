//! Experiments: the YAML file, and wiring data, models and training together.

pub mod config;
mod context;
pub mod evaluation;
pub mod measure;
pub mod merge;
pub mod plan;
pub mod resources;
pub mod runner;
pub mod sweep;
pub mod target;
pub mod training;

pub use config::{ExperimentConfig, ModelKind, ModelSpec, ScheduleSpec};
pub use context::{INTERPOLATION_ID, INTERPOLATION_POINTS};
