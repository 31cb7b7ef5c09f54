//! A small digit classifier whose penultimate activations are the feature space of our
//! FID analogue.
//!
//! FID (Heusel et al. 2017, *GANs Trained by a Two Time-Scale Update Rule Converge to a
//! Local Nash Equilibrium*) is the Fréchet distance between Gaussians fitted to the
//! Inception-v3 pool features of real and generated images. Inception knows nothing of
//! 8×8 digits, so here the feature extractor is a small MLP trained on the same data set
//! (the UCI digits' train split): d → 256 → 128 → classes with SiLU, and the 128
//! activations after the second hidden layer are the features. The sweep also reports
//! the classifier's held-out accuracy (how much its features can be trusted) and the
//! histogram of labels it predicts for generated images (mode coverage).
//!
//! Training is seeded (initialisation and minibatches come from
//! [`Purpose::Classifier`]), so the same data, spec and seed give bit-identical weights.
//! [`load_or_train`] caches the weights with a JSON sidecar and retrains only when the
//! data, the spec or the seed changed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Module, Tensor, D};
use candle_nn::{linear, Linear, VarBuilder, VarMap};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::data::{Dataset, Split};
use crate::error::{Error, Result};
use crate::hashing::{fingerprint, Digest};
use crate::model::checkpoint::{load_into, named_tensors, read, save_atomic, sorted_vars, SeededInit};
use crate::progress::Progress;
use crate::rng::{stream, stream_at, Purpose};
use crate::shape::DataShape;
use crate::train::{gradients, AdamW};

/// Rows per forward pass in [`Classifier::predict`] and [`Classifier::features_host`].
const HOST_BATCH: usize = 512;

/// Bumped whenever the architecture or training procedure changes, so that old caches
/// are retrained rather than trusted.
const FORMAT: u32 = 1;

/// Hyper-parameters of the classifier and its training (cross-entropy, AdamW with a
/// cosine learning-rate decay to 0, minibatches drawn by seeded epoch shuffles).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierSpec {
    /// Widths of the two hidden layers; the second is the feature dimension.
    #[serde(default = "d_hidden")]
    pub hidden: [usize; 2],
    /// Optimiser steps.
    #[serde(default = "d_steps")]
    pub steps: usize,
    /// Minibatch size.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Peak learning rate (cosine decay to 0 over `steps`).
    #[serde(default = "d_lr")]
    pub lr: f64,
    /// AdamW's decoupled weight decay.
    #[serde(default = "d_wd")]
    pub weight_decay: f64,
}

fn d_hidden() -> [usize; 2] {
    [256, 128]
}
fn d_steps() -> usize {
    800
}
fn d_batch() -> usize {
    128
}
fn d_lr() -> f64 {
    2e-3
}
fn d_wd() -> f64 {
    1e-2
}

impl Default for ClassifierSpec {
    fn default() -> Self {
        Self {
            hidden: d_hidden(),
            steps: d_steps(),
            batch_size: d_batch(),
            lr: d_lr(),
            weight_decay: d_wd(),
        }
    }
}

impl ClassifierSpec {
    /// Refuses values no training run can use.
    pub fn validate(&self) -> Result<()> {
        if self.hidden.contains(&0) {
            return Err(Error::invalid(
                "classifier.hidden",
                "every hidden width must be at least 1",
            ));
        }
        if self.steps == 0 {
            return Err(Error::invalid("classifier.steps", "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("classifier.batch_size", "must be at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "classifier.lr",
                format!("{}: must be a positive number", self.lr),
            ));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(Error::invalid(
                "classifier.weight_decay",
                format!("{}: must be ≥ 0", self.weight_decay),
            ));
        }
        Ok(())
    }

    /// The learning rate at 0-based step `k`: lr · ½(1 + cos(πk / steps)).
    pub fn lr_at(&self, k: usize) -> f64 {
        self.lr * 0.5 * (1.0 + (std::f64::consts::PI * k as f64 / self.steps as f64).cos())
    }
}

/// The classifier: flattened pixels → SiLU(fc1) → SiLU(fc2) = features → logits.
#[derive(Clone)]
pub struct Classifier {
    shape: DataShape,
    classes: usize,
    hidden: [usize; 2],
    varmap: VarMap,
    fc1: Linear,
    fc2: Linear,
    out: Linear,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("shape", &self.shape)
            .field("hidden", &self.hidden)
            .field("classes", &self.classes)
            .finish_non_exhaustive()
    }
}

