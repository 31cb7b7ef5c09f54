//! Bootstrap replicates (batched statistics equal the direct ones on copied rows) and the
//! noise-floor row.

use ddimlab::experiment::evaluation::Evaluation;
use ddimlab::experiment::measure::{distance, names, Comparison, SampleStats};
use ddimlab::metrics::bootstrap::{gather, Bootstrap};
use ddimlab::metrics::{
    component_masses, frechet_distance, kid, mass_error, median_bandwidth_of, mmd2_unbiased, sliced_wasserstein,
    Gaussian, Kernel, KernelReference, Moments,
};
use ddimlab::mixture::GaussianMixture;
use ddimlab::rng::{item_normals, Purpose};

/// n rows of N(shift·e_1, I) in d dimensions, from stream `item`.
fn gaussian(seed: u64, item: usize, n: usize, d: usize, shift: f32) -> Vec<f32> {
    let mut x = item_normals(seed, Purpose::Evaluation, item * n, n, d);
    x.chunks_mut(d).for_each(|r| r[0] += shift);
    x
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
    // The batched fit (its scatter correction summed in f32): ~1e-8 relative.
    let fit = Moments::new(&x, d).unwrap().fit(&c);
    for (u, v) in fit.mean.iter().chain(&fit.cov).zip(b.mean.iter().chain(&b.cov)) {
        assert!((u - v).abs() < 1e-7 * v.abs().max(1.0), "{u} vs {v}");
    }
    // MMD² and KID from the kernel matrices, batched: the estimate is the direct
    // all-pairs one, and replicate b is the direct estimate on the copied rows of
    // resample b (copies of one row are distinct draws), up to the f32 kernel entries
    // (relative error ~1e-7 of the kernel's scale, here ≤ 8).
    let y = gaussian(1, 1, 40, 3, 0.0);
    let h = median_bandwidth_of(&y, d).unwrap();
    let boot = Bootstrap::new(5, 11).unwrap();
    let (rx, ry) = (boot.samples(50), boot.reference(40));
    for (kernel, direct) in [
        (
            Kernel::Rbf { bandwidth: h },
            mmd2_unbiased as fn(&[f32], &[f32], usize, Option<f64>) -> _,
        ),
        (Kernel::Cubic, |x: &[f32], y: &[f32], d, _| kid(x, y, d)),
    ] {
        let r = KernelReference::new(kernel, &y, d, ry.clone())
            .unwrap()
            .measure(&x, &rx)
            .unwrap();
        let want = direct(&x, &y, d, Some(h)).unwrap().value;
        assert!((r.value - want).abs() < 1e-6, "{kernel:?}: {} vs {want}", r.value);
        for (b, got) in r.replicates.iter().enumerate() {
            let (gx, gy) = (gather(&x, d, rx.counts(b)), gather(&y, d, ry.counts(b)));
            let want = direct(&gx, &gy, d, Some(h)).unwrap().value;
            assert!((got - want).abs() < 1e-6, "{kernel:?} replicate {b}: {got} vs {want}");
        }
    }
}

