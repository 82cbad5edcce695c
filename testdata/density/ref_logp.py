"""The PyTorch + scipy reference of `ebmrun logp` for VE (σ-conditioned)
score models: the probability-flow ODE dx/dσ = −σ·s(x, σ) from σ₀ to σ_max
with the log-density integral, integrated by scipy.integrate.solve_ivp
(RK45, the same rtol/atol) over the whole batch as one system, as
score_sde's likelihood does; the divergence exact (d backward passes) or
Hutchinson (Rademacher probes fixed along the trajectory);
log p = log N(x(σ_max); 0, σ_max²I) − ∫σ·div s dσ.

    /usr/bin/python3 testdata/density/ref_logp.py MODEL DATA.npy \
        [--sigma S0] [--sigma-max S1] [--rtol R] [--atol A] [--divergence exact|hutchinson] \
        [--probes K] [--seed N] [--steps K] [--threads T] [--out per_point.npy]

prints one JSON line: mean_logp, stderr, n, nfe, seconds, torch_threads.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from scipy import integrate

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onnx_torch import Graph  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--sigma", type=float, default=0)
    ap.add_argument("--sigma-max", type=float, default=0)
    ap.add_argument("--rtol", type=float, default=1e-5)
    ap.add_argument("--atol", type=float, default=1e-5)
    ap.add_argument("--divergence", default="")
    ap.add_argument("--probes", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=0, help="fixed RK45 steps (first_step = max_step, tolerances that accept every step)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: all cores)")
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    torch.set_num_threads(a.threads or os.cpu_count() or 1)

    g = Graph(a.model)
    sigmas = json.loads(g.meta.get("ebmrun.sigmas", "[1, 0.01]"))
    s0 = a.sigma or min(sigmas)
    s1 = a.sigma_max or max(sigmas)
    data = np.load(a.data).astype(np.float32)
    n = data.shape[0]
    shape = data.shape[1:]
    d = int(np.prod(shape))
    div = a.divergence or ("exact" if d <= 64 else "hutchinson")
    rng = np.random.default_rng(a.seed)

    begin = time.time()
    nfe = 0
    out = np.empty(n)
    for lo in range(0, n, a.batch):
        x0 = data[lo:lo + a.batch]
        b = x0.shape[0]
        probes = None
        if div == "hutchinson":
            probes = torch.from_numpy(rng.integers(0, 2, size=(a.probes, b) + shape).astype(np.float32) * 2 - 1)

        def rhs(sigma, y):
            nonlocal nfe
            nfe += 1
            x = torch.tensor(y[:b * d].reshape((b,) + shape), dtype=torch.float32, requires_grad=True)
            sig = torch.full((b,), sigma, dtype=torch.float32)
            with torch.enable_grad():
                s = g(x, sig)
                if probes is None:
                    tr = torch.zeros(b)
                    flat = s.reshape(b, d)
                    for j in range(d):
                        gj, = torch.autograd.grad(flat[:, j].sum(), x, retain_graph=j < d - 1)
                        tr += gj.reshape(b, d)[:, j]
                else:
                    tr = torch.zeros(b)
                    for k in range(probes.shape[0]):
                        v = probes[k]
                        gv, = torch.autograd.grad((s * v).sum(), x, retain_graph=k < probes.shape[0] - 1)
                        tr += (gv * v).reshape(b, d).sum(1) / probes.shape[0]
            dx = (-sigma * s.detach()).reshape(-1).numpy().astype(np.float64)
            return np.concatenate([dx, (-sigma * tr).numpy().astype(np.float64)])

        y0 = np.concatenate([x0.reshape(-1).astype(np.float64), np.zeros(b)])
        if a.steps > 0:
            h = (s1 - s0) / a.steps
            sol = integrate.solve_ivp(rhs, (s0, s1), y0, rtol=1e10, atol=1e10, method="RK45", first_step=h, max_step=h)
        else:
            sol = integrate.solve_ivp(rhs, (s0, s1), y0, rtol=a.rtol, atol=a.atol, method="RK45")
        if not sol.success:
            raise SystemExit(f"ref_logp: solve_ivp: {sol.message}")
        yT = sol.y[:, -1]
        xT = yT[:b * d].reshape(b, d)
        prior = -0.5 * d * np.log(2 * np.pi * s1 * s1) - 0.5 * (xT ** 2).sum(1) / (s1 * s1)
        out[lo:lo + b] = prior + yT[b * d:]
    secs = time.time() - begin
    if a.out:
        np.save(a.out, out.astype(np.float32))
    print(json.dumps({"mean_logp": float(out.mean()), "stderr": float(out.std(ddof=1) / np.sqrt(n)) if n > 1 else None,
                      "n": n, "nfe": nfe, "seconds": secs, "torch_threads": torch.get_num_threads(),
                      "sigma": s0, "sigma_max": s1, "divergence": div, "rtol": a.rtol, "atol": a.atol, "steps": a.steps}))


if __name__ == "__main__":
    main()
