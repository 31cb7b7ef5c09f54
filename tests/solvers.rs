//! The solvers beyond DDIM (PLMS, DPM-Solver++(2M), Heun): replayed against diffusers'
//! own schedulers (`tests/fixtures/solver_reference.json`, written by
//! `scripts/reference/make_solver_fixture.py`), their model-evaluation counts, and their
//! convergence orders against the exact probability flow of a single Gaussian.

mod common;

use candle_core::{Device, Tensor};
use common::{matrix, values};
use ddimlab::experiment::measure::exact_flow;
use ddimlab::model::{EpsModel, GaussianMixture, MixtureOracle};
use ddimlab::sampler::{Sampler, SamplerKind, SeededNoise};
use ddimlab::schedule::{Schedule, Tau, TauKind};
use serde::Deserialize;

type Matrix = Vec<Vec<f64>>;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Call {
    t: usize,
    x: Matrix,
    prev_sample: Matrix,
}

#[derive(Deserialize)]
struct Case {
    scheduler: String,
    tau: String,
    num_steps: usize,
    timesteps: Vec<usize>,
    #[serde(rename = "x_T")]
    x_t: Matrix,
    calls: Vec<Call>,
    #[serde(rename = "x_0")]
    x_0: Matrix,
}

/// The fixture's ε: the exact ε of N(0, 0.5² I) plus a smooth perturbation,
/// ε(x, t) = √(1 − ᾱ_t) x / (0.25 ᾱ_t + 1 − ᾱ_t) + 0.1 sin(x + 0.01 t).
struct Analytic(Schedule);

impl EpsModel for Analytic {
    fn eps(&self, x: &Tensor, t: &[usize]) -> ddimlab::error::Result<Tensor> {
        let d = x.elem_count() / t.len();
        let v: Vec<f64> = values(x)
            .iter()
            .enumerate()
            .map(|(i, &xi)| {
                let ti = t[i / d];
                let a = self.0.alpha_bar(Some(ti));
                (1.0 - a).sqrt() * xi / (0.25 * a + 1.0 - a) + 0.1 * (xi + 0.01 * ti as f64).sin()
            })
            .collect();
        Ok(Tensor::from_vec(v, x.shape(), x.device())?)
    }
}

fn flat(m: &Matrix) -> Vec<f64> {
    m.iter().flatten().copied().collect()
}

fn assert_close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    for (g, w) in got.iter().zip(want) {
        assert!(
            (g - w).abs() <= rel * w.abs().max(1.0),
            "{what}: got {g}, diffusers {w}"
        );
    }
}

fn fixture() -> Fixture {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/solver_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// diffusers' loop, replayed: every state after a step and x_0 agree to 1e-10 (both in
/// f64), the model is called exactly as often and at the same timesteps.
///
/// Conventions: diffusers' `trailing` spacing (DPM-Solver) and `leading` spacing with
/// `steps_offset = 0` (PNDM, S dividing T) pick exactly ddimlab's trailing and linear τ.
/// PNDM lists the second timestep twice (its warm-up evaluates the trial state there and
/// then steps again from the top), so its first *step* spans diffusers' calls 1 and 2.
#[test]
fn plms_and_dpmpp_2m_replay_diffusers() {
    let schedule = Schedule::ddpm_linear();
    let model = Analytic(schedule.clone());
    let fixture = fixture();
    assert_eq!(fixture.cases.len(), 8);
    for case in &fixture.cases {
        let (sampler, kind) = match (case.scheduler.as_str(), case.tau.as_str()) {
            ("dpmsolver++2m", "trailing") => (Sampler::DpmSolverPp2M, TauKind::Trailing),
            ("pndm_plms", "linear") => (Sampler::Plms, TauKind::Linear),
            other => panic!("unexpected case {other:?}"),
        };
        let what = format!("{} S = {}", case.scheduler, case.num_steps);
        let tau = Tau::new(kind, case.num_steps, 1000).unwrap();
        let mut distinct = case.timesteps.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct, tau.timesteps(), "{what}: timesteps");
        let x_t = matrix(flat(&case.x_t), 2, 3);
        let out = sampler
            .run(&model, &schedule, &tau, &x_t, &mut SeededNoise::new(0), true)
            .unwrap();
        assert_eq!(out.nfe, case.calls.len(), "{what}: model calls");
        assert_eq!(out.nfe, sampler.nfe(&tau), "{what}: planned NFE");
        let states = out.trajectory.unwrap().states;
        // The state each step ends on: after PNDM's warm-up, diffusers' call k + 1 ends step k.
        let ends: Vec<&Call> = match sampler {
            Sampler::Plms => case.calls[1..].iter().collect(),
            _ => case.calls.iter().collect(),
        };
        assert_eq!(states.len(), ends.len() + 1, "{what}: steps");
        for (k, call) in ends.iter().enumerate() {
            assert_close(
                &values(&states[k + 1]),
                &flat(&call.prev_sample),
                1e-10,
                &format!("{what}: step {k} (t = {})", call.t),
            );
        }
        assert_close(&values(&out.x), &flat(&case.x_0), 1e-10, &format!("{what}: x_0"));
        // Sanity of the replay itself: each call starts where the previous one ended,
        // except PNDM's second call, which evaluates the trial state.
        for (k, pair) in case.calls.windows(2).enumerate() {
            if !(sampler == Sampler::Plms && k == 1) {
                assert_eq!(pair[1].x, pair[0].prev_sample, "{what}: call {}", k + 1);
            }
        }
    }
}

