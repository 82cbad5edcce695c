#!/usr/bin/python3
"""PyTorch peer of benchmark W1: annealed Langevin dynamics on the NCSN MLP.

Loads the weights of the ONNX model (concat(x, log σ) → 3×128 SiLU → 2, / σ)
into a torch MLP of the same architecture, checks it reproduces the fixture's
expected outputs, then times the ALD loop docs/design.md describes:
for each σ_i, α_i = ε·σ_i²/σ_L², T steps of x ← x + α_i·s(x, σ_i) + √(2α_i)·z.

    /usr/bin/python3 bench/w1/ald_torch.py --model testdata/models/ncsn_mlp/model.onnx --n 1000

Prints one JSON line: seconds, evaluations per second, the check's error.
Needs Debian's python3-torch (1.13, with libopenblas0-pthread) and python3-onnx.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from ncsn_torch import check, load  # noqa: E402  (bench/ncsn_torch.py)


def ald(net, sigmas, n, steps, eps, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=g) * 8 - 4
    s_last = sigmas[-1]
    with torch.no_grad():
        for s in sigmas:
            alpha = eps * s * s / (s_last * s_last)
            sig = torch.full((n,), s)
            c = (2 * alpha) ** 0.5
            for _ in range(steps):
                x = x + alpha * net(x, sig) + c * torch.randn(n, 2, generator=g)
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--step-lr", type=float, default=2e-5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net, sigmas = load(a.model, "ald_torch")
    err = check(net, os.path.dirname(a.model), "ald_torch")
    ald(net, sigmas, min(a.n, 100), 2, a.step_lr, a.seed)  # warm up
    t0 = time.perf_counter()
    x = ald(net, sigmas, a.n, a.steps, a.step_lr, a.seed)
    sec = time.perf_counter() - t0
    evals = a.n * a.steps * len(sigmas)
    print(json.dumps({"seconds": sec, "evaluations_per_second": evals / sec, "check_rel_err": err,
                      "finite": bool(torch.isfinite(x).all()), "torch": torch.__version__, "threads": a.threads}))


if __name__ == "__main__":
    main()
