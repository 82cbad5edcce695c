#!/usr/bin/python3
"""PyTorch peer of benchmark W3: the sliced score matching objective of the NCSN MLP.

Loads the weights of the ONNX model (concat(x, log σ) → 3×128 SiLU → 2, / σ)
into a torch MLP of the same architecture, checks it reproduces the fixture's
expected outputs, then times, on the perturbed points x̃ and projections v that
ebmrun drew (passed as .npy files), the per-sample SSM objective
vᵀ∇x(vᵀs(x̃)) + ½(vᵀs(x̃))² with one torch.autograd.grad of vᵀs per call —
the evaluation needs no graph of the gradient, so create_graph is off.

    /usr/bin/python3 bench/w3/ssm_torch.py --model testdata/models/ncsn_mlp/model.onnx \
        --x xt.npy --v v.npy --sigma 0.1

Prints one JSON line: the best of --reps timings, the objective's mean and
standard error, and the check's error.
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


def ssm(net, x, v, sigma):
    """Per-sample vᵀ∇x(vᵀs) + ½(vᵀs)², one VJP for the whole batch."""
    x = x.detach().requires_grad_(True)
    s = net(x, sigma)
    vs = (v * s).sum(dim=1)
    (g,) = torch.autograd.grad(vs.sum(), x)
    return (v * g).sum(dim=1) + 0.5 * vs * vs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--x", required=True, help="perturbed points x̃, float32 [N, 2]")
    ap.add_argument("--v", required=True, help="projections, float32 [N, 2]")
    ap.add_argument("--sigma", type=float, required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    net, _ = load(a.model, "ssm_torch")
    err = check(net, os.path.dirname(a.model), "ssm_torch")
    x = torch.from_numpy(np.load(a.x))
    v = torch.from_numpy(np.load(a.v))
    sigma = torch.full((x.shape[0],), a.sigma, dtype=torch.float32)
    loss = ssm(net, x, v, sigma)  # warm up
    best = float("inf")
    for _ in range(a.reps):
        t0 = time.perf_counter()
        loss = ssm(net, x, v, sigma)
        best = min(best, time.perf_counter() - t0)
    l64 = loss.double()
    print(json.dumps({"seconds": best, "value": float(l64.mean()), "stderr": float(l64.std() / len(l64) ** 0.5),
                      "check_rel_err": err, "torch": torch.__version__, "threads": a.threads}))


if __name__ == "__main__":
    main()
