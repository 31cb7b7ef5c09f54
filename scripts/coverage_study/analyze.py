"""Coverage tables from out/*.npz (main run) -> tables.md and results.json.

Run: /tmp/covenv/bin/python analyze.py"""
import glob
import json
import os
from collections import defaultdict

import numpy as np
from scipy.stats import norm, t as tdist, kurtosis, skew

import common as cm

pop = json.load(open("popfd.json"))
mmdpop = json.load(open("mmdpop.json")) if os.path.exists("mmdpop.json") else {}
TYPES = ["percentile", "basic", "centred", "normal", "normal_bc", "bc_percentile"]
PAIRS = [("same", "pert"), ("same", "s08"), ("same", "s11"), ("same", "shift"), ("s08", "s11"), ("same", "floor")]


def load(setting):
    fs = sorted(glob.glob(f"out/{setting}_*.npz"), key=lambda f: int(f.split("_")[-1][:-4]))
    if not fs:
        return None
    zs = [np.load(f) for f in fs]
    keys = set(zs[0].files) - {"h2", "repeats"}
    out = {k: np.concatenate([z[k] for z in zs if k in z.files]) for k in keys}
    out["R"] = sum(len(z["repeats"]) for z in zs)
    return out


def cover(lo, hi, target):
    return np.mean((lo <= target) & (target <= hi))


def summarize(theta, reps, target, extra=None):
    """coverage and width ratio for every interval type. theta (R,), reps (R,B)."""
    iv = cm.intervals(theta, reps)
    if extra:
        iv.update(extra)
    q = np.quantile(theta, [0.025, 0.975])
    spread = q[1] - q[0]
    res = {}
    for k, (lo, hi) in iv.items():
        res[k] = dict(cov=cover(lo, hi, target), width=np.mean(hi - lo) / spread,
                      miss_lo=np.mean(target < lo), miss_hi=np.mean(target > hi))
    res["_sd_ratio"] = float(np.mean(reps.std(1, ddof=1)) / theta.std(ddof=1))
    res["_bias_boot"] = float(np.mean(reps.mean(1) - theta) / theta.std(ddof=1))  # E*(theta*) - theta-hat, in sd units
    res["_skew"] = float(skew(theta))
    return res


