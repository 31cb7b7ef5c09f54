#!/usr/bin/env python3
"""Reference trajectories of low-NFE solvers for the ddimlab solver tests.

Cases (see scripts/reference/README.md, "low-NFE solver fixture"):

  - diffusers' own UniPCMultistepScheduler (bh2, orders 2 and 3),
    DPMSolverMultistepScheduler (DPM-Solver++(3M) and SDE-DPM-Solver++(2M)) and
    DDIMScheduler (timestep_spacing="linspace"), run in float64 on the analytic
    eps function of make_solver_fixture.py;
  - the karras / logsnr (Lu lambdas) / uniform timestep lists diffusers builds;
  - iPNDM (Zhang & Chen 2023) as in k-diffusion-style `sample_ipndm`
    (comfy/k_diffusion/sampling.py of ComfyUI, from zju-pi/diff-sampler), and
    Karras et al. (2022) Euler / Heun with churn as in k-diffusion's
    `sample_euler` / `sample_heun`, with ddimlab's integer-timestep rounding of
    the churned sigma. These are transcribed (k-diffusion's PyPI release has no
    `sample_ipndm`, and the churn rounding is ddimlab's own rule).

Float64: the schedulers' float32 schedule is replaced by the numpy float64 one
and the float32 casts in `set_timesteps` / `step` are removed from copies of
those methods bound to each scheduler instance (each replaced line is asserted
to occur the expected number of times; the installed files are not changed).
Every trajectory is checked against an independent numpy float64
re-implementation to 1e-12 relative.

Regenerate (writes tests/fixtures/lownfe_reference.json):

    python3 -m venv /tmp/lownfevenv
    /tmp/lownfevenv/bin/pip install torch diffusers numpy
    /tmp/lownfevenv/bin/python scripts/reference/make_lownfe_fixture.py
"""
import inspect
import json
import math
import os
import sys
import textwrap
import types

import numpy as np
import torch
import diffusers
from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, UniPCMultistepScheduler
from diffusers.schedulers import scheduling_dpmsolver_multistep as dpm_module
from diffusers.schedulers import scheduling_unipc_multistep as unipc_module

T = 1000
BETA_START, BETA_END = 1e-4, 0.02
EPS_TEXT = ("sqrt(1 - ab[t]) * x / (0.25 * ab[t] + 1 - ab[t]) + 0.1 * sin(x + 0.01 * t), "
            "ab = cumprod(1 - linspace(1e-4, 0.02, 1000)) in float64, t the integer timestep")
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "tests", "fixtures", "lownfe_reference.json")
SEED = 2468

BETAS = np.linspace(BETA_START, BETA_END, T, dtype=np.float64)
AB = np.cumprod(1.0 - BETAS)
SIG = np.sqrt((1.0 - AB) / AB)        # sigma_ve(t) = sqrt((1 - ab) / ab)
LOGSIG = np.log(SIG)                  # increasing in t
RTOL = 1e-12
WORST = {}                            # check name prefix -> worst relative error
DPM3M_EXACT_GAP = []                  # rel. difference of a 3M step from the exact quadratic integral


def eps(x, t):
    """Stand-in for the network (float64, elementwise, t an integer timestep).
    Same function as make_solver_fixture.py."""
    a = AB[t]
    return np.sqrt(1 - a) * x / (0.25 * a + 1 - a) + 0.1 * np.sin(x + 0.01 * t)


def t64(a):
    return torch.from_numpy(np.asarray(a, dtype=np.float64).copy())


