//! The fast CPU kernels (`ddimlab::kernels`, f32) against candle's own ops run in f64
//! (`kernels::reference`): values and the gradients of a random linear functional
//! L = Σ r ⊙ f(x, W, b), on odd shapes, batch 1, large batches (the threaded path) and
//! non-contiguous inputs. Tolerance: 1e-5 of the largest reference magnitude.

use candle_core::{DType, Tensor, Var};
use ddimlab::kernels::{self, reference, ConvParams, Padding};

use crate::common::{assert_close, values};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A seeded standard-uniform-ish f32 tensor in [−1, 1), on the test device
/// (`crate::common::device`): on CUDA every function below runs candle's own ops (the
/// kernels serve the CPU only), so there these tests check that fallback.
fn random(shape: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, shape, &crate::common::device()).unwrap()
}

/// A non-contiguous tensor with the values of `random(shape)`: built transposed, then
/// transposed back on its last two axes.
fn strided(shape: &[usize], seed: u64) -> Tensor {
    let r = shape.len();
    let mut swapped = shape.to_vec();
    swapped.swap(r - 2, r - 1);
    let t = random(&swapped, seed).transpose(r - 2, r - 1).unwrap();
    assert!(!t.is_contiguous());
    t
}

/// Runs `f` on f32 inputs (the kernel) and `reference` on f64 copies; compares the
/// outputs and the gradients of Σ r ⊙ output with respect to every input.
fn check<F, R>(what: &str, inputs: &[Tensor], f: F, reference: R)
where
    F: Fn(&[Tensor]) -> Tensor,
    R: Fn(&[Tensor]) -> Tensor,
{
    let run = |dtype: DType, g: &dyn Fn(&[Tensor]) -> Tensor| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap())
            .collect();
        // Keep the caller's layout (a Var is contiguous): re-apply the same strides.
        let args: Vec<Tensor> = vars
            .iter()
            .zip(inputs)
            .map(|(v, t)| {
                if t.is_contiguous() {
                    v.as_tensor().clone()
                } else {
                    let r = t.rank();
                    v.as_tensor()
                        .transpose(r - 2, r - 1)
                        .unwrap()
                        .contiguous()
                        .unwrap()
                        .transpose(r - 2, r - 1)
                        .unwrap()
                }
            })
            .collect();
        let y = g(&args);
        let r = random(y.dims(), 99).to_dtype(dtype).unwrap();
        let grads = (&y * &r).unwrap().sum_all().unwrap().backward().unwrap();
        let dx: Vec<Tensor> = vars.iter().map(|v| grads.get(v).unwrap().clone()).collect();
        (y, dx)
    };
    let (y, dx) = run(DType::F32, &f);
    assert_eq!(y.dtype(), DType::F32);
    let (y_ref, dx_ref) = run(DType::F64, &reference);
    assert_close(&format!("{what}: value"), &y, &y_ref, 1e-5);
    for (i, (a, b)) in dx.iter().zip(&dx_ref).enumerate() {
        assert_close(&format!("{what}: gradient of input {i}"), a, b, 1e-5);
    }
}

fn pad(begin: usize, end: usize) -> Padding {
    Padding { begin, end }
}

