//! The eigenvalues of dense symmetric matrices, without eigenvectors: what every Fréchet
//! distance needs (Σ_i √λ_i of Σ_a^{1/2} Σ_b Σ_a^{1/2}), once per bootstrap replicate.
//!
//! Two stages, as LAPACK's `dsytrd` + `dsterf`, on groups of [`LANES`] matrices:
//! 1. Householder tridiagonalisation T = Qᵀ A Q (Golub & Van Loan, *Matrix Computations*,
//!    §8.3.1) of the group at once, one matrix per lane of each vector (the lower
//!    triangles packed, lanes interleaved). Run one matrix at a time on the full square
//!    with its rows as vectors, this stage took 162 µs per matrix at d = 128 (perf: 27 % of
//!    the feature-space Fréchet statistics); across a group, 60 µs. Each step's product
//!    p = B v is made in the previous step's update pass, four rows at a time (one pass
//!    over the trailing block per step instead of two: −15 % on a 2 MB-L2 Xeon).
//! 2. The implicit QL iteration with Wilkinson's shift on T (Press et al., *Numerical
//!    Recipes*, `tqli`, eigenvalues only). Its rotations are a chain of dependent square
//!    roots and divisions; the group's sweeps run together, one matrix per vector lane.
//!
//! Each matrix is scaled by the power of two at or above its largest magnitude first (an
//! exact scaling), so that the reflections' and rotations' √(f² + g²) cannot overflow; the
//! eigenvalues are scaled back. Should the QL iteration not converge (it has not been seen
//! to), nalgebra's solver answers instead.

use nalgebra::DMatrix;
use pulp::Simd;

/// The most QL iterations spent on one eigenvalue before the fallback.
const MAX_ITERATIONS: usize = 60;

/// The eigenvalues of symmetric `d × d` row-major matrices (of each, only the upper
/// triangle is read), [`GROUP`] at a time: stage 1 on each [`LANES`] of them at
/// once, one matrix per lane of its vectors ([`tridiagonalise`]), stage 2 on all their
/// tridiagonal forms at once, one matrix per lane again
/// ([`tridiagonal_eigenvalues_portable`]). A matrix's arithmetic is the same in any lane
/// and any group.
pub(crate) fn eigenvalues_of_many(matrices: &[Vec<f64>], d: usize) -> Vec<Vec<f64>> {
    matrices
        .chunks(GROUP)
        .flat_map(|group| eigenvalues_of_group(group, d))
        .collect()
}

/// How many matrices stage 1 takes at once (8: one AVX-512 vector of f64, two AVX2 ones).
pub(crate) const LANES: usize = 8;

/// How many matrices [`eigenvalues_of_many`] takes at once: stage 2 runs two vectors of
/// [`LANES`], two independent chains of square roots and divisions, so that one's latency
/// hides the other's (stage 2 took 69 µs per matrix at d = 128 with one vector of 8).
pub(crate) const GROUP: usize = 2 * LANES;

/// One value per matrix of stage 1's group.
type Lane = [f64; LANES];

