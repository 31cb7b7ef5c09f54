"""Compact FD-infinity comparison over all settings × points: remaining |bias| as % of the plug-in
bias, sd relative to the plug-in sd, RMSE relative to plug-in RMSE (main run; CF from the pilot)."""
import json, numpy as np
rows = {}
for src in ("out", "pilot"):
    for r in json.load(open(f"{src}/fdinf_rows.json")):
        if src == "pilot" and r["est"] not in ("cf", "cfmc"):
            continue
        rows[(r["setting"], r["point"], r["est"], src)] = r
L = ["| estimator | |bias| as % of plug-in bias: median [max] | sd / plug-in sd: median [max] | RMSE / plug-in RMSE: median [max] | cells |", "|---|---|---|---|---|"]
for e in ("fdmc", "jk2", "jk5", "jk10", "jkmc10", "cf", "cfmc"):
    src = "pilot" if e.startswith("cf") else "out"
    b, s, q = [], [], []
    for (st, p, ee, sr), r in rows.items():
        if ee != e or sr != src:
            continue
        # plug-in from the same source
        f = rows.get((st, p, "fd", "out")) if src == "out" else None
        if f is None:
            pil = [x for x in json.load(open("pilot/fdinf_rows.json")) if x["setting"] == st and x["point"] == p and x["est"] == "fd"]
            f = pil[0]
        b.append(abs(r["bias"]) / abs(f["bias"])); s.append(r["sd"] / f["sd"]); q.append(r["rmse"] / f["rmse"])
    L.append(f"| {e} | {100*np.median(b):.1f} [{100*max(b):.1f}] | {np.median(s):.2f} [{max(s):.2f}] | {np.median(q):.2f} [{max(q):.2f}] | {len(b)} |")
open("fdinf_summary.md", "w").write("\n".join(L) + "\n"); print("\n".join(L))
