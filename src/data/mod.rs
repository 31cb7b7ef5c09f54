//! Data sets with fixed, seeded train / held-out splits.
//!
//! Synthetic 2-D sets are generated from the experiment seed (any size); the UCI 8×8
//! digits ship inside the binary (`digits.csv.gz`, CC BY 4.0, see `DIGITS.md`); `images`
//! reads images from files ([`images`]), all of them held out (for checkpoint models).
//! Every data set reports its [`DataShape`] so models and metrics adapt to it.

pub mod images;

use std::io::Read;
use std::path::PathBuf;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::mixture::GaussianMixture;
use crate::rng::{stream, Purpose};
use crate::shape::DataShape;

/// One split of a data set: `len` points of `shape`, row-major f32, with optional labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The values, `len × shape.numel()`.
    pub values: Vec<f32>,
    /// Class labels, where the data set has them.
    pub labels: Option<Vec<u8>>,
    /// The shape of one point.
    pub shape: DataShape,
}

impl Split {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.values.len() / self.shape.numel()
    }

    /// True when the split has no points.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Point `i` as a slice.
    pub fn point(&self, i: usize) -> &[f32] {
        let d = self.shape.numel();
        &self.values[i * d..(i + 1) * d]
    }

    /// The points at `indices` as a tensor `[indices.len(), …shape]`.
    pub fn batch(&self, indices: &[usize], device: &Device) -> Result<Tensor> {
        let mut v = Vec::with_capacity(indices.len() * self.shape.numel());
        for &i in indices {
            v.extend_from_slice(self.point(i));
        }
        Ok(Tensor::from_vec(v, self.shape.batch_dims(indices.len()), device)?)
    }

    /// The first `n` points (all when `n` exceeds the split) as a tensor.
    pub fn head(&self, n: usize, device: &Device) -> Result<Tensor> {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.batch(&idx, device)
    }
}

/// A data set with its train and held-out splits.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The kind, as named in YAML.
    pub kind: DataKind,
    /// Training points.
    pub train: Split,
    /// Held-out points (never trained on).
    pub heldout: Split,
    /// The exact distribution, for data drawn from a Gaussian mixture.
    pub mixture: Option<GaussianMixture>,
}

impl Dataset {
    /// The shape of one point.
    pub fn shape(&self) -> DataShape {
        self.train.shape
    }
}

crate::named_enum! {
    /// The kinds of data set.
    pub enum DataKind {
        /// A Gaussian mixture given by weights, means and std (the oracle's distribution).
        GaussianMixture = "gaussian_mixture",
        /// Two interleaving half circles, scaled to [−1, 1] × [−0.5, 0.5].
        Moons = "moons",
        /// A 2-D swiss roll, scaled into [−1, 1]².
        SwissRoll = "swiss_roll",
        /// 25 equal Gaussians on a 5 × 5 grid over [−0.8, 0.8]² (a Gaussian mixture).
        Grid25 = "grid25",
        /// The UCI 8×8 handwritten digits, 1,797 images, pixels scaled to [−1, 1].
        Digits = "digits",
        /// uint8 images from a PNG folder or an `.npz`, scaled to [−1, 1]; all held out, no labels.
        Images = "images",
    }
}

/// `std` of a Gaussian mixture: one number for all, one per component, or one per
/// component and dimension.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    untagged,
    expecting = "a number, a list with one number per component, or one list per component"
)]
pub enum StdSpec {
    /// The same isotropic std for every component.
    Shared(f64),
    /// One isotropic std per component.
    PerComponent(Vec<f64>),
    /// One std per component and dimension.
    Diagonal(Vec<Vec<f64>>),
}

/// The `data:` block of an experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSpec {
    /// Which data set.
    pub kind: DataKind,
    /// Mixture weights (gaussian_mixture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f64>>,
    /// Mixture means (gaussian_mixture).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub means: Option<Vec<Vec<f64>>>,
    /// Mixture std (gaussian_mixture, grid25).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<StdSpec>,
    /// Std of the Gaussian noise added to moons / swiss_roll points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    /// Number of training points (synthetic default 20,000; digits: all but the held-out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_train: Option<usize>,
    /// Number of held-out points (synthetic default 2,000; digits default 297; images:
    /// the first this many of the file, default all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n_heldout: Option<usize>,
    /// images: a folder of `.png` files or an `.npz` of uint8 NHWC / NCHW images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// images: side of the square images (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_size: Option<usize>,
    /// images: channels, 1 or 3 (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
}