/// [`eigenvalues_of_many`] of up to [`GROUP`] matrices. Each is divided by the power of
/// two at or above its largest magnitude first (no rounding), so that the reflections' and
/// rotations' √(f² + g²) cannot overflow, and its eigenvalues multiplied back; a zero
/// matrix has zero eigenvalues and one with a non-finite entry NaN ones. Should the QL
/// iteration not converge (it has not been seen to), nalgebra's solver answers instead.
fn eigenvalues_of_group(group: &[Vec<f64>], d: usize) -> Vec<Vec<f64>> {
    let scales: Vec<f64> = group
        .iter()
        .map(|m| {
            assert_eq!(m.len(), d * d, "a {d} × {d} matrix");
            let largest = (0..d)
                .flat_map(|i| &m[i * d + i..(i + 1) * d])
                .fold(0.0f64, |s, v| s.max(v.abs()));
            power_of_two_above(largest)
        })
        .collect();
    let usable = |s: f64| s > 0.0 && s.is_finite();
    let (mut diag, mut off) = (vec![[0.0; GROUP]; d], vec![[0.0; GROUP]; d]);
    for (half, (matrices, scales)) in group.chunks(LANES).zip(scales.chunks(LANES)).enumerate() {
        let mut packed = vec![[0.0; LANES]; d * (d + 1) / 2];
        // 1/scale, a power of two: the scaling is exact (an unusable matrix's lane stays 0)
        let lanes: Vec<(usize, f64)> = (scales.iter().enumerate())
            .filter(|(_, s)| usable(**s))
            .map(|(lane, s)| (lane, 1.0 / s))
            .collect();
        // element (i, j), j ≤ i, of the lower triangle is (j, i) of the upper: row j of each
        // matrix read in order, each element of `packed` written once with all its lanes
        for j in 0..d {
            for i in j..d {
                let element = &mut packed[row_start(i) + j];
                for &(lane, inverse) in &lanes {
                    element[lane] = matrices[lane][j * d + i] * inverse;
                }
            }
        }
        let (mut diag8, mut off8) = (vec![[0.0; LANES]; d], vec![[0.0; LANES]; d]);
        tridiagonalise(&mut packed, d, &mut diag8, &mut off8);
        for (to, from) in diag.iter_mut().zip(&diag8).chain(off.iter_mut().zip(&off8)) {
            to[half * LANES..(half + 1) * LANES].copy_from_slice(from);
        }
    }
    let converged = tridiagonal_eigenvalues(&mut diag, &mut off, group.len());
    group
        .iter()
        .zip(scales)
        .zip(converged)
        .enumerate()
        .map(|(q, ((m, scale), converged))| match (usable(scale), converged) {
            (true, true) => diag.iter().map(|l| l[q] * scale).collect(),
            (true, false) => DMatrix::from_fn(d, d, |i, j| m[i.min(j) * d + i.max(j)]) // the upper triangle
                .symmetric_eigenvalues()
                .iter()
                .copied()
                .collect(),
            (false, _) => vec![if scale.is_finite() { 0.0 } else { f64::NAN }; d],
        })
        .collect()
}

/// The smallest power of two at or above `x` (≥ 0, finite; 0 for 0): dividing by it, or
/// multiplying by its inverse, changes no digit. NaN and ∞ come back as they are.
fn power_of_two_above(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let (bits, exponent) = (x.to_bits(), (x.to_bits() >> 52) & 0x7ff);
    if exponent == 0 {
        return f64::MIN_POSITIVE; // subnormal: 2^−1022 is above it
    }
    // x = 1.m × 2^e: 2^e itself when m = 0, else 2^(e + 1)
    let power = f64::from_bits(exponent << 52);
    if bits & ((1u64 << 52) - 1) == 0 {
        power
    } else {
        2.0 * power
    }
}

/// Where row i of a packed lower triangle starts: its elements (i, 0 ..= i) follow.
fn row_start(i: usize) -> usize {
    i * (i + 1) / 2
}

