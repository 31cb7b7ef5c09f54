"""Large-sample unbiased MMD^2 (RBF, median bandwidth as in worker.py) and KID of each point vs P
(n = m = 8000, mean of 3 independent draws) for digits64 and features128 -> mmdpop.json (Q3)."""
import json
import numpy as np
import common as cm
from worker import bandwidth2

out = {}
for data, d in (("digits", 64), ("features", 128)):
    model = cm.Model(data, d)
    h2 = bandwidth2(model)
    c = np.exp(-1.0)
    acc = {}
    for rep in range(3):
        rng = np.random.default_rng([9000, d, rep])
        N = 8000
        y = model.sample_P(rng, N)
        pts = model.points(rng, N)
        mu = y.mean(0)
        y = y - mu
        def tri(K, diag):  # sum over distinct pairs
            return K.sum(axis=(1, 2), dtype=np.float64) - diag
        Ky = cm.gram_kernels(y, y, h2, d, c)
        dy = np.array([N * (1 - c), (((y * y).sum(1) / d + 1) ** 3 - 1).sum()])
        tyy = tri(Ky, dy) / (N * (N - 1)); del Ky
        for k in ("s08", "s11", "shift", "pert", "same"):
            X = pts[k] - mu
            Kx = cm.gram_kernels(X, X, h2, d, c)
            dx = np.array([N * (1 - c), (((X * X).sum(1) / d + 1) ** 3 - 1).sum()])
            txx = tri(Kx, dx) / (N * (N - 1)); del Kx
            Kxy = cm.gram_kernels(X, y, h2, d, c)
            txy = Kxy.sum(axis=(1, 2), dtype=np.float64) / (N * N); del Kxy
            acc.setdefault(k, []).append(txx + tyy - 2 * txy)
    for k, v in acc.items():
        v = np.array(v)
        out[f"{data}{d}/{k}"] = dict(mmd=float(v[:, 0].mean()), kid=float(v[:, 1].mean()),
                                    mmd_se=float(v[:, 0].std(ddof=1) / np.sqrt(len(v))), kid_se=float(v[:, 1].std(ddof=1) / np.sqrt(len(v))))
        print(data, k, out[f"{data}{d}/{k}"], flush=True)
json.dump(out, open("mmdpop.json", "w"), indent=1)