#[test]
fn conv2d_matches_candle_values_and_gradients() {
    // (n, cin, h, w, cout, k, stride, padding, non-contiguous x). The stride-2 shapes are
    // ones where candle 0.11's own conv2d gradient (the reference) has the right shape: for
    // a 6×7 input (3×3, padding 1) it returns a 6×8 gradient.
    let cases = [
        (1, 3, 5, 7, 4, 3, 1, pad(1, 1), false),
        (3, 2, 8, 8, 5, 3, 2, pad(0, 1), false),
        (2, 4, 7, 7, 3, 3, 2, pad(1, 1), true),
        (5, 6, 4, 3, 2, 1, 1, pad(0, 0), false),
        (4, 3, 7, 5, 2, 3, 1, pad(0, 0), true),
        (17, 5, 9, 9, 6, 3, 1, pad(1, 1), false),
        (1, 8, 6, 6, 8, 1, 1, pad(0, 0), true),
        (2, 3, 5, 5, 2, 5, 1, pad(2, 2), false),
        // Same-size convolutions at the widths whose runs im2col copies at a fixed size
        // (4, 8, 16, 32), one with asymmetric padding.
        (3, 4, 8, 8, 5, 3, 1, pad(1, 1), false),
        (2, 3, 4, 4, 3, 3, 1, pad(1, 1), true),
        (1, 2, 16, 16, 3, 3, 1, pad(1, 1), false),
        (1, 2, 32, 32, 2, 3, 1, pad(1, 1), false),
        (2, 3, 8, 8, 4, 2, 1, pad(0, 1), true),
        // Winograd's F(2×2, 3×3) forward (3×3, stride 1, padding 1, ≥ 16 columns, ≥ 8
        // input channels): images in parallel; one image with the threads inside (and a
        // non-contiguous x); a row of 17 tiles (more than one block of 16).
        (3, 8, 16, 16, 5, 3, 1, pad(1, 1), false),
        (1, 9, 16, 20, 4, 3, 1, pad(1, 1), true),
        (2, 8, 6, 34, 3, 3, 1, pad(1, 1), false),
    ];
    for (i, &(n, cin, h, w, cout, k, stride, padding, nc)) in cases.iter().enumerate() {
        let seed = 10 * i as u64;
        let x = if nc {
            strided(&[n, cin, h, w], seed)
        } else {
            random(&[n, cin, h, w], seed)
        };
        let mut inputs = [x, random(&[cout, cin, k, k], seed + 1), random(&[cout], seed + 2)];
        let p = ConvParams { stride, padding };
        // Every other case: one bias per image and channel.
        if i % 2 == 1 {
            inputs[2] = random(&[n, cout], seed + 3);
        }
        check(
            &format!("conv2d case {i}"),
            &inputs,
            |a| kernels::conv2d(&a[0], &a[1], &a[2], p).unwrap(),
            |a| reference::conv2d(&a[0], &a[1], &a[2], p).unwrap(),
        );
    }
}

#[test]
fn group_norm_matches_candle_values_and_gradients() {
    // (shape, groups, silu, non-contiguous)
    let cases: [(&[usize], usize, bool, bool); 6] = [
        (&[1, 6, 5, 3], 3, true, false),
        (&[4, 8, 4, 4], 2, false, false),
        (&[3, 4, 3, 5], 4, true, true),
        (&[2, 6, 7], 1, false, false),
        (&[33, 4, 2, 2], 2, true, false),
        (&[1, 3, 1, 1], 3, false, false),
    ];
    for (i, &(shape, groups, silu, nc)) in cases.iter().enumerate() {
        let seed = 100 + 10 * i as u64;
        let x = if nc { strided(shape, seed) } else { random(shape, seed) };
        let c = shape[1];
        // γ around 1, β around 0, with x scaled away from zero mean.
        let gamma = (random(&[c], seed + 1) + 1.0).unwrap();
        let inputs = [(x * 3.0).unwrap() + 0.5, Ok(gamma), Ok(random(&[c], seed + 2))];
        let inputs: Vec<Tensor> = inputs.into_iter().map(|t| t.unwrap()).collect();
        check(
            &format!("group norm case {i}"),
            &inputs,
            |a| kernels::group_norm(&a[0], &a[1], &a[2], groups, 1e-5, silu).unwrap(),
            |a| reference::group_norm(&a[0], &a[1], &a[2], groups, 1e-5, silu).unwrap(),
        );
    }
}

#[test]
fn layer_norm_matches_candle_values_and_gradients() {
    for (i, &(rows, d, silu, nc)) in [(1, 5, false, false), (9, 16, true, false), (300, 7, true, true)]
        .iter()
        .enumerate()
    {
        let seed = 200 + 10 * i as u64;
        let x = if nc {
            strided(&[rows, d], seed)
        } else {
            random(&[rows, d], seed)
        };
        let inputs = [x, (random(&[d], seed + 1) + 1.0).unwrap(), random(&[d], seed + 2)];
        check(
            &format!("layer norm case {i}"),
            &inputs,
            |a| kernels::layer_norm(&a[0], &a[1], &a[2], 1e-5, silu).unwrap(),
            |a| reference::layer_norm(&a[0], &a[1], &a[2], 1e-5, silu).unwrap(),
        );
    }
}

#[test]
fn silu_matches_candle_values_and_gradients() {
    for (i, &(rows, d, nc)) in [(1, 5, false), (256, 128, false), (33, 9, true)].iter().enumerate() {
        let seed = 250 + 10 * i as u64;
        let x = if nc {
            strided(&[rows, d], seed)
        } else {
            (random(&[rows, d], seed) * 4.0).unwrap()
        };
        check(
            &format!("silu case {i}"),
            &[x],
            |a| kernels::silu(&a[0]).unwrap(),
            |a| reference::silu(&a[0]).unwrap(),
        );
    }
}

