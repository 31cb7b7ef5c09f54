//! The feature classifier of the FID analogue: accuracy on the digits, seeding, cache.

use std::sync::OnceLock;
use std::time::Instant;

use candle_core::{Device, Tensor};
use ddimlab::classifier::{load_or_train, train_classifier, Classifier, ClassifierSpec, TrainedClassifier};
use ddimlab::data::{DataKind, DataSpec, Dataset};
use ddimlab::progress::Progress;
use ddimlab::Error;

const SEED: u64 = 0;

fn digits() -> &'static Dataset {
    static DATA: OnceLock<Dataset> = OnceLock::new();
    DATA.get_or_init(|| DataSpec::of_kind(DataKind::Digits).load(SEED).unwrap())
}

/// The classifier trained once with the default spec (shared by the tests below).
fn trained() -> &'static (Classifier, f64) {
    static NET: OnceLock<(Classifier, f64)> = OnceLock::new();
    NET.get_or_init(|| {
        let d = digits();
        let start = Instant::now();
        let out = train_classifier(
            &d.train,
            &d.heldout,
            10,
            &ClassifierSpec::default(),
            SEED,
            &Device::Cpu,
            &mut Progress::hidden(),
        )
        .unwrap();
        eprintln!(
            "default classifier: held-out accuracy {:.4}, trained in {:.2} s",
            out.1,
            start.elapsed().as_secs_f64()
        );
        out
    })
}

/// A cheaper spec for the cache tests.
fn quick() -> ClassifierSpec {
    ClassifierSpec {
        steps: 100,
        ..ClassifierSpec::default()
    }
}

#[test]
fn default_spec_classifies_heldout_digits() {
    let (net, acc) = trained();
    assert!(*acc >= 0.93, "held-out accuracy {acc}");
    assert_eq!(net.accuracy(&digits().heldout).unwrap(), *acc);
    let pred = net.predict(&digits().heldout.values).unwrap();
    assert_eq!(pred.len(), digits().heldout.len());
    // Every class is predicted somewhere in the held-out set.
    let mut seen = [false; 10];
    pred.iter().for_each(|&p| seen[p as usize] = true);
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn features_have_the_penultimate_width() {
    let (net, _) = trained();
    let d = digits();
    let x = d.heldout.head(37, &Device::Cpu).unwrap();
    assert_eq!(x.dims(), &[37, 1, 8, 8]);
    let f = net.features(&x).unwrap();
    assert_eq!(f.dims(), &[37, 128]);
    assert_eq!(net.logits(&x).unwrap().dims(), &[37, 10]);
    assert_eq!(net.feature_dim(), 128);
    // The host path (batched) agrees with the tensor path.
    let host = net.features_host(&d.heldout.values).unwrap();
    assert_eq!(host.len(), d.heldout.len() * 128);
    let direct: Vec<f32> = f.flatten_all().unwrap().to_vec1().unwrap();
    assert_eq!(&host[..37 * 128], &direct[..]);
    // More points than one host batch.
    let many = net.features_host(&d.train.values).unwrap();
    assert_eq!(many.len(), d.train.len() * 128);
    assert!(many.iter().all(|v| v.is_finite()));
}

#[test]
fn wrong_dimensions_are_refused() {
    let (net, _) = trained();
    assert!(matches!(net.predict(&[0.0; 65]), Err(Error::Shape(_))));
    assert!(matches!(net.features_host(&[0.0; 63]), Err(Error::Shape(_))));
    let x = Tensor::zeros((3, 7), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(net.features(&x), Err(Error::Shape(_))));
    assert!(net.predict(&[]).unwrap().is_empty());
}

#[test]
fn same_seed_gives_identical_weights() {
    let d = digits();
    let run = |seed| {
        train_classifier(
            &d.train,
            &d.heldout,
            10,
            &quick(),
            seed,
            &Device::Cpu,
            &mut Progress::hidden(),
        )
        .unwrap()
    };
    let (a, acc_a) = run(3);
    let (b, acc_b) = run(3);
    let (c, _) = run(4);
    assert_eq!(acc_a, acc_b);
    let x = &d.heldout.values;
    assert_eq!(a.features_host(x).unwrap(), b.features_host(x).unwrap());
    assert_eq!(a.predict(x).unwrap(), b.predict(x).unwrap());
    assert_ne!(a.features_host(x).unwrap(), c.features_host(x).unwrap());
}

#[test]
fn cache_is_reused_and_retrained_on_change() {
    let dir = std::env::temp_dir().join(format!("ddimlab-classifier-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = digits();
    let go = |spec: &ClassifierSpec, seed| -> TrainedClassifier {
        load_or_train(&dir, d, spec, seed, &Device::Cpu, &mut Progress::hidden()).unwrap()
    };
    let first = go(&quick(), SEED);
    assert!(!first.reused);
    assert!(dir.join("classifier.safetensors").exists());
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("classifier.json")).unwrap()).unwrap();
    assert!((card["heldout_accuracy"].as_f64().unwrap() - first.heldout_accuracy).abs() < 1e-12);
    assert_eq!(card["ddimlab_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(card["classes"], 10);

    let second = go(&quick(), SEED);
    assert!(second.reused);
    assert_eq!(second.heldout_accuracy, first.heldout_accuracy);
    let x = &d.heldout.values;
    assert_eq!(
        first.classifier.features_host(x).unwrap(),
        second.classifier.features_host(x).unwrap()
    );

    let changed = ClassifierSpec { lr: 1e-3, ..quick() };
    let third = go(&changed, SEED);
    assert!(!third.reused);
    assert!(go(&changed, SEED).reused);
    // A different seed retrains too.
    assert!(!go(&changed, SEED + 1).reused);
    // A corrupt sidecar is a cache miss, not an error.
    std::fs::write(dir.join("classifier.json"), "{").unwrap();
    assert!(!go(&changed, SEED + 1).reused);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn unlabelled_data_is_refused() {
    let moons = DataSpec {
        n_train: Some(50),
        n_heldout: Some(10),
        ..DataSpec::of_kind(DataKind::Moons)
    }
    .load(SEED)
    .unwrap();
    let dir = std::env::temp_dir().join(format!("ddimlab-classifier-unlabelled-{}", std::process::id()));
    let err = load_or_train(&dir, &moons, &quick(), SEED, &Device::Cpu, &mut Progress::hidden()).unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("labels"), "{err}");
    assert!(!dir.exists());
    let err = train_classifier(
        &moons.train,
        &moons.heldout,
        2,
        &quick(),
        SEED,
        &Device::Cpu,
        &mut Progress::hidden(),
    )
    .unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let (net, _) = trained();
    assert!(matches!(net.accuracy(&moons.heldout), Err(Error::Invalid { .. })));
    let bad = ClassifierSpec { steps: 0, ..quick() };
    assert!(matches!(
        train_classifier(
            &digits().train,
            &digits().heldout,
            10,
            &bad,
            SEED,
            &Device::Cpu,
            &mut Progress::hidden()
        ),
        Err(Error::Invalid { .. })
    ));
}