/// Householder tridiagonalisation of up to [`LANES`] symmetric `d × d` matrices, one per
/// lane of the packed lower triangle `a` (overwritten): the diagonals of T in `diag`, the
/// off-diagonals in `off` (`off[k]` couples k and k + 1; `off[d − 1]` = 0). Its vectors
/// are the widest the CPU has (pulp's run-time dispatch: AVX-512, AVX2 or scalar), with the
/// same numbers from each: every multiply-add is fused, one rounding (libm's `fma` where
/// the CPU has no FMA instruction).
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
/// whatever its length, and only the lower triangle is read and updated. The product of
/// step k + 1 is made in the pass that updates B for step k ([`update_rows`]): u = B′ x′,
/// B′ and x′ the next step's block and column as they are written; then
/// p = β B′ v′ = β (u − α B′[.., 0]). One pass over the trailing block per step, not two
/// (the block is larger than L1: the stage waited on L2).
#[inline(always)]
fn tridiagonalise_with<S: Simd>(simd: S, a: &mut [Lane], d: usize, diag: &mut [Lane], off: &mut [Lane]) {
    let (mut v, mut w) = (vec![[0.0; LANES]; d], vec![[0.0; LANES]; d]);
    let (mut x, mut u) = (vec![[0.0; LANES]; d], vec![[0.0; LANES]; d]);
    // step 0's product: a pass over all of A that changes nothing (v = w = 0)
    update_block(simd, a, 0, &v, &w, &mut x, &mut u);
    for k in 0..d {
        diag[k] = a[row_start(k) + k];
        let m = d - k - 1;
        if m == 0 {
            off[k] = [0.0; LANES];
            break;
        }
        let (v, w) = (&mut v[..m], &mut w[..m]);
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
        let (mut alpha, mut beta) = ([0.0; LANES], [0.0; LANES]);
        for l in 0..LANES {
            let x0 = v[0][l];
            if tail[l] == 0.0 {
                off[k][l] = x0; // already tridiagonal in this column: H = I
                v[0][l] = 0.0;
                continue;
            }
            alpha[l] = -(x0 * x0 + tail[l]).sqrt().copysign(x0);
            off[k][l] = alpha[l];
            v[0][l] = x0 - alpha[l];
            beta[l] = 2.0 / (v[0][l] * v[0][l] + tail[l]);
        }
        // p = β (B x − α B[.., 0]), B x from the last pass (u[i + 1]: row block + i)
        let mut half_k = [0.0; LANES];
        for (i, (pi, vi)) in w.iter_mut().zip(v.iter()).enumerate() {
            let column = a[row_start(block + i) + block];
            for l in 0..LANES {
                pi[l] = beta[l] * (u[i + 1][l] - alpha[l] * column[l]);
                half_k[l] += vi[l] * pi[l];
            }
        }
        for (pi, vi) in w.iter_mut().zip(v.iter()) {
            for l in 0..LANES {
                pi[l] -= 0.5 * beta[l] * half_k[l] * vi[l]; // p is now w
            }
        }
        // B − v wᵀ − w vᵀ, and the next step's B′ x′
        update_block(simd, a, block, v, w, &mut x, &mut u[..m]);
    }
}

/// The pass of step k over its trailing block B (rows and columns `block` … `block` + m − 1
/// of the packed lower triangle `a`, m = `v.len()`): B ← B − v wᵀ − w vᵀ, and, from the
/// values as they are written, u_i = Σ_{j ≥ 1} B_ij x_j for i ≥ 1 with x_j = B_j0 (the next
/// step's column and block, indexed as rows of B; `u[0]` is left 0). Four rows at a time:
/// their sums are independent chains, and each v_j, w_j, x_j, u_j is read once for all.
#[inline(always)]
fn update_block<S: Simd>(
    simd: S,
    a: &mut [Lane],
    block: usize,
    v: &[Lane],
    w: &[Lane],
    x: &mut [Lane],
    u: &mut [Lane],
) {
    let m = v.len();
    let x = &mut x[..m];
    x[0] = [0.0; LANES]; // row 0's B_00 is the next diagonal, not part of x
    let mut i0 = 0;
    while i0 + 4 <= m {
        update_rows::<S, 4>(simd, a, block, i0, v, w, x, u);
        i0 += 4;
    }
    for i in i0..m {
        update_rows::<S, 1>(simd, a, block, i, v, w, x, u);
    }
}

