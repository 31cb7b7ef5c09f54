"""Q3: bias of the plug-in FD and of the FD-infinity candidates, and of MMD^2 / KID, for the
0.8x / 1.0x / 1.1x samplers (digits-like, d = 64, n = 500 vs m = 1297; also every setting).
FD estimators from the main run (out/) where present, CF from the pilot (pilot/)."""
import json, os, sys
import numpy as np
import common as cm
from analyze import load

pop = json.load(open("popfd.json"))
mp = json.load(open("mmdpop.json")) if os.path.exists("mmdpop.json") else {}
L = []
settings = [a for a in sys.argv[1:] if a != "append"] or ["digits64_500v1297"]
for s in settings:
    st = cm.SETTINGS[s]
    key = f"{st['data']}{st['d']}"
    z = load(s)
    zp = np.load(f"pilot/{s}.npz") if os.path.exists(f"pilot/{s}.npz") else None
    L.append(f"\n### {s}: bias = E[estimate] − population value (± s.e. of that mean); sd over repeats in brackets\n")
    L.append("| estimator | " + " | ".join(k for k in ("same", "s08", "s11", "shift", "pert", "floor") if f"fd/{k}" in z) + " |")
    pts = [k for k in ("same", "s08", "s11", "shift", "pert", "floor") if f"fd/{k}" in z]
    L.append("|---|" + "---|" * len(pts))
    L.append("| population FD | " + " | ".join(f"{pop[f'{key}/{k}']:.4f}" for k in pts) + " |")
    for e in ("fd", "fdmc", "jk2", "jk5", "jk10", "jkmc10", "cf", "cfmc"):
        src = z if f"{e}/same" in z else (zp if zp is not None and f"{e}/same" in zp.files else None)
        if src is None:
            continue
        cells = []
        for k in pts:
            v = src[f"{e}/{k}"]
            v = v[:, 0] if v.ndim > 1 else v
            b = v.mean() - pop[f"{key}/{k}"]
            cells.append(f"{b:+.4f} ±{v.std(ddof=1) / np.sqrt(len(v)):.4f} ({v.std(ddof=1):.4f})")
        tag = "" if src is z else f" [pilot, R={len(src['repeats'])}]"
        L.append(f"| {e}{tag} | " + " | ".join(cells) + " |")
    for si, e in enumerate(("mmd", "kid")):
        cells = []
        for k in pts:
            v = z[f"{e}/{k}"][:, 0]
            ref = 0.0 if k in ("same", "floor") else (mp.get(f"{key}/{k}", {}).get(e, np.nan))
            cells.append(f"{v.mean() - ref:+.2e} ±{v.std(ddof=1) / np.sqrt(len(v)):.1e} (E={v.mean():.2e})")
        L.append(f"| {e} (vs large-sample value) | " + " | ".join(cells) + " |")
print("\n".join(L))
open("tables_q3.md", "a" if len(sys.argv) > 2 else "w").write("\n".join(L) + "\n")