impl Classifier {
    /// A freshly initialised classifier for points of `shape` (weights drawn from the
    /// seeded stream of `seed`).
    pub fn new(shape: DataShape, classes: usize, hidden: [usize; 2], seed: u64, device: &Device) -> Result<Self> {
        if classes < 2 {
            return Err(Error::invalid(
                "classifier.classes",
                format!("{classes}: need at least 2 classes"),
            ));
        }
        if hidden.contains(&0) {
            return Err(Error::invalid(
                "classifier.hidden",
                "every hidden width must be at least 1",
            ));
        }
        let varmap = VarMap::new();
        let init = SeededInit::new(varmap.clone(), stream_at(seed, Purpose::Classifier, 0));
        let vb = VarBuilder::from_backend(Box::new(init), DType::F32, device.clone());
        let d = shape.numel();
        Ok(Self {
            shape,
            classes,
            hidden,
            fc1: linear(d, hidden[0], vb.pp("fc1"))?,
            fc2: linear(hidden[0], hidden[1], vb.pp("fc2"))?,
            out: linear(hidden[1], classes, vb.pp("out"))?,
            varmap,
        })
    }

    /// The shape of one input point.
    pub fn shape(&self) -> DataShape {
        self.shape
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The feature dimension (width of the second hidden layer).
    pub fn feature_dim(&self) -> usize {
        self.hidden[1]
    }

    /// Trainable scalars.
    pub fn parameter_count(&self) -> usize {
        self.varmap.all_vars().iter().map(|v| v.elem_count()).sum()
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        self.fc1.weight().device()
    }

    fn flatten(&self, x: &Tensor) -> Result<Tensor> {
        let d = self.shape.numel();
        let n = x.dim(0)?;
        if x.elem_count() != n * d {
            return Err(Error::Shape(format!(
                "classifier input {:?}: expected [n, …{}] ({d} values per point)",
                x.dims(),
                self.shape
            )));
        }
        Ok(x.reshape((n, d))?.to_dtype(DType::F32)?)
    }

    /// The penultimate activations `[n, feature_dim]` of a batch `[n, …shape]` (or `[n, d]`).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.fc1.forward(&self.flatten(x)?)?.silu()?;
        Ok(self.fc2.forward(&h)?.silu()?)
    }

    /// The logits `[n, classes]` of a batch.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.out.forward(&self.features(x)?)?)
    }

    /// The logits (same as [`Classifier::logits`]).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.logits(x)
    }

    /// Runs `f` over `x` (flat rows of `shape.numel()` values) in batches, collecting
    /// its host output.
    fn host_batches<T>(&self, x: &[f32], mut f: impl FnMut(&Tensor) -> Result<Vec<T>>) -> Result<Vec<T>> {
        let d = self.shape.numel();
        if !x.len().is_multiple_of(d) {
            return Err(Error::Shape(format!(
                "{} values are not whole points of shape {} ({d} values each)",
                x.len(),
                self.shape
            )));
        }
        let mut out = Vec::new();
        for chunk in x.chunks(HOST_BATCH * d) {
            let t = Tensor::from_slice(chunk, (chunk.len() / d, d), self.device())?;
            out.extend(f(&t)?);
        }
        Ok(out)
    }

    /// The predicted label of every point of `x` (flat rows, host memory).
    pub fn predict(&self, x: &[f32]) -> Result<Vec<u8>> {
        self.host_batches(x, |t| {
            let idx = self.logits(t)?.argmax(D::Minus1)?.to_vec1::<u32>()?;
            Ok(idx.into_iter().map(|i| i as u8).collect())
        })
    }

    /// The features of every point of `x` (flat rows), row-major `n × feature_dim`.
    pub fn features_host(&self, x: &[f32]) -> Result<Vec<f32>> {
        self.host_batches(x, |t| Ok(self.features(t)?.flatten_all()?.to_vec1::<f32>()?))
    }

    /// Features, predicted label and top-class probability (softmax maximum) of every
    /// point of `x` (flat rows), from one pass.
    pub fn assess(&self, x: &[f32]) -> Result<Assessment> {
        let mut out = Assessment::default();
        self.host_batches(x, |t| -> Result<Vec<()>> {
            let features = self.features(t)?;
            let probs = candle_nn::ops::softmax_last_dim(&self.out.forward(&features)?)?;
            out.features.extend(features.flatten_all()?.to_vec1::<f32>()?);
            out.confidence
                .extend(probs.max(D::Minus1)?.to_dtype(DType::F64)?.to_vec1::<f64>()?);
            out.labels
                .extend(probs.argmax(D::Minus1)?.to_vec1::<u32>()?.into_iter().map(|i| i as u8));
            Ok(Vec::new())
        })?;
        Ok(out)
    }

    /// The fraction of `split`'s points whose label is predicted correctly.
    pub fn accuracy(&self, split: &Split) -> Result<f64> {
        let labels = labels_of(split, "split")?;
        if split.is_empty() {
            return Err(Error::invalid("classifier", "accuracy of an empty split"));
        }
        let pred = self.predict(&split.values)?;
        let right = pred.iter().zip(labels).filter(|(p, l)| p == l).count();
        Ok(right as f64 / labels.len() as f64)
    }

    /// Writes the weights to `path` (safetensors, atomically).
    pub fn save(&self, path: &Path) -> Result<()> {
        save_atomic(&named_tensors(&self.varmap), path)
    }

    /// A classifier of this architecture with the weights of `path`.
    pub fn load(path: &Path, shape: DataShape, classes: usize, hidden: [usize; 2], device: &Device) -> Result<Self> {
        let net = Self::new(shape, classes, hidden, 0, device)?;
        load_into(&net.varmap, &read(path, device)?, &path.display().to_string())?;
        Ok(net)
    }
}

