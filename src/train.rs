//! DDPM training with L_simple (Ho et al. 2020, Eq. 14; DDIM paper Eq. 5 with γ = 1):
//! minimise E_{x_0, t, ε} ‖ε − ε_θ(√ᾱ_t x_0 + √(1−ᾱ_t) ε, t)‖² with t uniform over the
//! T training steps, AdamW with linear warm-up, gradient-norm clipping and an EMA of
//! the weights (the EMA weights are what sampling uses).
//!
//! Every step draws its minibatch, timesteps and noise from its own seeded stream, and
//! the whole optimiser state is checkpointed, so a run resumed after an interruption
//! ends exactly where an uninterrupted one would.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::data::Split;
use crate::error::{Error, Result};
use crate::kernels::{self, AdamParams};
use crate::model::checkpoint::{load_into, read, save_atomic, sorted_vars};
use crate::model::Network;
use crate::progress::Progress;
use crate::rng::{stream_at, Purpose};
use crate::schedule::Schedule;

/// The `train:` block of a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainSpec {
    /// Optimiser steps.
    #[serde(default = "d_steps")]
    pub steps: usize,
    /// Minibatch size.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Peak learning rate.
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// Steps of linear warm-up from 0 to `lr`.
    #[serde(default = "d_warmup")]
    pub warmup: usize,
    /// AdamW's decoupled weight decay.
    #[serde(default)]
    pub weight_decay: f64,
    /// Clip the global gradient norm to this (0: no clipping).
    #[serde(default = "d_clip")]
    pub grad_clip: f64,
    /// EMA decay of the weights (warmed up as min(ema, (1 + k)/(10 + k)) at step k).
    #[serde(default = "d_ema")]
    pub ema: f64,
    /// Write a resumable state every this many steps.
    #[serde(default = "d_every")]
    pub checkpoint_every: usize,
}

fn d_steps() -> usize {
    5000
}
fn d_batch() -> usize {
    256
}
fn d_lr() -> f64 {
    1e-3
}
fn d_warmup() -> usize {
    200
}
fn d_clip() -> f64 {
    1.0
}
fn d_ema() -> f64 {
    0.999
}
fn d_every() -> usize {
    500
}

impl Default for TrainSpec {
    fn default() -> Self {
        Self {
            steps: d_steps(),
            batch_size: d_batch(),
            lr: d_lr(),
            warmup: d_warmup(),
            weight_decay: 0.0,
            grad_clip: d_clip(),
            ema: d_ema(),
            checkpoint_every: d_every(),
        }
    }
}

impl TrainSpec {
    /// Refuses values no training run can use.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, message: String| {
            Err(Error::Invalid {
                field: format!("model.train.{field}"),
                message,
            })
        };
        if self.steps == 0 {
            return bad("steps", "must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch_size", "must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("{}: must be a positive number", self.lr));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", format!("{}: must be ≥ 0", self.weight_decay));
        }
        if !(self.grad_clip.is_finite() && self.grad_clip >= 0.0) {
            return bad(
                "grad_clip",
                format!("{}: must be ≥ 0 (0 turns clipping off)", self.grad_clip),
            );
        }
        if !(0.0..1.0).contains(&self.ema) {
            return bad("ema", format!("{}: must be in [0, 1)", self.ema));
        }
        if self.checkpoint_every == 0 {
            return bad("checkpoint_every", "must be at least 1".into());
        }
        Ok(())
    }

    /// The learning rate at 0-based step `k`: linear warm-up, then constant.
    pub fn lr_at(&self, k: usize) -> f64 {
        if k < self.warmup {
            self.lr * (k + 1) as f64 / self.warmup as f64
        } else {
            self.lr
        }
    }

    /// The EMA decay at 0-based step `k`.
    pub fn ema_at(&self, k: usize) -> f64 {
        self.ema.min((1 + k) as f64 / (10 + k) as f64)
    }
}

