//! Every metric against a known answer: hand-computed values, closed forms and
//! brute-force references.

use ddimlab::metrics::{
    component_masses, frechet, frechet_distance, histogram, mass_error, mmd2_unbiased, mse_unit, per_row_mse_unit,
    psnr, sliced_wasserstein, tv_to_uniform, Gaussian,
};
use ddimlab::mixture::GaussianMixture;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// n rows of L z + μ with z ~ N(0, I), where L is d × d row-major (so the covariance is L Lᵀ).
fn gaussian_samples(n: usize, mean: &[f64], l: &[f64], seed: u64) -> Vec<f32> {
    let d = mean.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        let z: Vec<f64> = (0..d).map(|_| StandardNormal.sample(&mut rng)).collect();
        for i in 0..d {
            out.push((mean[i] + (0..d).map(|j| l[i * d + j] * z[j]).sum::<f64>()) as f32);
        }
    }
    out
}

fn standard_normal(n: usize, d: usize, seed: u64) -> Vec<f32> {
    let identity: Vec<f64> = (0..d * d).map(|k| if k % (d + 1) == 0 { 1.0 } else { 0.0 }).collect();
    gaussian_samples(n, &vec![0.0; d], &identity, seed)
}

#[test]
fn mse_unit_and_psnr_by_hand() {
    // ((1 − (−1))/2)² = 1 and 0: mean 0.5.
    assert_eq!(mse_unit(&[1.0, -1.0], &[-1.0, -1.0]).unwrap(), 0.5);
    // Differences 0.2 and 0.6 on [−1, 1] are 0.1 and 0.3 on [0, 1]: (0.01 + 0.09)/2.
    assert!((mse_unit(&[0.2, 0.6], &[0.0, 0.0]).unwrap() - 0.05).abs() < 1e-8);
    let rows = per_row_mse_unit(&[1.0, -1.0, 0.0, 0.5], &[-1.0, -1.0, 0.0, -0.5], 2).unwrap();
    assert_eq!(rows, vec![0.5, 0.125]);
    assert!((psnr(0.01) - 20.0).abs() < 1e-12);
    assert!((psnr(1.0)).abs() < 1e-12);
    assert_eq!(psnr(0.0), f64::INFINITY);
}

#[test]
fn frechet_of_identical_sets_is_zero() {
    let x = gaussian_samples(
        500,
        &[1.0, -2.0, 0.5],
        &[1.0, 0.0, 0.0, 0.3, 0.8, 0.0, -0.2, 0.4, 0.6],
        1,
    );
    assert!(frechet_distance(&x, &x, 3).unwrap() <= 1e-9);
}

#[test]
fn frechet_diagonal_closed_form() {
    let a = Gaussian {
        mean: vec![1.0, 2.0, -1.0],
        cov: vec![4.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.25],
    };
    let b = Gaussian {
        mean: vec![0.0, 2.5, 1.0],
        cov: vec![1.0, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.25],
    };
    // ‖Δμ‖² = 1 + 0.25 + 4; Σ (√a − √b)² = (2 − 1)² + (1 − 3)² + 0.
    let expected = 5.25 + 1.0 + 4.0;
    assert!((frechet(&a, &b).unwrap() - expected).abs() < 1e-12);
    assert!((frechet(&b, &a).unwrap() - expected).abs() < 1e-12);
}

/// R diag(λ) Rᵀ for the rotation R by angle `angle` in the (0, 1) plane of 3-D space.
fn rotated_diag(angle: f64, lambda: [f64; 3]) -> Vec<f64> {
    let (c, s) = (angle.cos(), angle.sin());
    let r = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
    let mut m = vec![0.0; 9];
    for i in 0..3 {
        for j in 0..3 {
            m[i * 3 + j] = (0..3).map(|k| r[i][k] * lambda[k] * r[j][k]).sum();
        }
    }
    m
}

