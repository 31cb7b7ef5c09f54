#!/usr/bin/env python3
"""Coverage of bootstrap intervals for the reconstruction errors of a real run (numpy, h5py).

Why ddimlab compares reconstruction and consistency errors with a sign test instead of the
bootstrap of their mean (README "Intervals"). For pairs of consecutive S of one experiment,
the per-row reconstruction MSEs (clamped to [-1, 1] for image data, on the [0, 1] scale) of
the saved run are taken as the population; each repeat draws n rows jointly (with
replacement) and makes the normal bootstrap interval (B = 200) of the mean (marginal, and the
paired difference of the two S) and of the mean log error. Coverage = share of repeats whose
interval holds the population value.

    python scripts/coverage_study/row_means.py results   # after `make sweep`; needs numpy, h5py
"""

import sys
from pathlib import Path

import h5py
import numpy as np

RNG = np.random.default_rng(0)
CASES = [
    ("digits_oracle", "linear_eta0.0_S10", "linear_eta0.0_S20"),
    ("digits_oracle", "linear_eta0.0_S50", "linear_eta0.0_S100"),
    ("digits_oracle", "linear_eta0.0_S100", "linear_eta0.0_S1000"),
    ("digits_unet", "linear_eta0.0_S10", "linear_eta0.0_S20"),
    ("digits", "linear_eta0.0_S50", "linear_eta0.0_S100"),
    ("gmm2d", "linear_eta0.0_S50", "linear_eta0.0_S100"),
    ("gmm2d", "linear_eta0.0_S100", "linear_eta0.0_S1000"),
]


def row_errors(results: Path, exp: str, point: str) -> np.ndarray:
    with h5py.File(results / exp / "samples.h5", "r") as f:
        r = f["reconstruction"][point]
        a, b = r["inputs"][()], r["outputs"][()]
    if exp.startswith("digits"):
        a, b = np.clip(a, -1, 1), np.clip(b, -1, 1)
    n = a.shape[0]
    return (((a - b) / 2.0) ** 2).reshape(n, -1).mean(axis=1)


def skewness(v: np.ndarray) -> float:
    return float(((v - v.mean()) ** 3).mean() / v.std() ** 3)


def coverage(pop_a, pop_b, n, f, repeats=400, b=200):
    """(marginal, paired) coverage of the normal interval of mean f(row)."""
    ta, td = f(pop_a).mean(), (f(pop_a) - f(pop_b)).mean()
    hit_a = hit_d = 0
    for _ in range(repeats):
        idx = RNG.integers(0, len(pop_a), n)
        a, d = f(pop_a[idx]), f(pop_a[idx]) - f(pop_b[idx])
        w = RNG.multinomial(n, np.ones(n) / n, size=b) / n
        hit_a += abs(a.mean() - ta) <= 1.96 * (w @ a).std(ddof=1)
        hit_d += abs(d.mean() - td) <= 1.96 * (w @ d).std(ddof=1)
    return hit_a / repeats, hit_d / repeats


def main(results: Path) -> None:
    print("| experiment | S → S' | rows | skewness | largest row ÷ mean | mean: marginal | mean: paired | mean log: marginal | mean log: paired |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for exp, p, q in CASES:
        a, b = row_errors(results, exp, p), row_errors(results, exp, q)
        m, l = coverage(a, b, len(a), lambda x: x), coverage(a, b, len(a), np.log)
        s = lambda k: k.split("_S")[1]
        print(f"| {exp} | {s(p)} → {s(q)} | {len(a)} | {skewness(a):.1f} | {a.max() / a.mean():.0f} | "
              f"{100 * m[0]:.1f} % | {100 * m[1]:.1f} % | {100 * l[0]:.1f} % | {100 * l[1]:.1f} % |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results"))
