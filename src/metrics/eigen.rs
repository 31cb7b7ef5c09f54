//! The eigenvalues of a dense symmetric matrix, without eigenvectors: what every Fréchet
//! distance needs (Σ_i √λ_i of Σ_a^{1/2} Σ_b Σ_a^{1/2}), once per bootstrap replicate.
//!
//! Two stages, as LAPACK's `dsytrd` + `dsterf`:
//! 1. Householder tridiagonalisation T = Qᵀ A Q (Golub & Van Loan, *Matrix Computations*,
//!    §8.3.1) on the full square in row-major order, so that both the product p = β B v
//!    and the rank-2 update B ← B − v wᵀ − w vᵀ of each step run along contiguous rows
//!    (compiled for AVX2 + FMA where the CPU has them, checked at run time).
//! 2. The implicit QL iteration with Wilkinson's shift on T (Press et al., *Numerical
//!    Recipes*, `tqli`, eigenvalues only).
//!
//! The matrix is scaled by its largest magnitude first, so that the rotations' √(f² + g²)
//! cannot overflow; the eigenvalues are scaled back. Should the QL iteration not converge
//! (it has not been seen to), nalgebra's solver answers instead.

use nalgebra::DMatrix;

/// The most QL iterations spent on one eigenvalue before the fallback.
const MAX_ITERATIONS: usize = 60;

/// The eigenvalues of the symmetric `d × d` row-major matrix `m` (symmetrised as
/// (M + Mᵀ)/2 first), in no particular order.
pub(crate) fn symmetric_eigenvalues(m: &[f64], d: usize) -> Vec<f64> {
    assert_eq!(m.len(), d * d, "a {d} × {d} matrix");
    let scale = m.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    if d == 0 || scale == 0.0 || !scale.is_finite() {
        return match scale.is_finite() {
            true => vec![0.0; d],
            false => vec![f64::NAN; d],
        };
    }
    let mut a: Vec<f64> = (0..d * d)
        .map(|ij| {
            let (i, j) = (ij / d, ij % d);
            0.5 * (m[i * d + j] + m[j * d + i]) / scale
        })
        .collect();
    let (mut diag, mut off) = (vec![0.0; d], vec![0.0; d]);
    tridiagonalise(&mut a, d, &mut diag, &mut off);
    if !tridiagonal_eigenvalues(&mut diag, &mut off) {
        let sym = DMatrix::from_row_slice(d, d, m);
        let sym = (&sym + sym.transpose()) * 0.5;
        return sym.symmetric_eigenvalues().iter().copied().collect();
    }
    diag.iter_mut().for_each(|l| *l *= scale);
    diag
}

crate::simd::avx2_dispatch! {
    /// Householder tridiagonalisation of the symmetric `d × d` row-major `a` (overwritten):
    /// the diagonal of T in `diag`, its off-diagonal in `off` (`off[k]` couples k and k + 1;
    /// `off[d − 1]` = 0).
    fn tridiagonalise(a: &mut [f64], d: usize, diag: &mut [f64], off: &mut [f64]) => tridiagonalise_portable
}

