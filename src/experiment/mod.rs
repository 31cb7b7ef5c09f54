//! Experiments: the YAML file, and wiring data, models and training together.

pub mod config;
pub mod training;

pub use config::{ExperimentConfig, ModelKind, ModelSpec, ScheduleSpec};
