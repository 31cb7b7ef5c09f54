//! The first-order projection of the Fréchet distance (its influence function): how much
//! each row moves FD̂, so that its variance V_lin can correct the bootstrap's as it does for
//! MMD² ([`super::bootstrap::spread`]).
//!
//! FD = ‖μ_x − μ_y‖² + Tr Σ_x + Tr Σ_y − 2 Tr (Σ_y^{1/2} Σ_x Σ_y^{1/2})^{1/2} has the gradient
//! - ∂/∂μ_x = 2δ, ∂/∂μ_y = −2δ, with δ = μ_x − μ_y;
//! - ∂/∂Σ_x = I − A_x with N = Σ_y^{1/2} Σ_x Σ_y^{1/2} and A_x = Σ_y^{1/2} N^{−1/2} Σ_y^{1/2}
//!   (d Tr N^{1/2} = ½ Tr(N^{−1/2} dN)); A_x is the optimal transport map from N(·, Σ_x) to
//!   N(·, Σ_y): A_x Σ_x A_x = Σ_y;
//! - ∂/∂Σ_y = I − A_y with A_y = A_x^{−1} = Σ_y^{−1/2} N^{1/2} Σ_y^{−1/2} (by symmetry of FD).
//!
//! Where a covariance is singular (constant pixels) the inverses are pseudo-inverses: FD
//! depends on Σ_x only through its part on Σ_y's support, and rows of y have no other part.
//!
//! A row's weight w_i moves the fit by ∂μ/∂w_i = x̃_i / n and ∂Σ/∂w_i = (x̃_i x̃_iᵀ − Σ)/(n − 1)
//! (x̃_i = x_i − μ; the fit's divisor is Σw − 1), so the projection of row i is
//! φ_i = ∂FD/∂w_i = 2 δ·x̃_i / n + (x̃_iᵀ G x̃_i − ⟨G, Σ⟩) / (n − 1), G = I − A_x (and with −δ,
//! A_y for the rows of y).

use nalgebra::{DMatrix, SymmetricEigen};

use super::frechet::{symmetric, Gaussian};
use super::linalg::product;
use crate::kernels::gemm::View;

/// Eigenvalues at or below this fraction of the largest are taken as 0 (a singular
/// covariance's round-off) by the pseudo-inverses.
const RANK_TOLERANCE: f64 = 1e-12;

/// V f(Λ) Vᵀ of a symmetric eigendecomposition, f applied to the eigenvalues, with
/// eigenvalues at or below [`RANK_TOLERANCE`] × the largest mapped to 0.
fn spectral(eig: &SymmetricEigen<f64, nalgebra::Dyn>, f: impl Fn(f64) -> f64) -> DMatrix<f64> {
    let top = eig.eigenvalues.iter().fold(0.0f64, |s, l| s.max(*l));
    let values = eig
        .eigenvalues
        .map(|l| if l > RANK_TOLERANCE * top { f(l) } else { 0.0 });
    let scaled = &eig.eigenvectors * DMatrix::from_diagonal(&values);
    scaled * eig.eigenvectors.transpose()
}

/// One side's covariance with its square root Σ^{1/2} and the pseudo-inverse Σ^{+1/2}.
#[derive(Debug, Clone)]
pub(crate) struct Roots {
    root: DMatrix<f64>,
    inverse: DMatrix<f64>,
}

impl Roots {
    /// The roots of `g`'s covariance (positive semidefinite: a fit).
    pub fn new(g: &Gaussian) -> Self {
        let d = g.mean.len();
        let eig = SymmetricEigen::new(symmetric(&g.cov, d));
        Self {
            root: spectral(&eig, f64::sqrt),
            inverse: spectral(&eig, |l| 1.0 / l.sqrt()),
        }
    }
}

