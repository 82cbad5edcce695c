#!/usr/bin/python3
"""Reference values of eval's score-matching objectives on four fixtures.

Run from the repository root (after testdata/make_fixtures.py):

    /usr/bin/python3 testdata/objectives/make_objectives.py

For ncsnv1_labels, energy_mlp, conv_score and ddpm_eps in testdata/models/
it rebuilds
the PyTorch model with make_fixtures.py's builders (checking it against the
committed expected/ outputs), converts it to float64, and computes with
autograd each sample's SSM, SSM-VR, exact score matching, FD-SSM and DSM on
fixed data x, noise z and projections v, which it writes beside the values
so that eval's test feeds exactly these to Evaluate (ObjectiveOptions.Noise
and Vectors). Definitions, with x~ = float32(x + sigma*z), or for the DDPM
eps-model at step t x~ = float32(sqrt(abar_t) x + sigma z) with
sigma = sqrt(1 - abar_t) and the score s = -eps/sigma:

  ssm     mean over k of  v_k^T grad_x(v_k^T s) + 1/2 (v_k^T s)^2
  ssm-vr  mean over k of  v_k^T grad_x(v_k^T s) + 1/2 |s|^2
  exact   tr(grad_x s) + 1/2 |s|^2                       (d VJPs)
  fd-ssm  mean over k of  (v^T s(x~+eps v) - v^T s(x~-eps v)) / (2 eps)
                          + 1/2 (v^T s(x~))^2, the shifted inputs rounded to
                          float32 as eval feeds them
  dsm     1/2 |s(x~) + z/sigma|^2

Writes testdata/objectives/<name>/{x,z,v}.npy (float32; v is [K, N, ...])
and values.json (the settings, and per objective the mean and standard
error over samples, in float64). Everything is deterministic (numpy's
RandomState); a rerun reproduces the files byte for byte.
"""

import json
import math
import os
import sys

import numpy as np
import torch

sys.dont_write_bytecode = True  # leave no __pycache__ in testdata/
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import make_fixtures as mf  # noqa: E402

N = 32  # samples
K = 2  # projections per sample
EPS = 0.05  # FD-SSM step: large enough that float32 scores difference cleanly

CASES = [
    # name, builder, condition, sigma (or DDPM step t), label, seed
    ("ncsnv1_labels", mf.build_ncsnv1_labels, "labels", float(mf.SIGMAS[4]), 4, 3002),
    ("energy_mlp", mf.build_energy_mlp, "none", 0.5, None, 3005),
    ("conv_score", mf.build_conv_score, "sigma", 0.5, None, 3003),
    ("ddpm_eps", mf.build_ddpm_eps, "time", 100, None, 3004),
]


def ddpm_level(t):
    """sqrt(abar_t), sqrt(1 - abar_t) of DDPM's linear schedule 1e-4 -> 0.02, T = 1000."""
    T = 1000
    abar = 1.0
    for i in range(t + 1):
        abar *= 1.0 - (1e-4 + (0.02 - 1e-4) * i / (T - 1))
    return math.sqrt(abar), math.sqrt(1.0 - abar)

OBJECTIVES = ["ssm", "ssm-vr", "exact", "fd-ssm", "dsm"]


def check_builder(name, model, cond):
    """The rebuilt float32 model reproduces the committed fixture outputs."""
    d = os.path.join(mf.MODELS, name)
    x = torch.from_numpy(np.load(os.path.join(d, "inputs", "x.npy")))
    if cond == "labels":
        args = [x, torch.from_numpy(np.load(os.path.join(d, "inputs", "labels.npy")))]
        out = "score"
    elif cond == "sigma":
        args = [x, torch.from_numpy(np.load(os.path.join(d, "inputs", "sigma.npy")))]
        out = "score"
    elif cond == "time":
        args = [x, torch.from_numpy(np.load(os.path.join(d, "inputs", "t.npy")))]
        out = "eps"
    else:
        args = [x]
        out = "energy"
    with torch.no_grad():
        got = model(*args).numpy()
    want = np.load(os.path.join(d, "expected", out + ".npy"))
    gap = np.abs(got - want).max() / np.abs(want).max()
    if gap > 1e-6:
        raise SystemExit(f"{name}: rebuilt model differs from expected/ by {gap:.3g} relative")


