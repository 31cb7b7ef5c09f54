"""Population Frechet distances of every point to P (closed form for Gaussians; for digits and
features from 1,000,000 draws of each, mean term bias-corrected).  -> popfd.json"""
import json
import numpy as np
import common as cm

out = {}
for data, d in [("gauss", 2), ("gauss", 64), ("gauss", 128), ("digits", 64), ("features", 128)]:
    model = cm.Model(data, d)
    N = 1_000_000
    my, Sy = cm.population_moments(model, "ref", N=N, seed=7011)
    for k in cm.POINTS:
        if k in ("same", "floor"):
            out[f"{data}{d}/{k}"] = 0.0
            continue
        mx, Sx = cm.population_moments(model, k, N=N, seed=7012)
        fd = cm.fd_gauss(mx, Sx, my, Sy)
        if data != "gauss":
            fd -= (np.trace(Sx) + np.trace(Sy)) / N
        out[f"{data}{d}/{k}"] = fd
        print(data, d, k, fd, flush=True)
    out[f"{data}{d}/trace"] = float(np.trace(Sy))
json.dump(out, open("popfd.json", "w"), indent=1)