/// The gradient of FD(x, y) at the fits (x, y), in the form the projections use.
#[derive(Debug, Clone)]
pub(crate) struct Gradient {
    /// δ = μ_x − μ_y.
    delta: Vec<f64>,
    /// I − A_x (d × d).
    gx: DMatrix<f64>,
    /// I − A_y (d × d).
    gy: DMatrix<f64>,
}

impl Gradient {
    /// The gradient at the fits `x` and `y`, with `ry` the roots of `y`'s covariance.
    pub fn new(x: &Gaussian, y: &Gaussian, ry: &Roots) -> Self {
        let d = x.mean.len();
        let sx = symmetric(&x.cov, d);
        let n = &ry.root * sx * &ry.root;
        let eig = SymmetricEigen::new((&n + n.transpose()) * 0.5);
        let identity = DMatrix::<f64>::identity(d, d);
        let ax = &ry.root * spectral(&eig, |l| 1.0 / l.sqrt()) * &ry.root;
        let ay = &ry.inverse * spectral(&eig, f64::sqrt) * &ry.inverse;
        Self {
            delta: x.mean.iter().zip(&y.mean).map(|(a, b)| a - b).collect(),
            gx: &identity - (&ax + ax.transpose()) * 0.5,
            gy: &identity - (&ay + ay.transpose()) * 0.5,
        }
    }

    /// φ_i of every row of the x side (`rows`: n × d, fitted by `fit`).
    pub fn samples(&self, rows: &[f32], fit: &Gaussian) -> Vec<f64> {
        projection(rows, fit, &self.delta, 1.0, &self.gx)
    }

    /// ψ_j of every row of the y side (`rows`: m × d, fitted by `fit`).
    pub fn reference(&self, rows: &[f32], fit: &Gaussian) -> Vec<f64> {
        projection(rows, fit, &self.delta, -1.0, &self.gy)
    }
}