/// Every solver's counted evaluations equal its planned NFE (DDIM and DPM-Solver++ n,
/// PLMS n + 1, Heun 2n − 1) over every τ kind, S = 1 … 12 and repeated timesteps.
#[test]
fn counted_nfe_matches_the_plan_for_every_solver_and_tau() {
    let schedule = Schedule::ddpm_linear();
    let model = Analytic(schedule.clone());
    let x = matrix(vec![0.3, -1.2, 0.7, 2.0, -0.1, 0.5], 2, 3);
    for kind in SamplerKind::ALL {
        for tau_kind in TauKind::ALL {
            for s in (1..=12).chain([30, 50]) {
                let tau = Tau::new(*tau_kind, s, 1000).unwrap();
                let sampler = Sampler::of(*kind);
                let out = sampler
                    .run(&model, &schedule, &tau, &x, &mut SeededNoise::new(1), false)
                    .unwrap();
                let n = tau.len();
                let want = match kind {
                    SamplerKind::Ddim | SamplerKind::Dpmpp2m => n,
                    SamplerKind::Plms => {
                        if n >= 2 {
                            n + 1
                        } else {
                            1
                        }
                    }
                    SamplerKind::Heun => 2 * n - 1,
                };
                assert_eq!((out.nfe, sampler.nfe(&tau)), (want, want), "{kind} {tau_kind} S = {s}");
                assert!(
                    values(&out.x).iter().all(|v| v.is_finite()),
                    "{kind} {tau_kind} S = {s}"
                );
            }
        }
    }
}

/// With one step every solver is the DDIM η = 0 step onto the data (x̂_0 of x_T), and
/// the first step of DPM-Solver++(2M) is DDIM's (its first-order step is DDIM).
#[test]
fn first_order_steps_are_ddim() {
    let schedule = Schedule::ddpm_linear();
    let model = Analytic(schedule.clone());
    let x = matrix(vec![0.3, -1.2, 0.7, 2.0, -0.1, 0.5], 2, 3);
    let run = |sampler: Sampler, tau: &Tau| {
        sampler
            .run(&model, &schedule, tau, &x, &mut SeededNoise::new(0), true)
            .unwrap()
            .trajectory
            .unwrap()
            .states
    };
    let one = Tau::new(TauKind::Linear, 1, 1000).unwrap();
    let ddim = values(&run(Sampler::DDIM, &one)[1]);
    for kind in SamplerKind::ALL {
        assert_close(&values(&run(Sampler::of(*kind), &one)[1]), &ddim, 1e-12, kind.name());
    }
    let ten = Tau::new(TauKind::Linear, 10, 1000).unwrap();
    assert_close(
        &values(&run(Sampler::DpmSolverPp2M, &ten)[1]),
        &values(&run(Sampler::DDIM, &ten)[1]),
        1e-12,
        "first step",
    );
}

/// Where the error is measured: at x_0 against the exact S → ∞ limit
/// (`measure::exact_flow`: the closed-form flow to timestep 0, then the posterior mean),
/// or at timestep 0 (τ_1 of linear τ), before the final jump, against the flow itself.
#[derive(Clone, Copy, Debug)]
enum At {
    Output,
    BeforeJump,
}

