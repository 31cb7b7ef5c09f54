//! The empirical oracle: the exact ε* of a training set smoothed by N(0, h² I), checked
//! against hand derivations and against the independent Gaussian-mixture oracle.

use candle_core::{DType, Device, Tensor};
use ddimlab::model::{EmpiricalMixture, EmpiricalOracle, EpsModel, MixtureOracle};
use ddimlab::rng::{stream, Purpose};
use ddimlab::sampler::{PerSampleNoise, Sampler};
use ddimlab::schedule::{BetaSchedule, Schedule, Tau, TauKind};

fn schedule() -> Schedule {
    Schedule::new(BetaSchedule::Linear, 1000, 1e-4, 0.02).unwrap()
}

fn eps(model: &dyn EpsModel, x: &[f64], d: usize, t: usize) -> Vec<f64> {
    let n = x.len() / d;
    let xt = Tensor::from_slice(x, (n, d), &Device::Cpu).unwrap();
    model
        .eps(&xt, &vec![t; n])
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

/// A few scattered points in 3-D.
fn points() -> Vec<f32> {
    vec![0.5, -0.2, 0.1, -0.7, 0.3, 0.9, 0.2, 0.8, -0.5, -0.1, -0.9, 0.4]
}

#[test]
fn one_training_point_gives_the_closed_form() {
    // x_0 ~ N(μ, h²I): E[x_0|x_t] = μ + √ᾱ h²/v (x_t − √ᾱ μ), v = ᾱh² + 1 − ᾱ.
    let (mu, h) = ([0.3f32, -0.6], 0.25f64);
    let s = schedule();
    let oracle = EmpiricalOracle::new(EmpiricalMixture::new(&mu, 2, h).unwrap(), s.clone());
    let x = [1.2, -0.4, -0.3, 0.8];
    for t in [0, 10, 500, 999] {
        let a = s.alpha_bar(Some(t));
        let v = a * h * h + 1.0 - a;
        let got = eps(&oracle, &x, 2, t);
        for (i, g) in got.iter().enumerate() {
            let m = mu[i % 2] as f64;
            let mean = m + a.sqrt() * h * h / v * (x[i] - a.sqrt() * m);
            let want = (x[i] - a.sqrt() * mean) / (1.0 - a).sqrt();
            assert!((g - want).abs() < 1e-9 * want.abs().max(1.0), "t {t}: {g} vs {want}");
        }
    }
}

#[test]
fn equals_the_gaussian_mixture_oracle_with_those_means() {
    let (p, h) = (points(), 0.3);
    let s = schedule();
    let emp = EmpiricalMixture::new(&p, 3, h).unwrap();
    let gm = MixtureOracle::new(emp.to_gaussian_mixture().unwrap(), s.clone());
    let oracle = EmpiricalOracle::new(emp, s);
    let x: Vec<f64> = (0..30).map(|i| ((i * 37 % 17) as f64 / 8.0) - 1.0).collect();
    for t in [0, 3, 250, 700, 999] {
        let (a, b) = (eps(&oracle, &x, 3, t), eps(&gm, &x, 3, t));
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-9 * v.abs().max(1.0), "t {t}: {u} vs {v}");
        }
    }
}

#[test]
fn a_batch_of_many_rows_and_mixed_timesteps_equals_the_mixture_oracle_row_by_row() {
    // 150 rows (more than two tasks of 64) whose timesteps change in runs of uneven length,
    // over 37 training points in 5-D: every row is evaluated at its own t.
    let (d, h) = (5, 0.15);
    let p: Vec<f32> = (0..37 * d).map(|i| ((i * 53 % 41) as f32 / 20.0) - 1.0).collect();
    let s = schedule();
    let emp = EmpiricalMixture::new(&p, d, h).unwrap();
    let gm = MixtureOracle::new(emp.to_gaussian_mixture().unwrap(), s.clone());
    let oracle = EmpiricalOracle::new(emp, s);
    let n = 150;
    let x: Vec<f64> = (0..n * d).map(|i| ((i * 29 % 31) as f64 / 10.0) - 1.5).collect();
    let t: Vec<usize> = (0..n).map(|i| [0, 7, 480, 999][(i / 23 + i / 61) % 4]).collect();
    let xt = Tensor::from_slice(&x, (n, d), &Device::Cpu).unwrap();
    let got = oracle
        .eps(&xt, &t)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    for (i, row) in got.chunks(d).enumerate() {
        let want = eps(&gm, &x[i * d..(i + 1) * d], d, t[i]);
        for (u, v) in row.iter().zip(&want) {
            assert!(
                (u - v).abs() < 1e-9 * v.abs().max(1.0),
                "row {i}, t {}: {u} vs {v}",
                t[i]
            );
        }
    }
}

