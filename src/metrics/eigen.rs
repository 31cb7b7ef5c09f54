//! The eigenvalues of dense symmetric matrices, without eigenvectors: what every Fréchet
//! distance needs (Σ_i √λ_i of Σ_a^{1/2} Σ_b Σ_a^{1/2}), once per bootstrap replicate.
//!
//! Two stages, as LAPACK's `dsytrd` + `dsterf`, on groups of [`LANES`] matrices:
//! 1. Householder tridiagonalisation T = Qᵀ A Q (Golub & Van Loan, *Matrix Computations*,
//!    §8.3.1) of the group at once, one matrix per lane of each vector (the lower
//!    triangles packed, lanes interleaved). Run one matrix at a time on the full square
//!    with its rows as vectors, this stage took 162 µs per matrix at d = 128 (perf: 27 % of
//!    the feature-space Fréchet statistics); across a group, 60 µs.
//! 2. The implicit QL iteration with Wilkinson's shift on T (Press et al., *Numerical
//!    Recipes*, `tqli`, eigenvalues only). Its rotations are a chain of dependent square
//!    roots and divisions, so the group's iterations run side by side, one rotation of
//!    each in turn, for the processor to overlap.
//!
//! Each matrix is scaled by its largest magnitude first, so that the reflections' and
//! rotations' √(f² + g²) cannot overflow; the eigenvalues are scaled back. Should the QL
//! iteration not converge (it has not been seen to), nalgebra's solver answers instead.

use nalgebra::DMatrix;
use pulp::Simd;

/// The most QL iterations spent on one eigenvalue before the fallback.
const MAX_ITERATIONS: usize = 60;

/// The eigenvalues of symmetric `d × d` row-major matrices (each exactly symmetric: stage 1
/// reads its lower triangle), in groups of [`LANES`]: stage 1 runs on a group at once, one
/// matrix per lane of its vectors ([`tridiagonalise`]), stage 2 on their tridiagonal forms
/// interleaved, one rotation of each in turn, so that their chains of dependent square
/// roots and divisions overlap ([`tridiagonal_eigenvalues_interleaved`]). A matrix's
/// arithmetic is the same in any lane and any group.
pub(crate) fn eigenvalues_of_many(matrices: &[Vec<f64>], d: usize) -> Vec<Vec<f64>> {
    matrices
        .chunks(LANES)
        .flat_map(|group| eigenvalues_of_group(group, d))
        .collect()
}

/// How many matrices [`eigenvalues_of_many`] takes at once (8: one AVX-512 vector of f64,
/// two AVX2 ones; in stage 2, 18 % faster than 4 at d = 128, measured).
pub(crate) const LANES: usize = 8;

/// One value per matrix of a group.
type Lane = [f64; LANES];

/// [`eigenvalues_of_many`] of up to [`LANES`] matrices. Each is divided by its largest
/// magnitude first, so that the reflections' and rotations' √(f² + g²) cannot overflow, and
/// its eigenvalues multiplied back; a zero matrix has zero eigenvalues and one with a
/// non-finite entry NaN ones. Should the QL iteration not converge (it has not been seen
/// to), nalgebra's solver answers instead.
fn eigenvalues_of_group(group: &[Vec<f64>], d: usize) -> Vec<Vec<f64>> {
    let scales: Vec<f64> = group
        .iter()
        .map(|m| {
            assert_eq!(m.len(), d * d, "a {d} × {d} matrix");
            debug_assert!((0..d * d).all(|ij| m[ij] == m[(ij % d) * d + ij / d]), "not symmetric");
            m.iter().fold(0.0f64, |s, v| s.max(v.abs()))
        })
        .collect();
    let usable = |s: f64| s > 0.0 && s.is_finite();
    let mut packed = vec![[0.0; LANES]; d * (d + 1) / 2];
    for (lane, (m, &scale)) in group.iter().zip(&scales).enumerate() {
        if usable(scale) {
            for i in 0..d {
                for (a, v) in packed[row_start(i)..].iter_mut().zip(&m[i * d..=i * d + i]) {
                    a[lane] = v / scale;
                }
            }
        }
    }
    let (mut diag, mut off) = (vec![[0.0; LANES]; d], vec![[0.0; LANES]; d]);
    tridiagonalise(&mut packed, d, &mut diag, &mut off);
    let lane = |v: &[Lane], l: usize| v.iter().map(|x| x[l]).collect::<Vec<f64>>();
    let mut forms: Vec<(Vec<f64>, Vec<f64>)> = (0..group.len()).map(|l| (lane(&diag, l), lane(&off, l))).collect();
    let mut views: Vec<(&mut [f64], &mut [f64])> = forms.iter_mut().map(|(a, b)| (&mut a[..], &mut b[..])).collect();
    let converged = tridiagonal_eigenvalues_interleaved(&mut views);
    forms
        .into_iter()
        .zip(group.iter().zip(scales))
        .zip(converged)
        .map(
            |(((eigenvalues, _), (m, scale)), converged)| match (usable(scale), converged) {
                (true, true) => eigenvalues.iter().map(|l| l * scale).collect(),
                (true, false) => DMatrix::from_row_slice(d, d, m)
                    .symmetric_eigenvalues()
                    .iter()
                    .copied()
                    .collect(),
                (false, _) => vec![if scale.is_finite() { 0.0 } else { f64::NAN }; d],
            },
        )
        .collect()
}

