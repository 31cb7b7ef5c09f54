#!/usr/bin/env python3
"""Reference trajectories of diffusers' own DPM-Solver++(2M) and PNDM (PLMS)
schedulers for the ddimlab solver tests.

It runs diffusers' `DPMSolverMultistepScheduler` (algorithm_type="dpmsolver++",
solver_order=2, midpoint, timestep_spacing="trailing", final_sigmas_type="zero")
and `PNDMScheduler` (skip_prk_steps=True, i.e. PLMS with the pseudo improved
Euler warm-up, timestep_spacing="leading", set_alpha_to_one=True) on an analytic
eps function in place of a network, in float64:

  - the schedulers' float32 betas / alphas / alphas_cumprod (and the quantities
    __init__ derives from them) are replaced by float64 tensors of the numpy
    float64 linear schedule before `set_timesteps`;
  - DPMSolverMultistepScheduler.set_timesteps casts its `sigmas` to float32:
    they are rebuilt in float64 right after it (same formula, no cast; checked
    to round to diffusers' float32 values);
  - DPMSolverMultistepScheduler.step casts the sample to float32
    (`sample = sample.to(torch.float32)`): that one line is replaced by a cast
    to the model output's dtype (float64) in a copy of `step` bound to the
    instance; the installed diffusers files are not changed.

Every trajectory is checked against an independent numpy float64
re-implementation (DDIM-form update in alpha_bar) to 1e-12 relative.

Regenerate (writes tests/fixtures/solver_reference.json; no network needed
once the packages are installed):

    python3 -m venv /tmp/solvervenv
    /tmp/solvervenv/bin/pip install torch diffusers numpy
    /tmp/solvervenv/bin/python scripts/reference/make_solver_fixture.py
"""
import inspect
import json
import os
import sys
import textwrap
import types

import numpy as np
import torch
import diffusers
from diffusers import DPMSolverMultistepScheduler, PNDMScheduler
from diffusers.schedulers import scheduling_dpmsolver_multistep as dpm_module

T = 1000
BETA_START, BETA_END = 1e-4, 0.02
EPS_TEXT = ("sqrt(1 - ab[t]) * x / (0.25 * ab[t] + 1 - ab[t]) + 0.1 * sin(x + 0.01 * t), "
            "ab = cumprod(1 - linspace(1e-4, 0.02, 1000)) in float64, t the integer timestep")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "tests", "fixtures", "solver_reference.json")

BETAS = np.linspace(BETA_START, BETA_END, T, dtype=np.float64)
AB = np.cumprod(1.0 - BETAS)
RTOL = 1e-12


def eps(x, t):
    """Stand-in for the network (float64, elementwise, t an integer timestep).
    First term: the exact eps of data N(0, 0.5^2 I); second: a smooth perturbation."""
    a = AB[t]
    return np.sqrt(1 - a) * x / (0.25 * a + 1 - a) + 0.1 * np.sin(x + 0.01 * t)


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy())


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def check(name, got, want, tol=RTOL):
    e = rel_err(got, want)
    assert e <= tol, "%s: relative error %g > %g" % (name, e, tol)
    return e


def ddim_step(x, e, a_s, a_t):
    """DDIM eta = 0 from alpha_bar a_s to alpha_bar a_t with noise prediction e."""
    x0 = (x - np.sqrt(1 - a_s) * e) / np.sqrt(a_s)
    return np.sqrt(a_t) * x0 + np.sqrt(1 - a_t) * e


# ------------------------------------------------------------ float64 setup
def set_schedule_f64(s):
    """Replace the float32 schedule built in __init__ by the float64 one."""
    s.betas = t64(BETAS)
    s.alphas = 1.0 - s.betas
    s.alphas_cumprod = t64(AB)
    assert s.alphas_cumprod.dtype == torch.float64
    assert np.array_equal(s.alphas_cumprod.numpy(), AB), "alphas_cumprod != numpy float64 schedule"


def make_dpm(S, patch_step=True, f64=True):
    s = DPMSolverMultistepScheduler(
        num_train_timesteps=T, beta_schedule="linear", beta_start=BETA_START, beta_end=BETA_END,
        algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint",
        prediction_type="epsilon", thresholding=False, lower_order_final=True,
        final_sigmas_type="zero", timestep_spacing="trailing", use_karras_sigmas=False)
    if f64:
        set_schedule_f64(s)
        ac = s.alphas_cumprod  # as in DPMSolverMultistepScheduler.__init__
        s.alpha_t = torch.sqrt(ac)
        s.sigma_t = torch.sqrt(1 - ac)
        s.lambda_t = torch.log(s.alpha_t) - torch.log(s.sigma_t)
        s.sigmas = ((1 - ac) / ac) ** 0.5
    s.set_timesteps(S)
    if f64:
        # set_timesteps: sigmas = interp(timesteps, arange, sigmas); append 0;
        # .astype(np.float32). Rebuild without the cast.
        full = (((1 - s.alphas_cumprod) / s.alphas_cumprod) ** 0.5).numpy()
        ts = s.timesteps.numpy()
        sig = np.concatenate([np.interp(ts, np.arange(0, len(full)), full), [0.0]])
        assert np.array_equal(sig[:-1], full[ts])
        assert np.array_equal(sig.astype(np.float32), s.sigmas.numpy()), "sigma rebuild mismatch"
        s.sigmas = torch.from_numpy(sig)
    if patch_step:
        s.step = types.MethodType(PATCHED_DPM_STEP, s)
    return s


