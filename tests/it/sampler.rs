//! The generalized sampler against closed forms (paper Eq. 12, 14, 16, Lemma 1).

use crate::common::{matrix, values, Counting};
use candle_core::{DType, Device, Tensor};
use ddimlab::mixture::GaussianMixture;
use ddimlab::model::{EpsModel, MixtureOracle};
use ddimlab::sampler::{self, encode, Eta, Sampler, SeededNoise, StepCoefficients};

use crate::common::decode;
use ddimlab::schedule::{Schedule, Tau, TauKind};

/// The N(0, s²I) oracle in one dimension.
fn gaussian_oracle(s: f64) -> MixtureOracle {
    MixtureOracle::new(
        GaussianMixture::isotropic(vec![1.0], vec![vec![0.0]], vec![s]).unwrap(),
        Schedule::ddpm_linear(),
    )
}

/// A non-trivial 2-D mixture with diagonal covariances.
fn mixture_2d() -> GaussianMixture {
    GaussianMixture::new(
        vec![0.3, 0.7],
        vec![vec![-2.0, 0.5], vec![1.5, -1.0]],
        vec![vec![0.3, 0.5], vec![0.6, 0.2]],
    )
    .unwrap()
}

/// The scalar c(S, τ) with x_0 = c · x_T for the N(0, s²) oracle at η = 0, by the f64
/// recurrence of Eq. 12 with ε* = x √(1−ᾱ)/(ᾱ s² + 1 − ᾱ), written out by hand.
fn closed_form_c(schedule: &Schedule, tau: &Tau, s: f64) -> f64 {
    let ts = tau.timesteps();
    let mut c = 1.0;
    for i in (0..ts.len()).rev() {
        let a = schedule.alpha_bars()[ts[i]];
        let ap = if i == 0 { 1.0 } else { schedule.alpha_bars()[ts[i - 1]] };
        let e = (1.0 - a).sqrt() / (a * s * s + 1.0 - a); // ε = e · x
        let x0 = (1.0 - (1.0 - a).sqrt() * e) / a.sqrt(); // x̂_0 = x0 · x
        c *= ap.sqrt() * x0 + (1.0 - ap).sqrt() * e;
    }
    c
}

#[test]
fn single_gaussian_oracle_matches_its_analytic_eps() {
    let (s, oracle, sched) = (0.5, gaussian_oracle(0.5), Schedule::ddpm_linear());
    let x = matrix(vec![-1.5, 0.2, 3.0], 3, 1);
    for t in [0, 10, 500, 999] {
        let a = sched.alpha_bars()[t];
        let got = values(&oracle.eps(&x, &[t; 3]).unwrap());
        for (g, xv) in got.iter().zip(values(&x)) {
            let want = xv * (1.0 - a).sqrt() / (a * s * s + 1.0 - a);
            assert!((g - want).abs() < 1e-12, "t = {t}: {g} vs {want}");
        }
    }
}

#[test]
fn eta_zero_is_the_closed_form_scalar_map_and_converges_at_first_order() {
    let s = 0.5;
    let (oracle, sched) = (gaussian_oracle(s), Schedule::ddpm_linear());
    let x_t = matrix(vec![-1.0, 0.5, 2.0], 3, 1);
    let a_top = sched.alpha_bars()[999];
    let c_exact = s / (a_top * s * s + 1.0 - a_top).sqrt();
    let steps = [10, 20, 50, 100, 200, 500, 1000];
    let mut log_s = Vec::new();
    let mut log_err = Vec::new();
    for s_steps in steps {
        let tau = Tau::new(TauKind::Trailing, s_steps, 1000).unwrap();
        let c = closed_form_c(&sched, &tau, s);
        let out = decode(&oracle, &sched, &tau, &x_t, false).unwrap();
        for (got, x) in values(&out.x).iter().zip(values(&x_t)) {
            assert!((got - c * x).abs() < 1e-12, "S = {s_steps}: {got} vs {}", c * x);
        }
        log_s.push((s_steps as f64).ln());
        log_err.push((c - c_exact).abs().ln());
    }
    let slope = fitted_slope(&log_s, &log_err);
    assert!((-1.3..=-0.7).contains(&slope), "log-log slope {slope}");
    // The error really shrinks: ×≥ 50 from S = 10 to S = 1000.
    assert!(log_err[0] - log_err[steps.len() - 1] > 50f64.ln());
}

