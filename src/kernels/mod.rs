//! Fast CPU kernels for the networks' heavy layers, as candle custom ops (forward and
//! gradient) over candle tensors: convolution by im2col + GEMM ([`conv2d`]), group and
//! layer normalisation fused with SiLU ([`group_norm`], [`layer_norm`]) and the affine
//! map ([`linear`]); and, inference only, the whole MLP pass ([`mlp`]) and the sampler's
//! update ([`lincomb`]). They serve f32 tensors on the CPU; on any other device or dtype each
//! function runs candle's own ops ([`reference`]), so `--features cuda` keeps candle's
//! CUDA kernels. The tests compare every kernel with [`reference`] (values and gradients).
//! Beside them, plain functions that the empirical oracle and the statistics share: the
//! checked GEMM view (`gemm`, f32 and f64) and the vectorised `exp` (`exp`).

mod conv;
pub(crate) mod exp;
pub(crate) mod gemm;
mod lincomb;
mod linear;
pub mod mlp;
mod norm;
mod optim;
pub(crate) mod scatter;
mod winograd;

use std::sync::OnceLock;

use candle_core::{CpuStorage, DType, Layout, Tensor, Var};

pub use conv::{ConvParams, Padding};

/// Threads the kernels use: candle's count (its environment variables or the physical
/// cores), looked up once.
pub fn threads() -> usize {
    static THREADS: OnceLock<usize> = OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// Fixes the thread count for the process: candle's `get_num_threads` reads
/// `RAYON_NUM_THREADS` and, without it, re-reads `/proc/cpuinfo` on every matmul (8–15 %
/// of a profile). Sets `RAYON_NUM_THREADS` to candle's count (the physical cores) where it
/// is unset, so rayon's pool and candle agree, and `CANDLE_NUM_THREADS` (where unset) to 1:
/// candle's element-wise ops then run on the calling thread instead of being split with
/// the threads of candle's own barrier pool. Those threads spin for a while after every op
/// (perf on the digits U-Net's training: 26 % of the samples in that spin), taking a core
/// from the kernels' rayon threads; without them a training step took 86–88 instead of
/// 107–118 ms, the evaluations as before, and the values are the same (the ops are
/// element by element). Call it first thing in `main`, before any other thread starts (it
/// sets environment variables).
pub fn pin_threads() {
    let n = threads().to_string();
    for (var, value) in [("RAYON_NUM_THREADS", n.as_str()), ("CANDLE_NUM_THREADS", "1")] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, value);
        }
    }
    // The pool's threads get the main thread's stack size, for [`on_pool_thread`] (candle's
    // backward pass walks the graph recursively). Fails only if the pool already exists.
    let _ = rayon::ThreadPoolBuilder::new().stack_size(POOL_STACK).build_global();
}

/// Stack size of rayon's threads: 8 MiB, as a Linux main thread's.
const POOL_STACK: usize = 8 << 20;

/// Runs `f` on a thread of rayon's global pool and returns its result. The kernels' parallel
/// loops called from there split work with the other threads directly, instead of each
/// call being handed to the pool while the calling thread sleeps until a worker wakes it
/// (two thread switches per call). perf on the digits MLP's training: the kernel's
/// thread wake-ups and switches (`futex_wake`, `finish_task_switch`, `sched_yield`) were
/// about 35 % of the samples. The results do not depend on which thread runs what.
pub fn on_pool_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// mimalloc's option `purge_delay` (`mi_option_purge_delay` of mimalloc.h v3, the version
/// libmimalloc-sys builds: how long freed memory stays committed before it goes back to the
/// kernel, in ms; −1 = never; default 1,000).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc keep freed memory committed instead of returning it to the kernel 10 ms
/// after it is freed. Sampling frees and allocates tensors of several MB at every layer of
/// every step; pages returned to the kernel fault again on reuse, and with transparent huge pages each
/// fault clears 2 MB: on the digits U-Net at batch 500 (15 NFEs), 7,300–7,900 page faults and
/// 0.4–1.6 s of system time (`clear_page_erms` 9 % of the profile) against 450 faults and
/// 0.2 s with it. Resident memory stays at the process's peak. For binaries whose global
/// allocator is mimalloc; call it first thing in `main`, before any other thread starts.
pub fn keep_freed_memory() {
    // SAFETY: sets one option by its index; the call is not thread-safe, hence "first thing".
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}