/// AdamW (Loshchilov & Hutter 2019), as `torch.optim.AdamW`: β = (0.9, 0.999), ε = 1e-8.
/// candle-nn's AdamW keeps its moments private; resuming needs them, hence this one.
#[derive(Debug, Clone)]
pub struct AdamW {
    /// Completed updates.
    pub t: usize,
    /// First moments, one per variable.
    pub m: Vec<Tensor>,
    /// Second moments, one per variable.
    pub v: Vec<Tensor>,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

/// AdamW's β₁.
pub const BETA1: f64 = 0.9;
/// AdamW's β₂.
pub const BETA2: f64 = 0.999;
/// AdamW's ε.
pub const ADAM_EPS: f64 = 1e-8;

impl AdamW {
    /// Zero moments for `vars`.
    pub fn new(vars: &[Var], weight_decay: f64) -> Result<Self> {
        let zeros = |v: &Var| v.as_tensor().zeros_like();
        Ok(Self {
            t: 0,
            m: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            v: vars.iter().map(zeros).collect::<candle_core::Result<_>>()?,
            weight_decay,
        })
    }

    /// One update of `vars` with gradients `grads` (already clipped) at learning rate `lr`
    /// ([`kernels::adamw_update`], in place).
    pub fn step(&mut self, vars: &[Var], grads: &[Tensor], lr: f64) -> Result<()> {
        self.t += 1;
        let p = AdamParams {
            beta1: BETA1,
            beta2: BETA2,
            eps: ADAM_EPS,
            lr,
            weight_decay: self.weight_decay,
            t: self.t,
        };
        for (((var, g), m), v) in vars.iter().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            kernels::adamw_update(var, m, v, g, p)?;
        }
        Ok(())
    }
}

/// What a training run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Steps completed so far (equals `spec.steps` when finished).
    pub steps_done: usize,
    /// Mean L_simple over the last (up to) 100 steps of this run.
    pub final_loss: f64,
    /// Wall time of this run in seconds.
    pub seconds: f64,
    /// Steps run in this invocation.
    pub steps_this_run: usize,
}

/// Trains `net` on `data`; resumes from `state_path` when it holds a state, and writes
/// one there every `checkpoint_every` steps. `stop_after` ends the run early after that
/// many steps of this invocation (an interruption, for tests). At the end, the
/// network's variables hold the EMA weights.
pub struct Trainer<'a> {
    /// The network to train.
    pub net: &'a Network,
    /// Training points.
    pub data: &'a Split,
    /// The forward process.
    pub schedule: &'a Schedule,
    /// Hyper-parameters.
    pub spec: &'a TrainSpec,
    /// The experiment seed.
    pub seed: u64,
    /// The fingerprint of everything that determines the training (seed, data, model,
    /// schedule, train spec): a saved state carries it, and a state of another
    /// configuration is refused instead of resumed.
    pub fingerprint: &'a str,
}

/// A resumable training state: raw weights, EMA weights, AdamW moments and the step.
struct State {
    step: usize,
    ema: Vec<Tensor>,
    adam: AdamW,
}