def main():
    results = {"marginal": {}, "paired": {}, "tails": defaultdict(list), "tails_true": defaultdict(list), "widths": {}}
    for s, st in cm.SETTINGS.items():
        z = load(s)
        if z is None:
            continue
        key = f"{st['data']}{st['d']}"
        pts = [k for k in cm.POINTS if f"fd/{k}" in z]
        R = z["R"]

        def stat_arrays(stat, k):
            a = z[f"{stat}/{k}"]
            return a[:, 0], a[:, 1:]

        def target(stat, k):
            if stat in ("mmd", "kid") and k in ("same", "floor"):
                return 0.0
            return float(z[f"{stat}/{k}"][:, 0].mean())

        # ------------------------------------------------------------ marginal
        for k in pts:
            for stat in ("fd", "mmd", "kid", "swd"):
                th, rp = stat_arrays(stat, k)
                results["marginal"][(s, k, stat)] = summarize(th, rp, target(stat, k))
            # FD-infinity (population target)
            tpop = pop[f"{key}/{k}"]
            thj = z[f"jk10/{k}"][:, 0]
            thf, rpf = stat_arrays("fd", k)
            sd = rpf.std(1, ddof=1)
            lo, med, hi = np.quantile(rpf, [0.025, 0.5, 0.975], axis=1)
            extra = {
                "jk10 +- 1.96 sd*(FD)": (thj - cm.Z975 * sd, thj + cm.Z975 * sd),
                "jk10 centred on FD reps": (thj - (med - lo), thj + (hi - med)),
                "FD basic": (2 * thf - hi, 2 * thf - lo),
                "FD normal_bc": (2 * thf - rpf.mean(1) - cm.Z975 * sd, 2 * thf - rpf.mean(1) + cm.Z975 * sd),
                "jk10 +- t9 jackknife se": (thj - tdist.ppf(0.975, 9) * np.sqrt(z[f"jkvar10/{k}"]),
                                              thj + tdist.ppf(0.975, 9) * np.sqrt(z[f"jkvar10/{k}"])),
            }
            q = np.quantile(thj, [0.025, 0.975])
            r = {}
            for nm, (lo_, hi_) in extra.items():
                r[nm] = dict(cov=cover(lo_, hi_, tpop), width=np.mean(hi_ - lo_) / (q[1] - q[0]),
                             miss_lo=np.mean(tpop < lo_), miss_hi=np.mean(tpop > hi_))
            if z[f"jk10/{k}"].shape[1] > 1:  # bootstrapped jackknife estimator
                bj = summarize(thj, z[f"jk10/{k}"][:, 1:], tpop)
                for nm in TYPES:
                    r[f"boot(jk10) {nm}"] = bj[nm]
            r["_bias"] = float(thj.mean() - tpop)
            r["_sd_jk_over_sd_fd"] = float(thj.std(ddof=1) / thf.std(ddof=1))
            r["_cov_E"] = float(cover(thj - cm.Z975 * sd, thj + cm.Z975 * sd, thj.mean()))
            results["marginal"][(s, k, "fdinf")] = r

        # ------------------------------------------------------------ paired
        for A, Bp in PAIRS:
            if A not in pts or Bp not in pts:
                continue
            for stat in ("fd", "mmd", "kid", "swd", "fdinf"):
                if stat == "fdinf":
                    thA, thB = z[f"jk10/{A}"][:, 0], z[f"jk10/{Bp}"][:, 0]
                    d_hat = thA - thB
                    if z[f"jk10/{A}"].shape[1] > 1 and z[f"jk10/{Bp}"].shape[1] > 1:
                        d_rep = z[f"jk10/{A}"][:, 1:] - z[f"jk10/{Bp}"][:, 1:]
                    else:  # spread from the plug-in replicates
                        d_rep = (z[f"fd/{A}"][:, 1:] - z[f"fd/{Bp}"][:, 1:]) - (z[f"fd/{A}"][:, :1] - z[f"fd/{Bp}"][:, :1]) + d_hat[:, None]
                    tgt = pop[f"{key}/{A}"] - pop[f"{key}/{Bp}"]
                    repA = z[f"fd/{A}"][:, 1:]
                else:
                    a, b = z[f"{stat}/{A}"], z[f"{stat}/{Bp}"]
                    d_hat, d_rep = a[:, 0] - b[:, 0], a[:, 1:] - b[:, 1:]
                    tgt = 0.0 if (stat in ("mmd", "kid") and {A, Bp} <= {"same", "floor"}) else float(d_hat.mean())
                    repA = a[:, 1:]
                res = summarize(d_hat, d_rep, tgt)
                sdd = d_rep.std(1, ddof=1)
                zz = (d_hat - tgt) / sdd
                res["_z"] = dict(c99=float(np.mean(np.abs(zz) <= norm.ppf(0.995))), c999=float(np.mean(np.abs(zz) <= norm.ppf(0.9995))),
                                 kurt=float(kurtosis(zz)), skew=float(skew(zz)))
                res["_width_vs_A"] = float(np.mean(sdd) / np.mean(repA.std(1, ddof=1)))
                if stat != "fdinf":
                    sdA, sdB = z[f"{stat}/{A}"][:, 1:].std(1, ddof=1), z[f"{stat}/{Bp}"][:, 1:].std(1, ddof=1)
                    res["_width_vs_unpaired"] = float(np.mean(sdd) / np.mean(np.sqrt(sdA ** 2 + sdB ** 2)))
                    res["_corr_true"] = float(np.corrcoef(z[f"{stat}/{A}"][:, 0], z[f"{stat}/{Bp}"][:, 0])[0, 1])
                res["_true_sd_ratio_to_A"] = float(d_hat.std(ddof=1) / z[f"fd/{A}" if stat == "fdinf" else f"{stat}/{A}"][:, 0].std(ddof=1))
                results["paired"][(s, f"{A}-{Bp}", stat)] = res
                grp = "near0" if f"{A}-{Bp}" in ("same-pert", "same-floor") else "diff"
                results["tails"][(stat, grp)].extend(zz.tolist())
                results["tails_true"][(stat, grp)].extend(((d_hat - d_hat.mean()) / d_hat.std(ddof=1)).tolist())
        results.setdefault("R", {})[s] = int(R)
    return results


def fmt_cov(res, types):
    return " | ".join(f"{100 * res[t]['cov']:.1f} ({res[t]['width']:.2f})" if t in res else "–" for t in types)