/// ∂FD/∂w_i for each row: 2 s δ·x̃_i / n + (x̃_iᵀ G x̃_i − ⟨G, Σ⟩) / (n − 1), x̃_i = x_i − μ
/// (μ, Σ: `fit`; s = ±1, the sign of μ's side in δ).
fn projection(rows: &[f32], fit: &Gaussian, delta: &[f64], sign: f64, g: &DMatrix<f64>) -> Vec<f64> {
    let d = fit.mean.len();
    let n = rows.len() / d;
    let centred: Vec<f64> = rows
        .chunks(d)
        .flat_map(|r| r.iter().zip(&fit.mean).map(|(v, m)| *v as f64 - m))
        .collect();
    // G is symmetric: its column-major storage read as row-major is G itself.
    let gx = product(View::rows(&centred, n, d), View::rows(g.as_slice(), d, d), true);
    let inner: f64 = (0..d * d).map(|ij| g[(ij / d, ij % d)] * fit.cov[ij]).sum();
    let (nf, mean_scale) = (n as f64, 2.0 * sign / n as f64);
    centred
        .chunks(d)
        .zip(gx.data.chunks(d))
        .map(|(x, gx)| {
            let linear: f64 = x.iter().zip(delta).map(|(a, b)| a * b).sum();
            let quadratic: f64 = x.iter().zip(gx).map(|(a, b)| a * b).sum();
            mean_scale * linear + (quadratic - inner) / (nf - 1.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::frechet::frechet;

    /// Seeded values in [−0.5, 0.5).
    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut next = crate::rng::uniforms(seed);
        (0..n).map(|_| next()).collect()
    }

    /// The weighted fit Σ w_i x_i / Σ w, Σ w_i x̃_i x̃_iᵀ / (Σ w − 1), written out by hand.
    fn weighted_fit(x: &[f64], d: usize, w: &[f64]) -> Gaussian {
        let total: f64 = w.iter().sum();
        let mut mean = vec![0.0; d];
        for (row, wi) in x.chunks(d).zip(w) {
            (0..d).for_each(|k| mean[k] += wi * row[k] / total);
        }
        let mut cov = vec![0.0; d * d];
        for (row, wi) in x.chunks(d).zip(w) {
            for i in 0..d {
                for j in 0..d {
                    cov[i * d + j] += wi * (row[i] - mean[i]) * (row[j] - mean[j]) / (total - 1.0);
                }
            }
        }
        Gaussian { mean, cov }
    }

    #[test]
    fn the_transport_map_carries_one_covariance_onto_the_other() {
        let d = 4;
        let (x, y) = (values(40 * d, 1), values(30 * d, 2));
        let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (gx, gy) = (
            Gaussian::fit(&to32(&x), d).unwrap(),
            Gaussian::fit(&to32(&y), d).unwrap(),
        );
        let g = Gradient::new(&gx, &gy, &Roots::new(&gy));
        let identity = DMatrix::<f64>::identity(d, d);
        let (ax, ay) = (&identity - &g.gx, &identity - &g.gy);
        let (sx, sy) = (symmetric(&gx.cov, d), symmetric(&gy.cov, d));
        assert!((&ax * &sx * &ax - &sy).abs().max() < 1e-12, "A_x Σ_x A_x = Σ_y");
        assert!((&ay * &sy * &ay - &sx).abs().max() < 1e-12, "A_y Σ_y A_y = Σ_x");
        assert!((&ax * &ay - &identity).abs().max() < 1e-10, "A_y = A_x⁻¹");
    }

    #[test]
    fn the_projection_is_the_derivative_of_the_distance_by_a_rows_weight() {
        // Central differences of FD with one row's weight moved by ±h, against φ_i and ψ_j;
        // y has a constant column (a singular covariance: the pseudo-inverse path).
        let (d, n, m) = (3, 25, 20);
        let x = values(n * d, 3);
        let mut y: Vec<f64> = values(m * d, 4).iter().map(|v| 0.7 * v + 0.1).collect();
        y.iter_mut().skip(2).step_by(d).for_each(|v| *v = 0.25);
        let (ones_x, ones_y) = (vec![1.0; n], vec![1.0; m]);
        let (gx, gy) = (weighted_fit(&x, d, &ones_x), weighted_fit(&y, d, &ones_y));
        let grad = Gradient::new(&gx, &gy, &Roots::new(&gy));
        let to32 = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
        let (x32, y32) = (to32(&x), to32(&y));
        // the fits of the rounded rows, which the projections see
        let fx = weighted_fit(&x32.iter().map(|&v| v as f64).collect::<Vec<_>>(), d, &ones_x);
        let fy = weighted_fit(&y32.iter().map(|&v| v as f64).collect::<Vec<_>>(), d, &ones_y);
        let (phi, psi) = (grad.samples(&x32, &fx), grad.reference(&y32, &fy));
        let h = 1e-5;
        let moved = |side_x: bool, i: usize, by: f64| -> f64 {
            let (mut wx, mut wy) = (ones_x.clone(), ones_y.clone());
            match side_x {
                true => wx[i] += by,
                false => wy[i] += by,
            }
            // FD is symmetric; rooting the singular side keeps its null space exact (the
            // other order leaves a round-off eigenvalue whose √ is ~1e-9 of noise)
            frechet(&weighted_fit(&y, d, &wy), &weighted_fit(&x, d, &wx)).unwrap()
        };
        for (side_x, want) in [(true, &phi), (false, &psi)] {
            for (i, w) in want.iter().enumerate() {
                let numeric = (moved(side_x, i, h) - moved(side_x, i, -h)) / (2.0 * h);
                assert!((numeric - w).abs() < 1e-6, "side x {side_x}, row {i}: {w} vs {numeric}");
            }
        }
        // not trivially zero: the rows move the distance
        assert!(phi.iter().map(|v| v.abs()).fold(0.0, f64::max) > 1e-3);
        assert!(psi.iter().map(|v| v.abs()).fold(0.0, f64::max) > 1e-3);
    }
}