impl Trainer<'_> {
    /// Runs (or resumes) training; see [`Trainer`].
    pub fn run(
        &self,
        state_path: Option<&Path>,
        stop_after: Option<usize>,
        progress: &mut Progress,
    ) -> Result<TrainReport> {
        self.spec.validate()?;
        let (names, vars) = sorted_vars(&self.net.varmap);
        let device = vars[0].device().clone();
        let mut state = match state_path.filter(|p| p.exists()) {
            Some(p) => self.load_state(p, &names, &device)?,
            None => State {
                step: 0,
                ema: vars
                    .iter()
                    .map(|v| v.as_tensor().copy().map(|t| t.detach()))
                    .collect::<candle_core::Result<_>>()?,
                adam: AdamW::new(&vars, self.spec.weight_decay)?,
            },
        };
        let start = Instant::now();
        let first = state.step;
        let last = stop_after.map_or(self.spec.steps, |n| (first + n).min(self.spec.steps));
        let mut recent = std::collections::VecDeque::with_capacity(100);
        progress.set_position(first as u64);
        while state.step < last {
            let loss = self.step(&vars, &mut state, &device)?;
            if !loss.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("training loss at step {}", state.step),
                    count: 1,
                });
            }
            if recent.len() == 100 {
                recent.pop_front();
            }
            recent.push_back(loss);
            progress.set_message(format!("loss {loss:.4}"));
            progress.set_position(state.step as u64);
            if let Some(p) = state_path {
                if state.step % self.spec.checkpoint_every == 0 && state.step < self.spec.steps {
                    self.save_state(p, &names, &vars, &state)?;
                }
            }
        }
        if state.step == self.spec.steps {
            for (var, ema) in vars.iter().zip(&state.ema) {
                var.set(ema)?;
            }
        } else if let Some(p) = state_path {
            self.save_state(p, &names, &vars, &state)?;
        }
        Ok(TrainReport {
            steps_done: state.step,
            final_loss: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
            seconds: start.elapsed().as_secs_f64(),
            steps_this_run: state.step - first,
        })
    }

    fn step(&self, vars: &[Var], state: &mut State, device: &Device) -> Result<f64> {
        let k = state.step;
        let mut rng = stream_at(self.seed, Purpose::Training, k as u64);
        let idx: Vec<usize> = (0..self.spec.batch_size)
            .map(|_| rng.random_range(0..self.data.len()))
            .collect();
        let (x_t, eps, t) = noised_batch(self.data, &idx, self.schedule, &mut rng, device)?;
        let loss = (self.net.forward(&x_t, &t)? - eps)?.sqr()?.mean_all()?;
        let loss_value = loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let mut grads = gradients(&loss, vars)?;
        if self.spec.grad_clip > 0.0 {
            let norm = global_norm(&grads)?;
            if norm > self.spec.grad_clip {
                let scale = self.spec.grad_clip / (norm + 1e-6);
                grads = grads.iter().map(|g| g * scale).collect::<candle_core::Result<_>>()?;
            }
        }
        state.adam.step(vars, &grads, self.spec.lr_at(k))?;
        let d = self.spec.ema_at(k);
        for (ema, var) in state.ema.iter_mut().zip(vars) {
            kernels::ema_update(ema, var.as_tensor(), d)?;
        }
        state.step += 1;
        Ok(loss_value)
    }

    fn save_state(&self, path: &Path, names: &[String], vars: &[Var], state: &State) -> Result<()> {
        let mut all = BTreeMap::new();
        for (i, name) in names.iter().enumerate() {
            all.insert(format!("param.{name}"), vars[i].as_tensor().clone());
            all.insert(format!("ema.{name}"), state.ema[i].clone());
            all.insert(format!("adam_m.{name}"), state.adam.m[i].clone());
            all.insert(format!("adam_v.{name}"), state.adam.v[i].clone());
        }
        all.insert("meta.step".into(), Tensor::new(state.step as i64, &Device::Cpu)?);
        all.insert("meta.adam_t".into(), Tensor::new(state.adam.t as i64, &Device::Cpu)?);
        all.insert(
            "meta.fingerprint".into(),
            Tensor::new(self.fingerprint.as_bytes(), &Device::Cpu)?,
        );
        save_atomic(&all, path)
    }

    fn load_state(&self, path: &Path, names: &[String], device: &Device) -> Result<State> {
        let file = read(path, device)?;
        let scalar = |k: &str| -> Result<usize> {
            let t = file
                .get(k)
                .ok_or_else(|| Error::file(path, format!("not a training state: no {k}")))?;
            Ok(t.to_scalar::<i64>()? as usize)
        };
        let saved = match file.get("meta.fingerprint") {
            Some(t) => String::from_utf8_lossy(&t.to_vec1::<u8>()?).into_owned(),
            None => String::new(),
        };
        if saved != self.fingerprint {
            return Err(Error::file(
                path,
                format!(
                    "the interrupted training here belongs to a different configuration (fingerprint {}, this one {}): \
                     rerun with --force to start this one over, or restore the experiment it came from",
                    if saved.is_empty() { "none" } else { &saved },
                    self.fingerprint
                ),
            ));
        }
        let group = |prefix: &str| -> HashMap<String, Tensor> {
            names
                .iter()
                .filter_map(|n| file.get(&format!("{prefix}.{n}")).map(|t| (n.clone(), t.clone())))
                .collect()
        };
        load_into(&self.net.varmap, &group("param"), &path.display().to_string())?;
        let ordered = |prefix: &str| -> Result<Vec<Tensor>> {
            let g = group(prefix);
            names
                .iter()
                .map(|n| {
                    g.get(n)
                        .cloned()
                        .ok_or_else(|| Error::file(path, format!("training state has no {prefix}.{n}")))
                })
                .collect()
        };
        Ok(State {
            step: scalar("meta.step")?,
            ema: ordered("ema")?,
            adam: AdamW {
                t: scalar("meta.adam_t")?,
                m: ordered("adam_m")?,
                v: ordered("adam_v")?,
                weight_decay: self.spec.weight_decay,
            },
        })
    }
}

