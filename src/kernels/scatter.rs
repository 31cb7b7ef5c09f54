//! The weighted scatter Σ_k w_k x_k x_kᵀ of chosen rows of a matrix, read through their
//! indices: what every bootstrap fit of a Gaussian ([`crate::metrics::frechet::Moments`])
//! adds to the sample's own scatter, once per replicate.
//!
//! A product of the gathered rows with their weighted copies (the `gemm` crate, in
//! block-rows of 16 below the diagonal) was 60 % of f32 peak, and gathering the rows into
//! its operands was another 4 % of a digits point; here the tiles of the lower triangle
//! (two vectors of columns × 12 rows, 24 accumulators) run over the rows in place.

use pulp::Simd;

/// Rows of the output per full tile: 12 × 2 vectors = 24 accumulators, with the two
/// column vectors and a broadcast in registers (of 32 on AVX-512; AVX2 spills a few).
const TILE_ROWS: usize = 12;

/// Σ_k w_k x_{r_k} x_{r_k}ᵀ (`d × d`, row-major, exactly symmetric) over `picked` =
/// [(r_k, w_k)], rows r_k of `x` (row-major, `d` columns). Sums in f32, in the order of
/// `picked`, with fused multiply-adds where the CPU has them.
pub(crate) fn weighted_scatter(x: &[f32], d: usize, picked: &[(u32, f32)]) -> Vec<f32> {
    pulp::Arch::new().dispatch(Scatter { x, d, picked })
}

struct Scatter<'a> {
    x: &'a [f32],
    d: usize,
    picked: &'a [(u32, f32)],
}

impl pulp::WithSimd for Scatter<'_> {
    type Output = Vec<f32>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Vec<f32> {
        scatter_with(simd, self.x, self.d, self.picked)
    }
}

/// Column blocks of two vectors; in each, the rows from the block's first column down
/// (the lower triangle and the block's own square), in tiles of 12, 4 and 1 rows; then the
/// lower triangle mirrored onto the upper.
#[inline(always)]
fn scatter_with<S: Simd>(simd: S, x: &[f32], d: usize, picked: &[(u32, f32)]) -> Vec<f32> {
    assert!(
        picked.iter().all(|&(r, _)| (r as usize + 1) * d <= x.len()),
        "rows of x"
    );
    let mut out = vec![0.0f32; d * d];
    let lanes = S::F32_LANES;
    for i0 in (0..d).step_by(2 * lanes) {
        let columns = i0..(i0 + 2 * lanes).min(d);
        let mut j0 = i0;
        while j0 < d {
            j0 += match d - j0 {
                r if r >= TILE_ROWS => tile::<S, TILE_ROWS>(simd, x, d, picked, columns.clone(), j0, &mut out),
                r if r >= 4 => tile::<S, 4>(simd, x, d, picked, columns.clone(), j0, &mut out),
                _ => tile::<S, 1>(simd, x, d, picked, columns.clone(), j0, &mut out),
            };
        }
    }
    for i in 0..d {
        for j in i + 1..d {
            out[i * d + j] = out[j * d + i];
        }
    }
    out
}

/// Rows j0 … j0 + R − 1, `columns` (at most two vectors) of the scatter; returns R.
#[inline(always)]
fn tile<S: Simd, const R: usize>(
    simd: S,
    x: &[f32],
    d: usize,
    picked: &[(u32, f32)],
    columns: std::ops::Range<usize>,
    j0: usize,
    out: &mut [f32],
) -> usize {
    let split = (columns.start + S::F32_LANES).min(columns.end);
    // two whole vectors: plain loads (a partial load is a jump on its length)
    let full = columns.len() == 2 * S::F32_LANES;
    let zero = simd.splat_f32s(0.0);
    let mut acc = [[zero; 2]; R];
    for &(r, w) in picked {
        let row = &x[r as usize * d..][..d];
        let w = simd.splat_f32s(w);
        let (a0, a1) = if full {
            let v = S::as_simd_f32s(&row[columns.clone()]).0;
            (v[0], v[1])
        } else {
            (
                simd.partial_load_f32s(&row[columns.start..split]),
                simd.partial_load_f32s(&row[split..columns.end]),
            )
        };
        let (a0, a1) = (simd.mul_f32s(w, a0), simd.mul_f32s(w, a1));
        for (acc, &b) in acc.iter_mut().zip(&row[j0..j0 + R]) {
            let b = simd.splat_f32s(b);
            acc[0] = simd.mul_add_f32s(a0, b, acc[0]);
            acc[1] = simd.mul_add_f32s(a1, b, acc[1]);
        }
    }
    for (jj, acc) in acc.iter().enumerate() {
        let o = &mut out[(j0 + jj) * d..][..d];
        simd.partial_store_f32s(&mut o[columns.start..split], acc[0]);
        simd.partial_store_f32s(&mut o[split..columns.end], acc[1]);
    }
    R
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equals_the_direct_sum_at_any_size() {
        // sizes around the vector widths (8, 16), the 12-row tiles and their remainders
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        for d in [1, 2, 3, 7, 8, 15, 16, 17, 31, 32, 33, 45, 64, 70, 128] {
            let n = 37;
            let x: Vec<f32> = (0..n * d).map(|_| next()).collect();
            let picked: Vec<(u32, f32)> = (0..n as u32)
                .filter(|r| r % 3 != 1)
                .map(|r| (r, (r % 4) as f32 - 1.0))
                .collect();
            let vectors = weighted_scatter(&x, d, &picked);
            let scalars = scatter_with(pulp::Scalar::new(), &x, d, &picked);
            for got in [&vectors, &scalars] {
                for i in 0..d {
                    for j in 0..d {
                        let want: f64 = picked
                            .iter()
                            .map(|&(r, w)| w as f64 * x[r as usize * d + i] as f64 * x[r as usize * d + j] as f64)
                            .sum();
                        let scale: f64 = picked
                            .iter()
                            .map(|&(r, w)| {
                                (w as f64 * x[r as usize * d + i] as f64 * x[r as usize * d + j] as f64).abs()
                            })
                            .sum();
                        let g = got[i * d + j] as f64;
                        assert!(
                            (g - want).abs() <= 1e-6 * scale.max(1e-30),
                            "d = {d} ({i}, {j}): {g} vs {want}"
                        );
                        assert_eq!(got[i * d + j], got[j * d + i], "symmetric");
                    }
                }
            }
        }
        assert!(weighted_scatter(&[1.0, 2.0], 2, &[]).iter().all(|&v| v == 0.0));
    }
}
