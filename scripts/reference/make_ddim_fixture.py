#!/usr/bin/env python3
"""Independent numpy (float64) reference for the ddimlab DDIM sampler tests.

It mirrors the official DDIM code, github.com/ermongroup/ddim (commit e8df66c):
`functions/denoising.py` (`compute_alpha`, `generalized_steps`, `ddpm_steps`)
and `runners/diffusion.py` (`get_beta_schedule`, the "uniform"/"quad"
`skip_type` formulas in `sample_image`), with an analytic eps function in
place of the network.

Regenerate (writes tests/fixtures/ddim_reference.json):

    pip install numpy && python3 scripts/reference/make_ddim_fixture.py
"""
import json
import os

import numpy as np

T = 1000
EPS_TEXT = "0.8*sin(x + 0.01*t) + 0.1*cos(0.5*x)"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                   "tests", "fixtures", "ddim_reference.json")


def eps(x, t):
    """Stand-in for the network: elementwise, t is the integer timestep."""
    return 0.8 * np.sin(x + 0.01 * float(t)) + 0.1 * np.cos(0.5 * x)


# ---------------------------------------------------------------- schedules
def betas_for(kind):
    if kind == "linear":  # diffusion.py L42-45
        return np.linspace(1e-4, 0.02, T, dtype=np.float64)
    if kind == "quadratic":  # diffusion.py L32-41 ("quad")
        return np.linspace(1e-4 ** 0.5, 0.02 ** 0.5, T, dtype=np.float64) ** 2
    if kind == "cosine":  # Nichol & Dhariwal 2021, eq. 17 (not in the DDIM repo)
        f = lambda u: np.cos((u + 0.008) / 1.008 * np.pi / 2) ** 2
        i = np.arange(T, dtype=np.float64)
        return np.minimum(1 - f((i + 1) / T) / f(i / T), 0.999)
    raise ValueError(kind)


def alpha_at(alpha_bar, t):
    # denoising.py L4-7 compute_alpha: prepend beta=0, so alpha_bar_{-1} = 1.
    return 1.0 if t == -1 else float(alpha_bar[t])


