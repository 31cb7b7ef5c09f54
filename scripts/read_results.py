#!/usr/bin/env python3
"""Read a ddimlab results folder from Python (an example, and documentation of the layout).

    pip install polars h5py numpy
    python scripts/read_results.py results/gmm2d

metrics.parquet (same content as metrics.csv): one row per sweep point, columns
point_id, tau, eta (as written in the YAML, e.g. "0.2" or "sigma_hat"), eta_value
(NaN for sigma_hat), steps (S asked for), nfe (model evaluations actually made),
clip_x0, seconds, model_seconds, diverged, then one float column per metric
(null where a point has no such metric) and its _lo / _hi interval ends.

bootstrap.parquet: every bootstrap replicate, long (point_id, metric, replicate,
value); replicate b of every point (and of the floor, point_id "noise_floor")
uses the same resamples, so differences are taken replicate by replicate.

rows.parquet: the per-row values of the errors that are means over rows every point
shares, long (point_id, metric, row, value): recon_mse over the held-out rows,
consistency_mse (and consistency_exact_mse) over the samples from x_T; two points are
compared row by row (the report's sign test).

samples.h5: root attributes experiment, config (the YAML as run), seed,
ddimlab_version; /points/<point_id>/ with attributes tau, eta, steps, nfe,
timesteps and float32 datasets latents [n, ...], samples [n, ...] and optional
trajectory [len(timesteps) + 1, m, ...]; /reconstruction/<point_id>/ with
inputs, latents and outputs [r, ...].
"""

import sys
from pathlib import Path

import h5py
import numpy as np
import polars as pl


def paired_vectors(path: Path, index: str, a: str, c: str):
    """Per metric of a long table (bootstrap.parquet by `replicate`, rows.parquet by `row`),
    the vectors of points a and c in index order."""
    long = pl.read_parquet(path)
    for metric in long["metric"].unique().sort():
        vector = lambda p: long.filter((pl.col("point_id") == p) & (pl.col("metric") == metric)).sort(index)["value"].to_numpy()
        yield metric, vector(a), vector(c)


def main(folder: Path) -> None:
    metrics = pl.read_parquet(folder / "metrics.parquet")
    print(metrics)
    if metrics.height >= 2:
        a, c = metrics["point_id"][0], metrics["point_id"][1]
        boot = folder / "bootstrap.parquet"
        if boot.exists():
            for metric, x, y in paired_vectors(boot, "replicate", a, c):
                delta = x - y
                if len(delta) > 1:
                    print(f"{metric}: {a} - {c}: paired bootstrap sd {delta.std(ddof=1):.4g}")
        rows = folder / "rows.parquet"
        if rows.exists():
            for metric, x, y in paired_vectors(rows, "row", a, c):
                if len(x) == len(y) and len(x) > 0:
                    d = x - y
                    print(f"{metric}: {a} - {c}: {np.sum(d > 0)} rows up, {np.sum(d < 0)} down, median {np.median(d):.4g}")

    with h5py.File(folder / "samples.h5", "r") as f:
        print(f"experiment {f.attrs['experiment']!r}, seed {f.attrs['seed']}, "
              f"ddimlab {f.attrs['ddimlab_version']}")
        print("config:\n" + f.attrs["config"])
        for point_id, g in f["points"].items():
            samples = g["samples"][()]  # numpy float32 array [n, ...]
            line = (f"{point_id}: tau={g.attrs['tau']} eta={g.attrs['eta']} steps={g.attrs['steps']} "
                    f"nfe={g.attrs['nfe']} timesteps={g.attrs['timesteps'].tolist()} "
                    f"samples {samples.shape} mean {samples.mean():.4f}")
            if "trajectory" in g:
                line += f", trajectory {g['trajectory'].shape}"
            if point_id in f["reconstruction"]:
                r = f["reconstruction"][point_id]
                err = np.mean((r["outputs"][()] - r["inputs"][()]) ** 2)
                line += f", reconstruction MSE ([-1, 1] scale) {err:.3g} over {r['inputs'].shape[0]} items"
            print(line)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: read_results.py RESULTS_FOLDER")
    main(Path(sys.argv[1]))
