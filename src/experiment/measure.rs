//! The three metric families applied to one sweep point's host arrays: reconstruction
//! (paper Table 2), trajectory consistency (§5.3) and sample statistics (Table 1's role).
//! Pure computation: the runner hands in arrays, this returns named numbers.

use std::collections::BTreeMap;

use crate::classifier::Classifier;
use crate::error::Result;
use crate::metrics::{
    component_masses, frechet, histogram, mass_error, median_bandwidth_of, mmd2_unbiased, mse_unit, psnr,
    sliced_wasserstein, tv_to_uniform, Gaussian,
};
use crate::model::oracle::GaussianMixture;
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
}

/// A classifier and the feature Gaussian of the reference data.
pub struct FeatureSpace {
    /// The trained classifier.
    pub classifier: Classifier,
    /// The Gaussian fitted to the reference data's features.
    pub reference: Gaussian,
}

/// Sample statistics against a fixed reference set (the held-out split).
pub struct SampleStats {
    d: usize,
    reference: Vec<f32>,
    reference_gaussian: Gaussian,
    /// RBF bandwidth of MMD², fixed once by the median heuristic on the reference data.
    bandwidth: f64,
    projections: usize,
    seed: u64,
    mixture: Option<GaussianMixture>,
    features: Option<FeatureSpace>,
}

impl SampleStats {
    /// Statistics against `reference` (rows of `d` values).
    pub fn new(
        reference: Vec<f32>,
        d: usize,
        projections: usize,
        seed: u64,
        mixture: Option<GaussianMixture>,
        features: Option<FeatureSpace>,
    ) -> Result<Self> {
        Ok(Self {
            reference_gaussian: Gaussian::fit(&reference, d)?,
            bandwidth: median_bandwidth_of(&reference, d)?,
            reference,
            d,
            projections,
            seed,
            mixture,
            features,
        })
    }

    /// Every sample statistic of `samples` (rows of `d` values). The families are
    /// independent, so they run concurrently (each is deterministic on its own).
    pub fn measure(&self, samples: &[f32]) -> Result<BTreeMap<String, f64>> {
        let (raw, (swd, (mix, features))) = rayon::join(
            || self.raw_distances(samples),
            || {
                rayon::join(
                    || sliced_wasserstein(samples, &self.reference, self.d, self.projections, self.seed),
                    || rayon::join(|| self.mixture_stats(samples), || self.feature_stats(samples)),
                )
            },
        );
        let mut m: BTreeMap<String, f64> = raw?.into_iter().collect();
        m.insert(names::SWD.into(), swd?);
        m.extend(mix?);
        m.extend(features?);
        Ok(m)
    }

    /// Fréchet distance and MMD² in data space.
    fn raw_distances(&self, samples: &[f32]) -> Result<Vec<(String, f64)>> {
        let fd = frechet(&Gaussian::fit(samples, self.d)?, &self.reference_gaussian)?;
        let mmd = mmd2_unbiased(samples, &self.reference, self.d, Some(self.bandwidth))?.value;
        Ok(vec![(names::FD.into(), fd), (names::MMD2.into(), mmd)])
    }

    /// The component-mass error (mixture data only).
    fn mixture_stats(&self, samples: &[f32]) -> Result<Vec<(String, f64)>> {
        let Some(mix) = &self.mixture else { return Ok(vec![]) };
        let masses = component_masses(samples, self.d, mix)?;
        Ok(vec![(names::MASS_ERROR.into(), mass_error(&masses, mix.weights())?)])
    }

    /// The FID analogue and the label histogram (labelled image data only).
    fn feature_stats(&self, samples: &[f32]) -> Result<Vec<(String, f64)>> {
        let Some(f) = &self.features else { return Ok(vec![]) };
        let feats = f.classifier.features_host(samples)?;
        let fd = frechet(&Gaussian::fit(&feats, f.classifier.feature_dim())?, &f.reference)?;
        let labels = f.classifier.predict(samples)?;
        let tv = tv_to_uniform(&histogram(&labels, f.classifier.classes())?);
        Ok(vec![(names::FD_CLASSIFIER.into(), fd), (names::LABEL_TV.into(), tv)])
    }

    /// The names `measure` fills (NaN placeholders for a diverged point).
    pub fn names(&self) -> Vec<&'static str> {
        let mut v = vec![names::FD, names::MMD2, names::SWD];
        if self.mixture.is_some() {
            v.push(names::MASS_ERROR);
        }
        if self.features.is_some() {
            v.extend([names::FD_CLASSIFIER, names::LABEL_TV]);
        }
        v
    }
}

/// MSE on the [0, 1] scale and PSNR of `a` against `b`, under `mse_name` / `psnr_name`.
pub fn distance(a: &[f32], b: &[f32], mse_name: &str, psnr_name: &str) -> Result<BTreeMap<String, f64>> {
    let mse = mse_unit(a, b)?;
    Ok(BTreeMap::from([
        (mse_name.to_string(), mse),
        (psnr_name.to_string(), psnr(mse)),
    ]))
}

/// The exact probability-flow solution of every latent row (single-Gaussian mixtures),
/// starting from noise level ᾱ = `alpha_bar`; `None` when there is no closed form.
pub fn exact_flow(mixture: &GaussianMixture, latents: &[f32], alpha_bar: f64) -> Option<Vec<f32>> {
    let d = mixture.dim();
    let mut out = Vec::with_capacity(latents.len());
    for row in latents.chunks(d) {
        let x: Vec<f64> = row.iter().map(|&v| v as f64).collect();
        out.extend(mixture.flow_map(&x, alpha_bar)?.into_iter().map(|v| v as f32));
    }
    Some(out)
}

/// Reconstruction is η-free (η = 0 both ways), so it runs once per (τ, S, clip) at the
/// point that owns it; this copies its values onto every row of the same (τ, S, clip).
pub fn share_reconstruction(rows: &mut [MetricRow]) {
    let key = |r: &MetricRow| (r.tau.clone(), r.steps, r.clip_x0);
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