/// Step k reflects row (= column) k's part right of the diagonal, x = A[k, k+1..], onto
/// α e_1 with H = I − β v vᵀ (v = x − α e_1, α = −sign(x_1) ‖x‖, β = 2 / vᵀv), and applies
/// H to the trailing block B = A[k+1.., k+1..] from both sides:
/// p = β B v, K = β vᵀp / 2, w = p − K v, H B H = B − v wᵀ − w vᵀ.
#[inline(always)]
fn tridiagonalise_portable(a: &mut [f64], d: usize, diag: &mut [f64], off: &mut [f64]) {
    let (mut v, mut p) = (vec![0.0; d], vec![0.0; d]);
    for k in 0..d {
        diag[k] = a[k * d + k];
        let m = d - k - 1;
        if m == 0 {
            off[k] = 0.0;
            break;
        }
        let x = &a[k * d + k + 1..(k + 1) * d];
        let tail: f64 = x[1..].iter().map(|t| t * t).sum();
        if tail == 0.0 {
            off[k] = x[0]; // already tridiagonal in this row: H = I
            continue;
        }
        let alpha = -(x[0] * x[0] + tail).sqrt().copysign(x[0]);
        off[k] = alpha;
        let v = &mut v[..m];
        v.copy_from_slice(x);
        v[0] -= alpha;
        let beta = 2.0 / (v[0] * v[0] + tail);
        let p = &mut p[..m];
        let block = k + 1;
        for (i, pi) in p.iter_mut().enumerate() {
            let row = &a[(block + i) * d + block..(block + i + 1) * d];
            *pi = beta * dot(row, v);
        }
        let half_k = 0.5 * beta * dot(v, p);
        p.iter_mut().zip(v.iter()).for_each(|(pi, vi)| *pi -= half_k * vi); // p is now w
        for i in 0..m {
            let (vi, wi) = (v[i], p[i]);
            let row = &mut a[(block + i) * d + block..(block + i + 1) * d];
            for ((r, vj), wj) in row.iter_mut().zip(v.iter()).zip(p.iter()) {
                *r -= vi * wj + wi * vj;
            }
        }
    }
}

