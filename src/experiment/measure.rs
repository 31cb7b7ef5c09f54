//! The three metric families applied to one sweep point's host arrays: reconstruction
//! (paper Table 2), trajectory consistency (§5.3) and sample statistics (Table 1's role).
//! Pure computation: the runner hands in arrays, this returns named numbers.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::evaluation::{Evaluated, Evaluation};
use crate::classifier::Classifier;
use crate::error::Result;
use crate::metrics::bootstrap::{self, weighted_mean, Bootstrap, Linear, Replicated, Resamples, SampleResamples};
use crate::metrics::frechet::FrechetReference;
use crate::metrics::manifold;
use crate::metrics::{
    component_of, mass_error, median_bandwidth_of, nearest_distances, per_row_mse_unit, psnr,
    sliced_wasserstein_counted, tv_to_uniform, Kernel, KernelReference, SlicedReference, SortedProjections,
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
    /// Fréchet distance between Gaussians fitted to samples and the reference (plug-in,
    /// as the paper's FID; its small-sample bias depends on the samples' covariance).
    pub const FD: &str = "fd";
    /// The Fréchet distance with its small-sample bias removed (FD∞, see
    /// [`crate::metrics::frechet`]).
    pub const FD_INF: &str = "fd_inf";
    /// Unbiased MMD², RBF kernel whose bandwidth is the median heuristic on the reference.
    pub const MMD2: &str = "mmd2";
    /// Sliced Wasserstein-2 distance.
    pub const SWD: &str = "swd";
    /// Fréchet distance in the features of the data set's classifier (FID analogue, plug-in).
    pub const FD_CLASSIFIER: &str = "fd_classifier";
    /// [`FD_CLASSIFIER`] with its small-sample bias removed (FD∞).
    pub const FD_CLASSIFIER_INF: &str = "fd_classifier_inf";
    /// KID: unbiased MMD² with the cubic polynomial kernel in the classifier's features
    /// (Bińkowski et al. 2018).
    pub const KID: &str = "kid";
    /// Total variation between the predicted-label histogram and uniform.
    pub const LABEL_TV: &str = "label_tv";
    /// Total variation between component masses of the samples and the true weights.
    pub const MASS_ERROR: &str = "mass_error";
    /// Mean top-class probability the classifier gives the samples (an Inception-Score analogue).
    pub const CONFIDENCE: &str = "confidence";
    /// Mean distance from each sample to its nearest training point ÷ the same for the
    /// floor set (1: as far as unseen real data; → 0: copies of training points).
    pub const NN_RATIO: &str = "nn_ratio";
    /// k-NN precision (Kynkäänniemi et al. 2019, k = 3), data space: the share of samples
    /// inside the reference's manifold (fidelity).
    pub const PRECISION: &str = "precision";
    /// k-NN recall (k = 3), data space: the share of reference rows inside the samples'
    /// manifold (diversity).
    pub const RECALL: &str = "recall";
    /// Density (Naeem et al. 2020, k = 5), data space: reference balls per sample ÷ k.
    pub const DENSITY: &str = "density";
    /// Coverage (k = 5), data space: the share of reference balls holding a sample.
    pub const COVERAGE: &str = "coverage";
    /// [`PRECISION`] in the classifier's features.
    pub const PRECISION_CLASSIFIER: &str = "precision_classifier";
    /// [`RECALL`] in the classifier's features.
    pub const RECALL_CLASSIFIER: &str = "recall_classifier";
    /// [`DENSITY`] in the classifier's features.
    pub const DENSITY_CLASSIFIER: &str = "density_classifier";
    /// [`COVERAGE`] in the classifier's features.
    pub const COVERAGE_CLASSIFIER: &str = "coverage_classifier";

    /// The four k-NN statistics of one space, in (precision, recall, density, coverage) order.
    pub const DATA_MANIFOLD: [&str; 4] = [PRECISION, RECALL, DENSITY, COVERAGE];
    /// [`DATA_MANIFOLD`] in the classifier's features.
    pub const CLASSIFIER_MANIFOLD: [&str; 4] = [
        PRECISION_CLASSIFIER,
        RECALL_CLASSIFIER,
        DENSITY_CLASSIFIER,
        COVERAGE_CLASSIFIER,
    ];
}

