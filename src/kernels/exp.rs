//! e^x without a libm call, so that the loops around it vectorise: e^x = 2^n · e^r with
//! n = round(x log₂e) and r = x − n ln 2 (Cody–Waite: ln 2 split in two parts so that r is
//! exact to the working precision), e^r by its Taylor polynomial on |r| ≤ ½ ln 2, 2^n
//! through the exponent bits. n is rounded by adding and subtracting 1.5 · 2^(mantissa
//! bits) (`round` and `floor` are libm calls on baseline x86-64), and 2^n is read from the
//! same sum's bits, so no float-to-int conversion stands in the way of vectorising.

/// e^x in f32: degree-6 Taylor polynomial (relative error < 2e-7); x clamped to [−87, 88].
#[inline(always)]
pub(crate) fn exp32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const SHIFT: f32 = 12_582_912.0; // 1.5 · 2²³
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * std::f32::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // The low bits of `shifted` hold n + 2²² (its unit in the last place is 1).
    let n_bits = shifted.to_bits().wrapping_sub(SHIFT.to_bits());
    p * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

/// e^x in f64: degree-13 Taylor polynomial (truncation < 4e-18 relative, so the result is
/// within a few units in the last place); e^x = 0 below −708 (where 2^n would leave the
/// normal range; e^−708 ≈ 3e-308), x clamped to 709 above.
#[inline(always)]
pub(crate) fn exp64(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const SHIFT: f64 = 6_755_399_441_055_744.0; // 1.5 · 2⁵²
    const INV_FACT: [f64; 14] = [
        1.0,
        1.0,
        1.0 / 2.0,
        1.0 / 6.0,
        1.0 / 24.0,
        1.0 / 120.0,
        1.0 / 720.0,
        1.0 / 5_040.0,
        1.0 / 40_320.0,
        1.0 / 362_880.0,
        1.0 / 3_628_800.0,
        1.0 / 39_916_800.0,
        1.0 / 479_001_600.0,
        1.0 / 6_227_020_800.0,
    ];
    let under = x < -708.0;
    let c = x.clamp(-708.0, 709.0);
    let shifted = c * std::f64::consts::LOG2_E + SHIFT;
    let n = shifted - SHIFT;
    let r = (c - n * LN2_HI) - n * LN2_LO;
    let mut p = INV_FACT[13];
    for k in (0..13).rev() {
        p = p * r + INV_FACT[k];
    }
    let n_bits = shifted.to_bits().wrapping_sub(SHIFT.to_bits());
    let y = p * f64::from_bits(n_bits.wrapping_add(1023) << 52);
    if under {
        0.0
    } else {
        y
    }
}

crate::simd::avx2_dispatch! {
    /// The weights of a softmax before normalisation: each logit ℓ_i replaced by
    /// e^(ℓ_i − max_j ℓ_j) ([`exp64`]); returns their sum (≥ 1 for finite logits). Compiled
    /// for AVX2 + FMA where the CPU has them (checked at run time), for baseline x86-64 elsewhere.
    pub(crate) fn softmax_weights(logits: &mut [f64]) -> f64 => softmax_weights_portable
}

/// [`softmax_weights`] in plain Rust; max and sum in four lanes so that the loops vectorise.
#[inline(always)]
fn softmax_weights_portable(logits: &mut [f64]) -> f64 {
    let mut lanes = [f64::NEG_INFINITY; 4];
    let mut chunks = logits.chunks_exact(4);
    for c in &mut chunks {
        lanes
            .iter_mut()
            .zip(c)
            .for_each(|(m, &v)| *m = if v > *m { v } else { *m });
    }
    let max = chunks
        .remainder()
        .iter()
        .chain(&lanes)
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    logits.iter_mut().for_each(|l| *l = exp64(*l - max));
    let mut lanes = [0.0; 4];
    let mut chunks = logits.chunks_exact(4);
    for c in &mut chunks {
        lanes.iter_mut().zip(c).for_each(|(s, v)| *s += v);
    }
    lanes.iter().sum::<f64>() + chunks.remainder().iter().sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::{exp32, exp64, softmax_weights};

    #[test]
    fn exp32_matches_libm_to_5e7_relative() {
        let mut worst = 0f64;
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp32(x) as f64, (x as f64).exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 5e-7, "worst relative error {worst:e}");
    }

    #[test]
    fn exp64_matches_libm_to_a_few_ulps() {
        let mut worst = 0f64;
        // Irregular steps over the whole normal range, and the points where n changes.
        let mut xs: Vec<f64> = (-70_800..=70_900).map(|i| i as f64 * 0.01 + 0.003_7).collect();
        xs.extend((-1021..=1022).map(|n| n as f64 * std::f64::consts::LN_2));
        xs.extend([
            0.0,
            -0.0,
            1e-300,
            -1e-17,
            0.346_573_590_279_972_6,
            -0.346_573_590_279_972_6,
        ]);
        for &x in xs.iter().filter(|x| (-708.0..=709.0).contains(*x)) {
            let (got, want) = (exp64(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(worst < 8.0 * f64::EPSILON, "worst relative error {worst:e}");
        assert_eq!(exp64(-708.5), 0.0);
        assert_eq!(exp64(-1e10), 0.0);
        assert_eq!(exp64(f64::NEG_INFINITY), 0.0);
        assert!(exp64(709.5).is_finite());
        assert!(exp64(f64::NAN).is_nan());
    }

    #[test]
    fn softmax_weights_are_exp_of_the_gap_to_the_max() {
        // Lengths around the four lanes, logits far apart (underflow to 0) and close.
        for len in [1, 3, 4, 5, 9, 1297] {
            let logits: Vec<f64> = (0..len).map(|i| ((i * 37 % 23) as f64 - 11.0) * 7.3 - 400.0).collect();
            let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mut got = logits.clone();
            let sum = softmax_weights(&mut got);
            let want: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() <= 8.0 * f64::EPSILON * w, "{len}: {g} vs {w}");
            }
            let want_sum: f64 = want.iter().sum();
            assert!((sum - want_sum).abs() <= 1e-14 * want_sum, "{len}: {sum} vs {want_sum}");
        }
    }
}
