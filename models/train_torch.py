#!/usr/bin/env python3
"""Trains the NCSN MLP on a 2-D swiss roll with PyTorch and exports it to ONNX
with ebmrun's metadata: the model shipped as models/swissroll_torch/.

It stands for the user ebmrun is for: a score network trained in PyTorch,
sampled in Go. (Models trained by `ebmrun train` will sit beside it.)

Run from the repository root with Debian's torch 1.13:
    /usr/bin/python3 models/train_torch.py
Deterministic: fixed seeds, one thread.

    /usr/bin/python3 models/train_torch.py --fresh N SEED FILE
writes N fresh points of the same swiss roll (numpy seed SEED) to FILE and
trains nothing: the noise floor of the model card's comparison.
"""
import json
import math
import os
import sys
import time

import numpy as np
import onnx
import torch
from torch import nn

torch.manual_seed(0)
torch.set_num_threads(1)
rng = np.random.default_rng(0)

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "swissroll_torch")
SIGMAS = np.geomspace(3.0, 0.01, 10)  # σ_max ≈ the data's largest pairwise distance / 2
STEPS, BATCH, LR = 6000, 512, 1e-3
SAMPLER = {"sampler": "ald", "steps": 100, "step_lr": 5e-6, "denoise": True}


def swiss_roll(n):
    t = 1.5 * math.pi * (1 + 2 * rng.random(n))
    x = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5.0
    return (x + 0.05 * rng.standard_normal((n, 2))).astype(np.float32)


class NCSNMLP(nn.Module):
    """concat(x, log σ) → 3×128 SiLU → 2, divided by σ (docs/design.md, W1)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(3, 128), nn.SiLU(), nn.Linear(128, 128), nn.SiLU(),
            nn.Linear(128, 128), nn.SiLU(), nn.Linear(128, 2))

    def forward(self, x, sigma):
        h = torch.cat([x, torch.log(sigma)[:, None]], 1)
        return self.net(h) / sigma[:, None]


def main():
    model = NCSNMLP()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sig = torch.tensor(SIGMAS, dtype=torch.float32)
    t0 = time.time()
    for step in range(STEPS):
        x = torch.from_numpy(swiss_roll(BATCH))
        s = sig[torch.randint(0, len(SIGMAS), (BATCH,))]
        z = torch.randn_like(x)
        xt = x + s[:, None] * z
        # NCSN DSM with λ(σ) = σ²: ½‖σ·s(x̃, σ) + z‖²
        loss = 0.5 * ((s[:, None] * model(xt, s) + z) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 1000 == 0 or step == STEPS - 1:
            print(f"step {step} loss {loss.item():.4f}")
    secs = time.time() - t0
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "model.onnx")
    model.eval()
    x = torch.from_numpy(swiss_roll(16))
    s = sig[torch.randint(0, len(SIGMAS), (16,))]
    torch.onnx.export(model, (x, s), path, input_names=["x", "sigma"], output_names=["score"],
                      dynamic_axes={"x": {0: "N"}, "sigma": {0: "N"}, "score": {0: "N"}},
                      opset_version=17, do_constant_folding=True)
    m = onnx.load(path)
    meta = {
        "ebmrun.kind": "score", "ebmrun.condition": "sigma", "ebmrun.x_input": "x",
        "ebmrun.condition_input": "sigma", "ebmrun.output": "score",
        "ebmrun.sigmas": json.dumps([float(v) for v in SIGMAS]),
        "ebmrun.data_shape": "[2]", "ebmrun.data_range": "[-3, 3]",
        "ebmrun.sampler": json.dumps(SAMPLER),
        "ebmrun.provenance": json.dumps({"trainer": "pytorch " + torch.__version__, "dataset": "swissroll",
                                         "loss": "dsm", "steps": STEPS, "batch": BATCH, "lr": LR, "seed": 0,
                                         "script": "models/train_torch.py"}),
    }
    for k, v in meta.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m, full_check=True)
    onnx.save(m, path)
    np.save(os.path.join(OUT, "data.npy"), swiss_roll(10000))
    print(f"trained {STEPS} steps in {secs:.1f} s; wrote {path}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--fresh":
        rng = np.random.default_rng(int(sys.argv[3]))
        np.save(sys.argv[4], swiss_roll(int(sys.argv[2])))
    else:
        main()