def patched_dpm_step():
    src = textwrap.dedent(inspect.getsource(DPMSolverMultistepScheduler.step))
    old = "sample = sample.to(torch.float32)"
    assert src.count(old) == 1, "diffusers' DPM step no longer has the float32 cast line"
    src = src.replace(old, "sample = sample.to(model_output.dtype)")
    ns = {}
    exec(compile(src, dpm_module.__file__ + " (step, float32 cast removed)", "exec"),
         dpm_module.__dict__, ns)
    return ns["step"]


PATCHED_DPM_STEP = patched_dpm_step()


def make_pndm(S, f64=True):
    s = PNDMScheduler(
        num_train_timesteps=T, beta_schedule="linear", beta_start=BETA_START, beta_end=BETA_END,
        skip_prk_steps=True, set_alpha_to_one=True, steps_offset=0,
        timestep_spacing="leading", prediction_type="epsilon")
    if f64:
        set_schedule_f64(s)
        s.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    s.set_timesteps(S)
    return s


# ------------------------------------------------------------------ loop
def run(sched, x_T):
    x, calls = x_T.copy(), []
    for t in sched.timesteps:
        ti = int(t)
        e = eps(x, ti)
        out = sched.step(torch.from_numpy(e), t, torch.from_numpy(x.copy())).prev_sample
        assert out.dtype == torch.float64
        x_new = out.numpy().copy()
        calls.append({"t": ti, "x": x, "eps": e, "prev_sample": x_new})
        x = x_new
    return x, calls


# -------------------------------------------------- independent numpy checks
def numpy_dpmpp2m(x, ts):
    """DPM-Solver++(2M), midpoint, lower_order_final, final sigma 0, in alpha_bar."""
    al = lambda t: np.sqrt(AB[t]) if t >= 0 else 1.0
    sg = lambda t: np.sqrt(1 - AB[t]) if t >= 0 else 0.0
    lam = lambda t: np.log(al(t)) - np.log(sg(t)) if t >= 0 else np.inf
    nxt = list(ts[1:]) + [-1]
    m_prev, out = None, []
    for i, (s, t) in enumerate(zip(ts, nxt)):
        e = eps(x, s)
        m0 = (x - sg(s) * e) / al(s)
        if t == -1:
            x = m0  # first order to sigma = 0 returns the data prediction
        elif i == 0:
            x = sg(t) / sg(s) * x - al(t) * np.expm1(-(lam(t) - lam(s))) * m0
        else:
            h, h0 = lam(t) - lam(s), lam(s) - lam(ts[i - 1])
            D1 = (m0 - m_prev) / (h0 / h)
            x = sg(t) / sg(s) * x - al(t) * np.expm1(-h) * (m0 + 0.5 * D1)
        m_prev = m0
        out.append(x)
    return out


def numpy_plms(x, S):
    """PLMS with the pseudo improved Euler warm-up (diffusers step_plms, skip_prk)."""
    r = T // S
    taus = [i * r for i in range(S)][::-1]
    ab = lambda t: AB[t] if t >= 0 else 1.0
    out = []
    e0 = eps(x, taus[0])
    x_trial = ddim_step(x, e0, ab(taus[0]), ab(taus[0] - r))
    out.append(x_trial)
    if S == 1:
        return out
    e1 = eps(x_trial, taus[1])  # not kept in the history
    x = ddim_step(x, (e0 + e1) / 2, ab(taus[0]), ab(taus[1]))
    out.append(x)
    hist = [e0]
    for t in taus[1:]:
        e = eps(x, t)
        hist = hist[-3:] + [e]
        if len(hist) == 2:
            ep = (3 * hist[-1] - hist[-2]) / 2
        elif len(hist) == 3:
            ep = (23 * hist[-1] - 16 * hist[-2] + 5 * hist[-3]) / 12
        else:
            ep = (55 * hist[-1] - 59 * hist[-2] + 37 * hist[-3] - 9 * hist[-4]) / 24
        x = ddim_step(x, ep, ab(t), ab(t - r))
        out.append(x)
    return out


