"""The NCSN MLP of docs/design.md's W1 in PyTorch, with its weights read from an
ONNX file, for the benchmark peers (bench/w1/ald_torch.py, bench/w3/ssm_torch.py).

concat(x, log σ) → 3×128 SiLU → 2, divided by σ. check() makes sure the torch
module computes what the ONNX model does on the fixture's saved inputs before
anything is timed: a fast wrong peer is no peer.
"""

import json
import os

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

CHECK_TOL = 1e-5  # relative to the largest expected score


class NCSNMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(3, 128)
        self.l2 = nn.Linear(128, 128)
        self.l3 = nn.Linear(128, 128)
        self.l4 = nn.Linear(128, 2)

    def forward(self, x, sigma):
        h = torch.cat([x, torch.log(sigma)[:, None]], dim=1)
        h = F.silu(self.l1(h))
        h = F.silu(self.l2(h))
        h = F.silu(self.l3(h))
        return self.l4(h) / sigma[:, None]


def load(path, who):
    """The torch MLP with the ONNX file's weights (frozen, eval mode) and the
    model's σ schedule (its metadata's, else NCSN's 1 → 0.01, L = 10)."""
    m = onnx.load(path)
    weights = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    net = NCSNMLP()
    state = net.state_dict()
    missing = set(state) - set(weights)
    if missing:
        raise SystemExit(f"{who}: {path} lacks weights {sorted(missing)}")
    net.load_state_dict({k: weights[k] for k in state})
    for p in net.parameters():
        p.requires_grad_(False)
    meta = {p.key: p.value for p in m.metadata_props}
    sigmas = json.loads(meta["ebmrun.sigmas"]) if "ebmrun.sigmas" in meta else list(np.geomspace(1, 0.01, 10))
    return net.eval(), sigmas


def check(net, model_dir, who):
    """The largest relative error against the fixture's expected scores; exits
    when it is above CHECK_TOL."""
    x = torch.from_numpy(np.load(os.path.join(model_dir, "inputs", "x.npy")))
    sigma = torch.from_numpy(np.load(os.path.join(model_dir, "inputs", "sigma.npy")))
    want = torch.from_numpy(np.load(os.path.join(model_dir, "expected", "score.npy")))
    with torch.no_grad():
        got = net(x, sigma)
    err = float((got - want).abs().max() / want.abs().max())
    if not err <= CHECK_TOL:
        raise SystemExit(f"{who}: the torch MLP differs from the ONNX expected outputs by {err:.3g} (relative), more than {CHECK_TOL}")
    return err