/// The contiguous f32 data of a custom op's argument.
fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        (CpuStorage::F32(_), None) => candle_core::bail!("ddimlab kernel: argument is not contiguous"),
        _ => candle_core::bail!(
            "ddimlab kernel: only f32 is supported, got {:?}",
            candle_core::backend::BackendStorage::dtype(s)
        ),
    }
}

/// Whether the custom kernels serve these tensors (all f32 on the CPU).
pub fn fast(ts: &[&Tensor]) -> bool {
    ts.iter().all(|t| t.device().is_cpu() && t.dtype() == DType::F32)
}

/// 2-D convolution of x [n, cin, h, w] with W [cout, cin, kh, kw] plus b: [cout], or
/// [n, cout] for a bias per image (a ResNet block's time embedding, fused).
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, p: ConvParams) -> candle_core::Result<Tensor> {
    if !fast(&[x, w, b]) {
        return reference::conv2d(x, w, b, p);
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, conv::Conv2d(p))
}

/// Group normalisation of x [n, c, …] with per-channel γ, β, then SiLU when `silu`.
pub fn group_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f64,
    silu: bool,
) -> candle_core::Result<Tensor> {
    if !fast(&[x, gamma, beta]) {
        return reference::group_norm(x, gamma, beta, groups, eps, silu);
    }
    let op = norm::GroupNorm { groups, eps, silu };
    x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
}

/// SiLU(x) = x·sigmoid(x), element by element, with the vectorised `exp` (candle's `silu`
/// calls libm's `expf` per value: 6.7 % of the digits MLP's training profile, under
/// candle's `silu` and its gradient).
pub fn silu(x: &Tensor) -> candle_core::Result<Tensor> {
    if !fast(&[x]) {
        return reference::silu(x);
    }
    x.contiguous()?.apply_op1(norm::Silu)
}

/// LayerNorm of x [n, d] over d with γ, β, then SiLU when `silu` (group norm with one group).
pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, silu: bool) -> candle_core::Result<Tensor> {
    if !fast(&[x, gamma, beta]) {
        return reference::layer_norm(x, gamma, beta, eps, silu);
    }
    group_norm(x, gamma, beta, 1, eps, silu)
}

/// y = x Wᵀ + b over the last axis of x [… , d_in], W [d_out, d_in], b [d_out] (or
/// [rows, d_out], one per row of a 2-D x).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
    if !fast(&[x, w, b]) {
        return reference::linear(x, w, b);
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, linear::Linear)
}

/// a·x + b·y (+ c·z): the sampler's update in one pass (no gradient; same rounding as
/// candle's `(x * a) + (y * b) + (z * c)`, which runs where the kernel does not apply).
pub fn lincomb(x: (&Tensor, f64), y: (&Tensor, f64), z: Option<(&Tensor, f64)>) -> candle_core::Result<Tensor> {
    let mut ts = vec![x.0, y.0];
    ts.extend(z.map(|z| z.0));
    if !fast(&ts) || ts.iter().any(|t| t.shape() != x.0.shape()) {
        return reference::lincomb(x, y, z);
    }
    let mut coefs = vec![x.1 as f32, y.1 as f32];
    coefs.extend(z.map(|z| z.1 as f32));
    let (a, b) = (x.0.contiguous()?, y.0.contiguous()?);
    match z {
        None => a.apply_op2_no_bwd(&b, &lincomb::LinComb(coefs)),
        Some((z, _)) => a.apply_op3_no_bwd(&b, &z.contiguous()?, &lincomb::LinComb(coefs)),
    }
}