fn labels_of<'a>(split: &'a Split, which: &str) -> Result<&'a [u8]> {
    split.labels.as_deref().ok_or_else(|| {
        Error::invalid(
            "data",
            format!("the {which} split has no class labels: the feature classifier needs a labelled data set (digits)"),
        )
    })
}

/// What the classifier makes of a set of points (see [`Classifier::assess`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Assessment {
    /// Penultimate activations, n × feature_dim, row-major.
    pub features: Vec<f32>,
    /// Predicted labels.
    pub labels: Vec<u8>,
    /// Top-class probabilities.
    pub confidence: Vec<f64>,
}

/// Trains a classifier on `train` and returns it with its accuracy on `heldout`.
pub fn train_classifier(
    train: &Split,
    heldout: &Split,
    classes: usize,
    spec: &ClassifierSpec,
    seed: u64,
    device: &Device,
    progress: &mut Progress,
) -> Result<(Classifier, f64)> {
    spec.validate()?;
    let labels = labels_of(train, "train")?;
    labels_of(heldout, "held-out")?;
    if train.is_empty() || heldout.is_empty() {
        return Err(Error::invalid(
            "data",
            "the classifier needs non-empty train and held-out splits",
        ));
    }
    if train.shape != heldout.shape {
        return Err(Error::Shape(format!(
            "train points are {}, held-out points {}",
            train.shape, heldout.shape
        )));
    }
    if let Some(&l) = labels.iter().find(|&&l| l as usize >= classes) {
        return Err(Error::invalid("data", format!("label {l} with only {classes} classes")));
    }
    let net = Classifier::new(train.shape, classes, spec.hidden, seed, device)?;
    let (_, vars) = sorted_vars(&net.varmap);
    let mut adam = AdamW::new(&vars, spec.weight_decay)?;
    let mut rng = stream(seed, Purpose::Classifier);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut cursor = order.len();
    let batch = spec.batch_size.min(order.len());
    for k in 0..spec.steps {
        if cursor + batch > order.len() {
            order.shuffle(&mut rng);
            cursor = 0;
        }
        let idx = &order[cursor..cursor + batch];
        cursor += batch;
        let x = train.batch(idx, device)?;
        let y: Vec<u32> = idx.iter().map(|&i| labels[i] as u32).collect();
        let y = Tensor::from_vec(y, batch, device)?;
        let loss = candle_nn::loss::cross_entropy(&net.logits(&x)?, &y)?;
        let grads = gradients(&loss, &vars)?;
        adam.step(&vars, &grads, spec.lr_at(k))?;
        if k % 50 == 0 || k + 1 == spec.steps {
            let value = loss.to_scalar::<f32>()?;
            if !value.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("classifier loss at step {k}"),
                    count: 1,
                });
            }
            progress.set_message(format!("loss {value:.4}"));
        }
        progress.set_position(k as u64 + 1);
    }
    let accuracy = net.accuracy(heldout)?;
    Ok((net, accuracy))
}

/// A classifier from [`load_or_train`].
#[derive(Debug, Clone)]
pub struct TrainedClassifier {
    /// The network.
    pub classifier: Classifier,
    /// Its accuracy on the held-out split.
    pub heldout_accuracy: f64,
    /// True when the cached weights were loaded instead of training.
    pub reused: bool,
}

