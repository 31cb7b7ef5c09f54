"""Shared pieces of the coverage study: data generators, count-weighted statistics
(FD plug-in + jackknife / Chong-Forsyth FD-infinity, unbiased MMD^2 RBF, KID, SWD),
and interval formulas.  Everything is seeded; see REPORT.md."""
import gzip
import os

import numpy as np

B_DEFAULT = 200
POINTS = ["same", "s08", "s11", "shift", "pert", "floor"]
DIGITS_CSV = "/work/main/src/data/digits.csv.gz"

SETTINGS = {}
for data, d in [("gauss", 2), ("gauss", 64), ("gauss", 128), ("digits", 64), ("features", 128)]:
    for n, m in [(2000, 2000), (500, 1297)]:
        SETTINGS[f"{data}{d}_{n}v{m}"] = dict(data=data, d=d, n=n, m=m)
SETTING_IDS = {k: i for i, k in enumerate(SETTINGS)}


# ----------------------------------------------------------------------------- data
_TRAIN = None


def digits_train():
    global _TRAIN
    if _TRAIN is None:
        with gzip.open(DIGITS_CSV, "rt") as f:
            a = np.loadtxt(f, delimiter=",")
        _TRAIN = (a[:1297, :64] / 8.0 - 1.0).astype(np.float64)
    return _TRAIN


class Model:
    """Generates the reference and the six points of one repeat with shared latents."""

    def __init__(self, data, d):
        self.data, self.d = data, d
        if data == "gauss":
            g = np.random.default_rng([7001, d])
            lam = 1.0 / np.arange(1, d + 1)
            U, _ = np.linalg.qr(g.standard_normal((d, d)))
            self.lam, self.U = lam, U
            self.L = U * np.sqrt(lam)  # Sigma = L L^T
            self.delta = U @ (0.25 * np.sqrt(lam))  # mean shift, ||delta||^2 = 0.0625 Tr Sigma
            # points that are exact affine images a*same + b (used to share FD sums)
            self.affine = {"s08": (0.8, 0.0), "s11": (1.1, 0.0), "shift": (1.0, self.delta)}
        else:
            self.T = digits_train()
            self.affine = {}
            if data == "features":
                g = np.random.default_rng(7002)
                self.W = g.standard_normal((128, 64)) / 8.0  # N(0, 1/64)
                self.b = 0.1 * g.standard_normal(128)
        # fixed per setting: 128 SWD directions
        g = np.random.default_rng([7003, d])
        th = g.standard_normal((d, 128))
        self.theta = th / np.linalg.norm(th, axis=0, keepdims=True)

    def _feat(self, x):
        if self.data == "features":
            return np.tanh(x @ self.W.T + self.b)
        return x

    def sample_P(self, rng, n):
        if self.data == "gauss":
            return rng.standard_normal((n, self.d)) @ self.L.T
        k = rng.integers(0, len(self.T), n)
        z = rng.standard_normal((n, 64))
        return self._feat(np.clip(self.T[k] + 0.2 * z, -1, 1))

    def points(self, rng, n):
        """dict name -> n x d array; all but 'floor' share latents."""
        out = {}
        if self.data == "gauss":
            z = rng.standard_normal((n, self.d))
            x = z @ self.L.T
            out["same"] = x
            out["s08"] = 0.8 * x
            out["s11"] = 1.1 * x
            out["shift"] = x + self.delta
            out["pert"] = x + 0.1 * (rng.standard_normal((n, self.d)) @ self.L.T)
            out["floor"] = rng.standard_normal((n, self.d)) @ self.L.T
        else:
            k = rng.integers(0, len(self.T), n)
            z = rng.standard_normal((n, 64))
            base = self.T[k]
            f = self._feat
            out["same"] = f(np.clip(base + 0.2 * z, -1, 1))
            out["s08"] = f(np.clip(base + 0.16 * z, -1, 1))
            out["s11"] = f(np.clip(base + 0.22 * z, -1, 1))
            out["shift"] = f(np.clip(base + 0.2 * z + 0.1, -1, 1))
            out["pert"] = f(np.clip(base + 0.2 * z + 0.05 * rng.standard_normal((n, 64)), -1, 1))
            k2 = rng.integers(0, len(self.T), n)
            out["floor"] = f(np.clip(self.T[k2] + 0.2 * rng.standard_normal((n, 64)), -1, 1))
        return out