def rel_err(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def elem_rel_err(a, b):
    """max_i |a_i - b_i| / |b_i| (0/0 counts as 0)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = np.abs(a - b)
    return float(np.max(np.where(d == 0, 0.0, d / np.maximum(np.abs(b), 1e-300))))


def check(name, got, want, tol=RTOL, key=None):
    e = rel_err(got, want)
    assert e <= tol, "%s: relative error %g > %g" % (name, e, tol)
    if key is not None:
        WORST[key] = max(WORST.get(key, 0.0), e)
    return e


def ab(t):
    return AB[t] if t >= 0 else 1.0


def al(t):   # alpha_t = sqrt(ab)
    return math.sqrt(AB[t]) if t >= 0 else 1.0


def sg(t):   # sigma_t (VP) = sqrt(1 - ab)
    return math.sqrt(1.0 - AB[t]) if t >= 0 else 0.0


def lam(t):  # lambda = log(alpha_t / sigma_t) = -log sigma_ve
    return -LOGSIG[t] if t >= 0 else math.inf


def x0_of(x, e, t):
    return (x - sg(t) * e) / al(t)


def ddim_step(x, e, a_s, a_t):
    """DDIM eta = 0 from alpha_bar a_s to alpha_bar a_t with noise prediction e."""
    x0 = (x - np.sqrt(1 - a_s) * e) / np.sqrt(a_s)
    return np.sqrt(a_t) * x0 + np.sqrt(1 - a_t) * e


def trailing(S):
    """ddimlab's trailing tau, ascending unique."""
    return sorted(set((np.round(np.arange(T, 0, -T / S)).astype(np.int64) - 1).tolist()))


def uniform(S):
    """ddimlab's uniform tau: np.linspace(0, T - 1, S).round(), ascending unique."""
    return sorted(set(np.linspace(0, T - 1, S).round().astype(np.int64).tolist()))


def frac_t(sigma):
    """Fractional timestep of a VE sigma: linear interpolation of log sigma_ve over
    integer t, clamped to [0, T - 1] (what diffusers' _sigma_to_t computes)."""
    ls = math.log(max(sigma, 1e-10))
    k = int(np.searchsorted(LOGSIG, ls, side="right")) - 1
    k = min(max(k, 0), T - 2)
    w = (ls - LOGSIG[k]) / (LOGSIG[k + 1] - LOGSIG[k])
    w = min(max(w, 0.0), 1.0)
    return k + w


# ------------------------------------------------------------ float64 patches
PATCHES = []  # human-readable list of the replaced lines, stored in the JSON


def patched_method(cls, name, module, replacements):
    """Source of cls.name with each (old, new, expected_count) replaced; the
    function is compiled in the scheduler module's namespace."""
    src = textwrap.dedent(inspect.getsource(getattr(cls, name)))
    for old, new, count in replacements:
        n = src.count(old)
        assert n == count, "%s.%s: %r occurs %d times, expected %d" % (cls.__name__, name, old, n, count)
        src = src.replace(old, new)
        PATCHES.append("%s.%s: %r -> %r (%d occurrence%s)"
                       % (cls.__name__, name, old, new, count, "s" if count > 1 else ""))
    ns = {}
    exec(compile(src, "%s (%s.%s, float32 casts removed)" % (module.__file__, cls.__name__, name), "exec"),
         module.__dict__, ns)
    return ns[name]


SIGMA_CAST = ("sigmas = np.concatenate([sigmas, [sigma_last]]).astype(np.float32)",
              "sigmas = np.concatenate([sigmas, [sigma_last]]).astype(np.float64)")
UNIPC_SET_TIMESTEPS = patched_method(UniPCMultistepScheduler, "set_timesteps", unipc_module,
                                     [SIGMA_CAST + (5,)])
DPM_SET_TIMESTEPS = patched_method(DPMSolverMultistepScheduler, "set_timesteps", dpm_module,
                                   [SIGMA_CAST + (1,)])
DPM_STEP = patched_method(DPMSolverMultistepScheduler, "step", dpm_module, [
    ("sample = sample.to(torch.float32)", "sample = sample.to(model_output.dtype)", 1),
    ("noise = variance_noise.to(device=model_output.device, dtype=torch.float32)",
     "noise = variance_noise.to(device=model_output.device, dtype=model_output.dtype)", 1),
])


def set_schedule_f64(s):
    """Replace the float32 schedule built in __init__ by the float64 one."""
    s.betas = t64(BETAS)
    s.alphas = 1.0 - s.betas
    s.alphas_cumprod = t64(AB)
    assert np.array_equal(s.alphas_cumprod.numpy(), AB), "alphas_cumprod != numpy float64 schedule"


def set_vp_f64(s):
    """alpha_t / sigma_t / lambda_t / sigmas as built in __init__ (UniPC, DPM), float64."""
    ac = s.alphas_cumprod
    s.alpha_t = torch.sqrt(ac)
    s.sigma_t = torch.sqrt(1 - ac)
    s.lambda_t = torch.log(s.alpha_t) - torch.log(s.sigma_t)
    s.sigmas = ((1 - ac) / ac) ** 0.5


def check_sigmas(s, ts, unpatched):
    """Sigmas of a non-karras run: sigma_ve at the timesteps, then 0; they round to the
    float32 sigmas of the same float64 schedule without the patch."""
    sig = s.sigmas.numpy()
    assert s.sigmas.dtype == torch.float64
    assert np.array_equal(sig, np.concatenate([SIG[ts], [0.0]])) or \
        rel_err(sig, np.concatenate([SIG[ts], [0.0]])) < 1e-15, "sigmas != sigma_ve(t)"
    assert unpatched.sigmas.dtype == torch.float32
    assert np.array_equal(sig.astype(np.float32), unpatched.sigmas.numpy()), "f64 sigmas do not round to f32 ones"


UNIPC_BASE = dict(num_train_timesteps=T, beta_schedule="linear", beta_start=BETA_START, beta_end=BETA_END,
                  solver_type="bh2", predict_x0=True, prediction_type="epsilon", lower_order_final=True,
                  final_sigmas_type="zero", timestep_spacing="trailing", disable_corrector=[],
                  thresholding=False)
DPM_BASE = dict(num_train_timesteps=T, beta_schedule="linear", beta_start=BETA_START, beta_end=BETA_END,
                solver_type="midpoint", prediction_type="epsilon", thresholding=False,
                lower_order_final=True, final_sigmas_type="zero", timestep_spacing="trailing")
DDIM_BASE = dict(num_train_timesteps=T, beta_schedule="linear", beta_start=BETA_START, beta_end=BETA_END,
                 timestep_spacing="linspace", set_alpha_to_one=True, clip_sample=False,
                 prediction_type="epsilon", steps_offset=0)


def make_unipc(order, S, f64=True, patch=True):
    s = UniPCMultistepScheduler(solver_order=order, **UNIPC_BASE)
    if f64:
        set_schedule_f64(s)
        set_vp_f64(s)
    if f64 and patch:
        s.set_timesteps = types.MethodType(UNIPC_SET_TIMESTEPS, s)
    s.set_timesteps(S)
    return s


def make_dpm(S, f64=True, patch=True, **kw):
    cfg = dict(DPM_BASE)
    cfg.update(kw)
    s = DPMSolverMultistepScheduler(**cfg)
    if f64:
        set_schedule_f64(s)
        set_vp_f64(s)
    if f64 and patch:
        s.set_timesteps = types.MethodType(DPM_SET_TIMESTEPS, s)
        s.step = types.MethodType(DPM_STEP, s)
    s.set_timesteps(S)
    return s


def make_ddim(S, f64=True):
    s = DDIMScheduler(**DDIM_BASE)
    if f64:
        set_schedule_f64(s)
        s.final_alpha_cumprod = torch.tensor(1.0, dtype=torch.float64)
    s.set_timesteps(S)
    return s


def instrument_dpm(s):
    """Record which update (order) diffusers' step actually calls."""
    log = []
    for order, name in ((1, "dpm_solver_first_order_update"),
                        (2, "multistep_dpm_solver_second_order_update"),
                        (3, "multistep_dpm_solver_third_order_update")):
        orig = getattr(s, name)

        def wrap(*a, _orig=orig, _order=order, **k):
            log.append(_order)
            return _orig(*a, **k)
        setattr(s, name, wrap)
    return log


def instrument_unipc(s):
    """Record the predictor / corrector orders and the corrected sample."""
    log = {"p": [], "c": [], "x_c": []}
    orig_p, orig_c = s.multistep_uni_p_bh_update, s.multistep_uni_c_bh_update

    def wrap_p(*a, **k):
        log["p"].append(int(k["order"]))
        log["x_c"].append(k["sample"].numpy().copy())
        return orig_p(*a, **k)

    def wrap_c(*a, **k):
        log["c"][-1] = int(k["order"])
        return orig_c(*a, **k)
    s.multistep_uni_p_bh_update, s.multistep_uni_c_bh_update = wrap_p, wrap_c
    return log


def run_diffusers(sched, x_T, noises=None, step_kw=None, on_call=None):
    x, calls = x_T.copy(), []
    for i, t in enumerate(sched.timesteps):
        ti = int(t)
        e = eps(x, ti)
        kw = dict(step_kw or {})
        if noises is not None:
            kw["variance_noise"] = torch.from_numpy(noises[i].copy())
        if on_call is not None:
            on_call()
        out = sched.step(torch.from_numpy(e), t, torch.from_numpy(x.copy()), **kw).prev_sample
        assert out.dtype == torch.float64
        x_new = out.numpy().copy()
        calls.append({"t": ti, "x": x, "eps": e, "prev_sample": x_new})
        x = x_new
    return x, calls


# -------------------------------------------------- independent numpy: UniPC
def phi(k, z):
    """phi_k(z) = (e^z - sum_{j<k} z^j / j!) / z^k (phi_1(z) = (e^z - 1)/z)."""
    s = math.expm1(z)
    for j in range(2, k + 1):
        s -= z ** (j - 1) / math.factorial(j - 1)
    return s / z ** k


def unipc_orders(P, N):
    """UniPC (diffusers, lower_order_final): predictor order at call i, corrector order
    at call i (0 = none; the corrector at call i uses the predictor order of call i-1)."""
    p = [min(P, N - i, i + 1) for i in range(N)]
    c = [0] + p[:-1]
    return p, c


def numpy_unipc_bh2(x_T, ts, P):
    """UniPC (Zhao et al. 2023), data prediction, B(h) = e^h - 1 in hh = -h:
    UniP-p predictor x~_t = (s_t/s_s) x - a_t (e^hh - 1) m0 - a_t B sum_k a_k D_k,
    D_k = (m_{s_k} - m0)/r_k, r_k = (lambda_{s_k} - lambda_{s0})/h, R_{p-1} a = g/B
    (a = 1/2 when p = 2); UniC-p corrector with the new point's model output,
    R_p c = g/B (c = 1/2 when p = 1); g_i = i! hh phi_{i+1}(hh)."""
    N = len(ts)
    pord, cord = unipc_orders(P, N)
    nxt = list(ts[1:]) + [-1]
    x, ms, xc_list, prev_list = x_T.copy(), [], [], []
    x_start = None  # corrected sample at the previous call (start of its predictor)

    def coeffs(s0, t):
        h = lam(t) - lam(s0)
        hh = -h
        B = math.expm1(hh)
        g = [math.factorial(i) * hh * phi(i + 1, hh) for i in range(1, 4)]
        return h, hh, B, g

    for i, s in enumerate(ts):
        e = eps(x, s)
        m = x0_of(x, e, s)
        ms.append(m)
        # Corrector: from the previous call's start x_start at ts[i-1] to ts[i].
        if cord[i] > 0:
            p, s0, t = cord[i], ts[i - 1], s
            h, hh, B, g = coeffs(s0, t)
            m0 = ms[i - 1]
            rk = [(lam(ts[i - 1 - k]) - lam(s0)) / h for k in range(1, p)]
            Dk = [(ms[i - 1 - k] - m0) / rk[k - 1] for k in range(1, p)]
            if p == 1:
                c = [0.5]
            else:
                r = rk + [1.0]
                R = np.array([[rr ** j for rr in r] for j in range(p)])
                c = np.linalg.solve(R, np.array(g[:p]) / B).tolist()
            corr = sum(c[k] * Dk[k] for k in range(p - 1)) + c[p - 1] * (m - m0)
            x = (sg(t) / sg(s0)) * x_start - al(t) * math.expm1(hh) * m0 - al(t) * B * corr
        xc_list.append(x)
        x_start = x
        # Predictor from ts[i] to nxt[i].
        p, s0, t = pord[i], s, nxt[i]
        if t == -1:
            assert p == 1
            x_new = m.copy()  # sigma_t = 0, alpha_t = 1: the data prediction
        else:
            h, hh, B, g = coeffs(s0, t)
            x_new = (sg(t) / sg(s0)) * x - al(t) * math.expm1(hh) * m
            if p >= 2:
                rk = [(lam(ts[i - k]) - lam(s0)) / h for k in range(1, p)]
                Dk = [(ms[i - k] - m) / rk[k - 1] for k in range(1, p)]
                if p == 2:
                    a = [0.5]
                else:
                    R = np.array([[rr ** j for rr in rk] for j in range(p - 1)])
                    a = np.linalg.solve(R, np.array(g[:p - 1]) / B).tolist()
                x_new = x_new - al(t) * B * sum(a[k] * Dk[k] for k in range(p - 1))
        prev_list.append(x_new)
        x = x_new
    return xc_list, prev_list, pord, cord


# -------------------------------------------- independent numpy: DPM-Solver++
def dpm_orders(P, N):
    """diffusers DPMSolverMultistep (lower_order_final, final_sigmas_type zero):
    first call order 1, warm-up, last call order 1 (always, sigma_last = 0),
    second-to-last call at most order 2 when N < 15."""
    out = []
    for i in range(N):
        o = min(P, i + 1)
        if i == N - 1:
            o = 1
        elif i == N - 2 and N < 15:
            o = min(o, 2)
        out.append(o)
    return out


def numpy_dpmpp_3m(x_T, ts):
    """DPM-Solver++ multistep (Lu et al. 2022) in data prediction: order 1 = DDIM,
    order 2 = 2M midpoint (D0 + D1/2), order 3 = exact exponential integral of the
    quadratic interpolant of m(lambda) through the last three points."""
    N = len(ts)
    orders = dpm_orders(3, N)
    nxt = list(ts[1:]) + [-1]
    x, ms, out = x_T.copy(), [], []
    for i, (s, t) in enumerate(zip(ts, nxt)):
        e = eps(x, s)
        m0 = x0_of(x, e, s)
        ms.append(m0)
        o = orders[i]
        if t == -1:
            assert o == 1
            x = m0.copy()
        else:
            h = lam(t) - lam(s)
            em = math.exp(-h)
            x_prev = x
            if o == 1:
                x = ddim_step(x, e, ab(s), ab(t))
            elif o == 2:
                r0 = (lam(s) - lam(ts[i - 1])) / h
                D1 = (m0 - ms[i - 1]) / r0
                x = sg(t) / sg(s) * x - al(t) * math.expm1(-h) * (m0 + 0.5 * D1)
            else:
                # Newton form in u = lambda - lambda_s0: P(u) = c0 + c1 u + c2 u^2.
                l0, l1, l2 = lam(s), lam(ts[i - 1]), lam(ts[i - 2])
                f01 = (m0 - ms[i - 1]) / (l0 - l1)
                f12 = (ms[i - 1] - ms[i - 2]) / (l1 - l2)
                f012 = (f01 - f12) / (l0 - l2)
                c0, c1, c2 = m0, f01 + (l0 - l1) * f012, f012
                # sigma_t * int_0^h e^{lambda_s0 + u} P(u) du, sigma_t e^{lambda_s0} e^h = alpha_t
                i0 = 1 - em
                i1 = (h - 1) + em
                i2 = (h * h - 2 * h + 2) - 2 * em
                # DPM-Solver++(3M) as published (Lu et al.; LuChengTHU/dpm-solver and diffusers):
                # D1 = h P'(0), D2 = h^2 f[l0,l1,l2] = h^2 P''(0)/2, weighted by -phi_3 =
                # -((e^-h - 1 + h)/h^2 - 1/2), which expects h^2 P''(0): the quadratic term
                # enters with HALF of its exact integral.
                x_exact = sg(t) / sg(s) * x + al(t) * (c0 * i0 + c1 * i1 + c2 * i2)
                x = sg(t) / sg(s) * x + al(t) * (c0 * i0 + c1 * i1 + 0.5 * c2 * i2)
                D1, D2 = h * c1, h * h * c2
                p1 = math.expm1(-h)
                p2 = p1 / h + 1.0
                p3 = p2 / h - 0.5
                x_phi = sg(t) / sg(s) * x_prev - al(t) * p1 * m0 + al(t) * p2 * D1 - al(t) * p3 * D2
                check("3M phi form == halved quadratic term", x, x_phi, tol=1e-11, key="dpm3m_phi_form")
                DPM3M_EXACT_GAP.append(rel_err(x_exact, x))
        out.append(x)
    return out, orders


def numpy_sde_dpmpp_2m(x_T, ts, zs):
    """SDE-DPM-Solver++(2M), midpoint (Lu et al. 2022, Eq. for the SDE solver):
    order 1 = DDIM eta = 1 with the same z (written in alpha_bar), order 2:
    x_t = (s_t/s_s) e^-h x + a_t (1 - e^-2h) (D0 + D1/2) + s_t sqrt(1 - e^-2h) z."""
    N = len(ts)
    orders = dpm_orders(2, N)
    nxt = list(ts[1:]) + [-1]
    x, ms, out = x_T.copy(), [], []
    for i, (s, t) in enumerate(zip(ts, nxt)):
        e = eps(x, s)
        m0 = x0_of(x, e, s)
        ms.append(m0)
        o = orders[i]
        if t == -1:
            x = m0.copy()
        elif o == 1:
            a_s, a_t = ab(s), ab(t)
            var = (1 - a_t) / (1 - a_s) * (1 - a_s / a_t)
            x = np.sqrt(a_t) * m0 + np.sqrt(1 - a_t - var) * e + np.sqrt(var) * zs[i]
        else:
            h = lam(t) - lam(s)
            r0 = (lam(s) - lam(ts[i - 1])) / h
            D1 = (m0 - ms[i - 1]) / r0
            x = (sg(t) / sg(s) * math.exp(-h)) * x - al(t) * math.expm1(-2 * h) * (m0 + 0.5 * D1) \
                + sg(t) * math.sqrt(-math.expm1(-2 * h)) * zs[i]
        out.append(x)
    return out, orders


# ------------------------------------- k-diffusion-style samplers (VE, torch)
class VEDenoiser:
    """D(x_ve, sigma) = x_ve - sigma * eps(x_ve / sqrt(1 + sigma^2), t(sigma)), t(sigma)
    the exact integer timestep of sigma (looked up); records every model call in VP units."""

    def __init__(self, sigma_to_t):
        self.sigma_to_t, self.calls = sigma_to_t, []

    def __call__(self, x_ve, sigma):
        sigma = float(sigma)
        t = self.sigma_to_t[sigma]
        x_vp = x_ve.numpy() / math.sqrt(1.0 + sigma * sigma)
        e = eps(x_vp, t)
        self.calls.append({"t": t, "x": x_vp, "eps": e})
        return x_ve - sigma * torch.from_numpy(e)


def kd_sample_ipndm(model, x, sigmas, max_order=4):
    """Transcription of sample_ipndm in ComfyUI comfy/k_diffusion/sampling.py
    ("From https://github.com/zju-pi/diff-sampler/blob/main/diff-solvers-main/solvers.py
    under Apache 2 license"), current version with the `t_next == 0` denoising step;
    float64 torch, callback / trange / extra_args dropped."""
    x_next = x
    buffer_model = []
    for i in range(len(sigmas) - 1):
        t_cur = sigmas[i]
        t_next = sigmas[i + 1]
        x_cur = x_next
        denoised = model(x_cur, t_cur)
        d_cur = (x_cur - denoised) / t_cur
        order = min(max_order, i + 1)
        if t_next == 0:     # Denoising step
            x_next = denoised
        elif order == 1:    # First Euler step.
            x_next = x_cur + (t_next - t_cur) * d_cur
        elif order == 2:    # Use one history point.
            x_next = x_cur + (t_next - t_cur) * (3 * d_cur - buffer_model[-1]) / 2
        elif order == 3:    # Use two history points.
            x_next = x_cur + (t_next - t_cur) * (23 * d_cur - 16 * buffer_model[-1] + 5 * buffer_model[-2]) / 12
        elif order == 4:    # Use three history points.
            x_next = x_cur + (t_next - t_cur) * (55 * d_cur - 59 * buffer_model[-1] + 37 * buffer_model[-2]
                                                 - 9 * buffer_model[-3]) / 24
        if len(buffer_model) == max_order - 1:
            for k in range(max_order - 2):
                buffer_model[k] = buffer_model[k + 1]
            buffer_model[-1] = d_cur
        else:
            buffer_model.append(d_cur)
        yield i, order, x_next


def churn_sigma_hat(sigma_i, t_i, n, st):
    """ddimlab's churn rule: gamma as k-diffusion, then sigma_hat rounded onto the integer grid."""
    gamma = min(st["s_churn"] / n, 2 ** 0.5 - 1) if st["s_tmin"] <= sigma_i <= st["s_tmax"] else 0.
    raw = sigma_i * (gamma + 1)
    tf = frac_t(raw)
    t_hat = min(max(int(np.round(tf)), t_i), T - 1)
    return gamma, raw, tf, t_hat


def kd_sample_churn(model, x, sigmas, ts_desc, zs, st, heun):
    """k-diffusion sample_euler / sample_heun (Karras et al. 2022 Algorithm 2) with
    s_churn, transcribed, with ddimlab's rounding of sigma_hat to an integer timestep
    (t_hat = round(t(sigma_i (1 + gamma))) clamped to [t_i, T - 1], sigma_hat = sigma_ve(t_hat))
    and one z drawn (given) per step even when gamma = 0."""
    n = len(sigmas) - 1
    for i in range(n):
        sigma_i = float(sigmas[i])
        gamma, raw, tf, t_hat = churn_sigma_hat(sigma_i, ts_desc[i], n, st)
        sigma_hat = SIG[t_hat]
        rec = {"gamma": gamma, "sigma_hat_raw": raw, "t_hat_frac": tf, "t_hat": t_hat, "sigma_hat": sigma_hat,
               "x_ve": x.numpy().copy()}
        if t_hat > ts_desc[i]:
            x = x + torch.from_numpy(zs[i]) * st["s_noise"] * (sigma_hat ** 2 - sigma_i ** 2) ** 0.5
        rec["x_hat_ve"] = x.numpy().copy()
        denoised = model(x, sigma_hat)
        d = (x - denoised) / sigma_hat
        dt = sigmas[i + 1] - sigma_hat
        if not heun or sigmas[i + 1] == 0:
            x = x + d * dt          # Euler method
        else:                       # Heun's method
            x_2 = x + d * dt
            denoised_2 = model(x_2, sigmas[i + 1])
            d_2 = (x_2 - denoised_2) / sigmas[i + 1]
            d_prime = (d + d_2) / 2
            x = x + d_prime * dt
        rec["x_next_ve"] = x.numpy().copy()
        yield i, rec


def ve_grid(tau_asc):
    ts_desc = list(reversed(tau_asc))
    sig = [float(SIG[t]) for t in ts_desc] + [0.0]
    return ts_desc, sig


def to_vp(x_ve, t):
    return x_ve / math.sqrt(1.0 + SIG[t] ** 2) if t >= 0 else x_ve.copy()


def numpy_ipndm(x_T, ts_desc):
    """iPNDM in ddimlab's x-bar = x/sqrt(ab) units: d = eps(x, t), Adams-Bashforth
    (1, 3/2 -1/2, 23/12.., 55/24..) in sigma; onto sigma = 0 the data prediction."""
    AB_COEF = {1: [1.0], 2: [3 / 2, -1 / 2], 3: [23 / 12, -16 / 12, 5 / 12],
               4: [55 / 24, -59 / 24, 37 / 24, -9 / 24]}
    x = x_T.copy()
    hist, out = [], []
    nxt = ts_desc[1:] + [-1]
    for i, (t, tn) in enumerate(zip(ts_desc, nxt)):
        e = eps(x, t)
        o = min(4, i + 1)
        if tn == -1:
            x = x0_of(x, e, t)
        else:
            comb = sum(c * d for c, d in zip(AB_COEF[o], [e] + hist[::-1]))
            xbar = x / al(t) + (SIG[tn] - SIG[t]) * comb
            x = xbar * al(tn)
        hist = (hist + [e])[-3:]
        out.append((o, x))
    return out


def numpy_churn(x_T, ts_desc, zs, st, heun):
    """Same method in VP / DDIM form: churn x_bar += sqrt(s_hat^2 - s^2) s_noise z, then
    DDIM eta = 0 from ab(t_hat) to ab(t_next) with eps (Euler), or with the mean of the two
    eps (Heun's trapezoid, Euler onto clean data)."""
    n = len(ts_desc)
    nxt = ts_desc[1:] + [-1]
    x, out = x_T.copy(), []
    for i, (t, tn) in enumerate(zip(ts_desc, nxt)):
        gamma, raw, tf, th = churn_sigma_hat(SIG[t], t, n, st)
        if th > t:
            xbar = x / al(t) + math.sqrt(SIG[th] ** 2 - SIG[t] ** 2) * st["s_noise"] * zs[i]
            x = xbar * al(th)
        e = eps(x, th)
        pred = ddim_step(x, e, ab(th), ab(tn))
        if heun and tn >= 0:
            e2 = eps(pred, tn)
            pred = ddim_step(x, (e + e2) / 2, ab(th), ab(tn))
        x = pred
        out.append((th, x))
    return out


# ------------------------------------------------------------------ helpers
def L(a):
    return np.asarray(a).tolist()


def calls_json(calls, extra=()):
    out = []
    for c in calls:
        d = {"t": c["t"], "x": L(c["x"]), "eps": L(c["eps"])}
        for k in ("prev_sample",) + tuple(extra):
            if k in c:
                v = c[k]
                d[k] = L(v) if isinstance(v, np.ndarray) else v
        out.append(d)
    return out


# ------------------------------------------------------------------ main
def main():
    rng = np.random.default_rng(SEED)
    versions = {"python": sys.version.split()[0], "torch": torch.__version__,
                "diffusers": diffusers.__version__, "numpy": np.__version__}
    cases, notes = [], []

    # ---------------------------------------------------------------- UniPC
    for P, steps in ((2, (3, 5, 10, 20)), (3, (4, 5, 10, 20))):
        name = "unipc_bh2_%d" % P
        for S in steps:
            x_T = rng.standard_normal((2, 3))
            sched = make_unipc(P, S)
            unpatched = make_unipc(P, S, patch=False)
            ts = [int(t) for t in sched.timesteps]
            assert ts == trailing(S)[::-1], (name, S, ts)
            check_sigmas(sched, ts, unpatched)
            log = instrument_unipc(sched)
            x_0, calls = run_diffusers(sched, x_T, on_call=lambda: log["c"].append(0))
            xc_np, prev_np, pord, cord = numpy_unipc_bh2(x_T, ts, P)
            assert log["p"] == pord and log["c"] == cord, (name, S, log["p"], pord, log["c"], cord)
            for i, c in enumerate(calls):
                check("%s S=%d call %d corrected" % (name, S, i), log["x_c"][i], xc_np[i], key=name)
                check("%s S=%d call %d prev" % (name, S, i), c["prev_sample"], prev_np[i], key=name)
                c["x_corrected"], c["order_p"], c["order_c"] = log["x_c"][i], pord[i], cord[i]
            # First call: DDIM; last call: the data prediction at the UNcorrected sample.
            check("%s S=%d first == DDIM" % (name, S), calls[0]["prev_sample"],
                  ddim_step(x_T, calls[0]["eps"], AB[ts[0]], AB[ts[1]]))
            cl = calls[-1]
            check("%s S=%d last == x0(x, eps)" % (name, S), cl["prev_sample"], x0_of(cl["x"], cl["eps"], cl["t"]))
            assert np.array_equal(calls[0]["x_corrected"], x_T)
            for a, b in zip(calls, calls[1:]):
                assert np.array_equal(b["x"], a["prev_sample"])
            x_stock, _ = run_diffusers(make_unipc(P, S, f64=False), x_T)
            notes.append("%-18s S=%2d %2d calls orders p=%s c=%s stock-f32 x_0 rel %.1e"
                         % (name, S, len(calls), pord, cord, rel_err(x_stock, x_0)))
            cases.append({"scheduler": name, "tau": "trailing", "num_steps": S, "timesteps": ts,
                          "config": dict(UNIPC_BASE, solver_order=P),
                          "x_T": L(x_T), "calls": calls_json(calls, ("x_corrected", "order_p", "order_c")),
                          "x_0": L(x_0)})

    # ------------------------------------------------------ DPM-Solver++(3M)
    for S in (3, 5, 10, 20):
        name = "dpmsolver++3m"
        x_T = rng.standard_normal((2, 3))
        cfg = dict(algorithm_type="dpmsolver++", solver_order=3)
        sched, unpatched = make_dpm(S, **cfg), make_dpm(S, patch=False, **cfg)
        ts = [int(t) for t in sched.timesteps]
        assert ts == trailing(S)[::-1]
        check_sigmas(sched, ts, unpatched)
        log = instrument_dpm(sched)
        x_0, calls = run_diffusers(sched, x_T)
        ref, orders = numpy_dpmpp_3m(x_T, ts)
        assert log == orders, (S, log, orders)
        for i, c in enumerate(calls):
            check("%s S=%d call %d" % (name, S, i), c["prev_sample"], ref[i], key=name)
            c["order"] = orders[i]
        cl = calls[-1]
        check("%s S=%d last == x0" % (name, S), cl["prev_sample"], x0_of(cl["x"], cl["eps"], cl["t"]))
        x_stock, _ = run_diffusers(make_dpm(S, f64=False, **cfg), x_T)
        notes.append("%-18s S=%2d %2d calls orders %s stock-f32 x_0 rel %.1e"
                     % (name, S, len(calls), orders, rel_err(x_stock, x_0)))
        cases.append({"scheduler": name, "tau": "trailing", "num_steps": S, "timesteps": ts,
                      "config": dict(DPM_BASE, **cfg), "x_T": L(x_T),
                      "calls": calls_json(calls, ("order",)), "x_0": L(x_0)})

    # ------------------------------------------------- SDE-DPM-Solver++(2M)
    for S in (5, 10, 20):
        name = "sde-dpmsolver++2m"
        x_T = rng.standard_normal((2, 3))
        cfg = dict(algorithm_type="sde-dpmsolver++", solver_order=2)
        sched, unpatched = make_dpm(S, **cfg), make_dpm(S, patch=False, **cfg)
        ts = [int(t) for t in sched.timesteps]
        assert ts == trailing(S)[::-1]
        check_sigmas(sched, ts, unpatched)
        zs = [rng.standard_normal((2, 3)) for _ in ts]
        log = instrument_dpm(sched)
        x_0, calls = run_diffusers(sched, x_T, noises=zs)
        ref, orders = numpy_sde_dpmpp_2m(x_T, ts, zs)
        assert log == orders, (S, log, orders)
        for i, c in enumerate(calls):
            check("%s S=%d call %d" % (name, S, i), c["prev_sample"], ref[i], key=name)
            c["order"], c["noise"] = orders[i], zs[i]
        cl = calls[-1]
        check("%s S=%d last == x0 (noise * 0)" % (name, S), cl["prev_sample"], x0_of(cl["x"], cl["eps"], cl["t"]))
        x_stock, _ = run_diffusers(make_dpm(S, f64=False, **cfg), x_T, noises=zs)
        notes.append("%-18s S=%2d %2d calls orders %s stock-f32 x_0 rel %.1e"
                     % (name, S, len(calls), orders, rel_err(x_stock, x_0)))
        cases.append({"scheduler": name, "tau": "trailing", "num_steps": S, "timesteps": ts,
                      "config": dict(DPM_BASE, **cfg), "x_T": L(x_T),
                      "calls": calls_json(calls, ("order", "noise")), "x_0": L(x_0)})

    # ------------------------------------------------------- DDIM linspace
    for S in (7, 10, 50):
        name = "ddim_linspace"
        x_T = rng.standard_normal((2, 3))
        sched = make_ddim(S)
        ts = [int(t) for t in sched.timesteps]
        assert ts == uniform(S)[::-1] and len(ts) == S, (S, ts)
        x_0, calls = run_diffusers(sched, x_T, step_kw={"eta": 0.0})
        # diffusers' DDIMScheduler.step goes to prev_timestep = t - T // S (not to the
        # next listed timestep); ab = 1 below 0 (set_alpha_to_one).
        x = x_T.copy()
        for i, c in enumerate(calls):
            pt = c["t"] - T // S
            c["prev_timestep"] = pt
            x = ddim_step(x, eps(x, c["t"]), AB[c["t"]], ab(pt))
            check("%s S=%d call %d" % (name, S, i), c["prev_sample"], x, key=name)
        # ddimlab's uniform-tau DDIM (each step onto the next listed timestep): numpy only.
        chain, x = [], x_T.copy()
        for t, tn in zip(ts, ts[1:] + [-1]):
            e = eps(x, t)
            xn = ddim_step(x, e, AB[t], ab(tn))
            chain.append({"t": t, "x": x, "eps": e, "prev_sample": xn})
            x = xn
        x_stock, _ = run_diffusers(make_ddim(S, f64=False), x_T, step_kw={"eta": 0.0})
        notes.append("%-18s S=%2d timesteps %s... prev = t - %d; stock-f32 x_0 rel %.1e; next-in-list x_0 differs rel %.1e"
                     % (name, S, ts[:4], T // S, rel_err(x_stock, x_0), rel_err(x, x_0)))
        cases.append({"scheduler": name, "tau": "uniform", "num_steps": S, "timesteps": ts,
                      "config": dict(DDIM_BASE, eta=0.0), "x_T": L(x_T),
                      "calls": calls_json(calls, ("prev_timestep",)), "x_0": L(x_0),
                      "ddimlab_chain": {"calls": calls_json(chain), "x_0": L(x)}})

    # ---------------------------------------------------------------- iPNDM
    for S in (3, 5, 10, 20):
        name = "ipndm"
        x_T = rng.standard_normal((2, 3))
        tau = trailing(S)
        ts_desc, sig = ve_grid(tau)
        model = VEDenoiser({s: t for s, t in zip(sig, ts_desc)})
        x_ve = torch.from_numpy(x_T * math.sqrt(1.0 + SIG[ts_desc[0]] ** 2))
        steps = list(kd_sample_ipndm(model, x_ve, torch.tensor(sig, dtype=torch.float64)))
        ref = numpy_ipndm(x_T, ts_desc)
        nxt = ts_desc[1:] + [-1]
        calls = model.calls
        assert len(calls) == len(ts_desc)
        for i, ((_, order, xn), (o_np, x_np)) in enumerate(zip(steps, ref)):
            assert order == o_np
            prev = to_vp(xn.numpy(), nxt[i])
            check("%s S=%d step %d" % (name, S, i), prev, x_np, key=name)
            # order 0 marks the denoising step onto sigma = 0 (x_0 = D, the data prediction).
            calls[i]["prev_sample"], calls[i]["order"] = prev, (0 if nxt[i] == -1 else order)
        check("%s S=%d first == DDIM" % (name, S), calls[0]["prev_sample"],
              ddim_step(x_T, calls[0]["eps"], AB[ts_desc[0]], ab(nxt[0])))
        cl = calls[-1]
        check("%s S=%d last == x0" % (name, S), cl["prev_sample"], x0_of(cl["x"], cl["eps"], cl["t"]))
        for a, b in zip(calls, calls[1:]):
            check("%s chain" % name, b["x"], a["prev_sample"], tol=1e-15)
        x_0 = calls[-1]["prev_sample"]
        notes.append("%-18s S=%2d %2d calls orders %s" % (name, S, len(calls), [c["order"] for c in calls]))
        cases.append({"scheduler": name, "tau": "trailing", "num_steps": S, "timesteps": ts_desc,
                      "sigmas": sig, "settings": {"max_order": 4, "final_step": "denoised (t_next == 0)"},
                      "x_T": L(x_T), "calls": calls_json(calls, ("order",)), "x_0": L(x_0)})

    # ------------------------------------------------- Euler / Heun, churn
    for heun in (True, False):
        name = "heun_churn" if heun else "euler_churn"
        for churn in (10.0, 0.0):
            for S in (5, 10):
                st = {"s_churn": churn, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}
                x_T = rng.standard_normal((2, 3))
                tau = trailing(S)
                ts_desc, sig = ve_grid(tau)
                zs = [rng.standard_normal((2, 3)) for _ in ts_desc]
                s2t = {float(s): t for s, t in zip(SIG, range(T))}
                model = VEDenoiser(s2t)
                x_ve = torch.from_numpy(x_T * math.sqrt(1.0 + SIG[ts_desc[0]] ** 2))
                recs = [r for _, r in kd_sample_churn(model, x_ve, torch.tensor(sig, dtype=torch.float64),
                                                       ts_desc, zs, st, heun)]
                ref = numpy_churn(x_T, ts_desc, zs, st, heun)
                nxt = ts_desc[1:] + [-1]
                steps_json = []
                for i, (r, (th, x_np)) in enumerate(zip(recs, ref)):
                    assert r["t_hat"] == th
                    prev = to_vp(r["x_next_ve"], nxt[i])
                    check("%s churn=%g S=%d step %d" % (name, churn, S, i), prev, x_np, key=name)
                    steps_json.append({
                        "t": ts_desc[i], "sigma": sig[i], "gamma": r["gamma"],
                        "sigma_hat_raw": r["sigma_hat_raw"], "t_hat_frac": r["t_hat_frac"],
                        "t_hat": r["t_hat"], "sigma_hat": float(r["sigma_hat"]), "noise": L(zs[i]),
                        "x": L(to_vp(r["x_ve"], ts_desc[i])), "x_hat": L(to_vp(r["x_hat_ve"], r["t_hat"])),
                        "t_next": nxt[i], "prev_sample": L(prev)})
                x_0 = np.array(steps_json[-1]["prev_sample"])
                ncalls = len(model.calls)
                assert ncalls == (2 * len(ts_desc) - 1 if heun else len(ts_desc))
                if churn == 0:
                    # Control: Euler == DDIM eta = 0; Heun == ddimlab's Heun (DDIM-form trapezoid).
                    x = x_T.copy()
                    for t, tn in zip(ts_desc, nxt):
                        e = eps(x, t)
                        p = ddim_step(x, e, AB[t], ab(tn))
                        if heun and tn >= 0:
                            p = ddim_step(x, (e + eps(p, tn)) / 2, AB[t], ab(tn))
                        x = p
                    check("%s churn=0 S=%d control" % (name, S), x_0, x)
                    assert all(r["t_hat"] == t for r, t in zip(recs, ts_desc))
                notes.append("%-18s churn=%-4g S=%2d %2d calls t_hat %s gamma %s"
                             % (name, churn, S, ncalls, [r["t_hat"] for r in recs],
                                ["%.3f" % r["gamma"] for r in recs]))
                cases.append({"scheduler": name, "tau": "trailing", "num_steps": S, "timesteps": ts_desc,
                              "sigmas": sig, "settings": dict(st, gamma_cap=2 ** 0.5 - 1, n_for_gamma=len(ts_desc)),
                              "x_T": L(x_T), "steps": steps_json,
                              "calls": calls_json(model.calls), "x_0": L(x_0)})

    # ----------------------------------------------------------- timesteps
    taus = {"karras": {}, "logsnr": {}, "uniform": {}}
    tau_notes = []
    for S in (5, 10, 20, 50):
        for kind, kw in (("karras", {"use_karras_sigmas": True}), ("logsnr", {"use_lu_lambdas": True})):
            cfg = dict(algorithm_type="dpmsolver++", solver_order=2, **kw)
            s = make_dpm(S, **cfg)
            unpatched = make_dpm(S, patch=False, **cfg)
            stock = make_dpm(S, f64=False, **cfg)
            ts = [int(t) for t in s.timesteps]
            sig = s.sigmas.numpy()[:-1].copy()
            assert s.sigmas.dtype == torch.float64 and s.sigmas.numpy()[-1] == 0.0
            assert [int(t) for t in unpatched.timesteps] == ts
            assert np.array_equal(sig.astype(np.float32), unpatched.sigmas.numpy()[:-1])
            stock_same = [int(t) for t in stock.timesteps] == ts
            log_sigmas = np.log((((1 - s.alphas_cumprod) / s.alphas_cumprod) ** 0.5).numpy())
            tfrac = np.array([float(s._sigma_to_t(v, log_sigmas)) for v in sig])
            assert np.array_equal(tfrac.round().astype(np.int64), np.array(ts))
            # Independent numpy.
            smax, smin = SIG[T - 1], SIG[0]
            if kind == "karras":
                rho = 7.0
                sig_np = np.array([(smax ** (1 / rho) + i / (S - 1) * (smin ** (1 / rho) - smax ** (1 / rho))) ** rho
                                   for i in range(S)])
            else:
                sig_np = np.exp(np.linspace(math.log(smax), math.log(smin), S))
            tfrac_np = np.array([frac_t(v) for v in sig_np])
            ts_np = np.round(tfrac_np).astype(np.int64).tolist()
            e_sig, e_t = elem_rel_err(sig_np, sig), elem_rel_err(tfrac_np, tfrac)
            mismatch = []
            if ts_np != ts:
                mismatch.append("rounded timesteps differ: numpy %s" % ts_np)
            if e_sig > RTOL or e_t > RTOL:
                mismatch.append("float mismatch sigma %.1e t %.1e" % (e_sig, e_t))
            WORST["taus"] = max(WORST.get("taus", 0.0), e_sig, e_t)
            dups = sorted({t for t in ts if ts.count(t) > 1}, reverse=True)
            entry = {"timesteps": ts, "sigmas": L(sig), "t_frac": L(tfrac),
                     "numpy": {"sigmas": L(sig_np), "t_frac": L(tfrac_np), "timesteps": ts_np,
                               "sigmas_bit_equal": bool(np.array_equal(sig_np, sig)),
                               "t_frac_bit_equal": bool(np.array_equal(tfrac_np, tfrac)),
                               "max_rel_sigmas": e_sig, "max_rel_t_frac": e_t},
                     "duplicates": dups, "ascending_unique": sorted(set(ts)),
                     "stock_f32_timesteps_equal": stock_same, "mismatch": mismatch}
            if kind == "logsnr":
                entry["log_sigmas"] = L(np.log(sig))
            taus[kind][str(S)] = entry
            tau_notes.append("%-7s S=%2d timesteps %s dups %s stock-f32 same %s numpy bit-equal sig %s t %s (rel %.1e %.1e)%s"
                             % (kind, S, ts, dups, stock_same, entry["numpy"]["sigmas_bit_equal"],
                                entry["numpy"]["t_frac_bit_equal"], e_sig, e_t,
                                " MISMATCH " + "; ".join(mismatch) if mismatch else ""))
        d = make_ddim(S)
        ts = [int(t) for t in d.timesteps]
        assert ts == uniform(S)[::-1] and len(ts) == S
        taus["uniform"][str(S)] = {"timesteps": ts, "ascending_unique": sorted(set(ts))}
    dup_uniform = [S for S in range(1, T + 1) if len(set(np.linspace(0, T - 1, S).round().tolist())) != S]
    taus["uniform_duplicate_S"] = dup_uniform
    first_dup = {}
    for kind, kw in (("karras", {"use_karras_sigmas": True}), ("logsnr", {"use_lu_lambdas": True})):
        for S in range(2, 101):
            ts = [int(t) for t in make_dpm(S, algorithm_type="dpmsolver++", solver_order=2, **kw).timesteps]
            if len(set(ts)) != len(ts):
                first_dup[kind] = S
                break
    taus["first_S_with_duplicates"] = first_dup

    doc = {
        "schedule": {"kind": "linear", "timesteps": T, "beta_start": BETA_START, "beta_end": BETA_END},
        "eps": EPS_TEXT,
        "versions": versions,
        "rng": {"seed": SEED, "generator": "np.random.default_rng",
                "order": "cases in order: x_T (2x3); then for sde-dpmsolver++2m one z per call, "
                         "for heun_churn/euler_churn one z per step"},
        "float64_patches": PATCHES,
        "cases": cases,
        "taus": taus,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, allow_nan=False)
        f.write("\n")
    with open(OUT) as f:  # floats round-trip exactly
        assert json.load(f) == json.loads(json.dumps(doc))

    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")
    print("versions", versions)
    print("patches:")
    for p in PATCHES:
        print("  ", p)
    for n in notes:
        print(n)
    for n in tau_notes:
        print(n)
    print("uniform tau duplicates for S in 1..1000:", dup_uniform)
    print("first S with duplicate timesteps:", first_dup)
    print("DPM-Solver++(3M) order-3 steps vs exact quadratic-interpolant integral: max rel %.2e over %d steps"
          % (max(DPM3M_EXACT_GAP), len(DPM3M_EXACT_GAP)))
    print("worst relative error vs numpy:", {k: "%.1e" % v for k, v in WORST.items()})
    print("all checks passed (relative tolerance %g)" % RTOL)


if __name__ == "__main__":
    main()