/// The real sets a sweep's samples are compared with, as drawn (see [`super::target`]);
/// [`SampleStats::new`] passes each through the [`Evaluation`] before anything is measured.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// The reference set of every distance (FD, MMD², SWD, the feature-space statistics).
    pub reference: Vec<f32>,
    /// An independent real set, as large as the generated samples where the data allow:
    /// the noise floor, and the denominator of the memorisation ratio.
    pub floor: Option<Vec<f32>>,
    /// The training points (memorisation); empty when the data set has none.
    pub train: Vec<f32>,
}

/// The sets of a [`Comparison`] after the evaluation transform.
#[derive(Debug, Clone)]
pub struct Sets {
    /// The reference set.
    pub reference: Evaluated,
    /// The noise-floor set.
    pub floor: Option<Evaluated>,
    /// The training points.
    pub train: Evaluated,
}

/// Every sample statistic of one set: its value and its bootstrap replicates (none
/// when the sweep runs without intervals).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measured {
    /// Statistic name → estimate.
    pub values: BTreeMap<String, f64>,
    /// Statistic name → its B replicates, in resample order (paired across sets).
    pub replicates: BTreeMap<String, Vec<f64>>,
    /// Statistic name → its first-order projection (the U-statistics: MMD², KID).
    pub linear: BTreeMap<String, Linear>,
    /// Statistic name → its value on each row, for the means over rows that every point
    /// shares (reconstruction and consistency errors), in row order.
    pub rows: BTreeMap<String, Vec<f64>>,
}

impl Measured {
    /// NaN under every name of `names`, with no replicates (a point whose samples diverged).
    pub fn nan(names: &[&str]) -> Self {
        Self {
            values: names.iter().map(|n| (n.to_string(), f64::NAN)).collect(),
            ..Self::default()
        }
    }

    /// Adds `other`'s statistics (names not already measured).
    pub fn extend(&mut self, other: Measured) {
        self.values.extend(other.values);
        self.replicates.extend(other.replicates);
        self.linear.extend(other.linear);
        self.rows.extend(other.rows);
    }

    fn push(&mut self, name: &str, r: Replicated) {
        self.values.insert(name.into(), r.value);
        if !r.replicates.is_empty() {
            self.replicates.insert(name.into(), r.replicates);
            if let Some(l) = r.linear {
                self.linear.insert(name.into(), l);
            }
        }
    }

    /// The values with each one's [`bootstrap::MARGINAL`] interval as `<name>_lo` /
    /// `<name>_hi` (the columns of `metrics.parquet`).
    pub fn with_intervals(&self) -> BTreeMap<String, f64> {
        let mut out = self.values.clone();
        for (name, value) in &self.values {
            let reps = self.replicates.get(name).map_or(&[][..], Vec::as_slice);
            if let Some(i) = bootstrap::interval(bootstrap::MARGINAL, *value, reps, self.linear.get(name)) {
                out.insert(format!("{name}{LO}"), i.lo);
                out.insert(format!("{name}{HI}"), i.hi);
            }
        }
        out
    }
}

/// The classifier, with the reference side of the feature-space statistics.
struct FeatureSpace {
    classifier: Classifier,
    frechet: FrechetReference,
    kid: KernelReference,
    manifold: manifold::Reference,
}

/// Sample statistics against a fixed [`Comparison`], each with its bootstrap replicates.
/// Every set measured — samples, the floor set, the reference — has been through one
/// [`Evaluation`]; the reference side of every statistic is prepared once.
pub struct SampleStats {
    d: usize,
    evaluation: Evaluation,
    sets: Sets,
    frechet: FrechetReference,
    /// Data-space MMD², RBF bandwidth fixed once by the median heuristic on the reference.
    mmd: KernelReference,
    /// The reference side of the sliced Wasserstein distance (its sorted projections, and its
    /// integrated quantile functions per sample size).
    swd: SlicedReference,
    /// The reference's k-NN radii (precision / recall, density / coverage).
    manifold: manifold::Reference,
    projections: usize,
    seed: u64,
    mixture: Option<GaussianMixture>,
    features: Option<FeatureSpace>,
    /// Nearest-training-point distances of the floor set.
    floor_nearest: Option<Vec<f64>>,
    /// The sample resamples per row count, drawn once (the same streams at every point).
    sample_resamples: SampleResamples,
}