/// Rows i0 … i0 + R − 1 of [`update_block`]: each row i as B[i, ..i] (also column i above
/// the diagonal: B_ji = B_ij feeds u_j) and B_ii, updated, then multiplied while in
/// registers. Its first element is updated first: it is x_i, which the rest of the row
/// multiplies.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn update_rows<S: Simd, const R: usize>(
    simd: S,
    a: &mut [Lane],
    block: usize,
    i0: usize,
    v: &[Lane],
    w: &[Lane],
    x: &mut [Lane],
    u: &mut [Lane],
) {
    let mut rows = rows_mut::<R>(a, std::array::from_fn(|r| row_start(block + i0 + r) + block), i0);
    for (r, row) in rows.iter_mut().enumerate() {
        let i = i0 + r;
        reflect(simd, &mut row[0], &v[i], &w[i], &v[0], &w[0]);
        if i > 0 {
            x[i] = row[0];
        }
    }
    let mut sums = [[0.0; LANES]; R];
    let (vi, wi, xi): ([Lane; R], [Lane; R], [Lane; R]) = (
        std::array::from_fn(|r| v[i0 + r]),
        std::array::from_fn(|r| w[i0 + r]),
        std::array::from_fn(|r| x[i0 + r]),
    );
    let heads: [&mut [Lane]; R] = rows.each_mut().map(|row| &mut row[..i0]);
    let columns = v[..i0].iter().zip(&w[..i0]).zip(&x[..i0]).zip(&mut u[..i0]);
    for (j, (((vj, wj), xj), uj)) in columns.enumerate().skip(1) {
        let mut q = *uj;
        for r in 0..R {
            let b = &mut heads[r][j];
            reflect(simd, b, &vi[r], &wi[r], vj, wj);
            multiply_add(simd, b, xj, &mut sums[r]);
            multiply_add(simd, b, &xi[r], &mut q);
        }
        *uj = q;
    }
    for r in 0..R {
        let i = i0 + r;
        for j in i0.max(1)..=i {
            let b = &mut rows[r][j];
            reflect(simd, b, &v[i], &w[i], &v[j], &w[j]);
            multiply_add(simd, b, &x[j], &mut sums[r]);
            if j < i {
                multiply_add(simd, b, &x[i], &mut u[j]);
            }
        }
        u[i] = sums[r]; // the first to write u_i: rows below i add to it later
    }
}

/// The R rows of a packed lower triangle that start at `starts` (ascending), row r holding
/// i0 + r + 1 elements, as separate slices.
#[inline(always)]
fn rows_mut<const R: usize>(a: &mut [Lane], starts: [usize; R], i0: usize) -> [&mut [Lane]; R] {
    let (mut rest, mut at) = (a, 0);
    std::array::from_fn(|r| {
        let (_, from) = std::mem::take(&mut rest).split_at_mut(starts[r] - at);
        let (row, after) = from.split_at_mut(i0 + r + 1);
        (rest, at) = (after, starts[r] + i0 + r + 1);
        row
    })
}

/// b ← b − v_i w_j − w_i v_j, lane by lane (two fused multiply-adds).
#[inline(always)]
fn reflect<S: Simd>(simd: S, b: &mut Lane, vi: &Lane, wi: &Lane, vj: &Lane, wj: &Lane) {
    let (b, vi, wi, vj, wj) = (
        vectors_mut::<S>(b),
        vectors::<S>(vi),
        vectors::<S>(wi),
        vectors::<S>(vj),
        vectors::<S>(wj),
    );
    for q in 0..b.len() {
        b[q] = simd.negate_mul_add_f64s(vi[q], wj[q], simd.negate_mul_add_f64s(wi[q], vj[q], b[q]));
    }
}

/// Stage 2 of [`eigenvalues_of_group`] (see [`tridiagonal_eigenvalues_portable`]), with the
/// CPU's widest vectors (pulp's run-time dispatch).
fn tridiagonal_eigenvalues<const L: usize>(diag: &mut [[f64; L]], off: &mut [[f64; L]], lanes: usize) -> [bool; L] {
    pulp::Arch::new().dispatch(Stage2 { diag, off, lanes })
}