#[test]
fn frechet_commuting_non_diagonal_closed_form() {
    // Covariances with common eigenvectors: the trace term is Σ (√λa − √λb)².
    let a = Gaussian {
        mean: vec![0.0; 3],
        cov: rotated_diag(0.7, [4.0, 1.0, 2.0]),
    };
    let b = Gaussian {
        mean: vec![1.0, 0.0, 0.0],
        cov: rotated_diag(0.7, [1.0, 4.0, 2.0]),
    };
    let expected = 1.0 + 1.0 + 1.0 + 0.0;
    assert!((frechet(&a, &b).unwrap() - expected).abs() < 1e-10);
}

/// Tr (Σa Σb)^{1/2} in 2-D from the closed form √M = (M + √det M I)/√(tr M + 2√det M),
/// so Tr √M = √(tr M + 2 √det M), with M = Σa Σb.
fn frechet_2x2(ma: [f64; 2], a: [f64; 4], mb: [f64; 2], b: [f64; 4]) -> f64 {
    let tr_m = a[0] * b[0] + a[1] * b[2] + a[2] * b[1] + a[3] * b[3];
    let det_m = (a[0] * a[3] - a[1] * a[2]) * (b[0] * b[3] - b[1] * b[2]);
    let tr_root = (tr_m + 2.0 * det_m.sqrt()).sqrt();
    (ma[0] - mb[0]).powi(2) + (ma[1] - mb[1]).powi(2) + a[0] + a[3] + b[0] + b[3] - 2.0 * tr_root
}

#[test]
fn frechet_2x2_closed_form_and_sample_convergence() {
    let (ma, mb) = ([0.5, -1.0], [-0.5, 0.0]);
    // Σ = L Lᵀ for lower-triangular L.
    let (la, lb) = ([1.0, 0.0, 0.6, 0.8], [1.5, 0.0, -0.9, 0.5]);
    let cov = |l: [f64; 4]| [l[0] * l[0], l[0] * l[2], l[0] * l[2], l[2] * l[2] + l[3] * l[3]];
    let (sa, sb) = (cov(la), cov(lb));
    let expected = frechet_2x2(ma, sa, mb, sb);
    let (ga, gb) = (
        Gaussian {
            mean: ma.to_vec(),
            cov: sa.to_vec(),
        },
        Gaussian {
            mean: mb.to_vec(),
            cov: sb.to_vec(),
        },
    );
    assert!((frechet(&ga, &gb).unwrap() - expected).abs() < 1e-12, "{expected}");

    let x = gaussian_samples(40_000, &ma, &la, 2);
    let y = gaussian_samples(40_000, &mb, &lb, 3);
    let fit = Gaussian::fit(&x, 2).unwrap();
    for (f, e) in fit.mean.iter().zip(ma) {
        assert!((f - e).abs() < 0.03);
    }
    for (f, e) in fit.cov.iter().zip(sa) {
        assert!((f - e).abs() < 0.03);
    }
    let estimate = frechet_distance(&x, &y, 2).unwrap();
    assert!((estimate - expected).abs() < 0.05, "{estimate} vs {expected}");
}

#[test]
fn gaussian_fit_by_hand() {
    // Rows (0, 0), (2, 1), (4, 5): mean (2, 2); centred (−2, −2), (0, −1), (2, 3).
    let g = Gaussian::fit(&[0.0, 0.0, 2.0, 1.0, 4.0, 5.0], 2).unwrap();
    assert_eq!(g.mean, vec![2.0, 2.0]);
    assert_eq!(g.cov, vec![4.0, 5.0, 5.0, 7.0]);
}

/// MMD²_u by the textbook double loops.
fn mmd_reference(x: &[f32], y: &[f32], d: usize, h: f64) -> f64 {
    let k = |u: &[f32], v: &[f32]| {
        let r: f64 = u.iter().zip(v).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum();
        (-r / (2.0 * h * h)).exp()
    };
    let (xs, ys): (Vec<&[f32]>, Vec<&[f32]>) = (x.chunks(d).collect(), y.chunks(d).collect());
    let (m, n) = (xs.len() as f64, ys.len() as f64);
    let (mut kxx, mut kyy, mut kxy) = (0.0, 0.0, 0.0);
    for (i, u) in xs.iter().enumerate() {
        for (j, v) in xs.iter().enumerate() {
            if i != j {
                kxx += k(u, v);
            }
        }
        for v in &ys {
            kxy += k(u, v);
        }
    }
    for (i, u) in ys.iter().enumerate() {
        for (j, v) in ys.iter().enumerate() {
            if i != j {
                kyy += k(u, v);
            }
        }
    }
    kxx / (m * (m - 1.0)) + kyy / (n * (n - 1.0)) - 2.0 * kxy / (m * n)
}

