//! Sinusoidal timestep embeddings (Ho et al. 2020 §B; diffusers' `get_timestep_embedding`).

use candle_core::{DType, Device, Tensor};

use crate::error::Result;

/// The sinusoidal embedding of integer timesteps, `[t.len(), dim]`:
/// e_j = t · exp(−ln(10000) · j / (dim/2 − freq_shift)) for j < dim/2, laid out as
/// [sin | cos] (or [cos | sin] when `flip_sin_to_cos`), zero-padded when `dim` is odd.
/// DDPM's original embedding is `freq_shift = 1`, `flip_sin_to_cos = false`.
pub fn timestep_embedding(
    t: &[usize],
    dim: usize,
    flip_sin_to_cos: bool,
    freq_shift: f64,
    device: &Device,
    dtype: DType,
) -> Result<Tensor> {
    let half = dim / 2;
    if half as f64 - freq_shift <= 0.0 {
        return Err(crate::error::Error::invalid("time embedding width", format!(
                "{dim}: with frequency shift {freq_shift} the embedding needs more than {} frequencies (an even width ≥ 4)",
                freq_shift
            )));
    }
    let freqs: Vec<f64> = (0..half)
        .map(|j| (-(10000f64.ln()) * j as f64 / (half as f64 - freq_shift)).exp())
        .collect();
    let mut v = Vec::with_capacity(t.len() * dim);
    for &ti in t {
        let args = freqs.iter().map(|f| ti as f64 * f);
        let (sin, cos): (Vec<f64>, Vec<f64>) = args.map(|a| (a.sin(), a.cos())).unzip();
        let (first, second) = if flip_sin_to_cos { (cos, sin) } else { (sin, cos) };
        v.extend(first);
        v.extend(second);
        if dim % 2 == 1 {
            v.push(0.0);
        }
    }
    Ok(Tensor::from_vec(v, (t.len(), dim), device)?.to_dtype(dtype)?)
}

/// The timesteps whose embedding a batch needs: `[t₀]` when every sample shares t₀ (as
/// in sampling: the embedding and everything computed from it is then one row, broadcast
/// by the layers that add it), otherwise `t` itself.
pub fn embedded_timesteps(t: &[usize]) -> &[usize] {
    match t.first() {
        Some(t0) if t.iter().all(|s| s == t0) => &t[..1],
        _ => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedding_matches_the_formula() {
        let e = timestep_embedding(&[0, 7], 6, false, 1.0, &Device::Cpu, DType::F64).unwrap();
        let v: Vec<Vec<f64>> = e.to_vec2().unwrap();
        // half = 3, freqs = exp(−ln 1e4 · j / 2) = [1, 1e-2, 1e-4].
        assert_eq!(v[0], vec![0.0, 0.0, 0.0, 1.0, 1.0, 1.0]);
        let want = [
            7f64.sin(),
            0.07f64.sin(),
            0.0007f64.sin(),
            7f64.cos(),
            0.07f64.cos(),
            0.0007f64.cos(),
        ];
        for (a, b) in v[1].iter().zip(want) {
            assert!((a - b).abs() < 1e-12);
        }
        let flipped = timestep_embedding(&[7], 6, true, 1.0, &Device::Cpu, DType::F64).unwrap();
        let f: Vec<Vec<f64>> = flipped.to_vec2().unwrap();
        assert_eq!(f[0][..3], v[1][3..]);
    }
}
