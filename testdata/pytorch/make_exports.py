#!/usr/bin/python3
"""Export two score networks the way a PyTorch user would: no ebmrun metadata.

Run from the repository root:

    /usr/bin/python3 testdata/pytorch/make_exports.py

Needs Debian's python3-torch (1.13) and python3-onnx; no network; deterministic.

Both networks are residual MLPs whose last layer is zero, added to the exact
answer for Gaussian data N(MU, S^2 I), so the samples they give have a known
mean and spread while the graph is an ordinary PyTorch export (Gemm, SiLU,
Add, Div, Gather):

  resmlp_sigma/model.onnx  x float32 [N,2], sigma float32 [N] -> out [N,2],
      the score -(x - MU)/(S^2 + sigma^2), trained (notionally) up to
      sigma = 20: it needs its schedule (`ebmrun meta --sigmas`) to sample.
  ddpm_labels_b16/model.onnx  x float32 [16,2], labels int64 [16] -> out [16,2],
      a DDPM noise prediction at step t = labels for the linear beta schedule
      1e-4 .. 0.02 over 1000 steps, exported without a dynamic batch axis.
"""

import os

import numpy as np
import onnx
import torch
import torch.nn as nn

ROOT = os.path.dirname(os.path.abspath(__file__))
MU = (1.5, -1.0)
S = 0.5
torch.set_num_threads(1)


class ResMLP(nn.Module):
    """x -> zero-initialised residual MLP output (exactly 0 for finite x)."""

    def __init__(self, width=32, blocks=2, seed=0):
        super().__init__()
        rs = np.random.RandomState(seed)
        self.inp = nn.Linear(2, width)
        self.blocks = nn.ModuleList(nn.Linear(width, width) for _ in range(blocks))
        self.out = nn.Linear(width, 2)
        with torch.no_grad():
            for lin in [self.inp, *self.blocks]:
                lin.weight.copy_(torch.from_numpy(rs.standard_normal(tuple(lin.weight.shape)).astype(np.float32) / np.sqrt(lin.weight.shape[1])))
                lin.bias.copy_(torch.from_numpy(0.1 * rs.standard_normal(tuple(lin.bias.shape)).astype(np.float32)))
            self.out.weight.zero_()
            self.out.bias.zero_()

    def forward(self, x):
        h = self.inp(x)
        for b in self.blocks:
            h = h + nn.functional.silu(b(h))
        return self.out(h)


class SigmaScore(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = ResMLP()
        self.register_buffer("mu", torch.tensor(MU, dtype=torch.float32))

    def forward(self, x, sigma):
        var = S * S + sigma.unsqueeze(1) ** 2
        return -(x - self.mu) / var + self.mlp(x)


class DDPMEps(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = ResMLP(seed=1)
        betas = np.linspace(1e-4, 0.02, 1000)
        abar = np.cumprod(1 - betas)
        self.register_buffer("abar", torch.from_numpy(abar.astype(np.float32)))
        self.register_buffer("mu", torch.tensor(MU, dtype=torch.float32))

    def forward(self, x, labels):
        a = self.abar[labels].unsqueeze(1)
        score = -(x - a.sqrt() * self.mu) / (a * S * S + 1 - a)
        return -(1 - a).sqrt() * score + self.mlp(x)


def export(model, args, names, path, dynamic):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    axes = {n: {0: "N"} for n in names + ["out"]} if dynamic else None
    torch.onnx.export(model, args, path, input_names=names, output_names=["out"],
                      dynamic_axes=axes, opset_version=17, do_constant_folding=True)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    assert not any(p.key.startswith("ebmrun.") for p in m.metadata_props)


def main():
    x = torch.from_numpy(np.random.RandomState(2).standard_normal((16, 2)).astype(np.float32))
    sig = SigmaScore().eval()
    s = torch.full((16,), 3.0)
    want = -(x - torch.tensor(MU)) / (S * S + 9.0)
    assert torch.allclose(sig(x, s), want, atol=1e-6)
    export(sig, (x, s), ["x", "sigma"], os.path.join(ROOT, "resmlp_sigma", "model.onnx"), True)

    eps = DDPMEps().eval()
    t = torch.arange(16, dtype=torch.int64) * 60
    assert eps(x, t).shape == (16, 2)
    export(eps, (x, t), ["x", "labels"], os.path.join(ROOT, "ddpm_labels_b16", "model.onnx"), False)


if __name__ == "__main__":
    main()
