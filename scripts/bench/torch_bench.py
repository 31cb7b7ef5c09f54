#!/usr/bin/env python3
"""The PyTorch half of `make bench`: the workloads of benches/throughput.rs, timed with
PyTorch (+ diffusers for the U-Nets) on the CPU, float32, so that ddimlab's numbers can be
divided by these.

    python torch_bench.py [--threads N] [--quick] [--only ROW,ROW,...] [--seed S]
                          [--omp-passive] [--list]

Prints ONE JSON object on stdout and nothing else (everything else, including anything
torch, diffusers or native libraries print, goes to stderr). Rows (JSON keys):

    mlp_nfe_ms                       digits MLP (src/model/mlp.rs, experiments/digits.yaml:
                                     hidden 128, 2 blocks, time_dim 64), one forward,
                                     batch 500 of [64], t = 500, inference_mode; ms
    mlp_train_samples_per_s          the same MLP trained at batch 256; samples/s
    unet_digits_nfe_ms               ddimlab's default digits U-Net (diffusers UNet2DModel,
                                     701,345 parameters), batch 500 of [1, 8, 8]; ms
    unet_digits_train_samples_per_s  the same U-Net trained at batch 64; samples/s
    cifar_nfe_ms_b1, cifar_nfe_ms_b8 google/ddpm-cifar10-32's architecture (random
                                     weights, 35.7 M parameters), batch 1 / 8 of
                                     [3, 32, 32]; ms
    gemm                             list of {name, m, n, k, ms, gflops}: torch.mm of a
                                     row-major [m, k] by a row-major [k, n] float32 matrix

A training step is what src/train.rs does per step: draw x_0 (uniform in [-1, 1] here;
the data do not matter for speed), t ~ U{0..999} and ε ~ N(0, I) per sample, form
x_t = √ᾱ_t x_0 + √(1−ᾱ_t) ε (DDPM linear betas 1e-4..0.02, T = 1000), L_simple =
mean((ε_θ(x_t, t) − ε)²), read the loss value, backward, clip the global gradient norm
to 1.0, AdamW (β = (0.9, 0.999), ε = 1e-8, weight decay 0 as TrainSpec's default, lr
1e-3 with the 200-step linear warm-up), then the EMA of the weights (decay
min(0.999, (1 + k)/(10 + k))). PyTorch's default AdamW implementation for CPU tensors.

Each value is the median over repetitions, after warm-up; a repetition times a block of
back-to-back calls (enough for ~50-500 ms) and divides by its length; a row whose calls
are slow gets fewer repetitions (at least 3; ~15 s of timing a row, 5 s with --quick).
`details` has the spread. With --only, rows not asked for are absent from the JSON.
"""
import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import time
import traceback

ROWS = (
    "mlp_nfe_ms",
    "mlp_train_samples_per_s",
    "unet_digits_nfe_ms",
    "oracle_digits_nfe_ms",
    "unet_digits_train_samples_per_s",
    "cifar_nfe_ms_b1",
    "cifar_nfe_ms_b8",
    "gemm",
)

# GEMM shapes (C[m, n] = A[m, k] @ B[k, n], all row-major float32). Besides a square one,
# the im2col GEMMs of 3×3 convolutions (stride 1, padding 1) of the CIFAR-10 U-Net at
# batch 8: m = C_out, k = C_in·9, n = batch·H·W.
GEMM_SHAPES = (
    ("square_2048", 2048, 2048, 2048),
    ("conv3x3_128to128_32x32_b8", 128, 8 * 32 * 32, 128 * 9),
    ("conv3x3_384to128_32x32_b8", 128, 8 * 32 * 32, 384 * 9),  # up path, skip concatenated
    ("conv3x3_256to256_16x16_b8", 256, 8 * 16 * 16, 256 * 9),
    ("conv3x3_256to256_8x8_b8", 256, 8 * 8 * 8, 256 * 9),
)

MLP_PARAMS = 108_352
UNET_DIGITS_PARAMS = 701_345
CIFAR_PARAMS = 35_746_307

DIGITS_UNET = dict(
    sample_size=8,
    in_channels=1,
    out_channels=1,
    block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    layers_per_block=1,
    norm_num_groups=8,
    norm_eps=1e-5,
    attention_head_dim=None,  # diffusers' default is 8; None: one head (head dim = channels)
    flip_sin_to_cos=False,
    freq_shift=1,
    downsample_padding=1,
    act_fn="silu",
    time_embedding_type="positional",
    center_input_sample=False,
    mid_block_scale_factor=1,
)