#[test]
fn posterior_weights_are_a_softmax_over_training_points() {
    let (p, h) = (points(), 0.2);
    let emp = EmpiricalMixture::new(&p, 3, h).unwrap();
    let x = [0.1, 0.2, -0.3];
    let a = 0.6;
    let r = emp.responsibilities(&x, a);
    let v = a * h * h + 1.0 - a;
    let logits: Vec<f64> = p
        .chunks(3)
        .map(|xi| {
            -xi.iter()
                .zip(&x)
                .map(|(q, u)| (u - a.sqrt() * *q as f64).powi(2))
                .sum::<f64>()
                / (2.0 * v)
        })
        .collect();
    let z: f64 = logits.iter().map(|l| l.exp()).sum();
    for (i, l) in logits.iter().enumerate() {
        assert!((r[i] - l.exp() / z).abs() < 1e-12, "{} vs {}", r[i], l.exp() / z);
    }
}

#[test]
fn extreme_timesteps_and_far_inputs_stay_finite() {
    let s = schedule();
    for h in [0.0, 0.2] {
        let oracle = EmpiricalOracle::new(EmpiricalMixture::new(&points(), 3, h).unwrap(), s.clone());
        let x = [300.0, -250.0, 80.0, 0.5, 0.5, 0.5];
        for t in [0, 1, 998, 999] {
            let e = eps(&oracle, &x, 3, t);
            assert!(e.iter().all(|v| v.is_finite()), "h {h}, t {t}: {e:?}");
        }
    }
}

#[test]
fn h_zero_memorises_every_sample_lands_on_a_training_point() {
    let p = points();
    let s = schedule();
    let oracle = EmpiricalOracle::new(EmpiricalMixture::new(&p, 3, 0.0).unwrap(), s.clone());
    let n = 40;
    let x_t = Tensor::from_vec(
        ddimlab::rng::item_normals(1, Purpose::Latents, 0, n, 3),
        (n, 3),
        &Device::Cpu,
    )
    .unwrap()
    .to_dtype(DType::F64)
    .unwrap();
    for (eta, steps) in [(0.0, 20), (1.0, 50)] {
        let tau = Tau::new(TauKind::Linear, steps, 1000).unwrap();
        let ddim = Sampler::Ddim {
            eta: ddimlab::sampler::Eta::new(eta).unwrap(),
            clip_x0: false,
        };
        let out = ddim
            .run(&oracle, &s, &tau, &x_t, &mut PerSampleNoise::new(2, 0, n), false)
            .unwrap();
        let x0 = out.x.flatten_all().unwrap().to_vec1::<f64>().unwrap();
        for row in x0.chunks(3) {
            let nearest = p
                .chunks(3)
                .map(|q| {
                    q.iter()
                        .zip(row)
                        .map(|(a, b)| (*a as f64 - b).powi(2))
                        .sum::<f64>()
                        .sqrt()
                })
                .fold(f64::INFINITY, f64::min);
            assert!(
                nearest < 1e-3,
                "η {eta}, S {steps}: sample {row:?} is {nearest} from the nearest training point"
            );
        }
    }
}

#[test]
fn draws_are_training_points_plus_h_noise() {
    let p = points();
    let emp = EmpiricalMixture::new(&p, 3, 0.1).unwrap();
    let (x, idx) = emp.sample_indexed(2000, &mut stream(0, Purpose::Reference));
    let resid: Vec<f64> = x
        .chunks(3)
        .zip(&idx)
        .flat_map(|(row, &i)| row.iter().zip(&p[3 * i..3 * i + 3]).map(|(a, b)| (*a - *b) as f64))
        .collect();
    let var = resid.iter().map(|r| r * r).sum::<f64>() / resid.len() as f64;
    assert!((var.sqrt() - 0.1).abs() < 0.005, "residual std {}", var.sqrt());
    for k in 0..4 {
        let share = idx.iter().filter(|&&i| i == k).count() as f64 / idx.len() as f64;
        assert!((share - 0.25).abs() < 0.04, "component {k}: {share}");
    }
    assert!(EmpiricalMixture::new(&p, 3, -0.1).is_err());
    assert!(EmpiricalMixture::new(&p[..5], 3, 0.1).is_err());
}
