//! Replays `tests/fixtures/ddim_reference.json`, written by the independent numpy
//! implementation `scripts/reference/make_ddim_fixture.py` (it mirrors the official DDIM
//! code, `functions/denoising.py`), step by step, in f64 and in f32.

use std::collections::BTreeMap;

use crate::common::{device, values};
use candle_core::{DType, Tensor};
use ddimlab::model::EpsModel;
use ddimlab::sampler::{encode, Eta, NoiseSource, Sampler};
use ddimlab::schedule::{BetaSchedule, Schedule, Tau, TauKind};
use serde::Deserialize;

type Matrix = Vec<Vec<f64>>;

#[derive(Deserialize)]
struct Fixture {
    #[serde(rename = "T")]
    t: usize,
    schedules: BTreeMap<String, ScheduleValues>,
    taus: Vec<TauCase>,
    sample_cases: Vec<SampleCase>,
    encode_cases: Vec<EncodeCase>,
}

#[derive(Deserialize)]
struct ScheduleValues {
    indices: Vec<usize>,
    beta: Vec<f64>,
    alpha_bar: Vec<f64>,
}

#[derive(Deserialize)]
struct TauCase {
    kind: String,
    steps: usize,
    timesteps: Vec<usize>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum EtaValue {
    Number(f64),
    Name(String),
}

#[derive(Deserialize)]
struct SampleStep {
    t: usize,
    t_prev: i64,
    x0_pred: Matrix,
    x: Matrix,
}

#[derive(Deserialize)]
struct SampleCase {
    name: String,
    schedule: String,
    tau: String,
    num_steps: usize,
    eta: EtaValue,
    clip_x0: bool,
    timesteps: Vec<usize>,
    #[serde(rename = "x_T")]
    x_t: Matrix,
    noise: Vec<Matrix>,
    steps: Vec<SampleStep>,
}

#[derive(Deserialize)]
struct EncodeStep {
    t_from: i64,
    t_to: usize,
    x: Matrix,
}

#[derive(Deserialize)]
struct EncodeCase {
    name: String,
    schedule: String,
    tau: String,
    num_steps: usize,
    timesteps: Vec<usize>,
    x_0: Matrix,
    steps: Vec<EncodeStep>,
    #[serde(rename = "x_T")]
    x_t: Matrix,
    decoded: Matrix,
}

fn fixture() -> Fixture {
    let text = include_str!("../fixtures/ddim_reference.json");
    serde_json::from_str(text).expect("fixture parses")
}

fn schedule(name: &str) -> Schedule {
    let kind = match name {
        "linear" => BetaSchedule::Linear,
        "quadratic" => BetaSchedule::Quadratic,
        "cosine" => BetaSchedule::Cosine,
        other => panic!("unknown schedule {other}"),
    };
    Schedule::new(kind, 1000, 1e-4, 0.02).unwrap()
}

fn tau_kind(name: &str) -> TauKind {
    *TauKind::ALL
        .iter()
        .find(|k| k.name() == name)
        .unwrap_or_else(|| panic!("unknown tau {name}"))
}

fn tensor(m: &Matrix, dtype: DType) -> Tensor {
    let flat: Vec<f64> = m.iter().flatten().copied().collect();
    Tensor::from_vec(flat, (m.len(), m[0].len()), &device())
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

/// ε(x, t) = 0.8 sin(x + 0.01 t) + 0.1 cos(0.5 x), the fixture's stand-in for a network.
struct Analytic;

impl EpsModel for Analytic {
    fn eps(&self, x: &Tensor, t: &[usize]) -> ddimlab::Result<Tensor> {
        let cols = x.elem_count() / x.dim(0)?;
        let v: Vec<f64> = values(x)
            .iter()
            .enumerate()
            .map(|(i, x)| 0.8 * (x + 0.01 * t[i / cols] as f64).sin() + 0.1 * (0.5 * x).cos())
            .collect();
        Ok(Tensor::from_vec(v, x.shape(), x.device())?.to_dtype(x.dtype())?)
    }
}

/// The fixture's per-step noise, in sampling order.
struct Replay(Vec<Tensor>);

impl NoiseSource for Replay {
    fn noise(&mut self, step: usize, _like: &Tensor) -> ddimlab::Result<Tensor> {
        Ok(self.0[step].clone())
    }
}

fn assert_close(got: &Tensor, want: &Matrix, tol: f64, what: &str) {
    let want: Vec<f64> = want.iter().flatten().copied().collect();
    for (g, w) in values(got).iter().zip(&want) {
        assert!((g - w).abs() <= tol * (1.0 + w.abs()), "{what}: {g} vs {w}");
    }
}

#[test]
fn schedules_match_the_reference() {
    let f = fixture();
    assert_eq!(f.t, 1000);
    assert_eq!(f.schedules.len(), 3);
    for (name, v) in &f.schedules {
        let s = schedule(name);
        for (k, &i) in v.indices.iter().enumerate() {
            assert!((s.betas()[i] - v.beta[k]).abs() <= 1e-12 * v.beta[k], "{name} β_{i}");
            assert!(
                (s.alpha_bars()[i] - v.alpha_bar[k]).abs() <= 1e-10 * v.alpha_bar[k],
                "{name} ᾱ_{i}"
            );
        }
    }
}

#[test]
fn tau_subsequences_match_the_reference() {
    let f = fixture();
    assert!(f.taus.len() >= 20);
    for case in &f.taus {
        let tau = Tau::new(tau_kind(&case.kind), case.steps, f.t).unwrap();
        assert_eq!(
            tau.timesteps(),
            case.timesteps.as_slice(),
            "{} S = {}",
            case.kind,
            case.steps
        );
    }
}

#[test]
fn sampling_matches_the_reference_step_by_step() {
    let f = fixture();
    assert_eq!(f.sample_cases.len(), 10);
    for (dtype, tol) in [(DType::F64, 1e-9), (DType::F32, 1e-5)] {
        for case in &f.sample_cases {
            let eta = match &case.eta {
                EtaValue::Number(v) => Eta::new(*v).unwrap(),
                EtaValue::Name(n) if n == "sigma_hat" => Eta::SigmaHat,
                EtaValue::Name(n) => panic!("unknown eta {n}"),
            };
            let tau = Tau::new(tau_kind(&case.tau), case.num_steps, f.t).unwrap();
            assert_eq!(tau.timesteps(), case.timesteps.as_slice(), "{}", case.name);
            let ddim = Sampler::Ddim {
                eta,
                clip_x0: case.clip_x0,
            };
            let mut noise = Replay(case.noise.iter().map(|m| tensor(m, dtype)).collect());
            let x_t = tensor(&case.x_t, dtype);
            let out = ddim
                .run(&Analytic, &schedule(&case.schedule), &tau, &x_t, &mut noise, true)
                .unwrap();
            assert!(
                out.x.device().same_device(&device()),
                "{}: x_0 left the device",
                case.name
            );
            let tr = out.trajectory.unwrap();
            assert_eq!(tr.x0_preds.len(), case.steps.len(), "{}", case.name);
            for (k, step) in case.steps.iter().enumerate() {
                let what = format!("{} ({dtype:?}) step {k} t = {} → {}", case.name, step.t, step.t_prev);
                assert_eq!(tr.timesteps[k], Some(step.t), "{what}");
                assert_eq!(tr.timesteps[k + 1].map_or(-1, |t| t as i64), step.t_prev, "{what}");
                assert_close(&tr.x0_preds[k], &step.x0_pred, tol, &format!("{what}: x̂_0"));
                assert_close(&tr.states[k + 1], &step.x, tol, &format!("{what}: x"));
            }
        }
    }
}

#[test]
fn encoding_and_decoding_match_the_reference() {
    let f = fixture();
    assert_eq!(f.encode_cases.len(), 3);
    for case in &f.encode_cases {
        let sched = schedule(&case.schedule);
        let tau = Tau::new(tau_kind(&case.tau), case.num_steps, f.t).unwrap();
        assert_eq!(tau.timesteps(), case.timesteps.as_slice());
        let out = encode(&Analytic, &sched, &tau, &tensor(&case.x_0, DType::F64), true).unwrap();
        let tr = out.trajectory.unwrap();
        for (k, step) in case.steps.iter().enumerate() {
            assert_eq!(tr.timesteps[k].map_or(-1, |t| t as i64), step.t_from);
            assert_eq!(tr.timesteps[k + 1], Some(step.t_to));
            assert_close(&tr.states[k + 1], &step.x, 1e-9, &format!("{} step {k}", case.name));
        }
        assert_close(&out.x, &case.x_t, 1e-9, &case.name);
        let back = crate::common::decode(&Analytic, &sched, &tau, &out.x, false).unwrap();
        assert_close(&back.x, &case.decoded, 1e-9, &format!("{} decoded", case.name));
    }
}