/// AdamW's settings for one update (torch's `AdamW`): β₁, β₂, ε, the learning rate, the
/// decoupled weight decay λ and the update's number t ≥ 1 (for the bias corrections).
#[derive(Debug, Clone, Copy)]
pub struct AdamParams {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub lr: f64,
    pub weight_decay: f64,
    pub t: usize,
}

impl AdamParams {
    /// The bias corrections c₁ = 1 − β₁ᵗ and c₂ = 1 − β₂ᵗ.
    fn bias_corrections(&self) -> (f64, f64) {
        (
            1.0 - self.beta1.powi(self.t as i32),
            1.0 - self.beta2.powi(self.t as i32),
        )
    }
}

/// Whether the in-place optimiser kernels serve these tensors: CPU f32 and contiguous.
fn fast_in_place(ts: &[&Tensor]) -> bool {
    fast(ts) && ts.iter().all(|t| t.is_contiguous())
}

/// One AdamW update of θ with its gradient g, in place, moments m and v updated:
/// m ← β₁m + (1 − β₁)g, v ← β₂v + (1 − β₂)g², θ ← θ(1 − lr·λ) − lr · (m / c₁) / (√(v / c₂) + ε)
/// with c_i = 1 − β_iᵗ. Bit-identical to [`reference::adamw_update`] (the same f32
/// operations in the same order), which runs where the kernels do not apply.
pub fn adamw_update(theta: &Var, m: &mut Tensor, v: &mut Tensor, g: &Tensor, p: AdamParams) -> candle_core::Result<()> {
    if !fast_in_place(&[theta.as_tensor(), m, v, g]) {
        return reference::adamw_update(theta, m, v, g, p);
    }
    let (c1, c2) = p.bias_corrections();
    m.inplace_op2(
        g,
        &optim::Blend {
            keep: p.beta1,
            take: 1.0 - p.beta1,
            square: false,
        },
    )?;
    v.inplace_op2(
        g,
        &optim::Blend {
            keep: p.beta2,
            take: 1.0 - p.beta2,
            square: true,
        },
    )?;
    let step = optim::AdamStep {
        lr: p.lr,
        weight_decay: p.weight_decay,
        c1,
        c2,
        eps: p.eps,
    };
    theta.as_tensor().inplace_op3(m, v, &step)
}

/// The exponential moving average of a parameter, in place: ā ← d·ā + (1 − d)·θ.
/// Bit-identical to [`reference::ema_update`].
pub fn ema_update(average: &mut Tensor, theta: &Tensor, d: f64) -> candle_core::Result<()> {
    if !fast_in_place(&[average, theta]) {
        return reference::ema_update(average, theta, d);
    }
    average.inplace_op2(
        theta,
        &optim::Blend {
            keep: d,
            take: 1.0 - d,
            square: false,
        },
    )
}

/// The same functions written with candle's own (differentiable) ops: the path for
/// other devices and dtypes, and the reference the kernels are tested against.
pub mod reference {
    use candle_core::{Module, Tensor, Var};

    use super::ConvParams;