#[test]
fn mmd_matches_brute_force_and_is_symmetric() {
    let x = standard_normal(5, 3, 4);
    let y: Vec<f32> = standard_normal(7, 3, 5).iter().map(|v| v + 0.5).collect();
    for h in [0.3, 1.0, 2.5] {
        let got = mmd2_unbiased(&x, &y, 3, Some(h)).unwrap();
        assert_eq!(got.bandwidth, h);
        let want = mmd_reference(&x, &y, 3, h);
        assert!((got.value - want).abs() < 1e-12, "{} vs {want}", got.value);
        let swapped = mmd2_unbiased(&y, &x, 3, Some(h)).unwrap().value;
        assert!((got.value - swapped).abs() < 1e-12);
    }
    let auto = mmd2_unbiased(&[0.0, 1.0], &[3.0, 3.0], 1, None).unwrap();
    // Pool {0, 1, 3, 3}: squared distances 1, 9, 9, 4, 4, 0; median (4 + 4)/2, h² = 2.
    assert!((auto.bandwidth - 2f64.sqrt()).abs() < 1e-12);
    assert!((auto.value - mmd_reference(&[0.0, 1.0], &[3.0, 3.0], 1, 2f64.sqrt())).abs() < 1e-12);
}

#[test]
fn mmd_near_zero_for_same_distribution_and_positive_for_different() {
    let d = 4;
    let x = standard_normal(600, d, 6);
    let y = standard_normal(600, d, 7);
    let shifted: Vec<f32> = standard_normal(600, d, 8).iter().map(|v| v + 1.0).collect();
    let same = mmd2_unbiased(&x, &y, d, None).unwrap();
    let different = mmd2_unbiased(&x, &shifted, d, None).unwrap();
    assert!(same.value.abs() < 0.005, "{same:?}");
    assert!(different.value > 0.1, "{different:?}");
    // ‖u − v‖² of two N(0, I) points is 2χ²_4, whose median is 2 · 3.357: h² ≈ 3.357.
    assert!((same.bandwidth - 3.357f64.sqrt()).abs() < 0.1, "{same:?}");
}

#[test]
fn mmd_beyond_one_block_is_the_mean_of_independent_block_estimates() {
    use ddimlab::metrics::MMD_BLOCK;
    let d = 2;
    // x: 2·MMD_BLOCK + 3 rows → 3 blocks (cuts at ⌊i·n/3⌋); y: 600 rows, cut the same way
    // into 3 blocks of 200: block i of x is paired with block i of y only.
    let n = 2 * MMD_BLOCK + 3;
    let x = standard_normal(n, d, 21);
    let y: Vec<f32> = standard_normal(600, d, 22).iter().map(|v| v + 0.3).collect();
    let h = 1.2;
    let got = mmd2_unbiased(&x, &y, d, Some(h)).unwrap();
    assert_eq!(got.blocks, 3);
    let per_block: Vec<f64> = (0..3)
        .map(|i| {
            let (xs, ys) = (i * n / 3..(i + 1) * n / 3, i * 200..(i + 1) * 200);
            mmd_reference(&x[xs.start * d..xs.end * d], &y[ys.start * d..ys.end * d], d, h)
        })
        .collect();
    let mean = per_block.iter().sum::<f64>() / 3.0;
    assert!((got.value - mean).abs() < 1e-12, "{} vs {mean}", got.value);
    // One block: the all-pairs estimate.
    assert_eq!(mmd2_unbiased(&y, &y, d, Some(h)).unwrap().blocks, 1);
}