if __name__ == "__main__":
    res = main()
    L = []
    L.append("# Coverage tables (coverage % of the target; in brackets mean width / true 95% spread of the estimator)\n")
    L.append("Repeats per setting: " + ", ".join(f"{s}: {r}" for s, r in res["R"].items()) + "\n")
    for stat, name in (("fd", "FD plug-in (target E[FD^])"), ("mmd", "MMD^2 RBF (target population; 0 for same/floor)"),
                       ("kid", "KID (target population; 0 for same/floor)"), ("swd", "SWD (target E[SWD^])")):
        L.append(f"\n## Marginal: {name}\n")
        L.append("| setting | point | " + " | ".join(TYPES) + " | sd*/sd | (E*θ*−θ̂)/sd |")
        L.append("|---|---|" + "---|" * (len(TYPES) + 2))
        for (s, k, st_), r in res["marginal"].items():
            if st_ != stat:
                continue
            L.append(f"| {s} | {k} | " + fmt_cov(r, TYPES) + f" | {r['_sd_ratio']:.2f} | {r['_bias_boot']:+.2f} |")
    ft = ["jk10 +- 1.96 sd*(FD)", "jk10 centred on FD reps", "jk10 +- t9 jackknife se", "FD basic", "FD normal_bc",
          "boot(jk10) normal", "boot(jk10) centred", "boot(jk10) percentile", "boot(jk10) basic"]
    L.append("\n## Marginal: FD∞ = delete-10-group jackknife (target population FD)\n")
    L.append("| setting | point | " + " | ".join(ft) + " | bias/sd | sd(jk)/sd(FD) |")
    L.append("|---|---|" + "---|" * (len(ft) + 2))
    for (s, k, st_), r in res["marginal"].items():
        if st_ != "fdinf":
            continue
        sdfd = None
        L.append(f"| {s} | {k} | " + fmt_cov(r, ft) + f" | {r['_bias']:+.4f} | {r['_sd_jk_over_sd_fd']:.2f} |")
    for stat in ("fd", "fdinf", "mmd", "kid", "swd"):
        L.append(f"\n## Paired differences: {stat} (target E[Δ^]; FD∞: population difference)\n")
        L.append("| setting | pair | " + " | ".join(TYPES) + " | sd*/sd | 99% | 99.9% | w/wA | w/unpaired | corr |")
        L.append("|---|---|" + "---|" * (len(TYPES) + 6))
        for (s, p, st_), r in res["paired"].items():
            if st_ != stat:
                continue
            L.append(f"| {s} | {p} | " + fmt_cov(r, TYPES) + f" | {r['_sd_ratio']:.2f} | {100 * r['_z']['c99']:.1f} | {100 * r['_z']['c999']:.1f} | "
                     f"{r['_width_vs_A']:.2f} | {r.get('_width_vs_unpaired', float('nan')):.2f} | {r.get('_corr_true', float('nan')):.2f} |")
    for tk, title in (("tails", "z = (Δ^ − E Δ^) / sd(Δ*)  [coverage of Δ^ ± z·sd*]"),
                      ("tails_true", "z = (Δ^ − mean) / sd over repeats  [shape of Δ^'s distribution; normal: 95 / 99 / 99.9, kurtosis 0]")):
        L.append(f"\n## Tails, pooled over settings and pairs: {title}\n")
        L.append("| statistic | pairs | N | P(|z|≤1.96) | P(|z|≤2.576) | P(|z|≤3.291) | sd(z) | skew | excess kurtosis |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for (stat, grp), zz in sorted(res[tk].items()):
            zz = np.array(zz)
            L.append(f"| {stat} | {grp} | {len(zz)} | {100 * np.mean(np.abs(zz) <= 1.96):.2f} | {100 * np.mean(np.abs(zz) <= 2.576):.2f} | "
                     f"{100 * np.mean(np.abs(zz) <= 3.291):.2f} | {zz.std():.3f} | {skew(zz):.2f} | {kurtosis(zz):.2f} |")
    open("tables.md", "w").write("\n".join(L) + "\n")
    ser = {"marginal": {"|".join(k): v for k, v in res["marginal"].items()},
           "paired": {"|".join(k): v for k, v in res["paired"].items()}, "R": res["R"]}
    json.dump(ser, open("results.json", "w"), indent=0, default=float)
    print("\n".join(L))