fn fitted_slope(x: &[f64], y: &[f64]) -> f64 {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx).powi(2)).sum();
    sxy / sxx
}

fn round_trip_errors(model: &dyn EpsModel, x0: &Tensor, kind: TauKind) -> Vec<f64> {
    let sched = Schedule::ddpm_linear();
    [10, 20, 50, 100, 200, 500, 1000]
        .iter()
        .map(|&s| {
            let tau = Tau::new(kind, s, 1000).unwrap();
            let latent = encode(model, &sched, &tau, x0, false).unwrap().x;
            let back = decode(model, &sched, &tau, &latent, false).unwrap().x;
            let (a, b) = (values(x0), values(&back));
            a.iter().zip(&b).map(|(p, q)| (p - q).powi(2)).sum::<f64>() / a.len() as f64
        })
        .collect()
}

#[test]
fn round_trip_error_falls_monotonically_with_steps() {
    let single = gaussian_oracle(0.5);
    let x0 = matrix(vec![-0.8, -0.1, 0.3, 0.9], 4, 1);
    let mixture = MixtureOracle::new(mixture_2d(), Schedule::ddpm_linear());
    let mut noise = SeededNoise::new(7);
    let y0 = noise.standard_normal(&[64, 2], &Device::Cpu, DType::F64).unwrap();
    // Points near the modes: μ_k + s_k z.
    let y0 = (y0 * 0.3)
        .unwrap()
        .broadcast_add(&matrix(vec![1.5, -1.0], 1, 2))
        .unwrap();
    for kind in [TauKind::Linear, TauKind::Quadratic] {
        for (name, errs) in [
            ("N(0, s²)", round_trip_errors(&single, &x0, kind)),
            ("mixture", round_trip_errors(&mixture, &y0, kind)),
        ] {
            assert!(errs.windows(2).all(|w| w[1] < w[0]), "{name}, {kind}: {errs:?}");
            assert!(errs[errs.len() - 1] < errs[0] / 10.0, "{name}, {kind}: {errs:?}");
        }
    }
}

#[test]
fn eta_one_is_the_ddpm_posterior_at_full_t() {
    let sched = Schedule::ddpm_linear();
    let tau = Tau::new(TauKind::Linear, 1000, 1000).unwrap();
    for (t, prev) in tau.transitions() {
        let (a, ap) = (sched.alpha_bar(Some(t)), sched.alpha_bar(prev));
        let beta = sched.betas()[t];
        let c = StepCoefficients::new(a, ap, Eta::Value(1.0));
        // β̃_t = (1 − ᾱ_{t−1})/(1 − ᾱ_t) · β_t (DDPM Eq. 7).
        let beta_tilde = (1.0 - ap) / (1.0 - a) * beta;
        assert!(
            (c.noise.powi(2) - beta_tilde).abs() <= 1e-12 * beta_tilde.max(1e-300),
            "t = {t}"
        );
        // Mean: Eq. 12 with ε = (x_t − √ᾱ x̂_0)/√(1−ᾱ) equals μ̃_t(x_t, x̂_0) (DDPM Eq. 7):
        // coefficient of x̂_0: c.x0 − c.eps √ᾱ/√(1−ᾱ); of x_t: c.eps/√(1−ᾱ).
        let alpha = 1.0 - beta;
        let mu_x0 = ap.sqrt() * beta / (1.0 - a);
        let mu_xt = alpha.sqrt() * (1.0 - ap) / (1.0 - a);
        assert!(
            (c.x0 - c.eps * a.sqrt() / (1.0 - a).sqrt() - mu_x0).abs() < 1e-9,
            "t = {t}"
        );
        assert!((c.eps / (1.0 - a).sqrt() - mu_xt).abs() < 1e-9, "t = {t}");
        // σ̂ keeps the direction term and injects √β_t, except on the last step.
        let hat = StepCoefficients::new(a, ap, Eta::SigmaHat);
        assert_eq!(hat.eps, c.eps);
        let want = if prev.is_some() { beta.sqrt() } else { 0.0 };
        assert!((hat.noise - want).abs() < 1e-12, "t = {t}");
    }
}

