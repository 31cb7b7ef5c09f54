"""Job list of the main run (one line per job, executed 2 at a time by run_main.sh)."""
S = {  # setting: (repeats, points, gboot, gboot points)
    "digits64_500v1297": (300, "all", "10", "same,s08"),
    "features128_500v1297": (300, "all", "", "all"),
    "gauss2_2000v2000": (300, "all", "10", "all"),
    "gauss2_500v1297": (300, "all", "10", "all"),
    "gauss64_500v1297": (300, "all", "", "all"),
    "gauss128_500v1297": (300, "all", "", "all"),
    "digits64_2000v2000": (200, "same,s08,pert,floor", "", "all"),
    "features128_2000v2000": (200, "same,s08,pert,floor", "", "all"),
    "gauss64_2000v2000": (200, "same,s08,pert,floor", "", "all"),
    "gauss128_2000v2000": (200, "same,s08,pert,floor", "", "all"),
}
ALL = "same,s08,s11,shift,pert,floor"
lines = []
for c in range(3):
    for s, (R, pts, gb, gbp) in S.items():
        r0, r1 = c * 100, min(R, (c + 1) * 100)
        if r0 >= r1:
            continue
        p = ALL if pts == "all" else pts
        lines.append(f'{s} {r0} {r1} out/{s}_{r0}.npz --points {p} --gboot "{gb}" --gboot-points {gbp}')
open("jobs.txt", "w").write("\n".join(lines) + "\n")
print(len(lines), "jobs")