def population_moments(model, name, N=400_000, seed=7010):
    """Mean and covariance of a point's distribution (closed form for Gaussians, else from N draws)."""
    d = model.d
    if model.data == "gauss":
        S = model.L @ model.L.T
        if name in ("same", "floor", "ref"):
            return np.zeros(d), S
        if name == "s08":
            return np.zeros(d), 0.64 * S
        if name == "s11":
            return np.zeros(d), 1.21 * S
        if name == "shift":
            return model.delta.copy(), S
        if name == "pert":
            return np.zeros(d), 1.01 * S
    rng = np.random.default_rng([seed, d, {'digits': 1, 'features': 2}[model.data]])
    s1 = np.zeros(d)
    s2 = np.zeros((d, d))
    tot = 0
    for _ in range(N // 50_000):
        if name in ("ref", "floor"):
            x = model.sample_P(rng, 50_000)
        else:
            x = model.points(rng, 50_000)[name]
        s1 += x.sum(0)
        s2 += x.T @ x
        tot += len(x)
    mu = s1 / tot
    return mu, (s2 - tot * np.outer(mu, mu)) / (tot - 1)


def fd_gauss(mu1, S1, mu2, S2):
    L = np.linalg.cholesky(S2)
    ev = np.linalg.eigvalsh(L.T @ S1 @ L)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(S1) + np.trace(S2) - 2 * np.sum(np.sqrt(np.clip(ev, 0, None))))


# ----------------------------------------------------------------------------- counts
def boot_counts(rng, n, B):
    """(B, n) multinomial counts from B resamples with replacement (via indices)."""
    idx = rng.integers(0, n, (B, n))
    off = (np.arange(B)[:, None] * n + idx).ravel()
    return np.bincount(off, minlength=B * n).reshape(B, n).astype(np.int32)


def with_ones(C):
    return np.vstack([np.ones((1, C.shape[1]), C.dtype), C])


# ----------------------------------------------------------------------------- FD
class Moments:
    """Count-weighted sums for B+1 count rows C (row 0 = ones), centred at the sample mean.

    S[b] = sum_i c_bi x0_i x0_i^T (upper triangle), s[b] = sum_i c_bi x0_i, N[b] = sum_i c_bi;
    the same per fixed contiguous index group (10 groups) in Sg, sg, Ng: for every row when
    groups=True, else for row 0 only."""

    G = 10

    def __init__(self, X=None, C=None, iu=None, groups=False):
        if X is None:
            return
        n, d = X.shape
        self.xbar = X.mean(0)
        X0 = X - self.xbar
        self.X0 = X0
        self.Z32 = (X0[:, iu[0]] * X0[:, iu[1]]).astype(np.float32)
        b = (np.arange(self.G + 1) * n) // self.G
        self.bounds = b
        Cf = C.astype(np.float32)
        Cd = C.astype(np.float64)
        sl = [slice(b[g], b[g + 1]) for g in range(self.G)]
        if groups:
            self.Sg = np.stack([(Cf[:, q] @ self.Z32[q]).astype(np.float64) for q in sl], 1)
            self.sg = np.stack([Cd[:, q] @ X0[q] for q in sl], 1)
            self.Ng = np.stack([Cd[:, q].sum(1) for q in sl], 1)
            self.S, self.s, self.N = self.Sg.sum(1), self.sg.sum(1), self.Ng.sum(1)
        else:
            self.S = (Cf @ self.Z32).astype(np.float64)
            self.s = Cd @ X0
            self.N = Cd.sum(1)
            self.Sg = np.stack([self.Z32[q].astype(np.float64).sum(0) for q in sl])[None]
            self.sg = np.stack([X0[q].sum(0) for q in sl])[None]
            self.Ng = np.array([[q.stop - q.start for q in sl]], np.float64)

    def affine(self, a, b):
        """Sums of a*X + b (same counts): exact, no new products."""
        o = Moments()
        o.xbar = a * self.xbar + b
        o.S, o.s, o.N = a * a * self.S, a * self.s, self.N
        o.Sg, o.sg, o.Ng = a * a * self.Sg, a * self.sg, self.Ng
        o.Z32, o.X0 = None, a * self.X0
        o._a = (self, a)
        return o

    def subset_sums(self, Ind):
        """sums for 0/1 indicator rows Ind (k, n): (S, s, N)."""
        if self.Z32 is None:
            base, a = self._a
            S, s, N = base.subset_sums(Ind)
            return a * a * S, a * s, N
        return (Ind.astype(np.float32) @ self.Z32).astype(np.float64), Ind.astype(np.float64) @ self.X0, Ind.sum(1).astype(np.float64)


def mean_cov(S, s, N, xbar, full_idx):
    """From sums (..., D), (..., d), (...) -> mean (..., d), cov (..., d, d) with divisor N-1."""
    mu0 = s / N[..., None]
    M = S[..., full_idx]  # (..., d, d)
    cov = (M - N[..., None, None] * mu0[..., :, None] * mu0[..., None, :]) / (N[..., None, None] - 1)
    return mu0 + xbar, cov