/// Where row i of a packed lower triangle starts: its elements (i, 0 ..= i) follow.
fn row_start(i: usize) -> usize {
    i * (i + 1) / 2
}

/// Householder tridiagonalisation of up to [`LANES`] symmetric `d × d` matrices, one per
/// lane of the packed lower triangle `a` (overwritten): the diagonals of T in `diag`, the
/// off-diagonals in `off` (`off[k]` couples k and k + 1; `off[d − 1]` = 0). Its vectors
/// are the widest the CPU has (pulp's run-time dispatch: AVX-512, AVX2 or scalar, the same
/// numbers in each: no fused multiply-adds).
fn tridiagonalise(a: &mut [Lane], d: usize, diag: &mut [Lane], off: &mut [Lane]) {
    pulp::Arch::new().dispatch(Stage1 { a, d, diag, off })
}

/// [`tridiagonalise`]'s arguments, for pulp to call [`tridiagonalise_with`] with the CPU's
/// vectors.
struct Stage1<'a> {
    a: &'a mut [Lane],
    d: usize,
    diag: &'a mut [Lane],
    off: &'a mut [Lane],
}

impl pulp::WithSimd for Stage1<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        tridiagonalise_with(simd, self.a, self.d, self.diag, self.off)
    }
}

/// A lane as the CPU's vectors (one AVX-512 vector, two AVX2 ones, or eight scalars).
#[inline(always)]
fn vectors<S: Simd>(x: &Lane) -> &[S::f64s] {
    S::as_simd_f64s(x).0
}

/// [`vectors`], to write.
#[inline(always)]
fn vectors_mut<S: Simd>(x: &mut Lane) -> &mut [S::f64s] {
    S::as_mut_simd_f64s(x).0
}

