"""Coverage of normal intervals theta-hat +- z * sd for MMD^2 / KID with four sd's:
boot = sd of the bootstrap replicates, lin = plug-in first-order (projection) sd,
linu = projection sd with the row-mean noise removed, mix = sqrt((2 linu^2 + boot^2) / 3)."""
import glob, sys
import numpy as np
from scipy.stats import norm

L = []
for f in sorted(glob.glob("lv/*.npz")):
    z = np.load(f)
    s = f.split("/")[-1][:-4]
    R = z["est/same"].shape[0]
    L.append(f"\n### {s} (R = {R})\n")
    L.append("| stat | quantity | true sd | sd ratio boot / lin / linu / mix | cov95 boot | lin | linu | mix | cov99 mix | cov99.9 mix |")
    L.append("|---|---|---|---|---|---|---|---|---|---|")
    names = [k.split("/", 1)[1] for k in z.files if k.startswith("vlin/")]
    for q in names:
        for si, stat in enumerate(("mmd", "kid")):
            if "-" in q:
                a, b = q.split("-")
                e = z[f"est/{a}"][:, si] - z[f"est/{b}"][:, si]
                tgt = 0.0 if {a, b} <= {"same", "floor"} else e[:, 0].mean()
            else:
                e = z[f"est/{q}"][:, si]
                tgt = 0.0 if q in ("same", "floor") else e[:, 0].mean()
            th = e[:, 0]
            sdt = th.std(ddof=1)
            sds = {"boot": e[:, 1:].std(1, ddof=1), "lin": np.sqrt(z[f"vlin/{q}"][:, si]), "linu": np.sqrt(z[f"vlinu/{q}"][:, si])}
            sds["mix"] = np.sqrt((2 * sds["linu"] ** 2 + sds["boot"] ** 2) / 3)
            cov = {k: np.mean(np.abs(th - tgt) <= 1.96 * v) for k, v in sds.items()}
            zm = np.abs(th - tgt) / sds["mix"]
            L.append(f"| {stat} | {q} | {sdt:.2e} | " + " / ".join(f"{np.mean(v) / sdt:.2f}" for v in sds.values()) + " | "
                     + " | ".join(f"{100 * cov[k]:.1f}" for k in ("boot", "lin", "linu", "mix"))
                     + f" | {100 * np.mean(zm <= 2.576):.1f} | {100 * np.mean(zm <= 3.291):.1f} |")
open("tables_lv.md", "w").write("\n".join(L) + "\n")
print("\n".join(L))