# --------------------------------------------------------------------- taus
def tau_linear(S):
    # diffusion.py L344-345: range(0, T, T // S); general S: floor(i*T/S).
    return [i * T // S for i in range(S)]


def tau_quadratic(S):
    # diffusion.py L347-353: int(np.linspace(0, sqrt(0.8*T), S)**2), here in
    # exact integers: (i*sqrt(0.8T)/(S-1))^2 = 4*T*i^2 / (5*(S-1)^2); deduped.
    if S == 1:
        return [0]
    return sorted(set((4 * T * i * i) // (5 * (S - 1) ** 2) for i in range(S)))


def tau_quadratic_naive(S):
    return [int(v) for v in np.linspace(0, np.sqrt(T * 0.8), S) ** 2]


def tau_trailing(S):
    # diffusers DDIMScheduler timestep_spacing="trailing" (np.round: half to even).
    return sorted(int(v) for v in np.round(np.arange(T, 0, -T / S)).astype(np.int64) - 1)


TAU = {"linear": tau_linear, "quadratic": tau_quadratic, "trailing": tau_trailing}


# ----------------------------------------------------------------- sampling
def sample(x, seq, alpha_bar, eta, clip_x0, rng):
    """generalized_steps (denoising.py L10-32); eta == "sigma_hat" -> ddpm_steps
    (L35-67). A fresh z ~ N(0, I) is drawn on every step, even when unused."""
    seq_next = [-1] + list(seq[:-1])  # L13 / L38
    noise, steps = [], []
    for t, t_next in zip(reversed(seq), reversed(seq_next)):  # L16 / L42
        at, at_next = alpha_at(alpha_bar, t), alpha_at(alpha_bar, t_next)  # L19-20
        e = eps(x, t)  # L22
        z = rng.standard_normal(x.shape)
        if eta == "sigma_hat":
            beta_t = 1 - at / at_next  # L47
            x0 = np.sqrt(1 / at) * x - np.sqrt(1 / at - 1) * e  # L53
            if clip_x0:  # official L54 always clamps; here only if asked
                x0 = np.clip(x0, -1, 1)
            # L56-58: the posterior mean of q(x_{t-1} | x_t, x0) with the (clipped) x0,
            # computed from x_t and x0; e is not used (with clipping this equals the
            # generalized step with eps re-derived from the clipped x0).
            mean = (np.sqrt(at_next) * beta_t * x0
                    + np.sqrt(1 - beta_t) * (1 - at_next) * x) / (1 - at)  # L56-58
            mask = 0.0 if t_next == -1 else 1.0  # official L62 masks t == 0
            x_new = mean + mask * np.sqrt(beta_t) * z  # L64-65: exp(0.5*log b) = sqrt(b)
        else:
            x0 = (x - e * np.sqrt(1 - at)) / np.sqrt(at)  # L23
            if clip_x0:  # not in the official code; eps is NOT recomputed after it
                x0 = np.clip(x0, -1, 1)
            c1 = eta * np.sqrt((1 - at / at_next) * (1 - at_next) / (1 - at))  # L25-27
            c2 = np.sqrt((1 - at_next) - c1 ** 2)  # L28
            x_new = np.sqrt(at_next) * x0 + c1 * z + c2 * e  # L29
        noise.append(z.tolist())
        steps.append({"t": t, "t_prev": t_next, "x0_pred": x0.tolist(), "x": x_new.tolist()})
        x = x_new
    return x, noise, steps


def encode(x, seq, alpha_bar):
    """Deterministic DDIM inversion (eta = 0), going up; eps is evaluated at the
    TARGET timestep with the current x (as diffusers' DDIMInverseScheduler)."""
    prev, steps = [-1] + list(seq), []
    for k in range(len(seq)):
        t_from, t_to = prev[k], seq[k]
        a_from, a_to = alpha_at(alpha_bar, t_from), alpha_at(alpha_bar, t_to)
        e = eps(x, t_to)
        x0 = (x - np.sqrt(1 - a_from) * e) / np.sqrt(a_from)
        x = np.sqrt(a_to) * x0 + np.sqrt(1 - a_to) * e
        steps.append({"t_from": t_from, "t_to": t_to, "x": x.tolist()})
    return x, steps


def main():
    rng = np.random.default_rng(1234)
    alpha_bars = {k: np.cumprod(1 - betas_for(k)) for k in ("linear", "quadratic", "cosine")}

    idx = [0, 1, 2, 10, 100, 500, 998, 999]
    schedules = {k: {"indices": idx, "beta": [float(betas_for(k)[i]) for i in idx],
                     "alpha_bar": [float(alpha_bars[k][i]) for i in idx]} for k in alpha_bars}

    taus = []
    for kind, Ss in (("linear", [1, 10, 20, 50, 100, 1000, 7, 333]),
                     # 16 and 101 added: there the naive float formula differs from
                     # the exact one (e.g. S=16, i=3: 31.999999999999993 -> 31 vs 32).
                     ("quadratic", [1, 2, 10, 20, 29, 30, 50, 100, 1000, 16, 101]),
                     ("trailing", [1, 10, 16, 50, 100, 1000, 7])):
        for S in Ss:
            entry = {"kind": kind, "steps": S, "timesteps": TAU[kind](S)}
            if kind == "quadratic":
                entry["naive_float"] = tau_quadratic_naive(S)
            taus.append(entry)

    # RNG order: per sample case, x_T then one z per step; then per encode case, x_0.
    sample_specs = [  # (name, tau, S, eta, clip_x0, schedule)
        ("linear10_eta0", "linear", 10, 0.0, False, "linear"),
        ("linear10_eta0.5", "linear", 10, 0.5, False, "linear"),
        ("quad10_eta1", "quadratic", 10, 1.0, False, "linear"),
        ("linear20_sigma_hat", "linear", 20, "sigma_hat", False, "linear"),
        ("trailing16_eta0", "trailing", 16, 0.0, False, "linear"),
        ("linear10_eta0_clip", "linear", 10, 0.0, True, "linear"),
        ("quad50_eta0.2", "quadratic", 50, 0.2, False, "linear"),
        ("linear10_eta0_cosine", "linear", 10, 0.0, False, "cosine"),
    ]
    # Cases added later draw from their own generator, so that the cases above (and the
    # encode cases after them) keep the values they were first written with.
    late = np.random.default_rng(5678)
    late_specs = [
        # ddpm_noisy as the official code runs it: x0 clamped (L54), then the posterior
        # mean (this eps makes |x̂_0| > 1 on most steps, so the clip is active).
        ("linear20_sigma_hat_clip", "linear", 20, "sigma_hat", True, "linear"),
        ("quad10_sigma_hat_clip", "quadratic", 10, "sigma_hat", True, "linear"),
    ]
    sample_cases = []
    for (name, kind, S, eta, clip, sched), gen in [(s, rng) for s in sample_specs] + [(s, late) for s in late_specs]:
        seq = TAU[kind](S)
        x_T = gen.standard_normal((2, 3))
        _, noise, steps = sample(x_T, seq, alpha_bars[sched], eta, clip, gen)
        sample_cases.append({"name": name, "schedule": sched, "tau": kind, "num_steps": S,
                             "eta": eta, "clip_x0": clip, "timesteps": seq,
                             "x_T": x_T.tolist(), "noise": noise, "steps": steps})

    encode_cases = []
    for name, kind, S in (("enc_linear10", "linear", 10), ("enc_quad20", "quadratic", 20),
                          ("enc_trailing50", "trailing", 50)):
        seq, ab = TAU[kind](S), alpha_bars["linear"]
        x_0 = 0.9 * np.tanh(rng.standard_normal((2, 3)))
        x_T, steps = encode(x_0, seq, ab)
        zeros = np.random.default_rng(0)  # unused: eta = 0 makes c1 = 0
        decoded, _, _ = sample(x_T, seq, ab, 0.0, False, zeros)
        encode_cases.append({"name": name, "schedule": "linear", "tau": kind, "num_steps": S,
                             "timesteps": seq, "x_0": x_0.tolist(), "steps": steps,
                             "x_T": x_T.tolist(), "decoded": decoded.tolist()})

    doc = {
        "generator": "scripts/reference/make_ddim_fixture.py (numpy %s, mirrors "
                     "ermongroup/ddim functions/denoising.py)" % np.__version__,
        "T": T, "eps_function": EPS_TEXT, "schedules": schedules, "taus": taus,
        "sample_cases": sample_cases, "encode_cases": encode_cases,
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump(doc, f, allow_nan=False)
        f.write("\n")

    print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")
    print("linear alpha_bar[999] =", repr(float(alpha_bars["linear"][999])))
    print("quadratic tau S=100 top: exact", tau_quadratic(100)[-1],
          "naive", tau_quadratic_naive(100)[-1])
    print("quadratic tau S=16: exact", tau_quadratic(16))
    print("                    naive", tau_quadratic_naive(16))
    print("trailing S=16:", tau_trailing(16), "contains 811:", 811 in tau_trailing(16))
    for c in sample_cases + encode_cases:
        last = c["steps"][-1]["x"] if "eta" in c else c["decoded"]
        print("%-22s %2d steps  final[0][0] = %r" % (c["name"], len(c["steps"]), last[0][0]))


if __name__ == "__main__":
    main()
