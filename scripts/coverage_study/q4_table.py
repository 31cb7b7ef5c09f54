"""Q4 table from q4.npz -> q4.txt"""
import numpy as np
z = np.load("q4.npz")
L = ["| point | estimator / interval | coverage % | mean width / true 95% spread | sd(estimate) over repeats | mean se used / true sd |", "|---|---|---|---|---|---|"]
for p in ("same", "s08"):
    full = z[f"full/{p}"]; reuse = z[f"reuse/{p}"]; ind = z[f"indep/{p}"]
    R = len(full)
    tgt = 0.0 if p == "same" else full[:, 0].mean()
    ests = {"full (all pairs)": (full[:, 0], full[:, 1:]), "indep blocks": (ind[:, :, 0].mean(1), ind[:, :, 1:].mean(1)), "reuse blocks": (reuse.mean(1), None)}
    for name, (th, reps) in ests.items():
        sdt = th.std(ddof=1); spread = np.subtract(*np.quantile(th, [0.975, 0.025]))
        ivs = {}
        if reps is not None:
            sd = reps.std(1, ddof=1); lo, med, hi = np.quantile(reps, [0.025, 0.5, 0.975], axis=1)
            ivs["bootstrap normal ±1.96 sd*"] = (th - 1.96 * sd, th + 1.96 * sd, sd)
            ivs["bootstrap centred"] = (th - (med - lo), th + (hi - med), sd)
        blk = reuse if name.startswith("reuse") else (ind[:, :, 0] if name.startswith("indep") else None)
        if blk is not None:
            se = blk.std(1, ddof=1) / np.sqrt(3)
            ivs["±1.96 sd(blocks)/√3"] = (th - 1.96 * se, th + 1.96 * se, se)
            ivs["±t₂(4.30) sd(blocks)/√3"] = (th - 4.303 * se, th + 4.303 * se, se)
        for iname, (lo, hi, se) in ivs.items():
            L.append(f"| {p} | {name}: {iname} | {100 * np.mean((lo <= tgt) & (tgt <= hi)):.0f} | {np.mean(hi - lo) / spread:.2f} | {sdt:.2e} | {np.mean(se) / sdt:.2f} |")
L.append(f"\nR = {R} repeats, B = 200; n = 5000 generated (digits-like), m = 2000 reference, RBF MMD², K = 3 blocks.")
open("q4.txt", "w").write("\n".join(L) + "\n"); print("\n".join(L))