#[test]
fn an_mse_over_rows_keeps_each_rows_own() {
    // Reconstruction and consistency errors: the MSE of all values, and each row's MSE
    // (what the sign test compares), both on the [0, 1] scale; PSNR = 10 log10(1 / MSE).
    let (d, n) = (5, 40);
    let (a, b) = (gaussian(3, 0, n, d, 0.0), gaussian(3, 1, n, d, 0.5));
    let direct = |x: &[f32], y: &[f32]| -> f64 {
        x.iter()
            .zip(y)
            .map(|(u, v)| ((*u as f64 - *v as f64) / 2.0).powi(2))
            .sum::<f64>()
            / x.len() as f64
    };
    let m = distance(&a, &b, d, names::RECON_MSE, Some(names::RECON_PSNR)).unwrap();
    let value = m.values[names::RECON_MSE];
    assert!((value - direct(&a, &b)).abs() < 1e-12 * value, "{value}");
    assert!((m.values[names::RECON_PSNR] - 10.0 * (1.0 / value).log10()).abs() < 1e-12);
    let rows = &m.rows[names::RECON_MSE];
    assert_eq!(rows.len(), n);
    for (i, got) in rows.iter().enumerate() {
        let want = direct(&a[i * d..(i + 1) * d], &b[i * d..(i + 1) * d]);
        assert!((got - want).abs() < 1e-12 * want, "row {i}: {got} vs {want}");
    }
    // No bootstrap interval (the rows are compared by the sign test), and no PSNR unasked.
    assert!(m.replicates.is_empty() && m.with_intervals().len() == 2);
    let bare = distance(&a, &b, d, names::RECON_MSE, None).unwrap();
    assert_eq!(bare.values.len(), 1);
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
        Evaluation::Raw,
        16,
        7,
        Some(Bootstrap::new(50, 7).unwrap()),
        Some(mix.clone()),
        None,
    )
    .unwrap();
    let measured = stats.floor().unwrap().unwrap();
    let row = measured.with_intervals();
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
    // The same numbers as measuring the floor set as if it were samples, and 50
    // replicates of every statistic.
    assert_eq!(stats.measure(&Evaluation::Raw.apply(&floor)).unwrap(), measured);
    assert!(measured.replicates.values().all(|r| r.len() == 50));
    assert_eq!(measured.replicates.len(), measured.values.len());
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

#[test]
fn every_set_goes_through_the_one_evaluation_transform() {
    // Image-shaped sets with values outside [−1, 1] in the reference, the floor set, the
    // training points and the samples: measured with the clamping transform, every
    // statistic equals the one of the same sets clamped by hand and measured raw. A set
    // that skipped the transform would change a statistic (checked: clamping only the
    // samples does).
    use ddimlab::experiment::evaluation::Evaluated;
    let image = ddimlab::shape::DataShape::Image {
        channels: 1,
        height: 2,
        width: 2,
    };
    let d = 4;
    let spread = |seed: u64, item: usize, n: usize| -> Vec<f32> {
        gaussian(seed, item, n, d, 0.0).iter().map(|v| 1.6 * v).collect()
    };
    let (reference, floor, train, samples) = (
        spread(9, 0, 200),
        spread(9, 1, 120),
        spread(9, 2, 80),
        spread(9, 3, 120),
    );
    let clamp = |x: &[f32]| -> Vec<f32> { x.iter().map(|v| v.clamp(-1.0, 1.0)).collect() };
    let stats = |evaluation: Evaluation, sets: [&[f32]; 3]| {
        SampleStats::new(
            Comparison {
                reference: sets[0].to_vec(),
                floor: Some(sets[1].to_vec()),
                train: sets[2].to_vec(),
            },
            d,
            evaluation,
            8,
            3,
            Some(Bootstrap::new(20, 3).unwrap()),
            None,
            None,
        )
        .unwrap()
    };
    let transformed = stats(Evaluation::of(image), [&reference, &floor, &train]);
    let by_hand = stats(Evaluation::Raw, [&clamp(&reference), &clamp(&floor), &clamp(&train)]);
    assert_eq!(transformed.evaluation(), Evaluation::ClampPixels);
    let a = transformed.measure(&Evaluation::of(image).apply(&samples)).unwrap();
    let b = by_hand.measure(&Evaluation::Raw.apply(&clamp(&samples))).unwrap();
    assert_eq!(a, b);
    assert_eq!(transformed.floor().unwrap(), by_hand.floor().unwrap());
    assert!(a.values.contains_key(names::NN_RATIO));
    // Only the samples clamped (the bias issue 18 found): the numbers move.
    let raw = stats(Evaluation::Raw, [&reference, &floor, &train]);
    let one_sided: Evaluated = Evaluation::Raw.apply(&clamp(&samples));
    let c = raw.measure(&one_sided).unwrap();
    assert!((c.values[names::FD] - a.values[names::FD]).abs() > 1e-3, "{c:?}");
}
