//! How close samples come to the training points (memorisation).

use rayon::prelude::*;

use super::distances::{approximate, distance_blocks, Rows, BLOCK_ENTRIES};
use super::linalg::F32_BUFFERS;
use super::rows;
use crate::error::Result;

/// The Euclidean distance from every row of `x` to its nearest row of `train` (both
/// × `d`), exact: from f32 products per block of rows (`metrics::distances`) the rows that
/// can be nearest within their error bound, and the distance to each of those as the
/// exact f64 sum (the blocks bound the memory as the k-NN statistics' do).
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
        x.products(range.clone(), &train, t, &mut g);
        let start = range.start;
        let block: Vec<f64> = (g.par_chunks(t).enumerate())
            .map(|(r, row)| nearest_in_row(&x, start + r, &train, row).sqrt())
            .collect();
        nearest.extend(block);
    }
    F32_BUFFERS.give(g);
    Ok(nearest)
}

/// The exact squared distance from row i of `x` to its nearest row of `train`, given its
/// f32 products `dots` with every row: the smallest upper bound of the approximate
/// distances (16 running minima: one vector), then the exact distance of every row whose
/// lower bound is at or below it.
fn nearest_in_row(x: &Rows, i: usize, train: &Rows, dots: &[f32]) -> f64 {
    let (na, ma) = (x.norms32[i], x.margins[i]);
    let bounds = |j: usize| approximate(na, train.norms32[j], ma + train.margins[j], dots[j]);
    let mut minima = [f32::INFINITY; 16];
    for (q, chunk) in dots.chunks(16).enumerate() {
        for (l, m) in minima.iter_mut().enumerate().take(chunk.len()) {
            let hi = bounds(16 * q + l).0;
            *m = if hi < *m { hi } else { *m };
        }
    }
    let upper = minima.iter().fold(f32::INFINITY, |a, &b| a.min(b));
    (0..dots.len())
        .filter(|&j| bounds(j).1 <= upper)
        .map(|j| x.exact(i, train, j))
        .fold(f64::INFINITY, f64::min)
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
            // the same sums in the same order: the same numbers
            assert_eq!(
                nearest_blocked(&x, &train, d, block_entries).unwrap(),
                brute,
                "{block_entries}"
            );
        }
        // a training point is at distance 0 from itself
        assert_eq!(nearest_distances(&train[..d], &train, d).unwrap(), vec![0.0]);
    }

    #[test]
    fn the_nearest_of_rows_within_the_products_error_is_exact() {
        // Rows that differ from each other by a few f32 ulps per element (in d = 40, with
        // squared norms near 500, whose f32 resolution is ~3e-5, far above the ~1e-12
        // squared distances between them): which row is nearest is beyond the f32
        // products, and the exact sums decide. One far row of each side besides.
        let (d, mut rng) = (40, rand_chacha::ChaCha8Rng::seed_from_u64(8));
        let base: Vec<f32> = (0..d).map(|k| 1.0 + k as f32 / 8.0).collect();
        let mut nudged = || -> Vec<f32> {
            base.iter()
                .map(|&v| (0..rng.random_range(0..5)).fold(v, |v, _| v.next_up()))
                .collect()
        };
        let far: Vec<f32> = base.iter().map(|v| v + 3.0).collect();
        let mut train: Vec<f32> = (0..30).flat_map(|_| nudged()).collect();
        let mut x: Vec<f32> = (0..20).flat_map(|_| nudged()).collect();
        train.extend(&far);
        x.extend(&far);
        let want: Vec<f64> = x
            .chunks(d)
            .map(|u| {
                let sq = |v: &[f32]| {
                    u.iter()
                        .zip(v)
                        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
                        .sum::<f64>()
                };
                train.chunks(d).map(sq).fold(f64::INFINITY, f64::min).sqrt()
            })
            .collect();
        assert_eq!(nearest_distances(&x, &train, d).unwrap(), want);
        assert!(want[..20].iter().all(|&w| w < 1e-4) && want[20] == 0.0, "{want:?}");
    }
}