def chol_or_sqrt(Sy):
    """Factor F with F F^T = Sy (Cholesky; symmetric sqrt fallback if not PD)."""
    try:
        return np.linalg.cholesky(Sy)
    except np.linalg.LinAlgError:
        w, V = np.linalg.eigh(Sy)
        return (V * np.sqrt(np.clip(w, 0, None))[..., None, :]) @ np.swapaxes(V, -1, -2)


def fd_from(mx, Sx, my, Fy, trSy):
    """Frechet distance, batched: ||mx-my||^2 + Tr Sx + Tr Sy - 2 sum sqrt eig(Fy^T Sx Fy)."""
    M = np.swapaxes(Fy, -1, -2) @ Sx @ Fy
    ev = np.linalg.eigvalsh(M)
    trs = np.sqrt(np.clip(ev, 0, None)).sum(-1)
    return ((mx - my) ** 2).sum(-1) + np.trace(Sx, axis1=-2, axis2=-1) + trSy - 2 * trs


def leave_out_sums(Mo, G):
    """Sums after deleting each of G groups (G in 2,5,10; unions of the 10 base groups), for
    the rows that have group sums. returns S (nbg, G, D), s (nbg, G, d), N (nbg, G)."""
    k = 10 // G
    nbg = Mo.Sg.shape[0]
    Sg = Mo.Sg.reshape(nbg, G, k, -1).sum(2)
    sg = Mo.sg.reshape(nbg, G, k, -1).sum(2)
    Ng = Mo.Ng.reshape(nbg, G, k).sum(2)
    return Mo.S[:nbg, None] - Sg, Mo.s[:nbg, None] - sg, Mo.N[:nbg, None] - Ng


# ----------------------------------------------------------------------------- MMD
def gram_kernels(X, Y, h2, d, c_rbf):
    """RBF (minus constant c_rbf) and cubic-poly (minus 1) kernel blocks, float32, stacked (2, nx, ny)."""
    X32, Y32 = X.astype(np.float32), Y.astype(np.float32)
    G = X32 @ Y32.T
    nx2 = (X32 * X32).sum(1)
    ny2 = (Y32 * Y32).sum(1)
    D2 = np.maximum(nx2[:, None] + ny2[None, :] - 2 * G, 0)
    K = np.empty((2,) + G.shape, np.float32)
    np.exp(D2 * np.float32(-0.5 / h2), out=K[0])
    K[0] -= np.float32(c_rbf)
    a = G / np.float32(d)
    K[1] = a * (3 + a * (3 + a))  # (a+1)^3 - 1
    return K


def mmd_terms_xx(K, C, diag):
    """sum over ordered pairs of distinct draws, for count rows C (nb, n): (2, nb)."""
    n = K.shape[1]
    KC = K.reshape(2 * n, n) @ C.T.astype(np.float32)  # (2n, nb)
    KC = KC.reshape(2, n, -1).astype(np.float64)
    Cd = C.astype(np.float64)
    quad = np.einsum("kib,bi->kb", KC, Cd)
    return quad - (Cd @ diag.T).T  # diag (2, n)


def mmd_terms_xy(K, Cx, Cy):
    nx, ny = K.shape[1], K.shape[2]
    KC = K.reshape(2 * nx, ny) @ Cy.T.astype(np.float32)
    KC = KC.reshape(2, nx, -1).astype(np.float64)
    return np.einsum("kib,bi->kb", KC, Cx.astype(np.float64))


# ----------------------------------------------------------------------------- SWD
import ctypes

_lib = ctypes.CDLL(os.path.join(os.path.dirname(os.path.abspath(__file__)), "swd_c.so"))
_dp = np.ctypeslib.ndpointer(np.float64, flags="C_CONTIGUOUS")
_ip = np.ctypeslib.ndpointer(np.int32, flags="C_CONTIGUOUS")
_lib.swd_w2.argtypes = [ctypes.c_int] * 4 + [_dp, _ip, _ip, _dp, _ip, _ip, _dp]
_lib.swd_w2.restype = None
_lib.swd_w2_multi.argtypes = [ctypes.c_int] * 5 + [_dp, _ip, _ip, _dp, _ip, _ip, _dp]
_lib.swd_w2_multi.restype = None


_lib.swd_w2_expand.argtypes = [ctypes.c_int] * 5 + [_dp, _ip, _ip, _dp, _ip, _ip, ctypes.c_int, _ip, _ip, _dp, _dp]
_lib.swd_w2_expand.restype = None
_PLANS = {}


