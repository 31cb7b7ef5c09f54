//! # ddimlab
//!
//! A research-experiment harness for DDIM (Song, Meng & Ermon, *Denoising Diffusion
//! Implicit Models*, ICLR 2021): how does sample quality trade against the number of
//! sampling steps on a noise-prediction model?
//!
//! Pure math lives in [`schedule`] (β, ᾱ and the τ subsequences of §4.2), [`sampler`]
//! (the generalized step of Eq. 12 with σ_t(η) of Eq. 16, the paper's σ̂, and DDIM
//! inversion) and [`model`] (the [`model::EpsModel`] trait and the exact
//! Gaussian-mixture oracle), and [`metrics`] (reconstruction error, Fréchet distance,
//! MMD², sliced Wasserstein, mode and class coverage). None of it touches files.
//! [`store`] does the I/O (per-point files, the metrics tables, `samples.h5`) and knows
//! nothing of sampling; [`experiment`] wires config → plan → runner → metrics → store,
//! and [`report`] turns a results folder into paper-layout tables and figures.

pub mod atomic;
pub mod classifier;
pub mod data;
pub mod device;
pub mod error;
pub mod experiment;
pub mod hashing;
pub mod kernels;
pub mod metrics;
pub mod mixture;
pub mod model;
pub mod names;
pub mod progress;
pub mod report;
pub mod rng;
pub mod sampler;
pub mod schedule;
pub mod shape;
pub mod simd;
pub mod store;
pub mod train;

pub use error::{Error, Result};
