//! The three metric families applied to one sweep point's host arrays: reconstruction
//! (paper Table 2), trajectory consistency (§5.3) and sample statistics (Table 1's role).
//! Pure computation: the runner hands in arrays, this returns named numbers.

use std::collections::BTreeMap;

use crate::classifier::Classifier;
use crate::error::Result;
use rayon::prelude::*;

use crate::metrics::bootstrap::{weighted_mean, Bootstrap};
use crate::metrics::{
    component_of, mass_error, median_bandwidth_of, mmd2_unbiased, mse_unit, nearest_distances, psnr,
    sliced_wasserstein_counted, tv_to_uniform, Gaussian, KernelMatrices, Rooted, SortedProjections,
};
use crate::mixture::GaussianMixture;
use crate::store::MetricRow;

/// Column names of the metrics a point can carry (the columns of `metrics.parquet`).
pub mod names {
    /// Reconstruction MSE per dimension on the [0, 1] scale (paper Table 2).
    pub const RECON_MSE: &str = "recon_mse";
    /// PSNR of the reconstruction, dB.
    pub const RECON_PSNR: &str = "recon_psnr";
    /// MSE between x_0 at this point and at the reference from the same x_T.
    pub const CONSISTENCY_MSE: &str = "consistency_mse";
    /// PSNR of the same, dB.
    pub const CONSISTENCY_PSNR: &str = "consistency_psnr";
    /// MSE to the exact probability-flow solution (single-Gaussian oracle only).
    pub const CONSISTENCY_EXACT_MSE: &str = "consistency_exact_mse";
    /// Fréchet distance between Gaussians fitted to samples and held-out data.
    pub const FD: &str = "fd";
    /// Unbiased MMD², RBF kernel whose bandwidth is the median heuristic on the held-out data.
    pub const MMD2: &str = "mmd2";
    /// Sliced Wasserstein-2 distance.
    pub const SWD: &str = "swd";
    /// Fréchet distance in the features of the data set's classifier (FID analogue).
    pub const FD_CLASSIFIER: &str = "fd_classifier";
    /// Total variation between the predicted-label histogram and uniform.
    pub const LABEL_TV: &str = "label_tv";
    /// Total variation between component masses of the samples and the true weights.
    pub const MASS_ERROR: &str = "mass_error";
    /// Mean top-class probability the classifier gives the samples (an Inception-Score analogue).
    pub const CONFIDENCE: &str = "confidence";
    /// Mean distance from each sample to its nearest training point ÷ the same for the
    /// floor set (1: as far as unseen real data; → 0: copies of training points).
    pub const NN_RATIO: &str = "nn_ratio";
}

/// The real sets a sweep's samples are compared with (see [`super::target`]).
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The reference set of every distance (FD, MMD², SWD, the FID analogue).
    pub reference: Vec<f32>,
    /// An independent real set of (at most) the generated size: the noise floor, and
    /// the denominator of the memorisation ratio.
    pub floor: Option<Vec<f32>>,
    /// The training points (memorisation); empty when the data set has none.
    pub train: Vec<f32>,
}

/// The reference side of the Fréchet distances, prepared once: its Gaussian with Σ^{1/2},
/// and the same for each bootstrap resample of it.
struct FrechetReference {
    full: Rooted,
    replicates: Vec<Rooted>,
}

impl FrechetReference {
    fn new(reference: &[f32], d: usize, boot: Option<&Bootstrap>) -> Result<Self> {
        let n = crate::metrics::rows_checked(reference, d, "reference")?;
        let replicates = match boot {
            Some(b) => b
                .reference_counts(n)
                .par_iter()
                .map(|c| Rooted::new(&Gaussian::fit_counted(reference, d, c)))
                .collect::<Result<Vec<_>>>()?,
            None => Vec::new(),
        };
        Ok(Self {
            full: Rooted::new(&Gaussian::fit(reference, d)?)?,
            replicates,
        })
    }
}

/// The classifier, with the reference side of the FID analogue.
struct FeatureSpace {
    classifier: Classifier,
    reference: FrechetReference,
}