/// The RMS error (see [`At`]) for S steps of linear τ on N(μ, diag(s²)) in 2-D, whose ε*
/// and flow are known in closed form, and the NFE it took.
fn flow_error(sampler: Sampler, steps: usize, at: At) -> (usize, f64) {
    let mixture = GaussianMixture::new(vec![1.0], vec![vec![0.3, -0.2]], vec![vec![0.5, 1.0]]).unwrap();
    let schedule = Schedule::ddpm_linear();
    let oracle = MixtureOracle::new(mixture.clone(), schedule.clone());
    let tau = Tau::new(TauKind::Linear, steps, 1000).unwrap();
    let n = 64;
    let mut noise = SeededNoise::new(7);
    let x_t = noise
        .standard_normal(&[n, 2], &Device::Cpu, candle_core::DType::F64)
        .unwrap();
    let out = sampler.run(&oracle, &schedule, &tau, &x_t, &mut noise, true).unwrap();
    let (top, bottom) = (
        schedule.alpha_bar(tau.timesteps().last().copied()),
        schedule.alpha_bar(Some(0)),
    );
    let start = values(&x_t);
    let (got, exact): (Vec<f64>, Vec<f64>) = match at {
        At::Output => {
            let latents: Vec<f32> = start.iter().map(|&v| v as f32).collect();
            let exact = exact_flow(&mixture, &latents, top, bottom).unwrap();
            (values(&out.x), exact.iter().map(|&v| v as f64).collect())
        }
        At::BeforeJump => {
            let states = out.trajectory.unwrap().states;
            let exact = start
                .chunks(2)
                .flat_map(|r| mixture.flow_between(r, top, bottom).unwrap())
                .collect();
            (values(&states[states.len() - 2]), exact)
        }
    };
    let sq: f64 = got.iter().zip(&exact).map(|(g, e)| (g - e).powi(2)).sum();
    (out.nfe, (sq / got.len() as f64).sqrt())
}

/// The least-squares slope p of log(error) against −log(NFE): error ∝ NFE^(−p).
fn fitted_order(sampler: Sampler, steps: &[usize], at: At) -> f64 {
    let points: Vec<(f64, f64)> = steps
        .iter()
        .map(|&s| {
            let (nfe, err) = flow_error(sampler, s, at);
            (-(nfe as f64).ln(), err.ln())
        })
        .collect();
    let k = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / k,
        points.iter().map(|p| p.1).sum::<f64>() / k,
    );
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    sxy / sxx
}

/// Fitted orders where each solver is in its asymptotic range (DPM-Solver++(2M) from
/// S = 40: on linear τ its steps in λ near the data are large below that; PLMS up to
/// S = 80: beyond it, the fixed Adams–Bashforth coefficients meet ε's fast change in t near
/// t = 0 and the error stops falling).
/// - Before the final jump: DDIM (Euler) ≈ 1, DPM-Solver++(2M) and Heun ≈ 2, PLMS ≥ 2.
/// - At x_0: the same, except PLMS, whose last step extrapolates ε onto the data (there is
///   no timestep to evaluate there), an O(h) error: between 1 and 2 (measured 1.7).
#[test]
fn solvers_converge_at_their_theoretical_orders() {
    let (short, long) = ([10, 20, 40, 80], [40, 80, 160, 320]);
    // (solver, S values, the order's range before the final jump, at x_0)
    type Expected<'a> = (SamplerKind, &'a [usize], std::ops::Range<f64>, std::ops::Range<f64>);
    let cases: [Expected; 4] = [
        (SamplerKind::Ddim, &short, 0.85..1.15, 0.85..1.15),
        (SamplerKind::Heun, &short, 1.8..2.3, 1.8..2.3),
        (SamplerKind::Dpmpp2m, &long, 1.8..2.3, 1.8..2.3),
        (SamplerKind::Plms, &short, 2.0..4.5, 1.4..2.0),
    ];
    for (kind, steps, before, output) in cases {
        let s = Sampler::of(kind);
        let (p_before, p_output) = (
            fitted_order(s, steps, At::BeforeJump),
            fitted_order(s, steps, At::Output),
        );
        eprintln!("{kind}: fitted order {p_before:.3} before the final jump, {p_output:.3} at x_0");
        assert!(
            before.contains(&p_before),
            "{kind}: order {p_before:.3} before the jump, expected {before:?}"
        );
        assert!(
            output.contains(&p_output),
            "{kind}: order {p_output:.3} at x_0, expected {output:?}"
        );
    }
    // Higher order pays at equal NFE (≤ 81): every other solver ends closer to the limit
    // than DDIM with 81 evaluations.
    let (_, ddim) = flow_error(Sampler::DDIM, 81, At::Output);
    for (s, steps) in [(Sampler::DpmSolverPp2M, 81), (Sampler::Heun, 41), (Sampler::Plms, 80)] {
        let (nfe, err) = flow_error(s, steps, At::Output);
        assert!(
            nfe <= 81 && err < ddim,
            "{s:?}: {err} at NFE {nfe} vs DDIM {ddim} at 81"
        );
    }
}
