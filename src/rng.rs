//! Seeded random streams: one experiment seed, independent streams per purpose, so
//! that (for example) changing the number of training points never changes the
//! held-out set, and x_T is the same for every point of a sweep.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// What a random stream is used for; each gets its own ChaCha8 stream of the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u64)]
pub enum Purpose {
    /// Synthetic training data.
    TrainData = 1,
    /// Synthetic held-out data.
    HeldoutData = 2,
    /// The train / held-out split of a fixed data set.
    Split = 3,
    /// Network initialisation.
    Init = 4,
    /// Training minibatches, timesteps and noise.
    Training = 5,
    /// The latents x_T shared by every point of a sweep.
    Latents = 6,
    /// Sampler noise for stochastic steps.
    SamplerNoise = 7,
    /// Timesteps and noise of loss evaluations.
    Evaluation = 8,
    /// Initialisation and minibatches of the feature classifier (FID analogue).
    Classifier = 9,
    /// Bootstrap resamples of the sample-quality intervals.
    Bootstrap = 10,
    /// The independent real set of the noise-floor row (draws from an exact target).
    Floor = 11,
    /// Reference draws from an empirical (smoothed training-set) target.
    Reference = 12,
}

/// The random stream of `seed` for `purpose`.
pub fn stream(seed: u64, purpose: Purpose) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(purpose as u64);
    rng
}

/// The `index`-th random stream of `seed` for `purpose` (e.g. one per training step),
/// so that any step can be replayed without replaying the ones before it.
pub fn stream_at(seed: u64, purpose: Purpose, index: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(((index + 1) << 8) | purpose as u64);
    rng
}

/// `per` standard-normal values for each of the items `first .. first + n`, item `i`
/// drawn from its own stream `stream_at(seed, purpose, i)`: an item's numbers do not
/// depend on how many items are drawn with it (e.g. x_T of sample i is the same for
/// every batch size).
pub fn item_normals(seed: u64, purpose: Purpose, first: usize, n: usize, per: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n * per);
    for i in first..first + n {
        let mut rng = stream_at(seed, purpose, i as u64);
        out.extend((0..per).map(|_| {
            let v: f64 = StandardNormal.sample(&mut rng);
            v as f32
        }));
    }
    out
}

/// Seeded uniform values in [−0.5, 0.5) for tests (xorshift64; fast, no dependencies):
/// the same sequence for the same seed, in any test that asks.
#[cfg(test)]
pub(crate) fn uniforms(seed: u64) -> impl FnMut() -> f64 {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    }
}