#[test]
fn sigma_follows_eq_16() {
    let (a, ap): (f64, f64) = (0.3, 0.6);
    let want = 0.5 * ((1.0 - ap) / (1.0 - a) * (1.0 - a / ap)).sqrt();
    assert!((sampler::sigma(a, ap, 0.5) - want).abs() < 1e-15);
    let c = StepCoefficients::new(a, ap, Eta::Value(0.5));
    assert!((c.eps - (1.0 - ap - want * want).sqrt()).abs() < 1e-15);
    assert_eq!(c.x0, ap.sqrt());
}

/// Sample mean, covariance and per-component mass of x_0 ~ the sampler match the mixture.
#[test]
fn marginals_are_preserved_for_every_eta() {
    let mixture = mixture_2d();
    let sched = Schedule::ddpm_linear();
    let oracle = MixtureOracle::new(mixture.clone(), sched.clone());
    let tau = Tau::new(TauKind::Linear, 1000, 1000).unwrap();
    let n = 4000;
    let x_t = SeededNoise::new(11)
        .standard_normal(&[n, 2], &Device::Cpu, DType::F64)
        .unwrap();
    let (mean, cov) = (mixture.mean(), mixture.covariance());
    for (i, eta) in [Eta::Value(0.0), Eta::Value(0.5), Eta::Value(1.0), Eta::SigmaHat]
        .into_iter()
        .enumerate()
    {
        let ddim = Sampler::Ddim { eta, clip_x0: false };
        let out = ddim
            .run(
                &oracle,
                &sched,
                &tau,
                &x_t,
                &mut SeededNoise::new(100 + i as u64),
                false,
            )
            .unwrap();
        let v = values(&out.x);
        let rows: Vec<&[f64]> = v.chunks(2).collect();
        let nf = n as f64;
        for j in 0..2 {
            let m = rows.iter().map(|r| r[j]).sum::<f64>() / nf;
            let se = (cov[j][j] / nf).sqrt();
            assert!(
                (m - mean[j]).abs() < 4.0 * se + 0.01,
                "{eta}: mean[{j}] {m} vs {}",
                mean[j]
            );
        }
        let m: Vec<f64> = (0..2).map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / nf).collect();
        for j in 0..2 {
            for k in 0..2 {
                let c = rows.iter().map(|r| (r[j] - m[j]) * (r[k] - m[k])).sum::<f64>() / (nf - 1.0);
                // sd of a sample covariance ≈ √((Σ_jj Σ_kk + Σ_jk²)/n) for Gaussian-like data; heavier for mixtures.
                let se = ((cov[j][j] * cov[k][k] + cov[j][k].powi(2)) / nf).sqrt();
                assert!(
                    (c - cov[j][k]).abs() < 5.0 * se + 0.02,
                    "{eta}: cov[{j}][{k}] {c} vs {}",
                    cov[j][k]
                );
            }
        }
        let mut mass = [0.0; 2];
        for r in &rows {
            let resp = mixture.responsibilities(r, 1.0);
            mass[if resp[0] > resp[1] { 0 } else { 1 }] += 1.0 / nf;
        }
        for (k, w) in mixture.weights().iter().enumerate() {
            let se = (w * (1.0 - w) / nf).sqrt();
            assert!((mass[k] - w).abs() < 4.0 * se, "{eta}: mass[{k}] {} vs {w}", mass[k]);
        }
    }
}

#[test]
fn the_model_is_called_once_per_distinct_timestep() {
    let mixture = MixtureOracle::new(mixture_2d(), Schedule::ddpm_linear());
    let sched = Schedule::ddpm_linear();
    let x = matrix(vec![0.1, 0.2, -0.3, 0.4], 2, 2);
    for (kind, s) in [
        (TauKind::Linear, 10),
        (TauKind::Quadratic, 100),
        (TauKind::Trailing, 16),
    ] {
        let tau = Tau::new(kind, s, 1000).unwrap();
        let counting = Counting::new(&mixture);
        let ddim = Sampler::Ddim {
            eta: Eta::DDIM,
            clip_x0: false,
        };
        let out = ddim
            .run(&counting, &sched, &tau, &x, &mut SeededNoise::new(0), false)
            .unwrap();
        assert_eq!((counting.calls(), out.nfe), (tau.len(), tau.len()));
        let mut seen = counting.seen.lock().unwrap().clone();
        seen.reverse();
        assert_eq!(seen, tau.timesteps());
        let counting = Counting::new(&mixture);
        encode(&counting, &sched, &tau, &x, false).unwrap();
        assert_eq!(*counting.seen.lock().unwrap(), tau.timesteps());
    }
}

