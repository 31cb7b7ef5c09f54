//! The eigenvalues of a dense symmetric matrix, without eigenvectors: what every Fréchet
//! distance needs (Σ_i √λ_i of Σ_a^{1/2} Σ_b Σ_a^{1/2}), once per bootstrap replicate.
//!
//! Two stages, as LAPACK's `dsytrd` + `dsterf`:
//! 1. Householder tridiagonalisation T = Qᵀ A Q (Golub & Van Loan, *Matrix Computations*,
//!    §8.3.1) on the full square in row-major order, so that both the product p = β B v
//!    and the rank-2 update B ← B − v wᵀ − w vᵀ of each step run along contiguous rows
//!    (compiled for AVX2 + FMA where the CPU has them, checked at run time).
//! 2. The implicit QL iteration with Wilkinson's shift on T (Press et al., *Numerical
//!    Recipes*, `tqli`, eigenvalues only). Its rotations are a chain of dependent square
//!    roots and divisions (perf: 20 % of the digits statistics, more than stage 1), so
//!    [`eigenvalues_of_many`] runs the iterations of several matrices side by side, one
//!    rotation of each in turn, for the processor to overlap.
//!
//! The matrix is scaled by its largest magnitude first, so that the rotations' √(f² + g²)
//! cannot overflow; the eigenvalues are scaled back. Should the QL iteration not converge
//! (it has not been seen to), nalgebra's solver answers instead.

use nalgebra::DMatrix;

/// The most QL iterations spent on one eigenvalue before the fallback.
const MAX_ITERATIONS: usize = 60;

/// A symmetric matrix reduced to tridiagonal form (stage 1), its scale divided out.
pub(crate) struct Tridiagonal {
    /// The diagonal (d).
    diag: Vec<f64>,
    /// The off-diagonal (`off[k]` couples k and k + 1; the last is 0).
    off: Vec<f64>,
    /// The largest magnitude of the input (0: a zero matrix; not finite: bad input).
    scale: f64,
    /// The input, kept for the fallback.
    input: Vec<f64>,
}

impl Tridiagonal {
    /// Stage 1 on the symmetric `d × d` row-major `m` (exactly symmetric: its upper
    /// triangle is what stage 1 reflects, its lower what it updates).
    pub fn new(m: Vec<f64>, d: usize) -> Self {
        assert_eq!(m.len(), d * d, "a {d} × {d} matrix");
        debug_assert!((0..d * d).all(|ij| m[ij] == m[(ij % d) * d + ij / d]), "not symmetric");
        let scale = m.iter().fold(0.0f64, |s, v| s.max(v.abs()));
        let (mut diag, mut off) = (vec![0.0; d], vec![0.0; d]);
        if d > 0 && scale > 0.0 && scale.is_finite() {
            let mut a: Vec<f64> = m.iter().map(|v| v / scale).collect();
            tridiagonalise(&mut a, d, &mut diag, &mut off);
        }
        Self {
            diag,
            off,
            scale,
            input: m,
        }
    }

    /// The eigenvalues, once stage 2 has run on `self.diag` (`converged`), else from the
    /// fallback.
    fn finish(mut self, converged: bool) -> Vec<f64> {
        let d = self.diag.len();
        if d == 0 || self.scale == 0.0 || !self.scale.is_finite() {
            return vec![if self.scale.is_finite() { 0.0 } else { f64::NAN }; d];
        }
        if !converged {
            let sym = DMatrix::from_row_slice(d, d, &self.input);
            return sym.symmetric_eigenvalues().iter().copied().collect();
        }
        let scale = self.scale;
        self.diag.iter_mut().for_each(|l| *l *= scale);
        self.diag
    }
}