/// Default sizes of synthetic splits.
pub const DEFAULT_N_TRAIN: usize = 20_000;
/// Default held-out size of synthetic data sets.
pub const DEFAULT_N_HELDOUT: usize = 2_000;
/// Default held-out size of the digits (1,500 images are left to train on).
pub const DIGITS_DEFAULT_HELDOUT: usize = 297;
/// Number of images in the digits file.
pub const DIGITS_COUNT: usize = 1797;
const MOONS_NOISE: f64 = 0.05;
const SWISS_ROLL_NOISE: f64 = 0.02;
const GRID25_STD: f64 = 0.05;

fn invalid(field: &str, message: impl std::fmt::Display) -> Error {
    Error::invalid(format!("data.{field}"), message)
}

impl DataSpec {
    /// A spec of `kind` with every optional key at its default.
    pub fn of_kind(kind: DataKind) -> Self {
        Self {
            kind,
            weights: None,
            means: None,
            std: None,
            noise: None,
            n_train: None,
            n_heldout: None,
            path: None,
            image_size: None,
            channels: None,
        }
    }

    /// The shape of one point (without generating or reading the data).
    pub fn shape(&self) -> Result<DataShape> {
        Ok(match (self.kind, self.mixture()?) {
            (_, Some(m)) => DataShape::Vector(m.dim()),
            (DataKind::Digits, _) => DataShape::Image {
                channels: 1,
                height: 8,
                width: 8,
            },
            (DataKind::Images, _) => {
                let f = self.image_format();
                DataShape::Image {
                    channels: f.channels,
                    height: f.size,
                    width: f.size,
                }
            }
            _ => DataShape::Vector(2),
        })
    }

    /// The pixel format of `images` data, after defaults.
    fn image_format(&self) -> images::ImageFormat {
        images::ImageFormat {
            size: self.image_size.unwrap_or(images::DEFAULT_IMAGE_SIZE),
            channels: self.channels.unwrap_or(images::DEFAULT_CHANNELS),
        }
    }

    /// Checks that the keys fit the kind (without generating anything).
    pub fn validate(&self) -> Result<()> {
        let allowed: &[&str] = match self.kind {
            DataKind::GaussianMixture => &["weights", "means", "std", "n_train", "n_heldout"],
            DataKind::Moons | DataKind::SwissRoll => &["noise", "n_train", "n_heldout"],
            DataKind::Grid25 => &["std", "n_train", "n_heldout"],
            DataKind::Digits => &["n_train", "n_heldout"],
            DataKind::Images => &["path", "image_size", "channels", "n_heldout"],
        };
        let present = [
            ("weights", self.weights.is_some()),
            ("means", self.means.is_some()),
            ("std", self.std.is_some()),
            ("noise", self.noise.is_some()),
            ("n_train", self.n_train.is_some()),
            ("path", self.path.is_some()),
            ("image_size", self.image_size.is_some()),
            ("channels", self.channels.is_some()),
        ];
        if let Some((key, _)) = present.iter().find(|(k, p)| *p && !allowed.contains(k)) {
            return Err(invalid(
                key,
                format!(
                    "not used by kind {:?}; its keys are: {}",
                    self.kind.name(),
                    allowed.join(", ")
                ),
            ));
        }
        if let Some(noise) = self.noise {
            if !(noise.is_finite() && noise >= 0.0) {
                return Err(invalid("noise", format!("{noise}: must be a finite number ≥ 0")));
            }
        }
        if self.kind == DataKind::Images {
            return self.validate_images();
        }
        let (n_train, n_heldout) = self.sizes()?;
        if n_train == 0 {
            return Err(invalid("n_train", "must be at least 1"));
        }
        if n_heldout == 0 {
            return Err(invalid("n_heldout", "must be at least 1"));
        }
        self.mixture().map(|_| ())
    }

    /// The keys of `images` data (the files themselves are read by [`load`](Self::load)).
    fn validate_images(&self) -> Result<()> {
        if self.path.is_none() {
            return Err(invalid(
                "path",
                "required for images: a folder of .png files or an .npz of uint8 images",
            ));
        }
        let f = self.image_format();
        if f.size == 0 {
            return Err(invalid("image_size", "must be at least 1"));
        }
        if ![1, 3].contains(&f.channels) {
            return Err(invalid(
                "channels",
                format!("{}: must be 1 (grey) or 3 (RGB)", f.channels),
            ));
        }
        if self.n_heldout == Some(0) {
            return Err(invalid("n_heldout", "must be at least 1"));
        }
        Ok(())
    }