/// x · y in eight lanes (so that it vectorises), then summed.
#[inline(always)]
fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut lanes = [0.0; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let tail: f64 = xc.remainder().iter().zip(yc.remainder()).map(|(a, b)| a * b).sum();
    for (a, b) in xc.zip(yc) {
        for l in 0..8 {
            lanes[l] += a[l] * b[l];
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// The eigenvalues of the symmetric tridiagonal matrix with diagonal `diag` and
/// off-diagonal `off` (`off[i]` couples i and i + 1; the last is ignored) by the implicit
/// QL iteration with Wilkinson's shift (`tqli`); they replace `diag`, `off` is destroyed.
/// `false` if an eigenvalue took more than [`MAX_ITERATIONS`] iterations.
fn tridiagonal_eigenvalues(diag: &mut [f64], off: &mut [f64]) -> bool {
    let n = diag.len();
    if n == 0 {
        return true;
    }
    off[n - 1] = 0.0;
    for l in 0..n {
        let mut iterations = 0;
        loop {
            // The first negligible off-diagonal at or after l splits the matrix there.
            let mut m = l;
            while m + 1 < n && off[m].abs() > f64::EPSILON * (diag[m].abs() + diag[m + 1].abs()) {
                m += 1;
            }
            if m == l {
                break;
            }
            iterations += 1;
            if iterations > MAX_ITERATIONS {
                return false;
            }
            // Wilkinson's shift from the leading 2 × 2 block, then one QL sweep m−1 … l.
            let mut g = (diag[l + 1] - diag[l]) / (2.0 * off[l]);
            let mut r = (g * g + 1.0).sqrt();
            g = diag[m] - diag[l] + off[l] / (g + r.copysign(g));
            let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
            let mut deflated = false;
            for i in (l..m).rev() {
                let f = s * off[i];
                let b = c * off[i];
                r = (f * f + g * g).sqrt();
                off[i + 1] = r;
                if r == 0.0 {
                    // underflow: the matrix splits at i + 1; start the sweep again
                    diag[i + 1] -= p;
                    off[m] = 0.0;
                    deflated = true;
                    break;
                }
                let inverse = 1.0 / r;
                s = f * inverse;
                c = g * inverse;
                g = diag[i + 1] - p;
                r = (diag[i] - g) * s + 2.0 * c * b;
                p = s * r;
                diag[i + 1] = g + p;
                g = c * r - b;
            }
            if deflated {
                continue;
            }
            diag[l] -= p;
            off[l] = g;
            off[m] = 0.0;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(f64::total_cmp);
        v
    }

    /// A seeded symmetric matrix: Gᵀ G (positive semidefinite, rank ≤ `rank`) or G + Gᵀ.
    fn matrix(d: usize, rank: usize, psd: bool, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
        };
        if psd {
            let g: Vec<f64> = (0..rank * d).map(|_| next()).collect();
            (0..d * d)
                .map(|ij| (0..rank).map(|r| g[r * d + ij / d] * g[r * d + ij % d]).sum())
                .collect()
        } else {
            let g: Vec<f64> = (0..d * d).map(|_| next()).collect();
            (0..d * d).map(|ij| g[ij] + g[(ij % d) * d + ij / d]).collect()
        }
    }

    #[test]
    fn the_second_difference_matrix_has_its_closed_form_spectrum() {
        // tridiag(−1, 2, −1) of size n: λ_k = 2 − 2 cos(kπ / (n + 1)), k = 1 … n; filled
        // in as a dense matrix conjugated by a permutation, so that the Householder stage
        // has work to do.
        for n in [1, 2, 3, 7, 33] {
            let perm: Vec<usize> = (0..n).map(|i| (i * 5 + 3) % n).collect(); // 5 ⟂ n
            let mut m = vec![0.0; n * n];
            for i in 0..n {
                m[perm[i] * n + perm[i]] = 2.0;
                if i + 1 < n {
                    m[perm[i] * n + perm[i + 1]] = -1.0;
                    m[perm[i + 1] * n + perm[i]] = -1.0;
                }
            }
            let got = sorted(symmetric_eigenvalues(&m, n));
            let want = sorted(
                (1..=n)
                    .map(|k| 2.0 - 2.0 * (k as f64 * std::f64::consts::PI / (n as f64 + 1.0)).cos())
                    .collect(),
            );
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-13, "n = {n}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn eigenvalues_match_nalgebra_on_seeded_matrices() {
        for (d, rank, psd) in [
            (2, 2, false),
            (5, 5, true),
            (16, 3, true), // rank-deficient: 13 zero eigenvalues
            (64, 64, true),
            (67, 40, true),
            (128, 500, true),
            (129, 0, false),
        ] {
            let m = matrix(d, rank, psd, (d * 31 + rank) as u64);
            let got = sorted(symmetric_eigenvalues(&m, d));
            let want = sorted(
                DMatrix::from_row_slice(d, d, &m)
                    .symmetric_eigenvalues()
                    .iter()
                    .copied()
                    .collect(),
            );
            let scale = want.iter().fold(0.0f64, |s, l| s.max(l.abs()));
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-12 * scale, "d = {d}: {g} vs {w} (scale {scale})");
            }
            // the trace is kept
            let trace: f64 = (0..d).map(|i| m[i * d + i]).sum();
            assert!((got.iter().sum::<f64>() - trace).abs() < 1e-11 * scale * d as f64);
        }
    }

    #[test]
    fn a_diagonal_a_zero_and_a_scaled_matrix() {
        assert_eq!(
            sorted(symmetric_eigenvalues(&[3.0, 0.0, 0.0, -1.0], 2)),
            vec![-1.0, 3.0]
        );
        assert_eq!(symmetric_eigenvalues(&[0.0; 9], 3), vec![0.0; 3]);
        // [[2, 1], [1, 2]] · 1e200: eigenvalues 1e200 and 3e200, no overflow
        let got = sorted(symmetric_eigenvalues(&[2e200, 1e200, 1e200, 2e200], 2));
        assert!(
            (got[0] / 1e200 - 1.0).abs() < 1e-14 && (got[1] / 3e200 - 1.0).abs() < 1e-14,
            "{got:?}"
        );
        // an asymmetric input is symmetrised: [[2, 0], [2, 2]] → [[2, 1], [1, 2]]
        let got = sorted(symmetric_eigenvalues(&[2.0, 0.0, 2.0, 2.0], 2));
        assert!((got[0] - 1.0).abs() < 1e-14 && (got[1] - 3.0).abs() < 1e-14, "{got:?}");
    }
}