#[test]
fn sliced_wasserstein_identical_and_shifted() {
    let d = 8;
    let x = standard_normal(1000, d, 9);
    assert_eq!(sliced_wasserstein(&x, &x, d, 50, 1).unwrap(), 0.0);
    // A shift by v moves every projection by ⟨v, θ⟩, so W2² = ⟨v, θ⟩², whose mean over the
    // sphere is ‖v‖²/d.
    let v = [1.0, -2.0, 0.5, 0.0, 3.0, 0.0, 1.0, -1.0];
    let y: Vec<f32> = x
        .chunks(d)
        .flat_map(|r| r.iter().zip(&v).map(|(a, b)| a + *b as f32))
        .collect();
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    let got = sliced_wasserstein(&x, &y, d, 4000, 2).unwrap();
    let want = norm / (d as f64).sqrt();
    assert!((got / want - 1.0).abs() < 0.04, "{got} vs {want}");
    assert_eq!(
        got,
        sliced_wasserstein(&x, &y, d, 4000, 2).unwrap(),
        "a seed gives one answer"
    );
}

#[test]
fn sliced_wasserstein_in_one_dimension_is_exact_w2() {
    let x = standard_normal(300, 1, 10);
    let y: Vec<f32> = standard_normal(300, 1, 11).iter().map(|v| 2.0 * v + 1.0).collect();
    let sorted = |s: &[f32]| {
        let mut s: Vec<f64> = s.iter().map(|v| *v as f64).collect();
        s.sort_by(f64::total_cmp);
        s
    };
    let (xs, ys) = (sorted(&x), sorted(&y));
    let want = (xs.iter().zip(&ys).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 300.0).sqrt();
    let got = sliced_wasserstein(&x, &y, 1, 7, 3).unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    // Unequal sizes: F⁻¹ of {0, 2} and G⁻¹ of {0, 1, 2} differ by 1 on (1/3, 2/3): W2² = 1/3.
    let got = sliced_wasserstein(&[0.0, 2.0], &[1.0, 0.0, 2.0], 1, 3, 4).unwrap();
    assert!((got - (1.0f64 / 3.0).sqrt()).abs() < 1e-12, "{got}");
}

