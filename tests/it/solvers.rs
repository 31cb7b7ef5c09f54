//! The solvers beyond DDIM (PLMS, DPM-Solver++(2M), Heun): replayed against diffusers'
//! own schedulers (`tests/fixtures/solver_reference.json`, written by
//! `scripts/reference/make_solver_fixture.py`), their model-evaluation counts, and their
//! convergence orders against the exact probability flow of a single Gaussian.

use crate::common::{device, matrix, values};
use candle_core::{Device, Tensor};
use ddimlab::experiment::measure::exact_flow;
use ddimlab::mixture::GaussianMixture;
use ddimlab::model::{EpsModel, MixtureOracle};
use ddimlab::sampler::{Churn, NoiseSource, Sampler, SamplerKind, SeededNoise};
use ddimlab::schedule::{Schedule, Spacing, Tau, TauKind};
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
            ("dpmsolver++2m", "trailing") => (Sampler::DPMPP_2M, TauKind::Trailing),
            ("pndm_plms", "linear") => (Sampler::Plms, TauKind::Linear),
            other => panic!("unexpected case {other:?}"),
        };
        let what = format!("{} S = {}", case.scheduler, case.num_steps);
        let tau = Tau::new(kind, case.num_steps, 1000).unwrap();
        let mut distinct = case.timesteps.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct, tau.timesteps(), "{what}: timesteps");
        let x_t = matrix(flat(&case.x_t), 2, 3).to_device(&device()).unwrap();
        let out = sampler
            .run(&model, &schedule, &tau, &x_t, &mut SeededNoise::new(0), true)
            .unwrap();
        assert_eq!(out.nfe, case.calls.len(), "{what}: model calls");
        assert_eq!(out.nfe, sampler.nfe(&tau), "{what}: planned NFE");
        assert!(out.x.device().same_device(&device()), "{what}: x_0 left the device");
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
    let spacing = Spacing {
        custom: vec![0, 3, 250, 999],
        ..Spacing::default()
    };
    let churn = Churn {
        s_churn: 10.0,
        ..Churn::NONE
    };
    for kind in SamplerKind::ALL {
        for tau_kind in TauKind::ALL {
            for s in (1..=12).chain([30, 50]) {
                let tau = Tau::spaced(*tau_kind, s, &schedule, &spacing).unwrap();
                let options = ddimlab::sampler::Options {
                    churn,
                    dpmpp_min_r: Some(0.5),
                };
                let sampler = Sampler::configured(*kind, &options);
                let out = sampler
                    .run(&model, &schedule, &tau, &x, &mut SeededNoise::new(1), false)
                    .unwrap();
                let n = tau.len();
                let want = match kind {
                    SamplerKind::Plms => {
                        if n >= 2 {
                            n + 1
                        } else {
                            1
                        }
                    }
                    SamplerKind::Heun => 2 * n - 1,
                    _ => n,
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
        &values(&run(Sampler::DPMPP_2M, &ten)[1]),
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
    flow_error_on(sampler, TauKind::Linear, steps, at)
}

/// [`flow_error`] on τ kind `kind`.
fn flow_error_on(sampler: Sampler, kind: TauKind, steps: usize, at: At) -> (usize, f64) {
    let mixture = GaussianMixture::new(vec![1.0], vec![vec![0.3, -0.2]], vec![vec![0.5, 1.0]]).unwrap();
    let schedule = Schedule::ddpm_linear();
    let oracle = MixtureOracle::new(mixture.clone(), schedule.clone());
    let tau = Tau::spaced(kind, steps, &schedule, &Spacing::default()).unwrap();
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
    fitted_order_on(sampler, TauKind::Linear, steps, at)
}

/// [`fitted_order`] on τ kind `kind`.
fn fitted_order_on(sampler: Sampler, kind: TauKind, steps: &[usize], at: At) -> f64 {
    let points: Vec<(f64, f64)> = steps
        .iter()
        .map(|&s| {
            let (nfe, err) = flow_error_on(sampler, kind, s, at);
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
    for (s, steps) in [
        (Sampler::DPMPP_2M, 81),
        (Sampler::of(SamplerKind::Heun), 41),
        (Sampler::Plms, 80),
    ] {
        let (nfe, err) = flow_error(s, steps, At::Output);
        assert!(
            nfe <= 81 && err < ddim,
            "{s:?}: {err} at NFE {nfe} vs DDIM {ddim} at 81"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The low-NFE solvers and step schedules (`tests/fixtures/lownfe_reference.json`, written
// by `scripts/reference/make_lownfe_fixture.py` from diffusers 0.42.1 in float64 and
// numpy transcriptions of k-diffusion / ComfyUI).

#[derive(Deserialize)]
struct LowNfe {
    cases: Vec<LowCase>,
    taus: std::collections::HashMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct LowCall {
    t: usize,
    #[serde(default)]
    prev_sample: Option<Matrix>,
    #[serde(default)]
    noise: Option<Matrix>,
}

#[derive(Deserialize)]
struct ChurnStep {
    t: usize,
    t_hat: usize,
    noise: Matrix,
    prev_sample: Matrix,
}

#[derive(Deserialize)]
struct Chain {
    calls: Vec<LowCall>,
    #[serde(rename = "x_0")]
    x_0: Matrix,
}

#[derive(Deserialize)]
struct LowCase {
    scheduler: String,
    num_steps: usize,
    timesteps: Vec<usize>,
    #[serde(default)]
    settings: Option<serde_json::Value>,
    #[serde(rename = "x_T")]
    x_t: Matrix,
    calls: Vec<LowCall>,
    #[serde(default)]
    steps: Vec<ChurnStep>,
    #[serde(default)]
    ddimlab_chain: Option<Chain>,
    #[serde(rename = "x_0")]
    x_0: Matrix,
}

fn low_nfe_fixture() -> LowNfe {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/lownfe_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The fixture's noise, served by step index (the solver's step, 0-based).
struct Recorded(Vec<Vec<f64>>);

impl NoiseSource for Recorded {
    fn noise(&mut self, step: usize, like: &Tensor) -> ddimlab::error::Result<Tensor> {
        Ok(Tensor::from_vec(self.0[step].clone(), like.shape(), like.device())?)
    }
}

/// Every new solver replays its reference: each state after a step and x_0 to 1e-10
/// (both f64), with the same model calls. UniPC's states are the predictor's (the
/// corrector moves the state after the next evaluation, as in diffusers' `prev_sample`);
/// DDIM on uniform τ is compared with the fixture's chain over the listed timesteps
/// (diffusers' `DDIMScheduler` steps to t − T/S instead, see the fixture README).
#[test]
fn low_nfe_solvers_replay_their_references() {
    let schedule = Schedule::ddpm_linear();
    let model = Analytic(schedule.clone());
    let fixture = low_nfe_fixture();
    let mut seen = std::collections::BTreeMap::new();
    for case in &fixture.cases {
        let (sampler, kind, churn) = case_sampler(case);
        *seen.entry(case.scheduler.clone()).or_insert(0) += 1;
        let what = format!(
            "{} S = {} {:?}",
            case.scheduler,
            case.num_steps,
            churn.map(|c| c.s_churn)
        );
        let tau = Tau::new(kind, case.num_steps, 1000).unwrap();
        let mut distinct = case.timesteps.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct, tau.timesteps(), "{what}: timesteps");
        let (ends, noise, x_0) = expected_states(case);
        let x_t = matrix(flat(&case.x_t), 2, 3).to_device(&device()).unwrap();
        let out = sampler
            .run(&model, &schedule, &tau, &x_t, &mut Recorded(noise), true)
            .unwrap();
        assert_eq!(out.nfe, case.calls.len(), "{what}: model calls");
        assert_eq!(out.nfe, sampler.nfe(&tau), "{what}: planned NFE");
        assert!(out.x.device().same_device(&device()), "{what}: x_0 left the device");
        let states = out.trajectory.unwrap().states;
        assert_eq!(states.len(), ends.len() + 1, "{what}: steps");
        for (k, end) in ends.iter().enumerate() {
            assert_close(&values(&states[k + 1]), end, 1e-10, &format!("{what}: step {k}"));
        }
        assert_close(&values(&out.x), &flat(x_0), 1e-10, &format!("{what}: x_0"));
        // Churn moves the evaluation to the rounded t̂ ≥ t (t̂ = t where γ = 0).
        for step in &case.steps {
            assert!(step.t_hat >= step.t, "{what}: t̂");
            assert!(case.calls.iter().any(|c| c.t == step.t_hat), "{what}: a call at t̂");
        }
    }
    let counts: Vec<(String, usize)> = seen.into_iter().collect();
    assert_eq!(counts.len(), 8, "{counts:?}");
}

/// The σ-spaced τ kinds and `uniform` pick diffusers' timesteps (`use_karras_sigmas`,
/// `use_lu_lambdas`, `timestep_spacing = "linspace"`), repeats kept once.
#[test]
fn step_schedules_match_diffusers() {
    let schedule = Schedule::ddpm_linear();
    let fixture = low_nfe_fixture();
    for (name, kind) in [
        ("karras", TauKind::Karras),
        ("logsnr", TauKind::Logsnr),
        ("uniform", TauKind::Uniform),
    ] {
        let by_s = fixture.taus[name].as_object().unwrap();
        assert!(by_s.len() >= 4, "{name}");
        for (s, entry) in by_s {
            let want: Vec<usize> = serde_json::from_value(entry["ascending_unique"].clone()).unwrap();
            let tau = Tau::spaced(kind, s.parse().unwrap(), &schedule, &Spacing::default()).unwrap();
            assert_eq!(tau.timesteps(), want.as_slice(), "{name} S = {s}");
        }
    }
}

/// A custom τ is the list as given (sorted), and bad lists are refused with the reason.
#[test]
fn custom_tau_takes_the_list() {
    let tau = Tau::custom(&[999, 0, 500], 1000).unwrap();
    assert_eq!(
        (tau.timesteps(), tau.steps(), tau.kind()),
        (&[0, 500, 999][..], 3, TauKind::Custom)
    );
    for (bad, why) in [(vec![], "empty"), (vec![1000], "outside"), (vec![5, 5], "twice")] {
        let msg = Tau::custom(&bad, 1000).unwrap_err().to_string();
        assert!(msg.contains(why), "{bad:?}: {msg}");
    }
    let rho = Spacing {
        karras_rho: -1.0,
        ..Spacing::default()
    };
    let msg = Tau::spaced(TauKind::Karras, 10, &Schedule::ddpm_linear(), &rho)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("karras_rho"), "{msg}");
}

/// Fitted orders of every deterministic solver against the exact flow of a single
/// Gaussian on the σ-spaced schedules (logsnr, karras), at x_0; see the README's table.
#[test]
fn solvers_converge_on_logsnr_and_karras() {
    let steps = [10, 20, 40, 80];
    for (kind, range) in [
        (SamplerKind::Ddim, 0.8..1.3),
        (SamplerKind::Euler, 0.8..1.3),
        (SamplerKind::Heun, 1.7..2.6),
        (SamplerKind::Dpmpp2m, 1.7..2.6),
        (SamplerKind::Dpmpp3m, 2.5..4.0),
        (SamplerKind::Unipc, 2.5..3.5),
        (SamplerKind::Unipc3, 3.3..5.0),
        // The fixed Adams–Bashforth coefficients assume equal steps in σ: on these grids
        // iPNDM and PLMS come out near 2 (measured 2.2–2.3), not 4.
        (SamplerKind::Ipndm, 1.8..2.8),
        (SamplerKind::Plms, 1.8..2.8),
    ] {
        for tau in [TauKind::Logsnr, TauKind::Karras] {
            let p = fitted_order_on(Sampler::of(kind), tau, &steps, At::Output);
            eprintln!("{kind} on {tau}: fitted order {p:.3} at x_0");
            assert!(range.contains(&p), "{kind} on {tau}: order {p:.3}, expected {range:?}");
        }
    }
}

/// PLMS's fixed Adams–Bashforth coefficients assume equal steps: on linear τ where S does
/// not divide T, ⌊i·T/S⌋ makes uneven integer steps (12 or 13 at S = 80, 6 or 7 at
/// S = 160, a larger relative unevenness), and more steps can end further from the limit;
/// S = 200 divides T = 1000 (steps of 5) and is better than both.
#[test]
fn plms_loses_accuracy_on_uneven_integer_steps() {
    let (_, at_80) = flow_error(Sampler::Plms, 80, At::BeforeJump);
    let (_, at_160) = flow_error(Sampler::Plms, 160, At::BeforeJump);
    let (_, at_200) = flow_error(Sampler::Plms, 200, At::BeforeJump);
    eprintln!("PLMS before the final jump: S = 80 {at_80:.3e}, S = 160 {at_160:.3e}, S = 200 {at_200:.3e}");
    assert!(at_160 > at_80, "S = 160 {at_160} vs S = 80 {at_80}");
    assert!(at_200 < at_80, "S = 200 (divides T) {at_200} vs S = 80 {at_80}");
}

/// DPM-Solver++(2M) on linear τ steps onto t = 0 with r ≈ 0.2 (S = 10): a first-order step
/// there (`dpmpp_min_r`) brings it below DDIM at S = 10 and 20, where diffusers' rule is
/// above; on trailing τ (no t = 0, r near 1) the key changes nothing.
#[test]
fn dpmpp_2m_first_order_below_min_r_fixes_linear_tau() {
    let fixed = Sampler::Dpmpp2m { min_r: Some(0.5) };
    for s in [10, 20] {
        let (_, ddim) = flow_error(Sampler::DDIM, s, At::Output);
        let (_, plain) = flow_error(Sampler::DPMPP_2M, s, At::Output);
        let (_, with_min_r) = flow_error(fixed, s, At::Output);
        eprintln!("S = {s}: DDIM {ddim:.3e}, DPM-Solver++(2M) {plain:.3e}, with min_r 0.5 {with_min_r:.3e}");
        assert!(plain > ddim && with_min_r < ddim, "S = {s}");
    }
    let (_, a) = flow_error_on(Sampler::DPMPP_2M, TauKind::Trailing, 10, At::Output);
    let (_, b) = flow_error_on(fixed, TauKind::Trailing, 10, At::Output);
    assert_eq!(a, b);
}

/// The solver a fixture case names, its τ kind, and its churn settings.
fn case_sampler(case: &LowCase) -> (Sampler, TauKind, Option<Churn>) {
    let churn = case.settings.as_ref().and_then(|s| s.get("s_churn")).map(|_| {
        let v = case.settings.as_ref().unwrap();
        let f = |k: &str| v[k].as_f64().unwrap();
        Churn {
            s_churn: f("s_churn"),
            s_tmin: f("s_tmin"),
            s_tmax: Some(f("s_tmax")),
            s_noise: f("s_noise"),
        }
    });
    let (sampler, kind) = match case.scheduler.as_str() {
        "unipc_bh2_2" => (Sampler::Unipc { order: 2 }, TauKind::Trailing),
        "unipc_bh2_3" => (Sampler::Unipc { order: 3 }, TauKind::Trailing),
        "dpmsolver++3m" => (Sampler::Dpmpp3m, TauKind::Trailing),
        "sde-dpmsolver++2m" => (Sampler::Dpmpp2mSde, TauKind::Trailing),
        "ddim_linspace" => (Sampler::DDIM, TauKind::Uniform),
        "ipndm" => (Sampler::Ipndm, TauKind::Trailing),
        "heun_churn" => (Sampler::Heun { churn: churn.unwrap() }, TauKind::Trailing),
        "euler_churn" => (Sampler::Euler { churn: churn.unwrap() }, TauKind::Trailing),
        other => panic!("unexpected case {other:?}"),
    };
    (sampler, kind, churn)
}

/// Each step's state the solver must reach, the noise by step, and x_0: from the chain
/// ddimlab runs where diffusers steps differently, else from the reference's steps or calls.
fn expected_states(case: &LowCase) -> (Vec<Vec<f64>>, Vec<Vec<f64>>, &Matrix) {
    match (&case.ddimlab_chain, case.steps.is_empty()) {
        (Some(chain), _) => (
            chain
                .calls
                .iter()
                .map(|c| flat(c.prev_sample.as_ref().unwrap()))
                .collect(),
            Vec::new(),
            &chain.x_0,
        ),
        (None, false) => (
            case.steps.iter().map(|s| flat(&s.prev_sample)).collect(),
            case.steps.iter().map(|s| flat(&s.noise)).collect(),
            &case.x_0,
        ),
        (None, true) => (
            case.calls
                .iter()
                .map(|c| flat(c.prev_sample.as_ref().unwrap()))
                .collect(),
            case.calls
                .iter()
                .map(|c| c.noise.as_ref().map(flat).unwrap_or_default())
                .collect(),
            &case.x_0,
        ),
    }
}
