"""One setting, a range of repeats: estimates and bootstrap replicates of every statistic
for the reference and six points that share latents and resample counts.

usage: worker.py SETTING R0 R1 OUT.npz [--B 200] [--stats fd,mmd,swd] [--gboot 5] [--cf]
Row 0 of every replicate array is the estimate on the original sample (counts = 1)."""
import argparse
import os
import time

import numpy as np

import common as cm

CF_FRACS = [0.5, 0.6, 0.7, 0.8, 0.9]
CF_K = 5


def bandwidth2(model, m_med=1000):
    """h^2 = median pairwise squared distance / 2, on 1000 reference draws (fixed per setting)."""
    y = model.sample_P(np.random.default_rng([7020, model.d]), m_med)
    D2 = ((y[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return float(np.median(D2[np.triu_indices(m_med, 1)]) / 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("setting")
    ap.add_argument("r0", type=int)
    ap.add_argument("r1", type=int)
    ap.add_argument("out")
    ap.add_argument("--B", type=int, default=200)
    ap.add_argument("--stats", default="fd,mmd,swd")
    ap.add_argument("--gboot", default="5")  # jackknife G bootstrapped (comma list, '' none)
    ap.add_argument("--gboot-points", default="all")
    ap.add_argument("--cf", action="store_true")
    ap.add_argument("--points", default=",".join(cm.POINTS))
    a = ap.parse_args()
    if os.path.exists(f"skip/{a.setting}_{a.r0}"):  # budget cut (see REPORT.md)
        print("skipped", flush=True)
        return
    st = cm.SETTINGS[a.setting]
    sid = cm.SETTING_IDS[a.setting]
    d, n, m, B = st["d"], st["n"], st["m"], a.B
    stats = a.stats.split(",")
    gboot = [int(g) for g in a.gboot.split(",") if g]
    gboot_pts = cm.POINTS if a.gboot_points == "all" else a.gboot_points.split(",")
    pts_names = a.points.split(",")
    model = cm.Model(st["data"], d)
    iu = np.triu_indices(d)
    D = len(iu[0])
    full_idx = np.zeros((d, d), np.int64)
    full_idx[iu] = np.arange(D)
    full_idx[(iu[1], iu[0])] = np.arange(D)
    h2 = bandwidth2(model) if "mmd" in stats else None
    c_rbf = np.exp(-1.0)
    res = {}

    def put(key, val):
        res.setdefault(key, []).append(np.asarray(val))

    t0 = time.time()
    for r in range(a.r0, a.r1):
        rng = np.random.default_rng([1000, sid, r])
        ref = model.sample_P(rng, m)
        pts = model.points(rng, n)
        pts = {k: pts[k] for k in pts_names}
        rb = np.random.default_rng([2000, sid, r])
        if B > 0:
            Cx1 = cm.with_ones(cm.boot_counts(rb, n, B))
            Cy1 = cm.with_ones(cm.boot_counts(rb, m, B))
        else:
            Cx1 = np.ones((1, n), np.int32)
            Cy1 = np.ones((1, m), np.int32)
        nb = Cx1.shape[0]
        shift0 = ref.mean(0)  # common translation (all statistics are translation invariant)
        ref_c = ref - shift0
        pts_c = {k: v - shift0 for k, v in pts.items()}

        # ------------------------------------------------------------------ FD
        if "fd" in stats:
            grp_y = bool(gboot)
            My = cm.Moments(ref_c, Cy1, iu, groups=grp_y)
            my, Sy = cm.mean_cov(My.S, My.s, My.N, My.xbar, full_idx)
            Fy, trSy = cm.chol_or_sqrt(Sy), np.trace(Sy, axis1=1, axis2=2)
            mcy = trSy / My.N
            lo_y = {}
            for G in (2, 5, 10):
                S_, s_, N_ = cm.leave_out_sums(My, G)
                rows = slice(None) if G in gboot else slice(0, 1)
                mu_, Sg_ = cm.mean_cov(S_[rows], s_[rows], N_[rows], My.xbar, full_idx)
                tr_ = np.trace(Sg_, axis1=-2, axis2=-1)
                lo_y[G] = (mu_, cm.chol_or_sqrt(Sg_), tr_, tr_ / N_[rows])
            if a.cf:
                rc = np.random.default_rng([3000, sid, r])
                fr = np.repeat(CF_FRACS, CF_K)
                Ix = np.zeros((len(fr), n), np.int8)
                Iy = np.zeros((len(fr), m), np.int8)
                for j, f in enumerate(fr):
                    Ix[j, rc.choice(n, int(round(f * n)), replace=False)] = 1
                    Iy[j, rc.choice(m, int(round(f * m)), replace=False)] = 1
                Sy_, sy_, Ny_ = My.subset_sums(Iy)
                muy_cf, Sy_cf = cm.mean_cov(Sy_, sy_, Ny_, My.xbar, full_idx)
                try_cf = np.trace(Sy_cf, axis1=1, axis2=2)
                Fy_cf = cm.chol_or_sqrt(Sy_cf)
                mcy_cf = try_cf / Ny_
            mom = {}
            order = sorted(pts_c, key=lambda k: k in model.affine)  # bases first
            for k in order:
                X = pts_c[k]
                boot_k = bool(gboot) and k in gboot_pts
                if k in model.affine and "same" in mom and (mom["same"].Sg.shape[0] > 1) == boot_k:
                    aa, bb = model.affine[k]
                    Mx = mom["same"].affine(aa, bb + (aa - 1) * shift0)
                else:
                    Mx = cm.Moments(X, Cx1, iu, groups=boot_k)
                mom[k] = Mx
                mx, Sx = cm.mean_cov(Mx.S, Mx.s, Mx.N, Mx.xbar, full_idx)
                fd = cm.fd_from(mx, Sx, my, Fy, trSy)
                mc = np.trace(Sx, axis1=1, axis2=2) / Mx.N + mcy
                put(f"fd/{k}", fd)
                put(f"fdmc/{k}", fd - mc)
                for G in (2, 5, 10):
                    S_, s_, N_ = cm.leave_out_sums(Mx, G)
                    boot = G in gboot and boot_k
                    rows = slice(None) if boot else slice(0, 1)
                    mu_, Sg_ = cm.mean_cov(S_[rows], s_[rows], N_[rows], Mx.xbar, full_idx)
                    myg, Fyg, tryg, mcyg = lo_y[G]
                    if not boot and G in gboot:
                        myg, Fyg, tryg, mcyg = myg[:1], Fyg[:1], tryg[:1], mcyg[:1]
                    fdg = cm.fd_from(mu_, Sg_, myg, Fyg, tryg)  # (rows, G)
                    mcg = np.trace(Sg_, axis1=-2, axis2=-1) / N_[rows] + mcyg
                    jk = G * fd[rows] - (G - 1) * fdg.mean(1)
                    jkmc = G * (fd - mc)[rows] - (G - 1) * (fdg - mcg).mean(1)
                    put(f"jk{G}/{k}", jk)
                    put(f"jkmc{G}/{k}", jkmc)
                    if G == 10:  # delete-group jackknife variance of the plug-in and of jkmc10 parts
                        put(f"jkvar10/{k}", (G - 1) / G * ((fdg[0] - fdg[0].mean()) ** 2).sum())
                        put(f"jkvarmc10/{k}", (G - 1) / G * (((fdg - mcg)[0] - (fdg - mcg)[0].mean()) ** 2).sum())
                if a.cf:
                    Sx_, sx_, Nx_ = Mx.subset_sums(Ix)
                    mux_cf, Sx_cf = cm.mean_cov(Sx_, sx_, Nx_, Mx.xbar, full_idx)
                    fdc = cm.fd_from(mux_cf, Sx_cf, muy_cf, Fy_cf, try_cf)
                    mcc = np.trace(Sx_cf, axis1=1, axis2=2) / Nx_ + mcy_cf
                    xs = np.concatenate([1.0 / Nx_, [1.0 / n]])
                    A = np.vstack([np.ones_like(xs), xs]).T
                    for tag, ys in (("cf", np.concatenate([fdc, fd[:1]])), ("cfmc", np.concatenate([fdc - mcc, (fd - mc)[:1]]))):
                        coef = np.linalg.lstsq(A, ys, rcond=None)[0]
                        put(f"{tag}/{k}", coef[0])
            del mom

        # ------------------------------------------------------------------ MMD / KID
        if "mmd" in stats:
            Ky = cm.gram_kernels(ref_c, ref_c, h2, d, c_rbf)
            ay = (ref_c * ref_c).sum(1) / d
            diag_y = np.vstack([np.full(m, 1 - c_rbf), (ay + 1) ** 3 - 1])
            Tyy = cm.mmd_terms_xx(Ky, Cy1, diag_y) / (m * (m - 1))
            del Ky
            for k, X in pts_c.items():
                Kx = cm.gram_kernels(X, X, h2, d, c_rbf)
                ax = (X * X).sum(1) / d
                diag_x = np.vstack([np.full(n, 1 - c_rbf), (ax + 1) ** 3 - 1])
                Txx = cm.mmd_terms_xx(Kx, Cx1, diag_x) / (n * (n - 1))
                del Kx
                Kxy = cm.gram_kernels(X, ref_c, h2, d, c_rbf)
                Txy = cm.mmd_terms_xy(Kxy, Cx1, Cy1) / (n * m)
                del Kxy
                mm = Txx + Tyy - 2 * Txy
                put(f"mmd/{k}", mm[0])
                put(f"kid/{k}", mm[1])

        # ------------------------------------------------------------------ SWD
        if "swd" in stats:
            py_ = cm.swd_prep(ref_c, model.theta)
            keys = list(pts_c)
            w2 = cm.swd_w2_fast([cm.swd_prep(pts_c[k], model.theta) for k in keys], Cx1, py_, Cy1)
            for i, k in enumerate(keys):
                put(f"swd/{k}", np.sqrt(w2[i].mean(1)))

        if (r - a.r0) % 10 == 0 or r == a.r1 - 1:
            print(f"{a.setting} r={r} elapsed {time.time() - t0:.1f}s", flush=True)
        if (r - a.r0) % 25 == 24 or r == a.r1 - 1:
            np.savez(a.out + ".tmp.npz", **{k: np.array(v) for k, v in res.items()}, h2=h2 if h2 else np.nan,
                     repeats=np.arange(a.r0, r + 1))
            os.replace(a.out + ".tmp.npz", a.out)


if __name__ == "__main__":
    main()