#[test]
fn component_masses_recover_weights() {
    let weights = vec![0.2, 0.5, 0.3];
    let means = vec![vec![-10.0, 0.0], vec![10.0, 0.0], vec![0.0, 10.0]];
    let mixture = GaussianMixture::isotropic(weights.clone(), means.clone(), vec![0.5, 1.0, 0.7]).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let n = 20_000;
    let mut x = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let u: f64 = rng.random();
        let k = if u < 0.2 {
            0
        } else if u < 0.7 {
            1
        } else {
            2
        };
        for (m, s) in means[k].iter().zip(&mixture.stds()[k]) {
            let z: f64 = StandardNormal.sample(&mut rng);
            x.push((m + s * z) as f32);
        }
    }
    let masses = component_masses(&x, 2, &mixture).unwrap();
    assert_eq!(masses.len(), 3);
    assert!((masses.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    // Sampling standard deviation is at most √(0.25/20000) ≈ 0.0035.
    for (m, w) in masses.iter().zip(&weights) {
        assert!((m - w).abs() < 0.015, "{masses:?}");
    }
    assert!(mass_error(&masses, &weights).unwrap() < 0.02);
    // All samples at component 1's mean: all mass there.
    assert_eq!(
        component_masses(&[10.0, 0.0, 10.0, 0.0], 2, &mixture).unwrap(),
        vec![0.0, 1.0, 0.0]
    );
}

#[test]
fn mass_error_by_hand() {
    assert!((mass_error(&[0.5, 0.5], &[0.2, 0.8]).unwrap() - 0.3).abs() < 1e-12);
    assert_eq!(mass_error(&[0.0, 1.0, 0.0], &[0.0, 1.0, 0.0]).unwrap(), 0.0);
}

#[test]
fn labels_histogram_and_tv_by_hand() {
    let hist = histogram(&[0, 1, 1, 3], 4).unwrap();
    assert_eq!(hist, vec![0.25, 0.5, 0.0, 0.25]);
    assert_eq!(tv_to_uniform(&hist), 0.25);
    assert_eq!(tv_to_uniform(&[0.5, 0.5]), 0.0);
    assert!((tv_to_uniform(&histogram(&[2, 2], 3).unwrap()) - 2.0 / 3.0).abs() < 1e-12);
}

#[test]
fn bad_input_is_an_error() {
    let nan = [0.0, f32::NAN, 1.0, 2.0];
    let ok = [0.0f32, 1.0, 2.0, 3.0];
    assert!(mse_unit(&[1.0], &[1.0, 2.0]).is_err());
    assert!(mse_unit(&[], &[]).is_err());
    assert!(mse_unit(&nan, &ok).is_err());
    assert!(per_row_mse_unit(&ok, &ok, 3).is_err());
    assert!(per_row_mse_unit(&ok, &ok, 0).is_err());

    assert!(Gaussian::fit(&ok, 3).is_err(), "ragged rows");
    assert!(Gaussian::fit(&ok[..2], 2).is_err(), "one sample");
    assert!(Gaussian::fit(&nan, 2).is_err());
    assert!(frechet_distance(&ok, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 2).is_ok());
    assert!(frechet_distance(&ok, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 3).is_err());
    let g2 = Gaussian {
        mean: vec![0.0; 2],
        cov: vec![1.0, 0.0, 0.0, 1.0],
    };
    let g1 = Gaussian {
        mean: vec![0.0],
        cov: vec![1.0],
    };
    let not_psd = Gaussian {
        mean: vec![0.0; 2],
        cov: vec![1.0, 2.0, 2.0, 1.0],
    };
    let bad_cov = Gaussian {
        mean: vec![0.0; 2],
        cov: vec![1.0; 3],
    };
    let nan_mean = Gaussian {
        mean: vec![f64::NAN, 0.0],
        cov: vec![1.0, 0.0, 0.0, 1.0],
    };
    for (a, b) in [
        (&g2, &g1),
        (&g2, &not_psd),
        (&not_psd, &g2),
        (&g2, &bad_cov),
        (&nan_mean, &g2),
    ] {
        assert!(frechet(a, b).is_err());
    }

    assert!(mmd2_unbiased(&ok, &ok[..2], 2, None).is_err(), "one sample");
    assert!(mmd2_unbiased(&ok, &ok, 3, None).is_err());
    assert!(mmd2_unbiased(&ok, &nan, 2, None).is_err());
    assert!(mmd2_unbiased(&ok, &ok, 2, Some(0.0)).is_err());
    assert!(mmd2_unbiased(&ok, &ok, 2, Some(f64::NAN)).is_err());
    assert!(
        mmd2_unbiased(&[1.0, 1.0], &[1.0, 1.0], 1, None).is_err(),
        "zero median distance"
    );

    assert!(sliced_wasserstein(&ok, &ok, 2, 0, 0).is_err());
    assert!(sliced_wasserstein(&ok, &[], 2, 5, 0).is_err());
    assert!(sliced_wasserstein(&ok, &nan, 2, 5, 0).is_err());
    assert!(sliced_wasserstein(&ok, &ok[..3], 2, 5, 0).is_err());

    let mixture = GaussianMixture::isotropic(vec![1.0], vec![vec![0.0, 0.0]], vec![1.0]).unwrap();
    assert!(component_masses(&ok, 1, &mixture).is_err(), "wrong dimension");
    assert!(component_masses(&[], 2, &mixture).is_err());
    assert!(component_masses(&nan, 2, &mixture).is_err());
    assert!(mass_error(&[1.0], &[0.5, 0.5]).is_err());

    assert!(histogram(&[], 3).is_err());
    assert!(histogram(&[0, 1], 0).is_err());
    assert!(histogram(&[0, 3], 3).is_err());
}

#[test]
fn median_bandwidth_of_one_sample_matches_the_pooled_rule() {
    // 0, 1, 3 on a line: squared distances 1, 4, 9 → median 4 → h = sqrt(4 / 2).
    let h = ddimlab::metrics::median_bandwidth_of(&[0.0, 1.0, 3.0], 1).unwrap();
    assert!((h - 2f64.sqrt()).abs() < 1e-12, "{h}");
    assert!(ddimlab::metrics::median_bandwidth_of(&[1.0], 1).is_err());
}