/// [`tridiagonal_eigenvalues`]'s arguments, for pulp to compile the stage for each
/// instruction set.
struct Stage2<'a, const L: usize> {
    diag: &'a mut [[f64; L]],
    off: &'a mut [[f64; L]],
    lanes: usize,
}

impl<const L: usize> pulp::WithSimd for Stage2<'_, L> {
    type Output = [bool; L];

    #[inline(always)]
    fn with_simd<S: Simd>(self, _: S) -> [bool; L] {
        tridiagonal_eigenvalues_portable(self.diag, self.off, self.lanes)
    }
}

/// c += a b, lane by lane (one rounding: a fused multiply-add, or libm's `fma`).
#[inline(always)]
fn multiply_add<S: Simd>(simd: S, a: &Lane, b: &Lane, c: &mut Lane) {
    let (a, b, c) = (vectors::<S>(a), vectors::<S>(b), vectors_mut::<S>(c));
    for q in 0..a.len() {
        c[q] = simd.mul_add_f64s(a[q], b[q], c[q]);
    }
}

/// One matrix's place in [`tridiagonal_eigenvalues_portable`]: the eigenvalue `l` being
/// found and the current sweep m − 1 … l.
#[derive(Clone, Copy, Default)]
struct Sweep {
    l: usize,
    m: usize,
    iterations: usize,
    /// No more sweeps: every eigenvalue found, or [`MAX_ITERATIONS`] spent (`failed`).
    done: bool,
    failed: bool,
    /// In a sweep that has not ended (nor stopped early where the matrix split).
    running: bool,
}

impl Sweep {
    /// Moves lane `q` of (`diag`, `off`) past the eigenvalues found (a negligible
    /// off-diagonal at l), and says whether it needs another sweep; marks the matrix done
    /// when every eigenvalue is found or [`MAX_ITERATIONS`] are spent on one.
    fn advance<const L: usize>(&mut self, diag: &[[f64; L]], off: &[[f64; L]], q: usize) -> bool {
        let n = diag.len();
        while self.l + 1 < n && !coupled(diag, off, self.l, q) {
            self.l += 1;
            self.iterations = 0;
        }
        self.iterations += 1;
        if self.l + 1 >= n || self.iterations > MAX_ITERATIONS {
            self.failed = self.l + 1 < n;
            self.done = true;
            return false;
        }
        true
    }

    /// Starts the sweep m − 1 … l of lane `q` and returns Wilkinson's shift from the
    /// leading 2 × 2 block.
    fn start<const L: usize>(&mut self, diag: &[[f64; L]], off: &[[f64; L]], q: usize, m: usize) -> f64 {
        let (d, e, l) = (|i: usize| diag[i][q], |i: usize| off[i][q], self.l);
        let g = (d(l + 1) - d(l)) / (2.0 * e(l));
        let r = (g * g + 1.0).sqrt();
        (self.m, self.running) = (m, true);
        d(m) - d(l) + e(l) / (g + r.copysign(g))
    }
}

/// Whether off-diagonal i of lane `q` is not negligible against its two diagonal neighbours.
#[inline(always)]
fn coupled<const L: usize>(diag: &[[f64; L]], off: &[[f64; L]], i: usize, q: usize) -> bool {
    off[i][q].abs() > f64::EPSILON * (diag[i][q].abs() + diag[i + 1][q].abs())
}

/// Per lane, where its matrix splits below row l (`from[q]` = l + 1; `usize::MAX`: a lane not
/// asked): the first negligible off-diagonal at or after l + 1, else n − 1. One pass over
/// the rows for all lanes.
#[inline(always)]
fn splits<const L: usize>(diag: &[[f64; L]], off: &[[f64; L]], from: [usize; L]) -> [usize; L] {
    let last = diag.len().saturating_sub(1);
    let mut m = [last; L];
    let mut open: [bool; L] = std::array::from_fn(|q| from[q] < last);
    let low = from.iter().copied().min().unwrap_or(last);
    for i in low..last {
        let hit: [bool; L] = std::array::from_fn(|q| open[q] && i >= from[q] && !coupled(diag, off, i, q));
        if hit.contains(&true) {
            for q in (0..L).filter(|&q| hit[q]) {
                (m[q], open[q]) = (i, false);
            }
            if !open.contains(&true) {
                break;
            }
        }
    }
    m
}

