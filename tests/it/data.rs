//! Data sets: shapes, the shipped digits, seeded splits.

use ddimlab::data::{DataKind, DataSpec, StdSpec};
use ddimlab::shape::DataShape;

#[test]
fn digits_are_the_uci_set_scaled_to_unit_range() {
    let (pixels, labels) = ddimlab::data::digits().unwrap();
    assert_eq!((pixels.len(), labels.len()), (1797 * 64, 1797));
    // 17 grey levels 0..16 → x/8 − 1 ∈ {−1, −0.875, …, 1}.
    assert!(pixels
        .iter()
        .all(|p| (-1.0..=1.0).contains(p) && ((p + 1.0) * 8.0).fract() == 0.0));
    assert_eq!(pixels.iter().cloned().fold(f32::MIN, f32::max), 1.0);
    let mut counts = [0usize; 10];
    labels.iter().for_each(|l| counts[*l as usize] += 1);
    // scikit-learn's load_digits: 178 zeros, 182 ones, …, 180 nines.
    assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    // The first image of the file is a zero whose first row is 0,0,5,13,9,1,0,0.
    assert_eq!(labels[0], 0);
    let row: Vec<f32> = pixels[..8].iter().map(|p| (p + 1.0) * 8.0).collect();
    assert_eq!(row, vec![0.0, 0.0, 5.0, 13.0, 9.0, 1.0, 0.0, 0.0]);
}

#[test]
fn digits_split_is_seeded_disjoint_and_complete() {
    let spec = DataSpec::of_kind(DataKind::Digits);
    let a = spec.load(0).unwrap();
    let b = spec.load(0).unwrap();
    let c = spec.load(1).unwrap();
    assert_eq!(
        a.shape(),
        DataShape::Image {
            channels: 1,
            height: 8,
            width: 8
        }
    );
    assert_eq!((a.train.len(), a.heldout.len()), (1500, 297));
    assert_eq!(a.train, b.train);
    assert_ne!(a.heldout, c.heldout);
    // Every image appears once across the two splits.
    let mut all: Vec<Vec<u32>> = (0..a.train.len())
        .map(|i| a.train.point(i).iter().map(|v| v.to_bits()).collect())
        .chain((0..a.heldout.len()).map(|i| a.heldout.point(i).iter().map(|v| v.to_bits()).collect()))
        .collect();
    let (pixels, _) = ddimlab::data::digits().unwrap();
    let mut want: Vec<Vec<u32>> = pixels
        .chunks(64)
        .map(|c| c.iter().map(|v| v.to_bits()).collect())
        .collect();
    all.sort();
    want.sort();
    assert_eq!(all, want);
}

#[test]
fn synthetic_sets_are_seeded_and_shaped() {
    for kind in [DataKind::Moons, DataKind::SwissRoll, DataKind::Grid25] {
        let mut spec = DataSpec::of_kind(kind);
        spec.n_train = Some(500);
        spec.n_heldout = Some(100);
        let a = spec.load(3).unwrap();
        assert_eq!(a.shape(), DataShape::Vector(2));
        assert_eq!((a.train.len(), a.heldout.len()), (500, 100));
        assert_eq!(a.train, spec.load(3).unwrap().train, "{kind:?}");
        assert_ne!(a.train, spec.load(4).unwrap().train, "{kind:?}");
        assert_ne!(a.train.point(0), a.heldout.point(0));
        assert!(a.train.values.iter().all(|v| v.abs() < 1.5), "{kind:?}");
    }
    // Changing n_train leaves the held-out set alone.
    let mut spec = DataSpec::of_kind(DataKind::Moons);
    spec.n_heldout = Some(50);
    spec.n_train = Some(10);
    let small = spec.load(0).unwrap();
    spec.n_train = Some(20);
    assert_eq!(small.heldout, spec.load(0).unwrap().heldout);
}

#[test]
fn mixture_samples_have_the_mixture_moments() {
    let mut spec = DataSpec::of_kind(DataKind::GaussianMixture);
    spec.weights = Some(vec![0.25, 0.75]);
    spec.means = Some(vec![vec![-2.0, 1.0, 0.0], vec![2.0, 0.0, -1.0]]);
    spec.std = Some(StdSpec::PerComponent(vec![0.5, 0.2]));
    spec.n_train = Some(40_000);
    let d = spec.load(0).unwrap();
    let m = d.mixture.as_ref().unwrap();
    assert_eq!(d.shape(), DataShape::Vector(3));
    let n = d.train.len() as f64;
    let cov = m.covariance();
    for (j, want) in m.mean().iter().enumerate() {
        let got: f64 = (0..d.train.len()).map(|i| d.train.point(i)[j] as f64).sum::<f64>() / n;
        assert!(
            (got - want).abs() < 4.0 * (cov[j][j] / n).sqrt(),
            "mean[{j}] {got} vs {want}"
        );
    }
    // Mass of the first component: points with x_0 < 0.
    let left = (0..d.train.len()).filter(|i| d.train.point(*i)[0] < 0.0).count() as f64 / n;
    assert!((left - 0.25).abs() < 4.0 * (0.25f64 * 0.75 / n).sqrt(), "{left}");
}

#[test]
fn data_keys_must_fit_the_kind() {
    let mut spec = DataSpec::of_kind(DataKind::Digits);
    spec.noise = Some(0.1);
    let err = spec.validate().unwrap_err().to_string();
    assert!(
        err.contains("data.noise") && err.contains("n_train, n_heldout"),
        "{err}"
    );
    let mut spec = DataSpec::of_kind(DataKind::Digits);
    spec.n_heldout = Some(1797);
    assert!(spec.validate().unwrap_err().to_string().contains("1797 images"));
    let spec = DataSpec::of_kind(DataKind::GaussianMixture);
    assert!(spec
        .validate()
        .unwrap_err()
        .to_string()
        .contains("data.weights: required"));
    let mut spec = DataSpec::of_kind(DataKind::GaussianMixture);
    spec.weights = Some(vec![0.5, 0.6]);
    spec.means = Some(vec![vec![0.0], vec![1.0]]);
    spec.std = Some(StdSpec::Shared(0.1));
    assert!(spec.validate().unwrap_err().to_string().contains("sum to"));
}
