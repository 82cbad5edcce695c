#!/usr/bin/env python3
"""PyTorch peer of benchmark W2 (bench/w2/main.go): the NCSN MLP trained with
multi-σ denoising score matching on the swiss roll, exactly as ebmrun's
trainer does it, then the step cost of the sliced losses.

    /usr/bin/python3 bench/w2/train_torch.py --steps 3000 --batch 512 \
        --sigmas '[3, ..., 0.01]' --out /tmp/w2_torch.onnx

Debian's torch 1.13 with OpenBLAS (libopenblas0-pthread), --threads threads.
Prints one JSON object on stdout: training seconds, ms per step, the last
losses, and ms per step of dsm, ssm, ssm-vr and fd-ssm. The trained model is
exported to ONNX (inputs x [N, 2], sigma [N]; output score) so that the Go
side samples both models with the same annealed Langevin code.
"""
import argparse
import json
import math
import time

import numpy as np
import torch
from torch import nn


def swiss_roll(n, gen):
    """dataset/toy.go's swissroll: t ~ U[1.5π, 4.5π], (t cos t, t sin t)/5 + N(0, 0.2²)."""
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=gen))
    noise = torch.randn(n, 2, generator=gen)
    return torch.stack([(t * torch.cos(t) + noise[:, 0]) / 5, (t * torch.sin(t) + noise[:, 1]) / 5], 1)


class NCSNMLP(nn.Module):
    """concat(x, log σ) → 3×128 SiLU → 2, divided by σ (docs/design.md, W1)."""

    def __init__(self, width=128, depth=3):
        super().__init__()
        layers, d = [], 3
        for _ in range(depth):
            layers += [nn.Linear(d, width), nn.SiLU()]
            d = width
        layers.append(nn.Linear(d, 2))
        self.net = nn.Sequential(*layers)

    def forward(self, x, sigma):
        h = torch.cat([x, torch.log(sigma)[:, None]], 1)
        return self.net(h) / sigma[:, None]


def batch(gen, sig, n):
    x = swiss_roll(n, gen)
    s = sig[torch.randint(0, len(sig), (n,), generator=gen)]
    z = torch.randn(n, 2, generator=gen)
    return x, s, z


def rademacher(n, gen):
    return torch.randint(0, 2, (n, 2), generator=gen).float() * 2 - 1


def loss_fn(kind, model, x, s, z, gen, fd_eps=0.01):
    """The trainer's losses (trainer/loss.go), weighted by λ(σ) = σ²."""
    xt = x + s[:, None] * z
    if kind == "dsm":
        return 0.5 * ((s[:, None] * model(xt, s) + z) ** 2).sum(1).mean()
    v = rademacher(len(x), gen)
    if kind == "fd-ssm":
        e = (fd_eps * s)[:, None] * v
        out = model(torch.cat([xt + e, xt - e, xt]), s.repeat(3))
        up, um, u0 = (out * v.repeat(3, 1)).sum(1).chunk(3)
        return (s * s * ((up - um) / (2 * fd_eps * s) + 0.5 * u0 * u0)).mean()
    xt = xt.requires_grad_(True)
    sc = model(xt, s)
    u = (v * sc).sum(1)
    g, = torch.autograd.grad(u.sum(), xt, create_graph=True)
    tr = (v * g).sum(1)
    sq = u * u if kind == "ssm" else (sc * sc).sum(1)
    return (s * s * (tr + 0.5 * sq)).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--sigmas", required=True, help="JSON list, descending")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cost-steps", type=int, default=100)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    sig = torch.tensor(json.loads(a.sigmas), dtype=torch.float32)
    model = NCSNMLP()
    opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    ema = [p.detach().clone() for p in model.parameters()]
    losses = []
    t0 = time.perf_counter()
    for step in range(a.steps):
        x, s, z = batch(gen, sig, a.batch)
        loss = loss_fn("dsm", model, x, s, z, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        d = min(0.999, (1 + step + 1) / (10 + step + 1))  # the trainer's EMA schedule
        with torch.no_grad():
            for e, p in zip(ema, model.parameters()):
                e.mul_(d).add_(p, alpha=1 - d)
        losses.append(loss.item())
    secs = time.perf_counter() - t0
    with torch.no_grad():
        for e, p in zip(ema, model.parameters()):
            p.copy_(e)
    model.eval()
    x, s, _ = batch(gen, sig, 16)
    torch.onnx.export(model, (x, s), a.out, input_names=["x", "sigma"], output_names=["score"],
                      dynamic_axes={"x": {0: "N"}, "sigma": {0: "N"}, "score": {0: "N"}}, opset_version=17)

    cost = {}
    model.train()
    for kind in ["dsm", "ssm", "ssm-vr", "fd-ssm"]:
        m = NCSNMLP()
        o = torch.optim.Adam(m.parameters(), lr=a.lr)
        for i in range(a.cost_steps + 5):
            if i == 5:
                t1 = time.perf_counter()
            x, s, z = batch(gen, sig, a.batch)
            loss = loss_fn(kind, m, x, s, z, gen)
            o.zero_grad()
            loss.backward()
            o.step()
        cost[kind] = (time.perf_counter() - t1) * 1000 / a.cost_steps

    print(json.dumps({
        "torch": torch.__version__, "threads": torch.get_num_threads(), "seconds": secs,
        "step_ms": secs * 1000 / max(a.steps, 1), "final_loss": float(np.mean(losses[-100:])),
        "cost_ms": cost,
    }))


if __name__ == "__main__":
    main()