/// The JSON sidecar `classifier.json` of a cached classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassifierCard {
    /// The hyper-parameters.
    pub spec: ClassifierSpec,
    /// The seed.
    pub seed: u64,
    /// The shape of one input point.
    pub shape: DataShape,
    /// Number of classes.
    pub classes: usize,
    /// SHA-256 of the train and held-out splits (values, labels, shape).
    pub data_digest: String,
    /// Accuracy on the held-out split.
    pub heldout_accuracy: f64,
    /// Trainable scalars.
    pub parameters: usize,
    /// Training wall time, seconds.
    pub train_seconds: f64,
    /// ddimlab's version.
    pub ddimlab_version: String,
    /// Hash of everything that determines the weights (data, spec, seed, format).
    pub fingerprint: String,
}

/// SHA-256 (hex) of the data the classifier is trained and evaluated on.
fn data_digest(data: &Dataset) -> String {
    let mut h = crate::hashing::hasher();
    for split in [&data.train, &data.heldout] {
        h.update(serde_json::to_vec(&split.shape).expect("serialisable"));
        h.update((split.len() as u64).to_le_bytes());
        for v in &split.values {
            h.update(v.to_le_bytes());
        }
        if let Some(l) = &split.labels {
            h.update(l);
        }
    }
    crate::hashing::finish(h)
}

/// Number of classes of a labelled data set: the largest label + 1.
fn class_count(data: &Dataset) -> Result<usize> {
    let train = labels_of(&data.train, "train")?;
    let held = labels_of(&data.heldout, "held-out")?;
    Ok(train.iter().chain(held).map(|&l| l as usize + 1).max().unwrap_or(0))
}

/// Where [`load_or_train`] keeps its files under `dir`: (weights, sidecar).
pub fn cache_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("classifier.safetensors"), dir.join("classifier.json"))
}

/// The classifier for `data` cached in `dir` (`classifier.safetensors` and
/// `classifier.json`) when its fingerprint (data, spec, seed) matches; otherwise
/// trains one on `data.train`, measures it on `data.heldout` and writes both files
/// atomically. Data sets without labels are refused with [`Error::Invalid`].
pub fn load_or_train(
    dir: &Path,
    data: &Dataset,
    spec: &ClassifierSpec,
    seed: u64,
    device: &Device,
    progress: &mut Progress,
) -> Result<TrainedClassifier> {
    spec.validate()?;
    let classes = class_count(data)?;
    let digest = data_digest(data);
    let want = fingerprint(&(FORMAT, &digest, spec, seed, classes));
    let (weights, card_path) = cache_paths(dir);
    if let Some(card) = cached_card(&card_path, &weights, &want) {
        if let Ok(classifier) = Classifier::load(&weights, card.shape, card.classes, card.spec.hidden, device) {
            // Recomputed (297 points: cheap) rather than read back, so it is exactly what
            // training reported (a JSON round trip may differ in the last bit).
            let heldout_accuracy = classifier.accuracy(&data.heldout)?;
            return Ok(TrainedClassifier {
                classifier,
                heldout_accuracy,
                reused: true,
            });
        }
    }
    let start = Instant::now();
    let (classifier, accuracy) = train_classifier(&data.train, &data.heldout, classes, spec, seed, device, progress)?;
    let card = ClassifierCard {
        spec: spec.clone(),
        seed,
        shape: data.train.shape,
        classes,
        data_digest: digest,
        heldout_accuracy: accuracy,
        parameters: classifier.parameter_count(),
        train_seconds: start.elapsed().as_secs_f64(),
        ddimlab_version: env!("CARGO_PKG_VERSION").into(),
        fingerprint: want,
    };
    // A stale sidecar goes first, so a crash between the two writes never pairs new
    // weights with an old card.
    if card_path.exists() {
        std::fs::remove_file(&card_path).map_err(|e| Error::io(&card_path, e))?;
    }
    classifier.save(&weights)?;
    write_atomic(
        &card_path,
        serde_json::to_string_pretty(&card).expect("serialisable").as_bytes(),
    )?;
    Ok(TrainedClassifier {
        classifier,
        heldout_accuracy: accuracy,
        reused: false,
    })
}

/// The sidecar at `card_path` when it and the weights exist and it matches `want`
/// (anything unreadable is a cache miss: the classifier is retrained).
fn cached_card(card_path: &Path, weights: &Path, want: &str) -> Option<ClassifierCard> {
    if !weights.exists() {
        return None;
    }
    let text = std::fs::read_to_string(card_path).ok()?;
    let card: ClassifierCard = serde_json::from_str(&text).ok()?;
    (card.fingerprint == want).then_some(card)
}