#[test]
fn trajectories_record_every_state() {
    let oracle = gaussian_oracle(0.5);
    let sched = Schedule::ddpm_linear();
    let tau = Tau::new(TauKind::Quadratic, 10, 1000).unwrap();
    let x = matrix(vec![1.0, -2.0], 2, 1);
    let out = decode(&oracle, &sched, &tau, &x, true).unwrap();
    let tr = out.trajectory.unwrap();
    assert_eq!((tr.states.len(), tr.x0_preds.len()), (11, 10));
    assert_eq!(tr.timesteps.first(), Some(&Some(800)));
    assert_eq!(tr.timesteps.last(), Some(&None));
    assert_eq!(values(&tr.states[10]), values(&out.x));
    assert_eq!(values(&tr.states[0]), values(&x));
}

#[test]
fn clipping_bounds_the_x0_prediction() {
    let oracle = gaussian_oracle(3.0); // wide data: x̂_0 leaves [−1, 1]
    let sched = Schedule::ddpm_linear();
    let tau = Tau::new(TauKind::Linear, 10, 1000).unwrap();
    let x = matrix(vec![2.5, -2.5], 2, 1);
    let clipped = Sampler::Ddim {
        eta: Eta::DDIM,
        clip_x0: true,
    };
    let out = clipped
        .run(&oracle, &sched, &tau, &x, &mut SeededNoise::new(0), true)
        .unwrap();
    let tr = out.trajectory.unwrap();
    assert!(tr.x0_preds.iter().all(|p| values(p).iter().all(|v| v.abs() <= 1.0)));
    assert!(values(&out.x).iter().all(|v| v.abs() <= 1.0 + 1e-12));
    let free = decode(&oracle, &sched, &tau, &x, false).unwrap();
    assert!(values(&free.x).iter().any(|v| v.abs() > 1.0));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let oracle = gaussian_oracle(0.5);
    let sched = Schedule::ddpm_linear();
    let tau = Tau::new(TauKind::Linear, 10, 1000).unwrap();
    let nan = matrix(vec![0.0, f64::NAN, 1.0], 3, 1);
    let err = decode(&oracle, &sched, &tau, &nan, false).unwrap_err().to_string();
    assert!(
        err.contains("sampler input x_T") && err.contains("1 non-finite"),
        "{err}"
    );
    let err = encode(&oracle, &sched, &tau, &nan, false).unwrap_err().to_string();
    assert!(err.contains("encoder input x_0"), "{err}");
    // A τ built for a longer schedule.
    let short = Schedule::new(ddimlab::schedule::BetaSchedule::Linear, 100, 1e-4, 0.02).unwrap();
    let err = decode(&oracle, &short, &tau, &matrix(vec![0.0], 1, 1), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("T = 100"), "{err}");
    // No batch dimension.
    let flat = Tensor::new(&[0.0f64, 1.0], &Device::Cpu).unwrap();
    assert!(decode(&oracle, &sched, &tau, &flat, false).is_err());
    // Wrong data dimension for the oracle.
    assert!(oracle.eps(&matrix(vec![0.0, 1.0], 1, 2), &[5]).is_err());
    assert!(Eta::new(-0.5).is_err());
}

#[test]
fn f32_and_f64_agree() {
    let oracle = MixtureOracle::new(mixture_2d(), Schedule::ddpm_linear());
    let sched = Schedule::ddpm_linear();
    let tau = Tau::new(TauKind::Quadratic, 20, 1000).unwrap();
    let x = SeededNoise::new(3)
        .standard_normal(&[16, 2], &Device::Cpu, DType::F64)
        .unwrap();
    let a = decode(&oracle, &sched, &tau, &x, false).unwrap().x;
    let b = decode(&oracle, &sched, &tau, &x.to_dtype(DType::F32).unwrap(), false)
        .unwrap()
        .x;
    assert_eq!(b.dtype(), DType::F32);
    for (p, q) in values(&a).iter().zip(values(&b)) {
        assert!((p - q).abs() < 1e-4, "{p} vs {q}");
    }
}