CIFAR_UNET = dict(  # google/ddpm-cifar10-32's config.json (as in benches/throughput.rs)
    sample_size=32,
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 256, 256),
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    layers_per_block=2,
    norm_num_groups=32,
    norm_eps=1e-6,
    attention_head_dim=None,
    flip_sin_to_cos=False,
    freq_shift=1,
    downsample_padding=0,
    act_fn="silu",
    time_embedding_type="positional",
    center_input_sample=False,
    mid_block_scale_factor=1,
)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch.set_num_threads (default: os.cpu_count())")
    p.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke test; noisier)")
    p.add_argument("--only", default="", help="comma-separated rows to run (default: all): " + ",".join(ROWS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--list", action="store_true", help="print the row names, one a line, and exit")
    p.add_argument(
        "--omp-passive",
        action="store_true",
        help="set OMP_WAIT_POLICY=PASSIVE (idle OpenMP threads sleep instead of spinning): far less "
        "slow-down when other processes load the CPUs, a little slower on an idle machine; "
        "default: the environment's OMP_WAIT_POLICY, else libgomp's default",
    )
    a = p.parse_args(argv)
    if a.threads < 1:
        p.error("--threads must be >= 1")
    if a.only:
        rows = [r.strip() for r in a.only.split(",") if r.strip()]
        bad = [r for r in rows if r not in ROWS]
        if bad:
            p.error(f"unknown row(s) {', '.join(bad)}; rows: {', '.join(ROWS)}")
        a.rows = [r for r in ROWS if r in rows]
    else:
        a.rows = list(ROWS)
    return a


class Timer:
    """Median seconds per call of `fn` after warm-up; blocks of back-to-back calls."""

    def __init__(self, quick):
        self.quick = quick

    def run(self, fn, *, warmup, reps, block_s):
        budget_s = 15.0  # timed part of one row, at most (fewer reps when calls are slow)
        if self.quick:
            reps, block_s, warmup, budget_s = max(3, reps // 3), block_s / 3, max(1, warmup // 3), 5.0
        for _ in range(warmup):
            fn()
        t0 = time.perf_counter()
        fn()
        one = time.perf_counter() - t0
        inner = max(1, math.ceil(block_s / max(one, 1e-9)))
        reps = max(3, min(reps, int(budget_s / max(one * inner, 1e-9))))
        per_call = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            per_call.append((time.perf_counter() - t0) / inner)
        med = statistics.median(per_call)
        return med, {
            "reps": reps,
            "calls_per_rep": inner,
            "warmup_calls": warmup + 1,
            "median_ms": med * 1e3,
            "min_ms": min(per_call) * 1e3,
            "max_ms": max(per_call) * 1e3,
        }


def main(args):
    if args.omp_passive:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when libgomp loads, i.e. on `import torch`
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    if load is not None and load > 0.5:
        log(f"torch_bench.py: warning: load average {load:.2f} before starting; other processes "
            "on the CPUs make these timings noisy (with 2+ threads, libgomp's spinning can make "
            "them many times slower: see --omp-passive)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    import numpy as np
    import torch
    from torch import nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float32)
    timer = Timer(args.quick)
    started = time.perf_counter()

    def seed_all(s):
        random.seed(s)
        np.random.seed(s % 2**32)
        torch.manual_seed(s)

    # ---- models -------------------------------------------------------------------

    def timestep_embedding(t, dim, flip_sin_to_cos=False, freq_shift=1.0):
        # src/model/time.rs (diffusers' get_timestep_embedding): e_j = t·exp(−ln(1e4)·j/(dim/2 − shift))
        half = dim // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - freq_shift))
        a = t.to(torch.float32)[:, None] * freqs[None]
        e = torch.cat([torch.cos(a), torch.sin(a)] if flip_sin_to_cos else [torch.sin(a), torch.cos(a)], dim=-1)
        return F.pad(e, (0, 1)) if dim % 2 else e

    class Block(nn.Module):
        def __init__(self, h, td):
            super().__init__()
            self.norm = nn.LayerNorm(h, eps=1e-5)
            self.fc1, self.time_proj, self.fc2 = nn.Linear(h, h), nn.Linear(td, h), nn.Linear(h, h)

    class Mlp(nn.Module):
        """src/model/mlp.rs with layer_norm: true (parameter names as there)."""

        def __init__(self, d=64, h=128, blocks=2, td=64):
            super().__init__()
            self.td = td
            self.time_embedding = nn.Module()
            self.time_embedding.linear_1, self.time_embedding.linear_2 = nn.Linear(td, td), nn.Linear(td, td)
            self.input = nn.Linear(d, h)
            self.blocks = nn.ModuleList(Block(h, td) for _ in range(blocks))
            self.out_norm, self.output = nn.LayerNorm(h, eps=1e-5), nn.Linear(h, d)

        def forward(self, x, t):
            n = x.shape[0]
            temb = timestep_embedding(t, self.td, False, 1.0)
            # temb = SiLU(linear_2(SiLU(linear_1(emb)))), once; blocks use time_proj(temb).
            temb = F.silu(self.time_embedding.linear_2(F.silu(self.time_embedding.linear_1(temb))))
            h = self.input(x.reshape(n, -1))
            for b in self.blocks:
                r = F.silu(b.fc1(b.norm(h)) + b.time_proj(temb))
                h = h + b.fc2(r)
            return self.output(F.silu(self.out_norm(h))).reshape(x.shape)

    def nparams(m):
        return sum(p.numel() for p in m.parameters())

    def make_mlp():
        seed_all(args.seed)
        m = Mlp()
        assert nparams(m) == MLP_PARAMS, f"MLP has {nparams(m)} parameters, expected {MLP_PARAMS}"
        return m, (lambda x, t: m(x, t))

    def make_unet(config, expected):
        from diffusers import UNet2DModel

        seed_all(args.seed)
        m = UNet2DModel(**config)
        heads = {mod.heads for name, mod in m.named_modules() if type(mod).__name__ == "Attention"}
        assert heads == {1}, f"attention heads {heads}, expected one head per block"
        assert nparams(m) == expected, f"U-Net has {nparams(m)} parameters, expected {expected}"
        return m, (lambda x, t: m(x, t).sample)

    # ---- workloads ----------------------------------------------------------------

    out = {}
    details = {}
    params = {}

    def nfe(key, make, shape, warmup, reps, block_s):
        model, fwd = make()
        model.eval()
        seed_all(args.seed + 1)
        x = torch.randn(*shape)
        t = torch.full((shape[0],), 500, dtype=torch.long)
        with torch.inference_mode():
            sec, d = timer.run(lambda: fwd(x, t), warmup=warmup, reps=reps, block_s=block_s)
        out[key] = sec * 1e3
        details[key] = dict(batch=shape[0], input_shape=list(shape), t=500, **d)
        log(f"{key}: {sec * 1e3:.3f} ms (batch {shape[0]}; {sec * 1e6 / shape[0]:.2f} µs/sample) {fmt(d)}")
        return model

    def train(key, make, sample_shape, batch, warmup, reps, block_s):
        model, fwd = make()
        model.train()
        seed_all(args.seed + 2)
        ps = [p for p in model.parameters()]
        ema = [p.detach().clone() for p in ps]
        lr, warm, ema_decay, clip = 1e-3, 200, 0.999, 1.0
        opt = torch.optim.AdamW(ps, lr=lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
        betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
        abar = torch.cumprod(1.0 - betas, 0)
        sqrt_ab, sqrt_1mab = abar.sqrt().float(), (1.0 - abar).sqrt().float()
        view = (batch,) + (1,) * len(sample_shape)
        k = [0]
        losses = []

        def step():
            x0 = torch.rand(batch, *sample_shape) * 2 - 1
            t = torch.randint(0, 1000, (batch,))
            eps = torch.randn(batch, *sample_shape)
            x_t = sqrt_ab[t].view(view) * x0 + sqrt_1mab[t].view(view) * eps
            loss = F.mse_loss(fwd(x_t, t), eps)
            value = loss.item()
            if not math.isfinite(value):
                raise FloatingPointError(f"{key}: non-finite loss at step {k[0]}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(ps, clip)
            for g in opt.param_groups:
                g["lr"] = lr * (k[0] + 1) / warm if k[0] < warm else lr
            opt.step()
            d = min(ema_decay, (1 + k[0]) / (10 + k[0]))
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in ps], 1.0 - d)
            k[0] += 1
            losses.append(value)

        sec, d = timer.run(step, warmup=warmup, reps=reps, block_s=block_s)
        out[key] = batch / sec
        details[key] = dict(
            batch=batch,
            sample_shape=list(sample_shape),
            steps_per_s=1.0 / sec,
            ms_per_step=sec * 1e3,
            steps_run=k[0],
            final_loss=statistics.fmean(losses[-20:]),
            **d,
        )
        log(f"{key}: {batch / sec:.0f} samples/s (batch {batch}; {sec * 1e3:.2f} ms/step) {fmt(d)}")

    def fmt(d):
        return f"[median of {d['reps']} reps x {d['calls_per_rep']} calls; min {d['min_ms']:.3f} max {d['max_ms']:.3f} ms]"

    def gemm():
        rows = []
        for name, m, n, k in GEMM_SHAPES:
            seed_all(args.seed + 3)
            a, b = torch.randn(m, k), torch.randn(k, n)
            c = torch.empty(m, n)
            flop = 2.0 * m * n * k
            sec, d = timer.run(lambda: torch.mm(a, b, out=c), warmup=2, reps=7, block_s=0.2)
            rows.append(dict(name=name, m=m, n=n, k=k, ms=sec * 1e3, gflops=flop / sec / 1e9, min_ms=d["min_ms"], reps=d["reps"], calls_per_rep=d["calls_per_rep"]))
            log(f"gemm {name} m={m} n={n} k={k}: {sec * 1e3:.3f} ms, {flop / sec / 1e9:.1f} GFLOP/s {fmt(d)}")
        out["gemm"] = rows

    def empirical_oracle():
        # ddimlab's empirical oracle (src/model/empirical.rs) in float64: the training set
        # smoothed by N(0, h²I), here N = 1,297 points in d = 64 laid out as the Rust side's
        # (p_i = ((i · 7919) mod 1000) / 500 − 1), h = 0.2, 2,000 rows of x_t at t = 500.
        n_pts, d, h, rows, t = 1297, 64, 0.2, 2000, 500
        idx = torch.arange(n_pts * d, dtype=torch.float64)
        pts = ((idx * 7919) % 1000 / 500 - 1).reshape(n_pts, d)
        sq = (pts * pts).sum(1)
        betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
        a = float(torch.cumprod(1.0 - betas, 0)[t])
        v = a * h * h + 1 - a
        seed_all(args.seed + 4)
        x = torch.randn(rows, d, dtype=torch.float64)

        def eps():
            r = torch.softmax((a ** 0.5 * (x @ pts.T) - 0.5 * a * sq) / v, dim=1)
            mean = (1 - a * h * h / v) * (r @ pts) + (a ** 0.5 * h * h / v) * x
            return (x - a ** 0.5 * mean) / (1 - a) ** 0.5

        with torch.inference_mode():
            sec, d_ = timer.run(eps, warmup=3, reps=15, block_s=0.2)
        out["oracle_digits_nfe_ms"] = sec * 1e3
        details["oracle_digits_nfe_ms"] = dict(batch=rows, points=n_pts, dim=d, t=t, **d_)
        log(f"oracle_digits_nfe_ms: {sec * 1e3:.3f} ms (batch {rows}) {fmt(d_)}")

    mlp_make = make_mlp
    unet_make = lambda: make_unet(DIGITS_UNET, UNET_DIGITS_PARAMS)  # noqa: E731
    cifar_make = lambda: make_unet(CIFAR_UNET, CIFAR_PARAMS)  # noqa: E731

    for row in args.rows:
        t0 = time.perf_counter()
        if row == "mlp_nfe_ms":
            params["mlp"] = nparams(nfe(row, mlp_make, (500, 64), warmup=20, reps=15, block_s=0.05))
        elif row == "mlp_train_samples_per_s":
            train(row, mlp_make, (64,), 256, warmup=20, reps=9, block_s=0.25)
            params["mlp"] = MLP_PARAMS
        elif row == "unet_digits_nfe_ms":
            params["unet_digits"] = nparams(nfe(row, unet_make, (500, 1, 8, 8), warmup=2, reps=9, block_s=0.3))
        elif row == "oracle_digits_nfe_ms":
            empirical_oracle()
        elif row == "unet_digits_train_samples_per_s":
            train(row, unet_make, (1, 8, 8), 64, warmup=3, reps=7, block_s=0.5)
            params["unet_digits"] = UNET_DIGITS_PARAMS
        elif row == "cifar_nfe_ms_b1":
            params["cifar"] = nparams(nfe(row, cifar_make, (1, 3, 32, 32), warmup=2, reps=7, block_s=0.3))
        elif row == "cifar_nfe_ms_b8":
            params["cifar"] = nparams(nfe(row, cifar_make, (8, 3, 32, 32), warmup=1, reps=5, block_s=0.0))
        elif row == "gemm":
            gemm()
        log(f"  ({row}: {time.perf_counter() - t0:.1f} s)")

    import diffusers

    result = {
        "schema": 1,
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "quick": args.quick,
        "seed": args.seed,
        "rows": args.rows,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
        "loadavg_1min_at_start": load,
        "optimizer": "torch.optim.AdamW defaults for CPU tensors (single-tensor loop), clip_grad_norm_, EMA by torch._foreach_lerp_",
    }
    result.update(out)
    result["params"] = params
    result["details"] = details
    result["wall_s"] = time.perf_counter() - started
    return result


if __name__ == "__main__":
    # Keep stdout for the JSON alone: point file descriptor 1 (and sys.stdout) at stderr
    # while working, so that whatever Python or native code prints lands there.
    cli = parse_args(sys.argv[1:])  # --help and usage errors print as usual
    if cli.list:
        print("\n".join(ROWS))
        sys.exit(0)
    sys.stdout.flush()
    json_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        res = main(cli)
    except SystemExit:
        raise
    except BaseException:
        traceback.print_exc()
        log("torch_bench.py: failed; no JSON written")
        sys.exit(1)
    with os.fdopen(json_fd, "w") as f:
        f.write(json.dumps(res) + "\n")