/// The eigenvalues of up to L symmetric tridiagonal matrices, lane q of `diag` and
/// `off` (`off[i]` couples i and i + 1, the last is ignored) for q < `lanes`, by the
/// implicit QL iteration with Wilkinson's shift (Numerical Recipes' `tqli`); they replace
/// `diag`, `off` is destroyed. Per matrix, `false` where an eigenvalue took more than
/// [`MAX_ITERATIONS`] iterations.
///
/// Each matrix finds its own next sweep m − 1 … l, then the sweeps run together, row by
/// row from the highest m down to the lowest l: every lane computes the rotation at row i
/// and keeps it only where i is in its own sweep. So the rotations' chains of dependent
/// square roots and divisions run eight at a time in one vector (the previous stage 2 ran
/// them as scalars, eight matrices interleaved: 94 µs per matrix at d = 128 in the
/// feature-space Fréchet statistics, now 69 µs), and each
/// matrix's arithmetic is what it would be alone.
#[inline(always)]
fn tridiagonal_eigenvalues_portable<const L: usize>(
    diag: &mut [[f64; L]],
    off: &mut [[f64; L]],
    lanes: usize,
) -> [bool; L] {
    let n = diag.len();
    let mut sweeps = [Sweep::default(); L];
    for (q, sweep) in sweeps.iter_mut().enumerate() {
        sweep.done = n == 0 || q >= lanes;
    }
    if let Some(last) = off.last_mut() {
        *last = [0.0; L];
    }
    // The rotations' running values: sine, cosine, the shift's correction and g.
    let (mut s, mut c, mut p, mut g) = ([1.0; L], [1.0; L], [0.0; L], [0.0; L]);
    loop {
        let wanted: [bool; L] = std::array::from_fn(|q| !sweeps[q].done && sweeps[q].advance(diag, off, q));
        let from = std::array::from_fn(|q| if wanted[q] { sweeps[q].l + 1 } else { usize::MAX });
        let ends = splits(diag, off, from);
        let (mut low, mut high) = (n, 0);
        for (q, sweep) in sweeps.iter_mut().enumerate().filter(|(q, _)| wanted[*q]) {
            (s[q], c[q], p[q], g[q]) = (1.0, 1.0, 0.0, sweep.start(diag, off, q, ends[q]));
            (low, high) = (low.min(sweep.l), high.max(sweep.m));
        }
        if high == 0 {
            break;
        }
        // Lane q's sweep covers rows first[q] ≤ i < end[q] (none where it is not running).
        let mut first: [usize; L] = std::array::from_fn(|q| if sweeps[q].running { sweeps[q].l } else { usize::MAX });
        let mut end: [usize; L] = std::array::from_fn(|q| if sweeps[q].running { sweeps[q].m } else { 0 });
        for i in (low..high).rev() {
            // lane masks as all-ones / all-zeros words: selects that compile to vector blends
            // (per-lane bools became a branch per lane; 190 cycles per row of 16 lanes)
            let mask = |yes: bool| u64::from(yes).wrapping_neg();
            let covered: [u64; L] = std::array::from_fn(|q| mask(first[q] <= i && i < end[q]));
            let (e, d, below) = (off[i], diag[i], diag[i + 1]);
            let lanes = |f: &dyn Fn(usize) -> f64| -> [f64; L] { std::array::from_fn(f) };
            let f = lanes(&|q| s[q] * e[q]);
            let b = lanes(&|q| c[q] * e[q]);
            let r = lanes(&|q| (f[q] * f[q] + g[q] * g[q]).sqrt());
            let inverse = lanes(&|q| 1.0 / r[q]);
            let (sn, cn) = (lanes(&|q| f[q] * inverse[q]), lanes(&|q| g[q] * inverse[q]));
            let shifted = lanes(&|q| below[q] - p[q]);
            let t = lanes(&|q| (d[q] - shifted[q]) * sn[q] + 2.0 * cn[q] * b[q]);
            let (pn, gn) = (lanes(&|q| sn[q] * t[q]), lanes(&|q| cn[q] * t[q] - b[q]));
            let rotate: [u64; L] = std::array::from_fn(|q| covered[q] & mask(r[q] != 0.0));
            let split: [u64; L] = std::array::from_fn(|q| covered[q] & mask(r[q] == 0.0));
            let pick = |yes: &[u64; L], new: &[f64; L], old: &[f64; L]| -> [f64; L] {
                std::array::from_fn(|q| f64::from_bits((new[q].to_bits() & yes[q]) | (old[q].to_bits() & !yes[q])))
            };
            off[i + 1] = pick(&covered, &r, &off[i + 1]);
            diag[i + 1] = pick(
                &rotate,
                &lanes(&|q| shifted[q] + pn[q]),
                &pick(&split, &shifted, &below),
            );
            (s, c, p, g) = (
                pick(&rotate, &sn, &s),
                pick(&rotate, &cn, &c),
                pick(&rotate, &pn, &p),
                pick(&rotate, &gn, &g),
            );
            // r = 0 (rare): the matrix splits at i + 1, and this sweep ends.
            if split.iter().any(|&m| m != 0) {
                for (q, sweep) in sweeps.iter_mut().enumerate().filter(|(q, _)| split[*q] != 0) {
                    off[sweep.m][q] = 0.0;
                    sweep.running = false;
                    (first[q], end[q]) = (usize::MAX, 0);
                }
            }
        }
        for (q, sweep) in sweeps.iter_mut().enumerate().filter(|(_, s)| s.running) {
            diag[sweep.l][q] -= p[q];
            off[sweep.l][q] = g[q];
            off[sweep.m][q] = 0.0;
            sweep.running = false;
        }
    }
    sweeps.map(|s| !s.failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::uniforms;

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
        // Per size, 21 matrices of different ranks and spectra (zero matrices among them)
        // in groups of GROUP (16 + 5; stage 1 in 8 + 8 and 5): each the same numbers, bit
        // for bit, as alone in a group, and nalgebra's to 1e-12 of the largest.
        for d in [1, 2, 7, 33, 64] {
            let inputs: Vec<Vec<f64>> = (0..21)
                .map(|k| {
                    let (rank, psd) = [(d, true), (d / 3, true), (0, true), (2 * d, true), (d, false)][k % 5];
                    symmetrised(&matrix(d, rank, psd, (7 + k * d) as u64), d)
                })
                .collect();
            let together = eigenvalues_of_many(&inputs, d);
            assert_eq!(together.len(), 21);
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
        // the same tridiagonal forms (each multiply-add fused, in hardware or by libm).
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

    /// Numerical Recipes' `tqli` (eigenvalues only) on one tridiagonal matrix, written
    /// directly: the reference for the vectorised stage 2.
    fn tqli(d: &mut [f64], e: &mut [f64]) {
        let n = d.len();
        e[n - 1] = 0.0;
        for l in 0..n {
            loop {
                let mut m = l;
                while m + 1 < n && e[m].abs() > f64::EPSILON * (d[m].abs() + d[m + 1].abs()) {
                    m += 1;
                }
                if m == l {
                    break;
                }
                let g = (d[l + 1] - d[l]) / (2.0 * e[l]);
                let r = (g * g + 1.0).sqrt();
                let mut g = d[m] - d[l] + e[l] / (g + r.copysign(g));
                let (mut s, mut c, mut p) = (1.0, 1.0, 0.0);
                let mut split = false;
                for i in (l..m).rev() {
                    let (f, b) = (s * e[i], c * e[i]);
                    let r = (f * f + g * g).sqrt();
                    e[i + 1] = r;
                    if r == 0.0 {
                        d[i + 1] -= p;
                        e[m] = 0.0;
                        split = true;
                        break;
                    }
                    s = f * (1.0 / r);
                    c = g * (1.0 / r);
                    let shifted = d[i + 1] - p;
                    let t = (d[i] - shifted) * s + 2.0 * c * b;
                    p = s * t;
                    d[i + 1] = shifted + p;
                    g = c * t - b;
                }
                if !split {
                    d[l] -= p;
                    e[l] = g;
                    e[m] = 0.0;
                }
            }
        }
    }

    #[test]
    fn stage_two_gets_tqlis_numbers_in_every_lane() {
        // Seven tridiagonal matrices of 50 rows in one group (one lane idle), among them
        // one that splits (a zero off-diagonal) and one already diagonal: each lane bit for
        // bit what tqli gets alone.
        let n = 50;
        let mut next = uniforms(1);
        let (mut diag, mut off) = (vec![[0.0; LANES]; n], vec![[0.0; LANES]; n]);
        for q in 0..7 {
            for i in 0..n {
                diag[i][q] = next() * (1 + q) as f64;
                off[i][q] = match q {
                    5 if i == 20 => 0.0,
                    6 => 0.0,
                    _ => next(),
                };
            }
        }
        let want: Vec<Vec<f64>> = (0..7)
            .map(|q| {
                let (mut d, mut e): (Vec<f64>, Vec<f64>) =
                    (diag.iter().map(|x| x[q]).collect(), off.iter().map(|x| x[q]).collect());
                tqli(&mut d, &mut e);
                d
            })
            .collect();
        let converged = tridiagonal_eigenvalues(&mut diag, &mut off, 7);
        for (q, want) in want.iter().enumerate() {
            assert!(converged[q]);
            assert_eq!(&diag.iter().map(|x| x[q]).collect::<Vec<_>>(), want, "lane {q}");
        }
        assert!(diag.iter().all(|x| x[7] == 0.0), "the idle lane is left alone");
    }

    fn sorted(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(f64::total_cmp);
        v
    }

    /// A seeded symmetric matrix: Gᵀ G (positive semidefinite, rank ≤ `rank`) or G + Gᵀ.
    fn matrix(d: usize, rank: usize, psd: bool, seed: u64) -> Vec<f64> {
        let mut next = uniforms(seed);
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

    #[test]
    fn the_scaling_is_exact() {
        for (x, want) in [
            (1.0, 1.0),
            (0.75, 1.0),
            (1.5, 2.0),
            (4.0, 4.0),
            (5e-324, f64::MIN_POSITIVE),
            (0.0, 0.0),
        ] {
            assert_eq!(power_of_two_above(x), want, "{x}");
        }
        let x = 3.7e-9;
        let p = power_of_two_above(x);
        assert!(p >= x && p / 2.0 < x && p.log2().fract() == 0.0);
        // A and A · 2^k have the same scaled matrix: eigenvalues that differ by 2^k exactly
        let d = 9;
        let a: Vec<f64> = (0..d * d)
            .map(|ij| (((ij / d) * (ij % d)) % 7) as f64 * 0.37 - 0.9)
            .collect();
        let scaled = |k: i32| a.iter().map(|v| v * 2f64.powi(k)).collect::<Vec<f64>>();
        let got = eigenvalues_of_many(&[a.clone(), scaled(5), scaled(-40)], d);
        for (k, l) in [(5, &got[1]), (-40, &got[2])] {
            let back: Vec<f64> = l.iter().map(|v| v / 2f64.powi(k)).collect();
            assert_eq!(back, got[0], "2^{k}");
        }
    }
}