/// Sample statistics against a fixed [`Comparison`], each with its bootstrap interval.
pub struct SampleStats {
    d: usize,
    comparison: Comparison,
    reference: FrechetReference,
    /// RBF bandwidth of MMD², fixed once by the median heuristic on the reference data.
    bandwidth: f64,
    projections: usize,
    seed: u64,
    bootstrap: Option<Bootstrap>,
    mixture: Option<GaussianMixture>,
    features: Option<FeatureSpace>,
    /// Nearest-training-point distances of the floor set.
    floor_nearest: Option<Vec<f64>>,
    /// The reference's sorted projections for the sliced Wasserstein distance.
    reference_projections: SortedProjections,
}

/// A value and, when intervals are on, its `_lo` / `_hi` ends.
type Named = Vec<(String, f64)>;

impl SampleStats {
    /// Statistics against `comparison` (rows of `d` values); `bootstrap` `None`: no intervals.
    pub fn new(
        comparison: Comparison,
        d: usize,
        projections: usize,
        seed: u64,
        bootstrap: Option<Bootstrap>,
        mixture: Option<GaussianMixture>,
        classifier: Option<Classifier>,
    ) -> Result<Self> {
        let features = match classifier {
            Some(classifier) => {
                let feats = classifier.assess(&comparison.reference)?.features;
                Some(FeatureSpace {
                    reference: FrechetReference::new(&feats, classifier.feature_dim(), bootstrap.as_ref())?,
                    classifier,
                })
            }
            None => None,
        };
        let floor_nearest = match (&comparison.floor, comparison.train.is_empty()) {
            (Some(f), false) => Some(nearest_distances(f, &comparison.train, d)?),
            _ => None,
        };
        Ok(Self {
            reference_projections: SortedProjections::new(&comparison.reference, d, projections, seed)?,
            reference: FrechetReference::new(&comparison.reference, d, bootstrap.as_ref())?,
            bandwidth: median_bandwidth_of(&comparison.reference, d)?,
            comparison,
            d,
            projections,
            seed,
            bootstrap,
            mixture,
            features,
            floor_nearest,
        })
    }

    /// The real sets compared with.
    pub fn comparison(&self) -> &Comparison {
        &self.comparison
    }

    /// Every sample statistic of `samples` (rows of `d` values) with its interval. The
    /// families are independent, so they run concurrently (each is deterministic).
    pub fn measure(&self, samples: &[f32]) -> Result<BTreeMap<String, f64>> {
        let n = crate::metrics::rows_checked(samples, self.d, "samples")?;
        let (raw, (swd, (mix, (features, nearest)))) = rayon::join(
            || self.raw_distances(samples, n),
            || {
                rayon::join(
                    || self.swd(samples, n),
                    || {
                        rayon::join(
                            || self.mixture_stats(samples, n),
                            || rayon::join(|| self.feature_stats(samples, n), || self.memorisation(samples, n)),
                        )
                    },
                )
            },
        );
        let mut m = BTreeMap::new();
        for family in [raw, swd, mix, features, nearest] {
            m.extend(family?);
        }
        Ok(m)
    }

    /// The noise-floor row: the same statistics of the floor set (independent real data
    /// against the same reference), `None` when the data set has no independent split.
    pub fn floor(&self) -> Result<Option<BTreeMap<String, f64>>> {
        self.comparison.floor.as_ref().map(|f| self.measure(f)).transpose()
    }

    /// `name` = `value`, plus `name_lo` / `name_hi` from `stat` over the bootstrap
    /// replicates (n generated rows, m reference rows).
    fn with_interval<F>(&self, name: &str, value: f64, n: usize, m: usize, stat: F) -> Result<Named>
    where
        F: Fn(usize, &[u32], &[u32]) -> Result<f64> + Sync,
    {
        let mut out = vec![(name.to_string(), value)];
        if let Some(b) = &self.bootstrap {
            if let Some(i) = b.interval(value, n, m, stat)? {
                out.push((format!("{name}{LO}"), i.lo));
                out.push((format!("{name}{HI}"), i.hi));
            }
        }
        Ok(out)
    }