/// √(Σ‖g‖²) over all gradients.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    let mut total = 0.0;
    for g in grads {
        total += g.sqr()?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    }
    Ok(total.sqrt())
}

/// Draws timesteps and noise for the points `idx` of `data` and forms
/// x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε (paper Eq. 4): returns (x_t, ε, t).
pub fn noised_batch(
    data: &Split,
    idx: &[usize],
    schedule: &Schedule,
    rng: &mut ChaCha8Rng,
    device: &Device,
) -> Result<(Tensor, Tensor, Vec<usize>)> {
    let d = data.shape.numel();
    let mut x_t = Vec::with_capacity(idx.len() * d);
    let mut eps = Vec::with_capacity(idx.len() * d);
    let mut ts = Vec::with_capacity(idx.len());
    for &i in idx {
        let t = rng.random_range(0..schedule.timesteps());
        let a = schedule.alpha_bar(Some(t));
        let (sa, s1) = (a.sqrt() as f32, (1.0 - a).sqrt() as f32);
        for &x0 in data.point(i) {
            let e: f32 = StandardNormal.sample(rng);
            x_t.push(sa * x0 + s1 * e);
            eps.push(e);
        }
        ts.push(t);
    }
    let dims = data.shape.batch_dims(idx.len());
    Ok((
        Tensor::from_vec(x_t, dims.clone(), device)?,
        Tensor::from_vec(eps, dims, device)?,
        ts,
    ))
}

/// ∂loss/∂v for every variable in `vars`, in order (zeros for one the loss does not use).
pub fn gradients(loss: &Tensor, vars: &[Var]) -> Result<Vec<Tensor>> {
    let store = loss.backward()?;
    Ok(vars
        .iter()
        .map(|v| {
            store
                .get(v.as_tensor())
                .cloned()
                .map_or_else(|| v.as_tensor().zeros_like(), Ok)
        })
        .collect::<candle_core::Result<Vec<_>>>()?)
}

/// L_simple of `net` on `data` (e.g. the held-out split), averaged over `draws` passes
/// with timesteps and noise from a fixed stream: comparable between models.
pub fn eval_loss(
    net: &dyn crate::model::EpsModel,
    data: &Split,
    schedule: &Schedule,
    seed: u64,
    draws: usize,
    device: &Device,
) -> Result<f64> {
    let mut total = 0.0;
    let mut count = 0usize;
    let batch = 512;
    for draw in 0..draws {
        let mut rng = stream_at(seed, Purpose::Evaluation, draw as u64);
        for start in (0..data.len()).step_by(batch) {
            let idx: Vec<usize> = (start..(start + batch).min(data.len())).collect();
            let (x_t, eps, t) = noised_batch(data, &idx, schedule, &mut rng, device)?;
            let err = (net.eps(&x_t, &t)? - eps)?
                .sqr()?
                .sum_all()?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            total += err;
            count += idx.len() * data.shape.numel();
        }
    }
    Ok(total / count as f64)
}