#[test]
fn linear_matches_candle_values_and_gradients() {
    let cases: [(&[usize], usize, bool); 4] = [
        (&[1, 5], 3, false),
        (&[7, 5], 9, true),
        (&[2, 6, 5], 4, false),
        (&[3, 4, 8], 8, true),
    ];
    for (i, &(shape, d_out, nc)) in cases.iter().enumerate() {
        let seed = 300 + 10 * i as u64;
        let d_in = *shape.last().unwrap();
        let x = if nc { strided(shape, seed) } else { random(shape, seed) };
        let mut inputs = [x, random(&[d_out, d_in], seed + 1), random(&[d_out], seed + 2)];
        // 2-D cases also with one bias per row.
        if shape.len() == 2 && i % 2 == 1 {
            inputs[2] = random(&[shape[0], d_out], seed + 3);
        }
        check(
            &format!("linear case {i}"),
            &inputs,
            |a| kernels::linear(&a[0], &a[1], &a[2]).unwrap(),
            |a| reference::linear(&a[0], &a[1], &a[2]).unwrap(),
        );
    }
}

#[test]
fn kernels_refuse_mismatched_shapes_instead_of_panicking() {
    let x = random(&[2, 3, 5, 5], 1);
    let w = random(&[4, 2, 3, 3], 2);
    let b = random(&[4], 3);
    let p = ConvParams {
        stride: 1,
        padding: pad(1, 1),
    };
    assert!(kernels::conv2d(&x, &w, &b, p).is_err());
    assert!(kernels::group_norm(&x, &random(&[3], 4), &random(&[3], 5), 2, 1e-5, false).is_err());
    assert!(kernels::linear(&random(&[2, 5], 6), &random(&[3, 4], 7), &random(&[3], 8)).is_err());
}

#[test]
fn lincomb_is_bit_identical_to_candles_ops() {
    let shape = [37, 3, 5, 5];
    let (x, y, z) = (random(&shape, 1), strided(&shape, 2), random(&shape, 3));
    for terms in [None, Some((&z, -0.37))] {
        let got = kernels::lincomb((&x, 0.93), (&y, -1.7e-3), terms).unwrap();
        let want = reference::lincomb((&x, 0.93), (&y, -1.7e-3), terms).unwrap();
        assert_eq!(values(&got), values(&want));
    }
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .iter()
        .map(|v| v.to_bits())
        .collect()
}

/// The in-place AdamW and EMA updates give the values of candle's formulation bit for bit,
/// over several steps (growing t, weight decay on, values that reach zero gradients and
/// negative zeros); a variable is updated where it lives, so a clone of it sees the step.
#[test]
fn in_place_adamw_and_ema_match_the_candle_formulation_bit_for_bit() {
    let shape = [7, 33];
    let run = |fast: bool| -> (Vec<u32>, Vec<u32>, Vec<u32>, Vec<u32>) {
        let theta = Var::from_tensor(&random(&shape, 1)).unwrap();
        let shared = theta.as_tensor().clone();
        let (mut m, mut v) = (theta.zeros_like().unwrap(), theta.zeros_like().unwrap());
        let mut ema = theta.as_tensor().copy().unwrap();
        for t in 1..=5 {
            // The gradient of step t; a band of exact zeros and a negative zero.
            let g = (random(&shape, 10 + t as u64) * (0.5 * t as f64)).unwrap();
            let g = g
                .slice_assign(&[0..1, 0..5], &Tensor::zeros((1, 5), DType::F32, g.device()).unwrap())
                .unwrap();
            let p = kernels::AdamParams {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                lr: 2e-3 * t as f64,
                weight_decay: 0.01,
                t,
            };
            if fast {
                kernels::adamw_update(&theta, &mut m, &mut v, &g, p).unwrap();
                kernels::ema_update(&mut ema, theta.as_tensor(), 0.9).unwrap();
            } else {
                reference::adamw_update(&theta, &mut m, &mut v, &g, p).unwrap();
                reference::ema_update(&mut ema, theta.as_tensor(), 0.9).unwrap();
            }
        }
        assert_eq!(bits(&shared), bits(theta.as_tensor()), "a clone of θ sees the update");
        (bits(theta.as_tensor()), bits(&m), bits(&v), bits(&ema))
    };
    let (fast, slow) = (run(true), run(false));
    assert_eq!(fast.0, slow.0, "θ");
    assert_eq!(fast.1, slow.1, "m");
    assert_eq!(fast.2, slow.2, "v");
    assert_eq!(fast.3, slow.3, "EMA");
    assert_ne!(fast.0, bits(&random(&shape, 1)), "θ moved");
}
