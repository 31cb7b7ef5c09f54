//! Bootstrap intervals and the noise-floor row.

use ddimlab::experiment::measure::{names, Comparison, SampleStats};
use ddimlab::metrics::bootstrap::{gather, weighted_mean, Bootstrap};
use ddimlab::metrics::{
    component_masses, frechet, frechet_distance, mass_error, median_bandwidth_of, mmd2_unbiased, sliced_wasserstein,
    Gaussian, KernelMatrices,
};
use ddimlab::model::GaussianMixture;
use ddimlab::rng::{item_normals, Purpose};

/// n rows of N(shift·e_1, I) in d dimensions, from stream `item`.
fn gaussian(seed: u64, item: usize, n: usize, d: usize, shift: f32) -> Vec<f32> {
    let mut x = item_normals(seed, Purpose::Evaluation, item * n, n, d);
    x.chunks_mut(d).for_each(|r| r[0] += shift);
    x
}

#[test]
fn fd_intervals_cover_the_true_distance_95_percent_of_the_time() {
    // x ~ N(0, I₂), y ~ N((0.5, 0), I₂): the true Fréchet distance is 0.25.
    let (n, d, repeats) = (400, 2, 300);
    let mut covered = 0;
    for r in 0..repeats {
        let x = gaussian(11, 2 * r, n, d, 0.0);
        let y = gaussian(11, 2 * r + 1, n, d, 0.5);
        let boot = Bootstrap::new(200, r as u64).unwrap();
        let x_fit = Gaussian::fit(&x, d).unwrap();
        let value = frechet(&x_fit, &Gaussian::fit(&y, d).unwrap()).unwrap();
        let i = boot
            .interval(value, n, n, |_, cx, cy| {
                frechet(&Gaussian::fit_counted(&x, d, cx), &Gaussian::fit_counted(&y, d, cy))
            })
            .unwrap()
            .unwrap();
        covered += usize::from(i.lo <= 0.25 && 0.25 <= i.hi);
    }
    let rate = covered as f64 / repeats as f64;
    eprintln!("coverage {rate} over {repeats} repeats");
    assert!((0.92..=0.98).contains(&rate), "coverage {rate}");
}

#[test]
fn mean_intervals_cover_the_true_mean_95_percent_of_the_time() {
    // Exponential(1) values (skewed, like per-sample confidences): true mean 1.
    let (n, repeats) = (300, 300);
    let mut covered = 0;
    for r in 0..repeats {
        let u = gaussian(5, r, n, 2, 0.0);
        let v: Vec<f64> = u
            .chunks(2)
            .map(|z| 0.5 * ((z[0] * z[0] + z[1] * z[1]) as f64))
            .collect();
        let i = Bootstrap::new(200, 100 + r as u64)
            .unwrap()
            .interval(v.iter().sum::<f64>() / n as f64, n, 2, |_, cx, _| {
                Ok(weighted_mean(&v, cx))
            })
            .unwrap()
            .unwrap();
        covered += usize::from(i.lo <= 1.0 && 1.0 <= i.hi);
    }
    let rate = covered as f64 / repeats as f64;
    eprintln!("coverage {rate} over {repeats} repeats");
    assert!((0.92..=0.98).contains(&rate), "coverage {rate}");
}

#[test]
fn counted_resamples_equal_copied_rows() {
    let (d, x) = (3, gaussian(1, 0, 50, 3, 0.2));
    let c = ddimlab::metrics::bootstrap::counts(4, 9, 50);
    let copied = gather(&x, d, &c);
    let (a, b) = (Gaussian::fit_counted(&x, d, &c), Gaussian::fit(&copied, d).unwrap());
    for (u, v) in a.mean.iter().chain(&a.cov).zip(b.mean.iter().chain(&b.cov)) {
        assert!((u - v).abs() < 1e-12, "{u} vs {v}");
    }
    // MMD² of the kernel matrices: all ones is the all-pairs estimate itself.
    let y = gaussian(1, 1, 40, 3, 0.0);
    let h = median_bandwidth_of(&y, d).unwrap();
    let k = KernelMatrices::new(&x, &y, d, h).unwrap().unwrap();
    let direct = mmd2_unbiased(&x, &y, d, Some(h)).unwrap().value;
    assert!((k.mmd2(&[1; 50], &[1; 40]) - direct).abs() < 1e-6, "{direct}");
}

#[test]
fn the_floor_row_equals_a_direct_computation() {
    let d = 2;
    let mix =
        GaussianMixture::isotropic(vec![0.5, 0.5], vec![vec![-0.5, 0.0], vec![0.5, 0.2]], vec![0.2, 0.1]).unwrap();
    let reference = gaussian(3, 0, 300, d, 0.0);
    let floor = gaussian(3, 1, 200, d, 0.1);
    let train = gaussian(3, 2, 100, d, 0.0);
    let stats = SampleStats::new(
        Comparison {
            reference: reference.clone(),
            floor: Some(floor.clone()),
            train,
        },
        d,
        16,
        7,
        Some(Bootstrap::new(50, 7).unwrap()),
        Some(mix.clone()),
        None,
    )
    .unwrap();
    let row = stats.floor().unwrap().unwrap();
    let h = median_bandwidth_of(&reference, d).unwrap();
    let direct = [
        (names::FD, frechet_distance(&floor, &reference, d).unwrap()),
        (
            names::MMD2,
            mmd2_unbiased(&floor, &reference, d, Some(h)).unwrap().value,
        ),
        (names::SWD, sliced_wasserstein(&floor, &reference, d, 16, 7).unwrap()),
        (
            names::MASS_ERROR,
            mass_error(&component_masses(&floor, d, &mix).unwrap(), mix.weights()).unwrap(),
        ),
        (names::NN_RATIO, 1.0),
    ];
    for (name, want) in direct {
        let got = row[name];
        assert!(
            (got - want).abs() < 1e-9 * want.abs().max(1.0),
            "{name}: {got} vs {want}"
        );
        let (lo, hi) = (row[&format!("{name}_lo")], row[&format!("{name}_hi")]);
        assert!(lo <= hi && lo.is_finite() && hi.is_finite(), "{name}: [{lo}, {hi}]");
    }
    // The same numbers as measuring the floor set as if it were samples.
    assert_eq!(stats.measure(&floor).unwrap(), row);
}

#[test]
fn counted_sliced_wasserstein_equals_copied_rows() {
    use ddimlab::metrics::{sliced_wasserstein_counted, SortedProjections};
    let d = 3;
    let (x, y) = (gaussian(2, 0, 40, d, 0.3), gaussian(2, 1, 25, d, 0.0));
    let (px, py) = (
        SortedProjections::new(&x, d, 16, 5).unwrap(),
        SortedProjections::new(&y, d, 16, 5).unwrap(),
    );
    let ones = sliced_wasserstein_counted(&px, &[1; 40], &py, &[1; 25]);
    assert_eq!(ones, sliced_wasserstein(&x, &y, d, 16, 5).unwrap());
    let (cx, cy) = (
        ddimlab::metrics::bootstrap::counts(1, 2, 40),
        ddimlab::metrics::bootstrap::counts(1, 3, 25),
    );
    let counted = sliced_wasserstein_counted(&px, &cx, &py, &cy);
    let copied = sliced_wasserstein(&gather(&x, d, &cx), &gather(&y, d, &cy), d, 16, 5).unwrap();
    assert!((counted - copied).abs() < 1e-12, "{counted} vs {copied}");
}
