"""Per-setting paired/marginal width ratios: sd(Δ*)/sd*(A) [sd(Δ*)/sqrt(sd*A²+sd*B²)], and paired normal coverage."""
import json
r = json.load(open("results.json"))
L = ["| setting | stat | same-pert | same-s08 | same-s11 | s08-s11 | same-floor |", "|---|---|---|---|---|---|---|"]
sets = list(r["R"])
for s in sets:
    for stat in ("fd", "mmd", "kid", "swd"):
        cells = []
        for p in ("same-pert", "same-s08", "same-s11", "s08-s11", "same-floor"):
            v = r["paired"].get(f"{s}|{p}|{stat}")
            cells.append("–" if v is None else f"{v['_width_vs_A']:.2f} [{v['_width_vs_unpaired']:.2f}] {100*v['normal']['cov']:.0f}%")
        L.append(f"| {s} | {stat} | " + " | ".join(cells) + " |")
open("widths.md", "w").write("\n".join(L) + "\n"); print("\n".join(L))
