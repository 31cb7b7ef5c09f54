//! Squared Euclidean distances between the rows of two sets, from f32 inner products with
//! a proven error bound, and exactly where the bound leaves a decision open: what the k-NN
//! statistics ([`super::manifold`]) and the nearest training points ([`super::nearest`])
//! are made of.
//!
//! A product of a block of rows with every row of the other set gives d̃² = (‖u‖² + ‖v‖²)
//! − 2 u·v in f32 for each pair, within ε (‖u‖² + ‖v‖²) of the exact d² ([`Rows::eps`]). A
//! comparison of d² with a threshold farther than that from d̃² is decided by d̃²; the
//! others, and every value that is kept, come from the exact sum Σ_k (u_k − v_k)² in f64
//! ([`Rows::exact`]). The f32 products run at twice the rate of f64 ones.

use std::ops::Range;

use super::linalg::F32_BUFFERS;
use crate::kernels::gemm::{matmul, View};

/// The most inner products held at once (a block of rows × all rows of the other set:
/// 2 MiB of f32), in a pooled buffer reused for every block and every call.
pub const BLOCK_ENTRIES: usize = 1 << 19;

/// The blocks of `n` rows against `other` rows, each of at most `block_entries` products
/// (at least one row; the last block shorter), and a buffer of [`F32_BUFFERS`] that holds
/// the largest of them, so that no block grows it (give it back when done).
pub(super) fn distance_blocks(
    n: usize,
    other: usize,
    block_entries: usize,
) -> (impl Iterator<Item = Range<usize>>, Vec<f32>) {
    let size = (block_entries / other.max(1)).max(1);
    let buffer = F32_BUFFERS.take(size.min(n) * other);
    ((0..n).step_by(size).map(move |s| s..(s + size).min(n)), buffer)
}

/// The bounds (hi, lo) of a squared distance from an f32 inner product: (‖u‖² + ‖v‖²) − 2 u·v
/// ± `margin`, all in f32, with the norms and margins of [`Rows`]; the exact squared
/// distance lies between them ([`Rows::eps`]).
#[inline(always)]
pub(super) fn approximate(na: f32, nb: f32, margin: f32, dot: f32) -> (f32, f32) {
    let v = (na + nb) - 2.0 * dot;
    (v + margin, v - margin)
}

/// The largest f32 at or below `x`.
pub(super) fn f32_below(x: f64) -> f32 {
    let f = x as f32;
    if f as f64 > x {
        f.next_down()
    } else {
        f
    }
}

/// The smallest f32 at or above `x`.
pub(super) fn f32_above(x: f64) -> f32 {
    let f = x as f32;
    if (f as f64) < x {
        f.next_up()
    } else {
        f
    }
}

/// Rows of a set in f32, as given, with their squared norms.
#[derive(Debug, Clone)]
pub(super) struct Rows {
    pub(super) d: usize,
    data: Vec<f32>,
    /// The squared norms in f64.
    pub(super) norms: Vec<f64>,
    /// The squared norms rounded to f32, and ε times them (each row's half of a margin).
    pub(super) norms32: Vec<f32>,
    pub(super) margins: Vec<f32>,
    /// ε with |d̃² − d²| ≤ ε (‖u‖² + ‖v‖²) for the squared distance d̃² computed in f32 as
    /// (‖u‖² + ‖v‖²) − 2 u·v from an f32 inner product and f32 norms, plus the rounding of
    /// d̃² ± its margin: the product's error is at most γ_d Σ |u_k v_k| ≤ γ_d (‖u‖² + ‖v‖²)/2
    /// in any order of summation (Higham, *Accuracy and Stability of Numerical Algorithms*,
    /// §3.1; γ_d = d u / (1 − d u), u = 2⁻²⁴), the norms' rounding, the sum and the
    /// difference add 5 u, the margin's own rounding and the final ± 3 u more; 2 % more for
    /// safety.
    pub(super) eps: f64,
}

impl Rows {
    /// The rows of `x` (row-major, `d` columns; checked by the caller).
    pub(super) fn new(x: &[f32], d: usize) -> Self {
        let norms: Vec<f64> = x
            .chunks(d)
            .map(|r| r.iter().map(|&a| a as f64 * a as f64).sum())
            .collect();
        let u = f32::EPSILON as f64 / 2.0;
        let gamma = d as f64 * u / (1.0 - d as f64 * u);
        let eps = 1.02 * (gamma + 8.0 * u);
        let norms32: Vec<f32> = norms.iter().map(|&v| v as f32).collect();
        Self {
            d,
            data: x.to_vec(),
            margins: norms32.iter().map(|&v| (eps * v as f64) as f32).collect(),
            norms32,
            norms,
            eps,
        }
    }

    /// The number of rows.
    pub(super) fn rows(&self) -> usize {
        self.norms.len()
    }

    /// The f32 inner products of rows `range` with the rows `0..width` of `other` into `g`
    /// (range.len() × width, row-major; resized).
    pub(super) fn products(&self, range: Range<usize>, other: &Rows, width: usize, g: &mut Vec<f32>) {
        let d = self.d;
        g.resize(range.len() * width, 0.0);
        matmul(
            g,
            false,
            View::rows(&self.data[range.start * d..range.end * d], range.len(), d),
            View::rows(&other.data[..width * d], width, d).t(),
            rayon::current_num_threads(),
        );
    }

    /// The exact squared distance (f64) from row `i` to row `j` of `other`.
    pub(super) fn exact(&self, i: usize, other: &Rows, j: usize) -> f64 {
        let d = self.d;
        let (u, v) = (&self.data[i * d..(i + 1) * d], &other.data[j * d..(j + 1) * d]);
        u.iter().zip(v).map(|(a, b)| (*a as f64 - *b as f64).powi(2)).sum()
    }
}
