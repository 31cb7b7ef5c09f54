//! How close samples come to the training points (memorisation).

use std::ops::Range;

use rayon::prelude::*;

use super::linalg::{to_f64, F64_BUFFERS};
use super::manifold::{distance_blocks, BLOCK_ENTRIES};
use super::rows;
use crate::error::Result;
use crate::kernels::gemm::{matmul, View};

/// The Euclidean distance from every row of `x` to its nearest row of `train` (both
/// × `d`), from ‖u − v‖² = ‖u‖² + ‖v‖² − 2 u·v with the inner products as one product
/// per block of rows (negative round-off taken as 0; the blocks bound the memory as the
/// k-NN statistics' do, in a reused buffer).
pub fn nearest_distances(x: &[f32], train: &[f32], d: usize) -> Result<Vec<f64>> {
    nearest_blocked(x, train, d, BLOCK_ENTRIES)
}

fn nearest_blocked(x: &[f32], train: &[f32], d: usize, block_entries: usize) -> Result<Vec<f64>> {
    let n = rows(x, d, "x", 1)?;
    let t = rows(train, d, "train", 1)?;
    let (x, train) = (Rows::new(x, d), Rows::new(train, d));
    let mut nearest = Vec::with_capacity(n);
    let (blocks, mut g) = distance_blocks(n, t, block_entries, &F64_BUFFERS);
    for range in blocks {
        squared_distances(&x, range, &train, &mut g);
        let block: Vec<f64> = g
            .par_chunks(t)
            .map(|row| row.iter().copied().fold(f64::INFINITY, f64::min).sqrt())
            .collect();
        nearest.extend(block);
    }
    F64_BUFFERS.give(g);
    Ok(nearest)
}

/// Rows of one set in f64 with their squared norms.
#[derive(Debug, Clone)]
struct Rows {
    d: usize,
    data: Vec<f64>,
    norms: Vec<f64>,
}

impl Rows {
    fn new(x: &[f32], d: usize) -> Self {
        let data = to_f64(x);
        let norms = data.chunks(d).map(|r| r.iter().map(|a| a * a).sum()).collect();
        Self { d, data, norms }
    }
}

/// Squared Euclidean distances from the rows `range` of `a` to every row of `b`
/// (range.len() × rows of b, row-major) into `g` (resized, its allocation reused): ‖u‖² +
/// ‖v‖² − 2 u·v with the inner products as one product, negative round-off taken as 0.
fn squared_distances(a: &Rows, range: Range<usize>, b: &Rows, g: &mut Vec<f64>) {
    let (d, width) = (a.d, b.norms.len());
    g.resize(range.len() * width, 0.0);
    matmul(
        g,
        false,
        View::rows(&a.data[range.start * d..range.end * d], range.len(), d),
        View::rows(&b.data, width, d).t(),
        rayon::current_num_threads(),
    );
    g.par_chunks_mut(width.max(1))
        .zip(&a.norms[range])
        .for_each(|(row, na)| {
            for (v, nb) in row.iter_mut().zip(&b.norms) {
                *v = (na + nb - 2.0 * *v).max(0.0);
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn equals_brute_force_in_every_blocking() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (n, t, d) = (23, 17, 3);
        let mut draw = |k: usize| -> Vec<f32> { (0..k * d).map(|_| rng.random_range(-2.0..2.0)).collect() };
        let (x, train) = (draw(n), draw(t));
        let brute: Vec<f64> = x
            .chunks(d)
            .map(|u| {
                train
                    .chunks(d)
                    .map(|v| {
                        u.iter()
                            .zip(v)
                            .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                            .sum::<f64>()
                    })
                    .fold(f64::INFINITY, f64::min)
                    .sqrt()
            })
            .collect();
        for block_entries in [1, t, 5 * t + 3, BLOCK_ENTRIES] {
            let got = nearest_blocked(&x, &train, d, block_entries).unwrap();
            assert_eq!(got.len(), n);
            for (g, b) in got.iter().zip(&brute) {
                assert!((g - b).abs() < 1e-9, "{block_entries}: {g} vs {b}");
            }
        }
        // a training point is at distance 0 from itself
        assert_eq!(nearest_distances(&train[..d], &train, d).unwrap(), vec![0.0]);
    }
}