/// The eigenvalues of several symmetric matrices at once: stage 2 (the QL iteration) runs
/// on all of them interleaved, one rotation of each in turn, so that their chains of
/// dependent square roots and divisions overlap ([`tridiagonal_eigenvalues_interleaved`]).
pub(crate) fn eigenvalues_of_many(mut matrices: Vec<Tridiagonal>) -> Vec<Vec<f64>> {
    let mut converged = Vec::with_capacity(matrices.len());
    for group in matrices.chunks_mut(LANES) {
        let mut lanes: Vec<(&mut [f64], &mut [f64])> =
            group.iter_mut().map(|t| (&mut t.diag[..], &mut t.off[..])).collect();
        converged.extend(tridiagonal_eigenvalues_interleaved(&mut lanes));
    }
    matrices.into_iter().zip(converged).map(|(t, c)| t.finish(c)).collect()
}

/// How many QL iterations [`eigenvalues_of_many`] interleaves (8: 18 % faster than 4 at
/// d = 128, measured).
pub(crate) const LANES: usize = 8;

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
/// (Updating the upper triangle only, with p from one pass over it, measured 25 % slower
/// at d = 128: the matrix is in L2 either way, and the short, shifted rows vectorise worse.)
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

/// One matrix's place in [`tridiagonal_eigenvalues_interleaved`]: the eigenvalue `l` being
/// found, the current sweep m − 1 … l and the rotation's running values.
#[derive(Clone, Copy, Default)]
struct Sweep {
    l: usize,
    m: usize,
    iterations: usize,
    /// No more sweeps: every eigenvalue found, or [`MAX_ITERATIONS`] spent (`failed`).
    done: bool,
    failed: bool,
    /// The sweep stopped early: an off-diagonal underflowed, the matrix split.
    deflated: bool,
    s: f64,
    c: f64,
    p: f64,
    g: f64,
}

impl Sweep {
    /// Finds the next sweep of the matrix (`diag`, `off`) from eigenvalue `l` on: m, the
    /// first negligible off-diagonal at or after l, where the matrix splits, and Wilkinson's
    /// shift from the leading 2 × 2 block. Marks the matrix done when there is none.
    fn start(&mut self, diag: &[f64], off: &[f64]) {
        let n = diag.len();
        self.deflated = false;
        while self.l < n {
            let l = self.l;
            let mut m = l;
            while m + 1 < n && off[m].abs() > f64::EPSILON * (diag[m].abs() + diag[m + 1].abs()) {
                m += 1;
            }
            if m == l {
                self.l += 1;
                self.iterations = 0;
                continue;
            }
            self.iterations += 1;
            if self.iterations > MAX_ITERATIONS {
                break;
            }
            let mut g = (diag[l + 1] - diag[l]) / (2.0 * off[l]);
            let r = (g * g + 1.0).sqrt();
            g = diag[m] - diag[l] + off[l] / (g + r.copysign(g));
            (self.m, self.s, self.c, self.p, self.g) = (m, 1.0, 1.0, 0.0, g);
            return;
        }
        self.failed = self.l < n;
        self.done = true;
    }

    /// The rotation at row i of the sweep (`tqli`'s, i = m − 1 … l).
    #[inline(always)]
    fn rotate(&mut self, diag: &mut [f64], off: &mut [f64], i: usize) {
        let f = self.s * off[i];
        let b = self.c * off[i];
        let r = (f * f + self.g * self.g).sqrt();
        off[i + 1] = r;
        if r == 0.0 {
            diag[i + 1] -= self.p;
            off[self.m] = 0.0;
            self.deflated = true;
            return;
        }
        let inverse = 1.0 / r;
        self.s = f * inverse;
        self.c = self.g * inverse;
        let g = diag[i + 1] - self.p;
        let r = (diag[i] - g) * self.s + 2.0 * self.c * b;
        self.p = self.s * r;
        diag[i + 1] = g + self.p;
        self.g = self.c * r - b;
    }

    /// The end of a sweep that ran to row l.
    fn finish(&mut self, diag: &mut [f64], off: &mut [f64]) {
        if !self.deflated {
            diag[self.l] -= self.p;
            off[self.l] = self.g;
            off[self.m] = 0.0;
        }
    }
}