    /// [`super::conv2d`] by `Tensor::conv2d` (asymmetric padding as explicit zeros).
    pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, p: ConvParams) -> candle_core::Result<Tensor> {
        if p.padding.end < p.padding.begin {
            candle_core::bail!("conv2d: end padding below begin padding is not supported")
        }
        let extra = p.padding.end - p.padding.begin;
        let x = if extra > 0 {
            x.pad_with_zeros(2, 0, extra)?.pad_with_zeros(3, 0, extra)?
        } else {
            x.clone()
        };
        let y = x.conv2d(w, p.padding.begin, p.stride, 1, 1)?;
        let b = match b.dims() {
            &[n, c] => b.reshape((n, c, 1, 1))?,
            _ => b.reshape((1, b.elem_count(), 1, 1))?,
        };
        y.broadcast_add(&b)
    }

    /// [`super::group_norm`] by candle-nn's `GroupNorm`.
    pub fn group_norm(
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        groups: usize,
        eps: f64,
        silu: bool,
    ) -> candle_core::Result<Tensor> {
        let c = gamma.elem_count();
        let y = candle_nn::GroupNorm::new(gamma.clone(), beta.clone(), c, groups, eps)?.forward(x)?;
        if silu {
            y.silu()
        } else {
            Ok(y)
        }
    }

    /// [`super::silu`] by candle's op.
    pub fn silu(x: &Tensor) -> candle_core::Result<Tensor> {
        x.silu()
    }

    /// [`super::layer_norm`] by candle-nn's differentiable `layer_norm_slow`.
    pub fn layer_norm(x: &Tensor, gamma: &Tensor, beta: &Tensor, eps: f64, silu: bool) -> candle_core::Result<Tensor> {
        let y = candle_nn::ops::layer_norm_slow(x, gamma, beta, eps as f32)?;
        if silu {
            y.silu()
        } else {
            Ok(y)
        }
    }

    /// [`super::lincomb`] by candle's ops.
    pub fn lincomb(x: (&Tensor, f64), y: (&Tensor, f64), z: Option<(&Tensor, f64)>) -> candle_core::Result<Tensor> {
        let s = ((x.0 * x.1)? + (y.0 * y.1)?)?;
        match z {
            Some((z, c)) => s + (z * c)?,
            None => Ok(s),
        }
    }

    /// [`super::adamw_update`] by candle's ops (new tensors for m, v; θ set).
    pub fn adamw_update(
        theta: &Var,
        m: &mut Tensor,
        v: &mut Tensor,
        g: &Tensor,
        p: super::AdamParams,
    ) -> candle_core::Result<()> {
        let (c1, c2) = p.bias_corrections();
        // detach(): the moments must not keep a graph back to every earlier step.
        *m = ((&*m * p.beta1)? + (g * (1.0 - p.beta1))?)?.detach();
        *v = ((&*v * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?.detach();
        let denom = ((&*v / c2)?.sqrt()? + p.eps)?;
        let update = ((&*m / c1)? / denom)?;
        let decayed = (theta.as_tensor() * (1.0 - p.lr * p.weight_decay))?;
        theta.set(&(decayed - (update * p.lr)?)?.detach())
    }

    /// [`super::ema_update`] by candle's ops (a new tensor).
    pub fn ema_update(average: &mut Tensor, theta: &Tensor, d: f64) -> candle_core::Result<()> {
        *average = ((&*average * d)? + (theta * (1.0 - d))?)?.detach();
        Ok(())
    }

    /// [`super::linear`] by candle-nn's `Linear` (on a contiguous x: candle 0.11's batched
    /// matmul mishandles a left operand transposed in its last two axes).
    pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> candle_core::Result<Tensor> {
        if b.rank() == 2 {
            return x.contiguous()?.matmul(&w.t()?)?.add(b);
        }
        candle_nn::Linear::new(w.clone(), Some(b.clone())).forward(&x.contiguous()?)
    }
}

#[cfg(test)]
mod tests {
    /// The option index is mimalloc's `purge_delay`: before it is set, the option reads
    /// mimalloc's documented default of 1,000 ms (or the environment's MIMALLOC_PURGE_DELAY),
    /// which neither neighbouring option has (the deprecated eager_commit_delay 1).
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        use libmimalloc_sys::{mi_option_get, mi_option_t};
        let get = |o: mi_option_t| unsafe { mi_option_get(o) };
        let want = std::env::var("MIMALLOC_PURGE_DELAY")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        assert_eq!(get(super::MI_OPTION_PURGE_DELAY), want);
        assert_eq!(get(super::MI_OPTION_PURGE_DELAY - 1), 1);
        super::keep_freed_memory();
        assert_eq!(get(super::MI_OPTION_PURGE_DELAY), -1);
    }
}