impl SampleStats {
    /// Statistics against `comparison` (rows of `d` values), every set through
    /// `evaluation`; `bootstrap` `None`: no replicates, no intervals.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        comparison: Comparison,
        d: usize,
        evaluation: Evaluation,
        projections: usize,
        seed: u64,
        bootstrap: Option<Bootstrap>,
        mixture: Option<GaussianMixture>,
        classifier: Option<Classifier>,
    ) -> Result<Self> {
        let sets = Sets {
            reference: evaluation.apply(&comparison.reference),
            floor: comparison.floor.as_deref().map(|f| evaluation.apply(f)),
            train: evaluation.apply(&comparison.train),
        };
        let m = crate::metrics::rows_checked(&sets.reference, d, "reference")?;
        let reference_resamples = resamples_of(bootstrap.as_ref(), m, Bootstrap::reference);
        let features = match classifier {
            Some(classifier) => {
                let feats = classifier.assess(&sets.reference)?.features;
                let k = classifier.feature_dim();
                Some(FeatureSpace {
                    frechet: FrechetReference::new(&feats, k, &reference_resamples)?,
                    kid: KernelReference::new(Kernel::Cubic, &feats, k, reference_resamples.clone())?,
                    manifold: manifold_reference(&feats, k)?,
                    classifier,
                })
            }
            None => None,
        };
        let floor_nearest = match (&sets.floor, sets.train.is_empty()) {
            (Some(f), false) => Some(nearest_distances(f, &sets.train, d)?),
            _ => None,
        };
        let bandwidth = median_bandwidth_of(&sets.reference, d)?;
        Ok(Self {
            swd: SlicedReference::new(
                SortedProjections::new(&sets.reference, d, projections, seed)?,
                reference_resamples.clone(),
            ),
            manifold: manifold_reference(&sets.reference, d)?,
            frechet: FrechetReference::new(&sets.reference, d, &reference_resamples)?,
            mmd: KernelReference::new(Kernel::Rbf { bandwidth }, &sets.reference, d, reference_resamples)?,
            sets,
            d,
            evaluation,
            projections,
            seed,
            mixture,
            features,
            floor_nearest,
            sample_resamples: SampleResamples::new(bootstrap),
        })
    }

    /// The real sets compared with, as measured.
    pub fn sets(&self) -> &Sets {
        &self.sets
    }

    /// The transform every set goes through.
    pub fn evaluation(&self) -> Evaluation {
        self.evaluation
    }

    /// Every sample statistic of `samples` (rows of `d` values, already evaluated) with
    /// its replicates. The families are independent, so they run concurrently.
    pub fn measure(&self, samples: &Evaluated) -> Result<Measured> {
        let n = crate::metrics::rows_checked(samples, self.d, "samples")?;
        let rx = self.sample_resamples.of(n);
        let ry = self.frechet.resamples();
        let ((data, manifold), (swd, (mix, (features, nearest)))) = rayon::join(
            || {
                rayon::join(
                    || self.data_distances(samples, &rx),
                    || manifold_stats(&self.manifold, samples, &rx, ry, names::DATA_MANIFOLD),
                )
            },
            || {
                rayon::join(
                    || self.swd(samples, &rx),
                    || {
                        rayon::join(
                            || self.mixture_stats(samples, &rx),
                            || rayon::join(|| self.feature_stats(samples, &rx), || self.memorisation(samples, &rx)),
                        )
                    },
                )
            },
        );
        let mut out = Measured::default();
        for family in [data, manifold, swd, mix, features, nearest] {
            for (name, r) in family? {
                out.push(name, r);
            }
        }
        Ok(out)
    }

    /// The noise-floor row: the same statistics of the floor set (independent real data
    /// against the same reference), `None` when the data set has no independent split.
    pub fn floor(&self) -> Result<Option<Measured>> {
        self.sets.floor.as_ref().map(|f| self.measure(f)).transpose()
    }

    /// Rows of the floor set (`None`: no floor).
    pub fn floor_rows(&self) -> Option<usize> {
        self.sets.floor.as_ref().map(|f| f.len() / self.d)
    }

    /// Fréchet distance (plug-in and bias-corrected) and MMD² in data space, run
    /// concurrently (one after the other, a thread that finished its own families idled
    /// through their sequential parts: 10 ms per digits point on two threads).
    fn data_distances(&self, samples: &[f32], rx: &Resamples) -> Result<Family> {
        let (frechet, mmd) = rayon::join(|| self.frechet.measure(samples, rx), || self.mmd.measure(samples, rx));
        let (fd, fd_inf) = frechet?;
        Ok(vec![(names::FD, fd), (names::FD_INF, fd_inf), (names::MMD2, mmd?)])
    }

    /// Sliced Wasserstein-2 (the same directions in every replicate; each side projected
    /// and sorted once, resamples as counts).
    fn swd(&self, samples: &[f32], rx: &Resamples) -> Result<Family> {
        let x = SortedProjections::new(samples, self.d, self.projections, self.seed)?;
        let y = self.swd.projections();
        let value = sliced_wasserstein_counted(&x, &vec![1; x.rows()], y, &vec![1; y.rows()]);
        let replicates = match rx.replicates() {
            0 => Vec::new(),
            _ => self.swd.replicates(&x, rx),
        };
        Ok(vec![(names::SWD, Replicated::new(value, replicates))])
    }

    /// The component-mass error (mixture data only).
    fn mixture_stats(&self, samples: &[f32], rx: &Resamples) -> Result<Family> {
        let Some(mix) = &self.mixture else { return Ok(vec![]) };
        let assigned = component_of(samples, self.d, mix)?;
        let error = |c: &[u32]| mass_error(&weighted_histogram(&assigned, c, mix.components()), mix.weights());
        let value = error(&vec![1; rx.rows()])?;
        let replicates = rx.all().par_iter().map(|c| error(c)).collect::<Result<Vec<_>>>()?;
        Ok(vec![(names::MASS_ERROR, Replicated::new(value, replicates))])
    }

    /// The feature-space Fréchet distances, KID and k-NN statistics (concurrently, as in
    /// [`Self::data_distances`]), the label histogram and the classifier's confidence
    /// (labelled image data only).
    fn feature_stats(&self, samples: &[f32], rx: &Resamples) -> Result<Family> {
        let Some(f) = &self.features else { return Ok(vec![]) };
        let a = f.classifier.assess(samples)?;
        let ry = f.frechet.resamples();
        let (frechet, (manifold, kid)) = rayon::join(
            || f.frechet.measure(&a.features, rx),
            || {
                rayon::join(
                    || manifold_stats(&f.manifold, &a.features, rx, ry, names::CLASSIFIER_MANIFOLD),
                    || f.kid.measure(&a.features, rx),
                )
            },
        );
        let ((fd, fd_inf), mut family) = (frechet?, manifold?);
        let classes = f.classifier.classes();
        let labels: Vec<usize> = a.labels.iter().map(|&l| l as usize).collect();
        let tv = |c: &[u32]| tv_to_uniform(&weighted_histogram(&labels, c, classes));
        let ones = vec![1; rx.rows()];
        family.extend([
            (names::FD_CLASSIFIER, fd),
            (names::FD_CLASSIFIER_INF, fd_inf),
            (names::KID, kid?),
            (
                names::LABEL_TV,
                Replicated::new(tv(&ones), rx.all().iter().map(|c| tv(c)).collect()),
            ),
            (
                names::CONFIDENCE,
                Replicated::new(weighted_mean(&a.confidence, &ones), rx.means(&a.confidence)),
            ),
        ]);
        Ok(family)
    }

    /// Mean distance to the nearest training point, relative to the floor set's (the
    /// floor set resampled by its own resamples).
    fn memorisation(&self, samples: &[f32], rx: &Resamples) -> Result<Family> {
        let Some(floor) = &self.floor_nearest else {
            return Ok(vec![]);
        };
        let near = nearest_distances(samples, &self.sets.train, self.d)?;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let rf = self.sample_resamples.of(floor.len());
        let replicates = rx
            .means(&near)
            .iter()
            .zip(rf.means(floor))
            .map(|(a, b)| a / b)
            .collect();
        Ok(vec![(
            names::NN_RATIO,
            Replicated::new(mean(&near) / mean(floor), replicates),
        )])
    }

    /// The names `measure` fills (NaN placeholders for a diverged point).
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = vec![names::FD, names::FD_INF, names::MMD2, names::SWD];
        v.extend(names::DATA_MANIFOLD);
        if self.mixture.is_some() {
            v.push(names::MASS_ERROR);
        }
        if self.features.is_some() {
            v.extend([
                names::FD_CLASSIFIER,
                names::FD_CLASSIFIER_INF,
                names::KID,
                names::LABEL_TV,
                names::CONFIDENCE,
            ]);
            v.extend(names::CLASSIFIER_MANIFOLD);
        }
        if self.floor_nearest.is_some() {
            v.push(names::NN_RATIO);
        }
        v
    }
}

