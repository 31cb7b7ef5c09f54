#!/usr/bin/env python3
"""The digits MLP of experiments/digits.yaml (hidden 128, 2 blocks, 64-d time embedding,
LayerNorm; same layout as src/model/mlp.rs) timed with PyTorch on the CPU, for comparison
with `make bench` (results/benchmarks.md). Not part of the tests.

    pip install torch numpy   # CPU wheels
    python3 scripts/bench_torch.py
"""
import math
import time

import torch
from torch import nn

D, H, TD, BLOCKS = 64, 128, 64, 2


def timestep_embedding(t, dim):
    # diffusers' get_timestep_embedding with flip_sin_to_cos=False, downscale_freq_shift=1
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(H)
        self.fc1, self.time_proj, self.fc2 = nn.Linear(H, H), nn.Linear(TD, H), nn.Linear(H, H)

    def forward(self, h, e):
        return h + self.fc2(nn.functional.silu(self.fc1(self.norm(h)) + self.time_proj(nn.functional.silu(e))))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(TD, TD), nn.Linear(TD, TD)
        self.input = nn.Linear(D, H)
        self.blocks = nn.ModuleList(Block() for _ in range(BLOCKS))
        self.out_norm, self.output = nn.LayerNorm(H), nn.Linear(H, D)

    def forward(self, x, t):
        e = self.linear_2(nn.functional.silu(self.linear_1(timestep_embedding(t, TD))))
        h = self.input(x)
        for b in self.blocks:
            h = b(h, e)
        return self.output(nn.functional.silu(self.out_norm(h)))


def main():
    torch.manual_seed(0)
    net = Mlp()
    params = sum(p.numel() for p in net.parameters())
    x, t = torch.randn(500, D), torch.full((500,), 500)
    with torch.no_grad():
        net(x, t)
        reps, start = 200, time.perf_counter()
        for _ in range(reps):
            net(x, t)
        per = (time.perf_counter() - start) / reps
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {params} parameters")
    print(f"NFE, batch 500: {per * 1e3:.2f} ms ({per * 1e6 / 500:.2f} µs / sample)")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0).float()
    steps, batch = 200, 256
    start = time.perf_counter()
    for _ in range(steps):
        x0 = torch.rand(batch, D) * 2 - 1
        tt = torch.randint(0, 1000, (batch,))
        eps = torch.randn(batch, D)
        a = abar[tt][:, None]
        loss = ((net(a.sqrt() * x0 + (1 - a).sqrt() * eps, tt) - eps) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    rate = steps * batch / (time.perf_counter() - start)
    print(f"training, batch {batch}: {rate:.0f} samples/s ({rate / batch:.1f} steps/s; no EMA)")


if __name__ == "__main__":
    main()
