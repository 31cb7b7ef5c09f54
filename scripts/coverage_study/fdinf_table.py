"""FD-infinity comparison: bias, sd, RMSE of every FD estimator against the population FD.
usage: fdinf_table.py DIR  (reads DIR/<setting>.npz)"""
import json, sys, os
import numpy as np
import common as cm

EST = ["fd", "fdmc", "jk2", "jk5", "jk10", "jkmc2", "jkmc5", "jkmc10", "cf", "cfmc"]
pop = json.load(open("popfd.json"))
dirn = sys.argv[1]
rows = []
for s, st in cm.SETTINGS.items():
    if dirn == "out":
        from analyze import load
        z = load(s)
        if z is None:
            continue
        R = z["R"]
    else:
        f = f"{dirn}/{s}.npz"
        if not os.path.exists(f):
            continue
        z = np.load(f)
        R = len(z["repeats"])
    key = f"{st['data']}{st['d']}"
    print(f"\n## {s}  (R = {R})   bias / sd")
    print("point  FD_true | " + " | ".join(f"{e:>16s}" for e in EST))
    for k in cm.POINTS:
        if f"fd/{k}" not in z:
            continue
        t = pop[f"{key}/{k}"]
        cells = []
        for e in EST:
            if f"{e}/{k}" not in z:
                cells.append(" " * 16); continue
            v = z[f"{e}/{k}"]
            v = v[:, 0] if v.ndim > 1 else v
            b, sd = v.mean() - t, v.std(ddof=1)
            cells.append(f"{b:+.4f}/{sd:.4f}")
            rows.append(dict(setting=s, point=k, est=e, true=t, bias=b, sd=sd, rmse=np.sqrt(b * b + sd * sd), R=R))
        print(f"{k:6s} {t:.4f} | " + " | ".join(cells))
json.dump(rows, open(f"{dirn}/fdinf_rows.json", "w"), indent=0)