# ------------------------------------------------------------------ main
def main():
    rng = np.random.default_rng(4321)
    versions = {"python": sys.version.split()[0], "torch": torch.__version__,
                "diffusers": diffusers.__version__, "numpy": np.__version__}
    specs = [("dpmsolver++2m", "trailing", S) for S in (3, 5, 10, 20)] + \
            [("pndm_plms", "linear", S) for S in (2, 4, 10, 20)]
    cases, notes = [], []
    for name, tau, S in specs:
        x_T = rng.standard_normal((2, 3))
        if name == "dpmsolver++2m":
            sched = make_dpm(S)
            want_ts = (np.round(np.arange(T, 0, -T / S)).astype(np.int64) - 1).tolist()
        else:
            sched = make_pndm(S)
            d = [i * (T // S) for i in range(S)][::-1]
            want_ts = [d[0]] + [d[1]] + d[1:]  # second-largest twice
        ts = [int(t) for t in sched.timesteps]
        assert ts == want_ts, (name, S, ts, want_ts)
        x_0, calls = run(sched, x_T)

        # Independent float64 re-implementation, every step.
        ref = numpy_dpmpp2m(x_T, ts) if name == "dpmsolver++2m" else numpy_plms(x_T, S)
        assert len(ref) == len(calls)
        worst = max(check("%s S=%d step %d" % (name, S, i), c["prev_sample"], r)
                    for i, (c, r) in enumerate(zip(calls, ref)))

        # First step: a DDIM eta = 0 step from x_T with eps at the top timestep.
        c0 = calls[0]
        a_s = AB[ts[0]]
        if name == "dpmsolver++2m":
            a_t = AB[ts[1]] if len(ts) > 1 else 1.0
        else:
            a_t = AB[ts[0] - T // S] if ts[0] - T // S >= 0 else 1.0
        check("%s S=%d first step == DDIM" % (name, S), c0["prev_sample"],
              ddim_step(x_T, eps(x_T, ts[0]), a_s, a_t))
        if name == "pndm_plms":
            # Second call: eps at the trial point, averaged with e0, applied from x_T.
            c1 = calls[1]
            assert np.array_equal(c1["x"], c0["prev_sample"]) and c1["t"] == ts[0] - T // S
            check("pndm S=%d improved Euler" % S, c1["prev_sample"],
                  ddim_step(x_T, (c0["eps"] + c1["eps"]) / 2, a_s, AB[c1["t"]]))
        if name == "dpmsolver++2m":
            # Last step (first order to sigma = 0) returns the data prediction
            # of the last call's own eps.
            cl = calls[-1]
            x0_pred = (cl["x"] - np.sqrt(1 - AB[cl["t"]]) * cl["eps"]) / np.sqrt(AB[cl["t"]])
            check("dpm S=%d last step == x0_pred" % S, cl["prev_sample"], x0_pred)
        for a, b in zip(calls, calls[1:]):
            assert np.array_equal(b["x"], a["prev_sample"])

        # What diffusers gives without the float64 measures (for the README).
        if name == "dpmsolver++2m":
            x_unpatched, _ = run(make_dpm(S, patch_step=False), x_T)
            x_stock, _ = run(make_dpm(S, patch_step=False, f64=False), x_T)
        else:
            x_unpatched = x_0  # PNDM has no float32 cast: nothing to undo
            x_stock, _ = run(make_pndm(S, f64=False), x_T)
        notes.append("%-13s S=%2d  %2d calls  timesteps %s\n"
                     "    vs numpy: max rel %.1e; x_0 with the DPM step's f32 sample cast kept: rel %.1e;"
                     " stock diffusers (f32 schedule): rel %.1e"
                     % (name, S, len(calls), ts, worst,
                        rel_err(x_unpatched, x_0), rel_err(x_stock, x_0)))

        cases.append({
            "scheduler": name, "tau": tau, "num_steps": S, "timesteps": ts,
            "x_T": x_T.tolist(),
            "calls": [{"t": c["t"], "x": c["x"].tolist(), "eps": c["eps"].tolist(),
                       "prev_sample": c["prev_sample"].tolist()} for c in calls],
            "x_0": x_0.tolist(),
        })

    doc = {
        "schedule": {"kind": "linear", "timesteps": T, "beta_start": BETA_START, "beta_end": BETA_END},
        "eps": EPS_TEXT,
        "versions": versions,
        "cases": cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, allow_nan=False)
        f.write("\n")

    with open(OUT) as f:  # floats round-trip exactly
        assert json.load(f) == json.loads(json.dumps(doc))
    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")
    print("versions", versions)
    print("linear alpha_bar[999] =", repr(float(AB[999])))
    for n in notes:
        print(n)
    print("all checks passed (relative tolerance %g)" % RTOL)


if __name__ == "__main__":
    main()
