"""Extra (Q1/Q2): for MMD^2 (RBF) and KID, compare the bootstrap sd with the first-order
(Hoeffding projection) sd and a mixture sqrt((2 V_lin + V_boot) / 3), which is exact when the
statistic is a linear part plus a degenerate quadratic part (the bootstrap counts the quadratic
part's variance three times, the projection not at all).

Marginal:  V_lin = 4 var_i(h_x(i)) / n + 4 var_j(h_y(j)) / m,
           h_x(i) = mean_{i'!=i} K_xx[i,i'] - mean_j K_xy[i,j],  h_y(j) = mean_{j'!=j} K_yy - mean_i K_xy[i,j].
Paired (A, B share row index i, R shared): Delta = U_AA - U_BB - 2 (V_AR - V_BR),
           h(i) = mean_{i'!=i}(K_AA - K_BB)[i,i'] - mean_j (K_AR - K_BR)[i,j],
           g(j) = mean_i (K_AR - K_BR)[i,j];  V_lin = 4 var(h)/n + 4 var(g)/m.
usage: linvar.py SETTING R OUT.npz"""
import sys
import time

import numpy as np

import common as cm
from worker import bandwidth2

s, R, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
st = cm.SETTINGS[s]
sid = cm.SETTING_IDS[s]
d, n, m, B = st["d"], st["n"], st["m"], 200
model = cm.Model(st["data"], d)
h2 = bandwidth2(model)
c0 = np.exp(-1.0)
PTS = ["same", "s08", "s11", "pert", "floor"]
PAIRS = [("same", "pert"), ("same", "s08"), ("same", "s11"), ("s08", "s11"), ("same", "floor")]


def offdiag_rowmean(K, diag):
    return (K.sum(-1, dtype=np.float64) - diag) / (K.shape[-1] - 1)


def offdiag_rowvar(K, diag):
    """variance of each row's off-diagonal entries (2, n)."""
    n_ = K.shape[-1]
    s1 = K.sum(-1, dtype=np.float64) - diag
    s2 = (K.astype(np.float64) ** 2).sum(-1) - diag ** 2
    return (s2 - s1 ** 2 / (n_ - 1)) / (n_ - 2)


def rowvar(K, axis):
    return K.astype(np.float64).var(axis, ddof=1)


res = {}
t0 = time.time()
for r in range(R):
    rng = np.random.default_rng([5000, sid, r])
    ref = model.sample_P(rng, m)
    pts = model.points(rng, n)
    rb = np.random.default_rng([5001, sid, r])
    Cx1 = cm.with_ones(cm.boot_counts(rb, n, B))
    Cy1 = cm.with_ones(cm.boot_counts(rb, m, B))
    mu = ref.mean(0)
    y = ref - mu
    Ky = cm.gram_kernels(y, y, h2, d, c0)
    ay = (y * y).sum(1) / d
    dy = np.vstack([np.full(m, 1 - c0), (ay + 1) ** 3 - 1])
    Tyy = cm.mmd_terms_xx(Ky, Cy1, dy) / (m * (m - 1))
    ryy = offdiag_rowmean(Ky, dy)  # (2, m)
    vyy = offdiag_rowvar(Ky, dy)
    del Ky
    rowAA, rowAR, colAR, mm, KAA, KAR, diags = {}, {}, {}, {}, {}, {}, {}
    for k in PTS:
        X = pts[k] - mu
        Kx = cm.gram_kernels(X, X, h2, d, c0)
        ax = (X * X).sum(1) / d
        dx = np.vstack([np.full(n, 1 - c0), (ax + 1) ** 3 - 1])
        Txx = cm.mmd_terms_xx(Kx, Cx1, dx) / (n * (n - 1))
        rowAA[k] = offdiag_rowmean(Kx, dx)
        KAA[k], diags[k] = Kx, dx
        Kxy = cm.gram_kernels(X, y, h2, d, c0)
        Txy = cm.mmd_terms_xy(Kxy, Cx1, Cy1) / (n * m)
        rowAR[k] = Kxy.mean(-1, dtype=np.float64)
        colAR[k] = Kxy.mean(-2, dtype=np.float64)
        KAR[k] = Kxy
        mm[k] = Txx + Tyy - 2 * Txy  # (2, B+1)
        vx = (rowAA[k] - rowAR[k]).var(-1, ddof=1)
        vy = (ryy - colAR[k]).var(-1, ddof=1)
        vlin = 4 * vx / n + 4 * vy / m
        nx = (offdiag_rowvar(Kx, dx) / (n - 1) + rowvar(Kxy, -1) / m).mean(-1)
        ny = (vyy / (m - 1) + rowvar(Kxy, -2) / n).mean(-1)
        vlin_u = 4 * np.maximum(vx - nx, 0) / n + 4 * np.maximum(vy - ny, 0) / m
        res.setdefault(f"est/{k}", []).append(mm[k])
        res.setdefault(f"vlin/{k}", []).append(vlin)
        res.setdefault(f"vlinu/{k}", []).append(vlin_u)
    for A, Bp in PAIRS:
        h = (rowAA[A] - rowAA[Bp]) - (rowAR[A] - rowAR[Bp])
        g = colAR[A] - colAR[Bp]
        vh, vg = h.var(-1, ddof=1), g.var(-1, ddof=1)
        vlin = 4 * vh / n + 4 * vg / m
        DK = KAA[A] - KAA[Bp]
        DR = KAR[A] - KAR[Bp]
        nh = (offdiag_rowvar(DK, diags[A] - diags[Bp]) / (n - 1) + rowvar(DR, -1) / m).mean(-1)
        ng = (rowvar(DR, -2) / n).mean(-1)
        vlin_u = 4 * np.maximum(vh - nh, 0) / n + 4 * np.maximum(vg - ng, 0) / m
        res.setdefault(f"vlin/{A}-{Bp}", []).append(vlin)
        res.setdefault(f"vlinu/{A}-{Bp}", []).append(vlin_u)
    del KAA, KAR
    if r % 20 == 0:
        print(s, r, f"{time.time() - t0:.0f}s", flush=True)
    if r % 25 == 24 or r == R - 1:
        np.savez(out, **{k: np.array(v) for k, v in res.items()})