    /// Fréchet distance and MMD² in data space.
    fn raw_distances(&self, samples: &[f32], n: usize) -> Result<Named> {
        let (d, reference) = (self.d, &self.comparison.reference);
        let m = reference.len() / d;
        let fd = self.reference.full.frechet(&Gaussian::fit(samples, d)?)?;
        let mut out = self.with_interval(names::FD, fd, n, m, |b, cx, _| {
            Ok(self.reference.replicates[b].frechet_fitted(&Gaussian::fit_counted(samples, d, cx)))
        })?;
        let mmd = mmd2_unbiased(samples, reference, d, Some(self.bandwidth))?;
        match (
            &self.bootstrap,
            KernelMatrices::new(samples, reference, d, self.bandwidth)?,
        ) {
            (Some(_), Some(k)) => {
                out.extend(self.with_interval(names::MMD2, mmd.value, n, m, |_, cx, cy| Ok(k.mmd2(cx, cy)))?)
            }
            (Some(_), None) if mmd.blocks > 1 => {
                // Beyond one block: the normal interval of the block estimator's spread.
                let half = 1.959964 * mmd.block_se;
                out.extend([
                    (names::MMD2.to_string(), mmd.value),
                    (format!("{}{LO}", names::MMD2), mmd.value - half),
                    (format!("{}{HI}", names::MMD2), mmd.value + half),
                ]);
            }
            _ => out.push((names::MMD2.into(), mmd.value)),
        }
        Ok(out)
    }

    /// Sliced Wasserstein-2 (the same directions in every replicate; each side projected
    /// and sorted once, resamples as counts).
    fn swd(&self, samples: &[f32], n: usize) -> Result<Named> {
        let (x, y) = (
            SortedProjections::new(samples, self.d, self.projections, self.seed)?,
            &self.reference_projections,
        );
        let value = sliced_wasserstein_counted(&x, &vec![1; n], y, &vec![1; y.rows()]);
        self.with_interval(names::SWD, value, n, y.rows(), |_, cx, cy| {
            Ok(sliced_wasserstein_counted(&x, cx, y, cy))
        })
    }

    /// The component-mass error (mixture data only).
    fn mixture_stats(&self, samples: &[f32], n: usize) -> Result<Named> {
        let Some(mix) = &self.mixture else { return Ok(vec![]) };
        let assigned = component_of(samples, self.d, mix)?;
        let error = |c: &[u32]| mass_error(&weighted_histogram(&assigned, c, mix.components()), mix.weights());
        self.with_interval(names::MASS_ERROR, error(&vec![1; n])?, n, SAMPLES_ONLY, |_, cx, _| {
            error(cx)
        })
    }

    /// The FID analogue, the label histogram and the classifier's confidence (labelled
    /// image data only).
    fn feature_stats(&self, samples: &[f32], n: usize) -> Result<Named> {
        let Some(f) = &self.features else { return Ok(vec![]) };
        let k = f.classifier.feature_dim();
        let m = self.comparison.reference.len() / self.d;
        let a = f.classifier.assess(samples)?;
        let classes = f.classifier.classes();
        let ones = vec![1; n];
        let fd = f.reference.full.frechet(&Gaussian::fit(&a.features, k)?)?;
        let labels: Vec<usize> = a.labels.iter().map(|&l| l as usize).collect();
        let tv = |c: &[u32]| -> Result<f64> { Ok(tv_to_uniform(&weighted_histogram(&labels, c, classes))) };
        let mut out = self.with_interval(names::FD_CLASSIFIER, fd, n, m, |b, cx, _| {
            Ok(f.reference.replicates[b].frechet_fitted(&Gaussian::fit_counted(&a.features, k, cx)))
        })?;
        out.extend(self.with_interval(names::LABEL_TV, tv(&ones)?, n, SAMPLES_ONLY, |_, cx, _| tv(cx))?);
        out.extend(self.with_interval(
            names::CONFIDENCE,
            weighted_mean(&a.confidence, &ones),
            n,
            SAMPLES_ONLY,
            |_, cx, _| Ok(weighted_mean(&a.confidence, cx)),
        )?);
        Ok(out)
    }