def swd_plan(n, m):
    """Merged breakpoints of two equal-weight quantile functions with n and m atoms:
    interval q has length w[q] and uses atom ix[q] of x and iy[q] of y."""
    if (n, m) not in _PLANS:
        t = np.union1d(np.arange(n + 1) * m, np.arange(m + 1) * n)  # in units 1/(n m)
        w = np.diff(t) / (n * m)
        mid = (t[:-1] + t[1:]) / 2
        _PLANS[(n, m)] = (np.floor(mid / m).astype(np.int32), np.floor(mid / n).astype(np.int32), w)
    return _PLANS[(n, m)]


def swd_w2_fast(preps_x, Cx, prep_y, Cy):
    """As swd_w2_multi, by expanding the resamples (faster)."""
    xs = np.ascontiguousarray(np.stack([p[0] for p in preps_x]))
    px = np.ascontiguousarray(np.stack([p[1] for p in preps_x]))
    ys, py = prep_y
    nb, n = Cx.shape
    m = Cy.shape[1]
    K, P = xs.shape[0], xs.shape[1]
    qx, qy, qw = swd_plan(n, m)
    out = np.empty((K, nb, P))
    _lib.swd_w2_expand(nb, P, K, n, m, xs, px, np.ascontiguousarray(Cx, np.int32), ys, py,
                       np.ascontiguousarray(Cy, np.int32), len(qw), qx, qy, qw, out)
    return out


def swd_w2_multi(preps_x, Cx, prep_y, Cy):
    """W2^2 for K point sets (list of swd_prep results) against one reference: (K, nb, P)."""
    xs = np.ascontiguousarray(np.stack([p[0] for p in preps_x]))
    px = np.ascontiguousarray(np.stack([p[1] for p in preps_x]))
    ys, py = prep_y
    nb, n = Cx.shape
    m = Cy.shape[1]
    K, P = xs.shape[0], xs.shape[1]
    out = np.empty((K, nb, P))
    _lib.swd_w2_multi(nb, P, K, n, m, xs, px, np.ascontiguousarray(Cx, np.int32), ys, py,
                      np.ascontiguousarray(Cy, np.int32), out)
    return out


def swd_prep(X, theta):
    """projections onto the directions: sorted values (P, n) and their row indices."""
    p = np.ascontiguousarray((X @ theta).T)
    perm = np.argsort(p, axis=1, kind="stable")
    return np.ascontiguousarray(np.take_along_axis(p, perm, 1)), np.ascontiguousarray(perm.astype(np.int32))


def swd_w2(prep_x, Cx, prep_y, Cy):
    """W2^2 per (count row, direction): (nb, P)."""
    xs, px = prep_x
    ys, py = prep_y
    nb, n = Cx.shape
    m = Cy.shape[1]
    out = np.empty((nb, xs.shape[0]))
    _lib.swd_w2(nb, xs.shape[0], n, m, xs, px, np.ascontiguousarray(Cx, np.int32), ys, py,
                np.ascontiguousarray(Cy, np.int32), out)
    return out


# ----------------------------------------------------------------------------- intervals
Z975 = 1.959963984540054


def intervals(theta, reps, level=0.95):
    """All interval types. theta (R,), reps (R, B) -> dict name -> (lo, hi) arrays (R,)."""
    from scipy.stats import norm

    a = (1 - level) / 2
    z = norm.ppf(1 - a)
    q = np.quantile(reps, [a, 0.5, 1 - a], axis=1)
    lo, med, hi = q
    sd = reps.std(axis=1, ddof=1)
    mean = reps.mean(axis=1)
    out = {
        "percentile": (lo, hi),
        "basic": (2 * theta - hi, 2 * theta - lo),
        "centred": (theta - (med - lo), theta + (hi - med)),
        "normal": (theta - z * sd, theta + z * sd),
        "normal_bc": (2 * theta - mean - z * sd, 2 * theta - mean + z * sd),
    }
    # BC percentile (Efron): z0 from the share of replicates below theta-hat
    B = reps.shape[1]
    p0 = ((reps < theta[:, None]).sum(1) + 0.5 * (reps == theta[:, None]).sum(1)) / B
    p0 = np.clip(p0, 0.5 / B, 1 - 0.5 / B)
    z0 = norm.ppf(p0)
    plo, phi = norm.cdf(2 * z0 - z), norm.cdf(2 * z0 + z)
    srt = np.sort(reps, axis=1)
    pos = lambda p: np.array([np.quantile(srt[i], p[i]) for i in range(len(p))])
    out["bc_percentile"] = (pos(plo), pos(phi))
    return out
