"""Checks the count-based statistics against direct computations on copied rows."""
import numpy as np, scipy.linalg as sl
import common as cm
rng = np.random.default_rng(0)
n, m, d, B = 50, 70, 3, 4
x = rng.standard_normal((n, d)) * [1, 2, .5] + .3
y = rng.standard_normal((m, d))
Cx = cm.with_ones(cm.boot_counts(rng, n, B)); Cy = cm.with_ones(cm.boot_counts(rng, m, B))
iu = np.triu_indices(d); D = len(iu[0]); fi = np.zeros((d, d), int); fi[iu] = np.arange(D); fi[(iu[1], iu[0])] = np.arange(D)
def fd_direct(a, b):
    ma, mb = a.mean(0), b.mean(0); Sa, Sb = np.cov(a.T), np.cov(b.T)
    r = sl.sqrtm(sl.sqrtm(Sa) @ Sb @ sl.sqrtm(Sa)).real
    return ((ma - mb)**2).sum() + np.trace(Sa) + np.trace(Sb) - 2*np.trace(r)
Mx, My = cm.Moments(x, Cx, iu), cm.Moments(y, Cy, iu)
mx, Sx = cm.mean_cov(Mx.S, Mx.s, Mx.N, Mx.xbar, fi)
my, Sy = cm.mean_cov(My.S, My.s, My.N, My.xbar, fi)
fd = cm.fd_from(mx, Sx, my, cm.chol_or_sqrt(Sy), np.trace(Sy, axis1=1, axis2=2))
for b in range(B + 1):
    xa, ya = np.repeat(x, Cx[b], 0), np.repeat(y, Cy[b], 0)
    assert abs(fd[b] - fd_direct(xa, ya)) < 1e-4 * max(1, fd[b]), (fd[b], fd_direct(xa, ya))
# leave-out groups (counts = 1)
for G in (2, 5, 10):
    S_, s_, N_ = cm.leave_out_sums(Mx, G); Sy_, sy_, Ny_ = cm.leave_out_sums(My, G)
    a1, A1 = cm.mean_cov(S_[:1], s_[:1], N_[:1], Mx.xbar, fi); b1, B1 = cm.mean_cov(Sy_[:1], sy_[:1], Ny_[:1], My.xbar, fi)
    v = cm.fd_from(a1, A1, b1, cm.chol_or_sqrt(B1), np.trace(B1, axis1=-2, axis2=-1))[0]
    gx, gy = np.arange(n) * G // n, np.arange(m) * G // m
    for g in range(G):
        assert abs(v[g] - fd_direct(x[gx != g], y[gy != g])) < 1e-4, G
# MMD
h2 = 1.3; c = np.exp(-1)
def kk(a, b):
    D2 = ((a[:, None] - b[None]) ** 2).sum(-1); return np.exp(-D2 / (2 * h2)), (a @ b.T / d + 1) ** 3
Ky = cm.gram_kernels(y, y, h2, d, c); Kx = cm.gram_kernels(x, x, h2, d, c); Kxy = cm.gram_kernels(x, y, h2, d, c)
dy = np.vstack([np.full(m, 1 - c), ((y*y).sum(1)/d + 1)**3 - 1]); dx = np.vstack([np.full(n, 1 - c), ((x*x).sum(1)/d + 1)**3 - 1])
mm = cm.mmd_terms_xx(Kx, Cx, dx)/(n*(n-1)) + cm.mmd_terms_xx(Ky, Cy, dy)/(m*(m-1)) - 2*cm.mmd_terms_xy(Kxy, Cx, Cy)/(n*m)
for b in range(B + 1):
    xa, ya = np.repeat(x, Cx[b], 0), np.repeat(y, Cy[b], 0)
    for t in range(2):
        kx, ky, kxy = kk(xa, xa)[t], kk(ya, ya)[t], kk(xa, ya)[t]
        ref = (kx.sum() - np.trace(kx))/(n*(n-1)) + (ky.sum() - np.trace(ky))/(m*(m-1)) - 2*kxy.mean()
        assert abs(mm[t, b] - ref) < 1e-5, (t, b, mm[t, b], ref)
# SWD
th = rng.standard_normal((d, 5)); th /= np.linalg.norm(th, axis=0)
w2 = cm.swd_w2(cm.swd_prep(x, th), Cx, cm.swd_prep(y, th), Cy)
for b in range(B + 1):
    xa, ya = np.repeat(x, Cx[b], 0) @ th, np.repeat(y, Cy[b], 0) @ th
    t = (np.arange(n*m) + .5) / (n*m)
    qx = np.sort(xa, 0)[np.floor(t*n).astype(int)]; qy = np.sort(ya, 0)[np.floor(t*m).astype(int)]
    ref = ((qx - qy)**2).mean(0)
    assert np.allclose(w2[b], ref, rtol=1e-9), (w2[b], ref)
# groups=True sums equal groups=False sums; affine shortcut
Mg = cm.Moments(x, Cx, iu, groups=True)
assert np.allclose(Mg.S, Mx.S, rtol=1e-5) and np.allclose(Mg.Sg[:1], Mx.Sg, rtol=1e-5)
bvec = np.array([.1, -.2, .3]); Ma = Mx.affine(0.8, bvec); Md = cm.Moments(0.8 * x + bvec, Cx, iu)
for A_, B_ in ((Ma.S, Md.S), (Ma.s, Md.s), (Ma.xbar, Md.xbar), (Ma.Sg, Md.Sg)):
    assert np.allclose(A_, B_, rtol=1e-5, atol=1e-9)
print("all statistics agree with direct computations")
w2m = cm.swd_w2_multi([cm.swd_prep(x, th), cm.swd_prep(0.5 * x, th)], Cx, cm.swd_prep(y, th), Cy)
assert np.allclose(w2m[0], w2, rtol=1e-10)
assert np.allclose(w2m[1], cm.swd_w2(cm.swd_prep(0.5 * x, th), Cx, cm.swd_prep(y, th), Cy), rtol=1e-10)
x2 = rng.standard_normal((m, d)); C2 = cm.with_ones(cm.boot_counts(rng, m, B))
assert np.allclose(cm.swd_w2_multi([cm.swd_prep(x2, th)], C2, cm.swd_prep(y, th), Cy)[0], cm.swd_w2(cm.swd_prep(x2, th), C2, cm.swd_prep(y, th), Cy), rtol=1e-10)
print("multi SWD ok")
for (xx, CC) in ((x, Cx), (x2, C2)):
    a1 = cm.swd_w2_fast([cm.swd_prep(xx, th), cm.swd_prep(0.5 * xx, th)], CC, cm.swd_prep(y, th), Cy)
    a2 = cm.swd_w2_multi([cm.swd_prep(xx, th), cm.swd_prep(0.5 * xx, th)], CC, cm.swd_prep(y, th), Cy)
    assert np.allclose(a1, a2, rtol=1e-10)
print("fast SWD ok")