/// The eigenvalues of up to [`LANES`] symmetric tridiagonal matrices (diagonal `diag`,
/// off-diagonal `off`: `off[i]` couples i and i + 1, the last is ignored) by the implicit
/// QL iteration with Wilkinson's shift (`tqli`); they replace `diag`, `off` is destroyed.
/// The matrices' sweeps run side by side, one rotation of each in turn (a matrix's own
/// arithmetic is as if it ran alone). Per matrix, `false` where an eigenvalue took more
/// than [`MAX_ITERATIONS`] iterations.
fn tridiagonal_eigenvalues_interleaved(lanes: &mut [(&mut [f64], &mut [f64])]) -> Vec<bool> {
    assert!(lanes.len() <= LANES, "at most {LANES} matrices");
    let mut sweeps = [Sweep::default(); LANES];
    for ((diag, off), sweep) in lanes.iter_mut().zip(&mut sweeps) {
        if let Some(last) = off.last_mut() {
            *last = 0.0;
        }
        sweep.done = diag.is_empty();
    }
    let k = lanes.len();
    loop {
        for ((diag, off), sweep) in lanes.iter().zip(&mut sweeps[..k]) {
            if !sweep.done {
                sweep.start(diag, off);
            }
        }
        let longest = sweeps[..k].iter().filter(|s| !s.done).map(|s| s.m - s.l).max();
        let Some(longest) = longest else { break };
        for step in 0..longest {
            for ((diag, off), sweep) in lanes.iter_mut().zip(&mut sweeps[..k]) {
                if !sweep.done && !sweep.deflated && step < sweep.m - sweep.l {
                    sweep.rotate(diag, off, sweep.m - 1 - step);
                }
            }
        }
        for ((diag, off), sweep) in lanes.iter_mut().zip(&mut sweeps[..k]) {
            if !sweep.done {
                sweep.finish(diag, off);
            }
        }
    }
    sweeps[..k].iter().map(|s| !s.failed).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The eigenvalues of one matrix symmetrised as (M + Mᵀ)/2, in no particular order.
    fn symmetric_eigenvalues(m: &[f64], d: usize) -> Vec<f64> {
        let sym = (0..d * d).map(|ij| 0.5 * (m[ij] + m[(ij % d) * d + ij / d])).collect();
        let mut all = eigenvalues_of_many(vec![Tridiagonal::new(sym, d)]);
        all.pop().expect("one matrix")
    }

    #[test]
    fn interleaved_matrices_get_what_each_gets_alone() {
        // Ten matrices of different sizes and spectra, interleaved in groups of LANES (sizes
        // 1 to 64, so the sweeps have different lengths), a zero matrix among them: the
        // same numbers, bit for bit, as one at a time.
        let sizes = [
            (40, 40, true),
            (1, 1, true),
            (7, 3, true),
            (64, 64, false),
            (16, 0, true),
            (33, 200, true),
            (20, 20, false),
            (2, 2, true),
            (50, 12, true),
            (9, 9, false),
        ];
        let inputs: Vec<(Vec<f64>, usize)> = sizes
            .iter()
            .enumerate()
            .map(|(k, &(d, rank, psd))| (matrix(d, rank, psd, 7 + k as u64), d))
            .collect();
        let together = eigenvalues_of_many(
            inputs
                .iter()
                .map(|(m, d)| {
                    let sym = (0..d * d).map(|ij| 0.5 * (m[ij] + m[(ij % d) * d + ij / d])).collect();
                    Tridiagonal::new(sym, *d)
                })
                .collect(),
        );
        for ((m, d), got) in inputs.iter().zip(&together) {
            assert_eq!(got, &symmetric_eigenvalues(m, *d), "d = {d}");
            let want = sorted(
                DMatrix::from_row_slice(*d, *d, m)
                    .symmetric_eigenvalues()
                    .iter()
                    .copied()
                    .collect(),
            );
            let scale = want.iter().fold(1e-300f64, |s, l| s.max(l.abs()));
            for (g, w) in sorted(got.clone()).iter().zip(&want) {
                assert!((g - w).abs() < 1e-12 * scale, "d = {d}: {g} vs {w}");
            }
        }
    }

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