    /// Mean distance to the nearest training point, relative to the floor set's.
    fn memorisation(&self, samples: &[f32], n: usize) -> Result<Named> {
        let Some(floor) = &self.floor_nearest else {
            return Ok(vec![]);
        };
        let near = nearest_distances(samples, &self.comparison.train, self.d)?;
        let ratio = |cx: &[u32], cy: &[u32]| weighted_mean(&near, cx) / weighted_mean(floor, cy);
        self.with_interval(
            names::NN_RATIO,
            ratio(&vec![1; n], &vec![1; floor.len()]),
            n,
            floor.len(),
            |_, cx, cy| Ok(ratio(cx, cy)),
        )
    }

    /// The names `measure` fills (NaN placeholders for a diverged point).
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = vec![names::FD, names::MMD2, names::SWD];
        if self.mixture.is_some() {
            v.push(names::MASS_ERROR);
        }
        if self.features.is_some() {
            v.extend([names::FD_CLASSIFIER, names::LABEL_TV, names::CONFIDENCE]);
        }
        if self.floor_nearest.is_some() {
            v.push(names::NN_RATIO);
        }
        v
    }
}

/// The reference size to give [`SampleStats::with_interval`] for a statistic of the
/// samples alone (mass error, label histogram, confidence): no reference rows are resampled.
const SAMPLES_ONLY: usize = 0;

/// Suffix of an interval's lower end column.
pub const LO: &str = "_lo";
/// Suffix of an interval's upper end column.
pub const HI: &str = "_hi";

/// Σ of `counts` per class of `class_of` (each row's class), as fractions.
fn weighted_histogram(class_of: &[usize], counts: &[u32], classes: usize) -> Vec<f64> {
    let mut h = vec![0.0; classes];
    for (&k, &c) in class_of.iter().zip(counts) {
        h[k] += c as f64;
    }
    let total: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v /= total);
    h
}

/// MSE on the [0, 1] scale and PSNR of `a` against `b`, under `mse_name` / `psnr_name`.
pub fn distance(a: &[f32], b: &[f32], mse_name: &str, psnr_name: &str) -> Result<BTreeMap<String, f64>> {
    let mse = mse_unit(a, b)?;
    Ok(BTreeMap::from([
        (mse_name.to_string(), mse),
        (psnr_name.to_string(), psnr(mse)),
    ]))
}

/// The S → ∞ limit of every solver from each latent row (single-Gaussian mixtures, whose
/// flow is known in closed form): the exact probability flow from ᾱ = `top` (τ_S) down to
/// ᾱ = `bottom` (timestep 0, where every τ ends as S grows), then the jump onto the data
/// every solver makes there, x_0 = E[x_0 | x_0's noisy version] (Eq. 9 with the exact ε).
/// Measuring against this limit rather than the flow all the way to ᾱ = 1 leaves out the
/// O(1 − ᾱ_0) error of that final jump, which no number of steps removes. `None` when there
/// is no closed form.
pub fn exact_flow(mixture: &GaussianMixture, latents: &[f32], top: f64, bottom: f64) -> Option<Vec<f32>> {
    let d = mixture.dim();
    let mut out = Vec::with_capacity(latents.len());
    for row in latents.chunks(d) {
        let x: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        let at_bottom = mixture.flow_between(&x, top, bottom)?;
        out.extend(mixture.denoise(&at_bottom, bottom).into_iter().map(|v| v as f32));
    }
    Some(out)
}

/// Reconstruction is DDIM's and η-free (η = 0 both ways), so it runs once per (τ, S,
/// clip) at the DDIM point that owns it; this copies its values onto every DDIM row of
/// the same (τ, S, clip).
pub fn share_reconstruction(rows: &mut [MetricRow]) {
    let key = |r: &MetricRow| (r.sampler.clone(), r.tau.clone(), r.steps, r.clip_x0);
    let owners: Vec<_> = rows
        .iter()
        .filter(|r| r.metrics.contains_key(names::RECON_MSE))
        .map(|r| {
            let m: Vec<(String, f64)> = [names::RECON_MSE, names::RECON_PSNR]
                .iter()
                .filter_map(|n| r.metrics.get(*n).map(|v| (n.to_string(), *v)))
                .collect();
            (key(r), m)
        })
        .collect();
    for r in rows.iter_mut() {
        if let Some((_, m)) = owners.iter().find(|(k, _)| *k == key(r)) {
            r.metrics.extend(m.iter().cloned());
        }
    }
}