    /// (n_train, n_heldout) after defaults; for `images`, (0, at most n_heldout), where
    /// no n_heldout means all images of the file (`usize::MAX` here).
    pub fn sizes(&self) -> Result<(usize, usize)> {
        if self.kind == DataKind::Images {
            return Ok((0, self.n_heldout.unwrap_or(usize::MAX)));
        }
        if self.kind == DataKind::Digits {
            let held = self.n_heldout.unwrap_or(DIGITS_DEFAULT_HELDOUT);
            if held >= DIGITS_COUNT {
                return Err(invalid(
                    "n_heldout",
                    format!("{held}: the digits have {DIGITS_COUNT} images in all"),
                ));
            }
            let max_train = DIGITS_COUNT - held;
            let train = self.n_train.unwrap_or(max_train);
            if train > max_train {
                return Err(invalid(
                    "n_train",
                    format!("{train}: at most {max_train} digits are left after {held} held out"),
                ));
            }
            return Ok((train, held));
        }
        Ok((
            self.n_train.unwrap_or(DEFAULT_N_TRAIN),
            self.n_heldout.unwrap_or(DEFAULT_N_HELDOUT),
        ))
    }

    /// The exact mixture for `gaussian_mixture` and `grid25` data, `None` for other kinds.
    pub fn mixture(&self) -> Result<Option<GaussianMixture>> {
        let mixture = match self.kind {
            DataKind::GaussianMixture => {
                let weights = self
                    .weights
                    .clone()
                    .ok_or_else(|| invalid("weights", "required for gaussian_mixture"))?;
                let means = self
                    .means
                    .clone()
                    .ok_or_else(|| invalid("means", "required for gaussian_mixture"))?;
                let std = self
                    .std
                    .clone()
                    .ok_or_else(|| invalid("std", "required for gaussian_mixture"))?;
                let k = means.len();
                let stds = match std {
                    StdSpec::Shared(s) => vec![s; k],
                    StdSpec::PerComponent(v) => v,
                    StdSpec::Diagonal(v) => {
                        return GaussianMixture::new(weights, means, v)
                            .map(Some)
                            .map_err(|e| invalid("std", e.to_string()))
                    }
                };
                GaussianMixture::isotropic(weights, means, stds)
            }
            DataKind::Grid25 => {
                let s = match self.std {
                    None => GRID25_STD,
                    Some(StdSpec::Shared(s)) => s,
                    Some(_) => return Err(invalid("std", "grid25 takes one number")),
                };
                let means = (0..25)
                    .map(|i| vec![0.4 * (i / 5) as f64 - 0.8, 0.4 * (i % 5) as f64 - 0.8])
                    .collect();
                GaussianMixture::isotropic(vec![1.0 / 25.0; 25], means, vec![s; 25])
            }
            _ => return Ok(None),
        };
        mixture
            .map(Some)
            .map_err(|e| invalid("means/weights/std", e.to_string()))
    }

    /// Generates (or loads) the data set with the experiment's `seed`.
    pub fn load(&self, seed: u64) -> Result<Dataset> {
        self.validate()?;
        let (n_train, n_heldout) = self.sizes()?;
        let mixture = self.mixture()?;
        let (train, heldout) = if self.kind == DataKind::Digits {
            digits_split(seed, n_train, n_heldout)?
        } else if let (DataKind::Images, Some(path)) = (self.kind, &self.path) {
            let shape = self.shape()?;
            let (values, _) = images::load(path, self.image_format(), Some(n_heldout))?;
            let split = |values| Split {
                values,
                labels: None,
                shape,
            };
            (split(Vec::new()), split(values))
        } else {
            let generate = |purpose, n| -> Split {
                let mut rng = stream(seed, purpose);
                let values = match (&mixture, self.kind) {
                    (Some(m), _) => sample_mixture(m, n, &mut rng),
                    (None, DataKind::Moons) => moons(n, self.noise.unwrap_or(MOONS_NOISE), &mut rng),
                    (None, _) => swiss_roll(n, self.noise.unwrap_or(SWISS_ROLL_NOISE), &mut rng),
                };
                let d = mixture.as_ref().map_or(2, GaussianMixture::dim);
                Split {
                    values,
                    labels: None,
                    shape: DataShape::Vector(d),
                }
            };
            (
                generate(Purpose::TrainData, n_train),
                generate(Purpose::HeldoutData, n_heldout),
            )
        };
        Ok(Dataset {
            kind: self.kind,
            train,
            heldout,
            mixture,
        })
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(rng)
}

/// `n` points of a Gaussian mixture, row-major.
pub fn sample_mixture(m: &GaussianMixture, n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * m.dim());
    for _ in 0..n {
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let k = m.weights().iter().position(|w| {
            acc += w;
            u < acc
        });
        let k = k.unwrap_or(m.components() - 1);
        for j in 0..m.dim() {
            out.push((m.means()[k][j] + m.stds()[k][j] * normal(rng)) as f32);
        }
    }
    out
}