/// Step k reflects column k's part below the diagonal, x = A[k+1.., k], onto α e_1 with
/// H = I − β v vᵀ (v = x − α e_1, α = −sign(x_1) ‖x‖, β = 2 / vᵀv; H = I, β = 0, where x
/// is already α e_1), and applies H to the trailing block B = A[k+1.., k+1..] from both
/// sides: p = β B v, K = β vᵀp / 2, w = p − K v, H B H = B − v wᵀ − w vᵀ.
///
/// Each operation runs on the group's values at once, so every loop is a vector loop
/// whatever its length, and only the lower triangle is read and updated: the product
/// p = B v takes each element of row i left of the diagonal twice, for p_i and for p_j
/// (B_ji = B_ij).
#[inline(always)]
fn tridiagonalise_with<S: Simd>(simd: S, a: &mut [Lane], d: usize, diag: &mut [Lane], off: &mut [Lane]) {
    let (mut v, mut p) = (vec![[0.0; LANES]; d], vec![[0.0; LANES]; d]);
    for k in 0..d {
        diag[k] = a[row_start(k) + k];
        let m = d - k - 1;
        if m == 0 {
            off[k] = [0.0; LANES];
            break;
        }
        let (v, p) = (&mut v[..m], &mut p[..m]);
        let block = k + 1;
        for (i, vi) in v.iter_mut().enumerate() {
            *vi = a[row_start(block + i) + k];
        }
        let mut tail = [0.0; LANES];
        for x in &v[1..] {
            for l in 0..LANES {
                tail[l] += x[l] * x[l];
            }
        }
        let mut beta = [0.0; LANES];
        for l in 0..LANES {
            let x0 = v[0][l];
            if tail[l] == 0.0 {
                off[k][l] = x0; // already tridiagonal in this column: H = I
                v[0][l] = 0.0;
                continue;
            }
            let alpha = -(x0 * x0 + tail[l]).sqrt().copysign(x0);
            off[k][l] = alpha;
            v[0][l] = x0 - alpha;
            beta[l] = 2.0 / (v[0][l] * v[0][l] + tail[l]);
        }
        // p = β B v, with B's row i as B[i, ..i] (which is also column i above the
        // diagonal) and B_ii.
        p.fill([0.0; LANES]);
        for i in 0..m {
            let row = &a[row_start(block + i) + block..][..=i];
            let (vi, mut sum) = (v[i], [0.0; LANES]);
            let (vi_s, sum_s) = (vectors::<S>(&vi), vectors_mut::<S>(&mut sum));
            for ((b, vj), pj) in row[..i].iter().zip(&v[..i]).zip(&mut p[..i]) {
                let (b, vj, pj) = (vectors::<S>(b), vectors::<S>(vj), vectors_mut::<S>(pj));
                for q in 0..b.len() {
                    sum_s[q] = simd.add_f64s(sum_s[q], simd.mul_f64s(b[q], vj[q]));
                    pj[q] = simd.add_f64s(pj[q], simd.mul_f64s(b[q], vi_s[q]));
                }
            }
            for l in 0..LANES {
                p[i][l] += sum[l] + row[i][l] * vi[l];
            }
        }
        let mut half_k = [0.0; LANES];
        for (pi, vi) in p.iter_mut().zip(v.iter()) {
            for l in 0..LANES {
                pi[l] *= beta[l];
                half_k[l] += vi[l] * pi[l];
            }
        }
        for (pi, vi) in p.iter_mut().zip(v.iter()) {
            for l in 0..LANES {
                pi[l] -= 0.5 * beta[l] * half_k[l] * vi[l]; // p is now w
            }
        }
        // B − v wᵀ − w vᵀ
        for i in 0..m {
            let (vi, wi) = (v[i], p[i]);
            let (vi, wi) = (vectors::<S>(&vi), vectors::<S>(&wi));
            let row = &mut a[row_start(block + i) + block..][..=i];
            for ((b, vj), wj) in row.iter_mut().zip(v.iter()).zip(p.iter()) {
                let (b, vj, wj) = (vectors_mut::<S>(b), vectors::<S>(vj), vectors::<S>(wj));
                for q in 0..b.len() {
                    let update = simd.add_f64s(simd.mul_f64s(vi[q], wj[q]), simd.mul_f64s(wi[q], vj[q]));
                    b[q] = simd.sub_f64s(b[q], update);
                }
            }
        }
    }
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
        let mut all = eigenvalues_of_many(&[symmetrised(m, d)], d);
        all.pop().expect("one matrix")
    }

    fn symmetrised(m: &[f64], d: usize) -> Vec<f64> {
        (0..d * d).map(|ij| 0.5 * (m[ij] + m[(ij % d) * d + ij / d])).collect()
    }

    #[test]
    fn a_matrix_gets_the_same_eigenvalues_in_any_lane_of_any_group() {
        // Per size, ten matrices of different ranks and spectra (a zero matrix among them)
        // in groups of LANES (8 + 2): each the same numbers, bit for bit, as alone in a
        // group, and nalgebra's to 1e-12 of the largest.
        for d in [1, 2, 7, 33, 64] {
            let inputs: Vec<Vec<f64>> = (0..10)
                .map(|k| {
                    let (rank, psd) = [(d, true), (d / 3, true), (0, true), (2 * d, true), (d, false)][k % 5];
                    symmetrised(&matrix(d, rank, psd, (7 + k * d) as u64), d)
                })
                .collect();
            let together = eigenvalues_of_many(&inputs, d);
            assert_eq!(together.len(), 10);
            for (m, got) in inputs.iter().zip(&together) {
                assert_eq!(got, &symmetric_eigenvalues(m, d), "d = {d}");
                let want = sorted(
                    DMatrix::from_row_slice(d, d, m)
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
    }

    #[test]
    fn every_instruction_set_gives_the_same_numbers() {
        // Stage 1 with scalars, AVX2 and AVX-512 vectors (those the CPU has): bit for bit
        // the same tridiagonal forms (no fused multiply-adds anywhere).
        let d = 37;
        let group: Vec<Vec<f64>> = (0..LANES)
            .map(|k| symmetrised(&matrix(d, d, k % 2 == 0, 3 + k as u64), d))
            .collect();
        let mut packed = vec![[0.0; LANES]; d * (d + 1) / 2];
        for (lane, m) in group.iter().enumerate() {
            for i in 0..d {
                for j in 0..=i {
                    packed[row_start(i) + j][lane] = m[i * d + j];
                }
            }
        }
        type Stage<'a> = dyn Fn(&mut [Lane], &mut [Lane], &mut [Lane]) + 'a;
        let run = |simd: &Stage| {
            let (mut a, mut diag, mut off) = (packed.clone(), vec![[0.0; LANES]; d], vec![[0.0; LANES]; d]);
            simd(&mut a, &mut diag, &mut off);
            (diag, off)
        };
        let scalar = run(&|a, diag, off| tridiagonalise_with(pulp::Scalar, a, d, diag, off));
        assert_eq!(run(&|a, diag, off| tridiagonalise(a, d, diag, off)), scalar);
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = pulp::x86::V3::try_new() {
            assert_eq!(
                run(&|a, diag, off| Simd::vectorize(simd, Stage1 { a, d, diag, off })),
                scalar
            );
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