/// One family's statistics, by name.
type Family = Vec<(&'static str, Replicated)>;

/// The reference side of the k-NN statistics: radii at k = 3 (precision / recall) and
/// k = 5 (density / coverage), the papers' choices.
fn manifold_reference(reference: &[f32], d: usize) -> Result<manifold::Reference> {
    manifold::Reference::new(reference, d, manifold::K_PRECISION_RECALL, manifold::K_DENSITY_COVERAGE)
}

/// Precision, recall, density and coverage of `samples` against `reference` under the
/// names `names` (that order), each with its replicates: precision and density over the
/// sample resamples `rx`, recall and coverage over the reference resamples `ry`, the
/// k-NN radii held fixed (see [`manifold::PrdcRows::replicated`]).
fn manifold_stats(
    reference: &manifold::Reference,
    samples: &[f32],
    rx: &Resamples,
    ry: &Resamples,
    names: [&'static str; 4],
) -> Result<Family> {
    let rows = reference.per_row(samples)?;
    let r = rows.replicated(rx, ry)?;
    Ok(names
        .into_iter()
        .zip([r.precision, r.recall, r.density, r.coverage])
        .collect())
}

/// The resamples of a set of `n` rows (`which`: samples or reference streams), none
/// without a bootstrap.
fn resamples_of(bootstrap: Option<&Bootstrap>, n: usize, which: fn(&Bootstrap, usize) -> Resamples) -> Resamples {
    match bootstrap {
        Some(b) => which(b, n),
        None => Resamples::none(n),
    }
}

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

/// The MSE on the [0, 1] scale of `a` against `b` (rows of `d` values, paired row by row)
/// under `mse_name`, with each row's own MSE (the rows are the same at every point: the
/// held-out set, or the samples from x_T, so two points compare row by row; see
/// [`crate::metrics::paired::sign_test`]); and where `psnr_name` is given, the PSNR of the
/// MSE under it.
pub fn distance(a: &[f32], b: &[f32], d: usize, mse_name: &str, psnr_name: Option<&str>) -> Result<Measured> {
    let rows = per_row_mse_unit(a, b, d)?;
    let mse = rows.iter().sum::<f64>() / rows.len() as f64;
    let mut out = Measured::default();
    out.values.insert(mse_name.into(), mse);
    if let Some(name) = psnr_name {
        out.values.insert(name.into(), psnr(mse));
    }
    out.rows.insert(mse_name.into(), rows);
    Ok(out)
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
            (key(r), m, r.rows.get(names::RECON_MSE).cloned())
        })
        .collect();
    for r in rows.iter_mut() {
        if let Some((_, m, per_row)) = owners.iter().find(|(k, ..)| *k == key(r)) {
            r.metrics.extend(m.iter().cloned());
            if let Some(v) = per_row {
                r.rows.insert(names::RECON_MSE.into(), v.clone());
            }
        }
    }
}
