"""Q4: unbiased MMD^2 (RBF) with n = 5000 generated vs m = 2000 reference rows (digits-like).

Estimators per repeat (points 'same' [MMD^2 = 0] and 's08'):
  full   : all-pairs unbiased MMD^2 on 5000 x 2000 rows, bootstrap B = 200 (normal, centred)
  reuse  : tool's old blocks: x cut into K = 3 consecutive near-equal blocks, each against
           the whole reference; mean of the 3 block estimates, +-1.96 sd(blocks)/sqrt(3)
           (also t_2 quantile 4.303 instead of 1.96)
  indep  : tool's new blocks: block k = rows floor(k n/K)..floor((k+1)n/K)-1 of x and the
           same share of y (disjoint); mean of 3; +-1.96 sd/sqrt(3), and a bootstrap normal
           interval from the same counts restricted to each block.
usage: q4_blocks.py R OUT.npz"""
import sys
import time

import numpy as np

import common as cm
from worker import bandwidth2

R, out = int(sys.argv[1]), sys.argv[2]
n, m, B, K = 5000, 2000, 200, 3
model = cm.Model("digits", 64)
d = 64
h2 = bandwidth2(model)
c0 = np.exp(-1.0)


def rbf(X, Y):
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    D2 = np.maximum((X32 * X32).sum(1)[:, None] + (Y32 * Y32).sum(1)[None] - 2 * X32 @ Y32.T, 0)
    K_ = np.exp(D2 * np.float32(-0.5 / h2))
    K_ -= np.float32(c0)
    return K_


def xx(Kxx, C):
    """sum over distinct draws for count rows C: (nb,)"""
    KC = (Kxx @ C.T.astype(np.float32)).astype(np.float64)
    return np.einsum("ib,bi->b", KC, C.astype(np.float64)) - (1 - c0) * C.sum(1)


def xy(Kxy, Cx, Cy):
    KC = (Kxy @ Cy.T.astype(np.float32)).astype(np.float64)
    return np.einsum("ib,bi->b", KC, Cx.astype(np.float64))


def unb(txx, nx, tyy, ny, txy):
    return txx / (nx * (nx - 1)) + tyy / (ny * (ny - 1)) - 2 * txy / (nx * ny)


bx = [(k * n) // K for k in range(K + 1)]
by = [(k * m) // K for k in range(K + 1)]
res = {}
t0 = time.time()
for r in range(R):
    rng = np.random.default_rng([4000, r])
    ref = model.sample_P(rng, m)
    pts = model.points(rng, n)
    rb = np.random.default_rng([4001, r])
    Cx = cm.with_ones(cm.boot_counts(rb, n, B))
    Cy = cm.with_ones(cm.boot_counts(rb, m, B))
    mu = ref.mean(0)
    ref = ref - mu
    Kyy = rbf(ref, ref)
    tyy = xx(Kyy, Cy)
    tyy_blk = [xx(Kyy[by[k]:by[k + 1], by[k]:by[k + 1]], Cy[:, by[k]:by[k + 1]]) for k in range(K)]
    for name in ("same", "s08"):
        X = pts[name] - mu
        Kxx = rbf(X, X)
        Kxy = rbf(X, ref)
        full = unb(xx(Kxx, Cx), n, tyy, m, xy(Kxy, Cx, Cy))
        # reuse blocks (estimate only)
        reuse = []
        for k in range(K):
            s = slice(bx[k], bx[k + 1])
            nk = bx[k + 1] - bx[k]
            reuse.append(unb(xx(Kxx[s, s], np.ones((1, nk), np.int32))[0], nk, tyy[0], m, Kxy[s].sum()))
        # independent blocks, with bootstrap (counts restricted to the block)
        ind = []
        for k in range(K):
            s, t = slice(bx[k], bx[k + 1]), slice(by[k], by[k + 1])
            cx, cy = Cx[:, s], Cy[:, t]
            ind.append(unb(xx(Kxx[s, s], cx), cx.sum(1), tyy_blk[k], cy.sum(1), xy(Kxy[s, t], cx, cy)))
        res.setdefault(f"full/{name}", []).append(full)
        res.setdefault(f"reuse/{name}", []).append(np.array(reuse))
        res.setdefault(f"indep/{name}", []).append(np.array(ind))  # (K, B+1)
    if r % 10 == 0:
        print(r, f"{time.time() - t0:.0f}s", flush=True)
    if r % 25 == 24 or r == R - 1:
        np.savez(out, **{k: np.array(v) for k, v in res.items()})