def score_fn(model, cond, sigma32, label, sigma):
    """s(x) in float64 for a batch x [n, ...] (graph kept for autograd)."""

    def s(x):
        n = x.shape[0]
        if cond == "labels":
            return model(x, torch.full((n,), label, dtype=torch.int64))
        if cond == "sigma":
            return model(x, torch.full((n,), sigma32, dtype=torch.float64))
        if cond == "time":
            return -model(x, torch.full((n,), label, dtype=torch.int64)) / sigma
        xg = x if x.requires_grad else x.requires_grad_(True)
        (g,) = torch.autograd.grad(model(xg).sum(), xg, create_graph=True)
        return -g

    return s


def flat(t):
    return t.reshape(t.shape[0], -1)


def objectives(s, xt32, z32, v32, sigma):
    """Per-sample terms of every objective, float64 numpy arrays [N]."""
    xt = torch.from_numpy(xt32).double()
    z = torch.from_numpy(z32).double()
    x = xt.clone().requires_grad_(True)
    sx = s(x)
    half_sq = 0.5 * (flat(sx) ** 2).sum(1)
    out = {k: torch.zeros(N, dtype=torch.float64) for k in ("ssm", "ssm-vr", "fd-ssm")}
    for k in range(K):
        v = torch.from_numpy(v32[k]).double()
        vs = (flat(v) * flat(sx)).sum(1)
        (g,) = torch.autograd.grad(vs.sum(), x, retain_graph=True)
        vjv = (flat(v) * flat(g)).sum(1)
        out["ssm"] += (vjv + 0.5 * vs ** 2) / K
        out["ssm-vr"] += (vjv + half_sq) / K
        xp = torch.from_numpy((xt32.astype(np.float64) + EPS * v32[k].astype(np.float64)).astype(np.float32)).double()
        xm = torch.from_numpy((xt32.astype(np.float64) - EPS * v32[k].astype(np.float64)).astype(np.float32)).double()
        sp = (flat(v) * flat(s(xp))).sum(1)
        sm = (flat(v) * flat(s(xm))).sum(1)
        out["fd-ssm"] += ((sp - sm) / (2 * EPS) + 0.5 * vs ** 2).detach() / K
    d = flat(xt).shape[1]
    tr = torch.zeros(N, dtype=torch.float64)
    for j in range(d):
        (g,) = torch.autograd.grad(flat(sx)[:, j].sum(), x, retain_graph=True)
        tr += flat(g)[:, j]
    out["exact"] = tr + half_sq
    out["dsm"] = 0.5 * ((flat(sx) + flat(z) / sigma) ** 2).sum(1)
    return {k: t.detach().numpy() for k, t in out.items()}


def main():
    torch.set_num_threads(1)
    for name, builder, cond, sigma, label, seed in CASES:
        torch.manual_seed(0)
        model = builder().eval()
        check_builder(name, model, cond)
        model = model.double()
        rs = np.random.RandomState(seed)
        shape = tuple(np.load(os.path.join(mf.MODELS, name, "inputs", "x.npy")).shape[1:])
        x32 = rs.standard_normal((N,) + shape).astype(np.float32)
        z32 = rs.standard_normal((N,) + shape).astype(np.float32)
        v32 = rs.standard_normal((K, N) + shape).astype(np.float32)
        time, scale = None, 1.0
        if cond == "time":
            time = label = sigma
            scale, sigma = ddpm_level(time)
        # eval's perturbation: float32(a*x + sigma*z), computed in float64
        xt32 = (scale * x32.astype(np.float64) + sigma * z32.astype(np.float64)).astype(np.float32)
        sigma32 = float(np.float32(sigma))  # the condition as eval feeds it
        terms = objectives(score_fn(model, cond, sigma32, label, sigma), xt32, z32, v32, sigma)
        d = os.path.join(HERE, name)
        os.makedirs(d, exist_ok=True)
        for fname, arr in (("x", x32), ("z", z32), ("v", v32)):
            np.save(os.path.join(d, fname + ".npy"), np.ascontiguousarray(arr), allow_pickle=False)
        values = {
            "model": f"testdata/models/{name}/model.onnx",
            "sigma": sigma,
            "time": time,
            "label": label if cond == "labels" else None,
            "epsilon": EPS,
            "projections": K,
            "n": N,
            "objectives": {
                o: {"mean": float(terms[o].mean()), "stderr": float(terms[o].std(ddof=1) / math.sqrt(N))}
                for o in OBJECTIVES
            },
        }
        with open(os.path.join(d, "values.json"), "w") as f:
            json.dump(values, f, indent=1, sort_keys=True)
            f.write("\n")
        print(name, {o: round(values["objectives"][o]["mean"], 6) for o in OBJECTIVES})


if __name__ == "__main__":
    main()
