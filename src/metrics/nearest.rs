//! How close samples come to the training points (memorisation).

use rayon::prelude::*;

use super::linalg::F64_BUFFERS;
use super::manifold::{distance_blocks, squared_distances, Rows, BLOCK_ENTRIES};
use super::rows;
use crate::error::Result;

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
    let (blocks, mut g) = distance_blocks(n, t, block_entries);
    for range in blocks {
        squared_distances(&x, range, &train, 0..t, &mut g);
        let block: Vec<f64> = g
            .par_chunks(t)
            .map(|row| row.iter().copied().fold(f64::INFINITY, f64::min).sqrt())
            .collect();
        nearest.extend(block);
    }
    F64_BUFFERS.give(g);
    Ok(nearest)
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