/// Two moons (as scikit-learn's `make_moons`, with uniform angles), scaled by 1/1.5
/// around (0.5, 0.25), plus N(0, noise²) per coordinate.
fn moons(n: usize, noise: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let theta = rng.random::<f64>() * std::f64::consts::PI;
        let (x, y) = if rng.random::<bool>() {
            (theta.cos(), theta.sin())
        } else {
            (1.0 - theta.cos(), 0.5 - theta.sin())
        };
        out.push(((x - 0.5) / 1.5 + noise * normal(rng)) as f32);
        out.push(((y - 0.25) / 1.5 + noise * normal(rng)) as f32);
    }
    out
}

/// A 2-D swiss roll: t = 1.5π(1 + 2u), (t cos t, t sin t)/(4.5π), plus N(0, noise²).
fn swiss_roll(n: usize, noise: f64, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let scale = 4.5 * std::f64::consts::PI;
    let mut out = Vec::with_capacity(2 * n);
    for _ in 0..n {
        let t = 1.5 * std::f64::consts::PI * (1.0 + 2.0 * rng.random::<f64>());
        out.push((t * t.cos() / scale + noise * normal(rng)) as f32);
        out.push((t * t.sin() / scale + noise * normal(rng)) as f32);
    }
    out
}

static DIGITS_GZ: &[u8] = include_bytes!("digits.csv.gz");

/// All 1,797 digits: pixels scaled to [−1, 1] (x/8 − 1) and labels.
pub fn digits() -> Result<(Vec<f32>, Vec<u8>)> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_GZ)
        .read_to_string(&mut text)
        .map_err(|e| Error::Io {
            path: "digits.csv.gz (embedded)".into(),
            message: e.to_string(),
            source: None,
        })?;
    let mut pixels = Vec::with_capacity(DIGITS_COUNT * 64);
    let mut labels = Vec::with_capacity(DIGITS_COUNT);
    for (line_no, line) in text.lines().enumerate() {
        let fields: Vec<u8> = line
            .split(',')
            .map(|f| f.trim().parse::<f64>().map(|v| v as u8))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::Io {
                path: format!("digits.csv.gz line {}", line_no + 1),
                message: e.to_string(),
                source: None,
            })?;
        if fields.len() != 65 {
            return Err(Error::Io {
                path: format!("digits.csv.gz line {}", line_no + 1),
                message: format!("{} fields, expected 64 pixels and a label", fields.len()),
                source: None,
            });
        }
        pixels.extend(fields[..64].iter().map(|&p| p as f32 / 8.0 - 1.0));
        labels.push(fields[64]);
    }
    Ok((pixels, labels))
}

fn digits_split(seed: u64, n_train: usize, n_heldout: usize) -> Result<(Split, Split)> {
    let (pixels, labels) = digits()?;
    let mut order: Vec<usize> = (0..labels.len()).collect();
    order.shuffle(&mut stream(seed, Purpose::Split));
    let shape = DataShape::Image {
        channels: 1,
        height: 8,
        width: 8,
    };
    let take = |idx: &[usize]| Split {
        values: idx
            .iter()
            .flat_map(|&i| pixels[i * 64..(i + 1) * 64].iter().copied())
            .collect(),
        labels: Some(idx.iter().map(|&i| labels[i]).collect()),
        shape,
    };
    let (held, rest) = order.split_at(n_heldout);
    Ok((take(&rest[..n_train]), take(held)))
}
