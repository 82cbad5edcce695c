"""PyTorch peer of benchmark W6 (bench/w6/main.go): the cost of one training
step of an energy network E(x, sigma) = f(x ++ log sigma)/sigma + c/2 |x|^2
(f: 3 x 128 SiLU -> 1) by
  dsm: denoising score matching on the score -grad_x E (create_graph=True, so
       the parameter gradient is second order), lambda = sigma^2;
  cd:  contrastive divergence, K Langevin steps x <- x - a grad E + sqrt(2a) z
       from a 10 000-point replay buffer (5% restarts), loss
       mean E(x+) - mean E(x-) + reg (mean E(x+)^2 + mean E(x-)^2),
       gradient clipped to norm 10;
each followed by one Adam step. Prints one JSON object: ms per step."""
import argparse
import json
import math
import time

import torch


def eight_gaussians(n, g):
    k = torch.randint(0, 8, (n,), generator=g)
    a = 2 * math.pi * k.float() / 8
    r = 4 / math.sqrt(2)
    mu = torch.stack([r * torch.cos(a), r * torch.sin(a)], 1)
    return mu + 0.5 / math.sqrt(2) * torch.randn(n, 2, generator=g)


class Energy(torch.nn.Module):
    def __init__(self, d=2, w=128, confine=0.1):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(d + 1, w), torch.nn.SiLU(), torch.nn.Linear(w, w), torch.nn.SiLU(),
                                       torch.nn.Linear(w, w), torch.nn.SiLU(), torch.nn.Linear(w, 1))
        self.confine = confine

    def forward(self, x, sigma):
        f = self.net(torch.cat([x, sigma.log().unsqueeze(1)], 1)).squeeze(1) / sigma
        return f + 0.5 * self.confine * (x * x).sum(1)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--sigmas", type=str, default="[5,0.01]")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    lo, hi = json.loads(a.sigmas)
    sig = torch.tensor([lo * (hi / lo) ** (i / 9) for i in range(10)])
    out = {"torch": torch.__version__, "threads": a.threads}

    e = Energy()
    opt = torch.optim.Adam(e.parameters(), lr=1e-3)

    def dsm_step():
        x = eight_gaussians(a.batch, g)
        s = sig[torch.randint(0, 10, (a.batch,), generator=g)]
        z = torch.randn(a.batch, 2, generator=g)
        xt = (x + s.unsqueeze(1) * z).requires_grad_(True)
        score = -torch.autograd.grad(e(xt, s).sum(), xt, create_graph=True)[0]
        loss = 0.5 * ((s.unsqueeze(1) * score + z) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    e2 = Energy(confine=1.0)
    opt2 = torch.optim.Adam(e2.parameters(), lr=1e-3)
    buf = torch.rand(10000, 2, generator=g) * 9 - 4.5
    one = torch.ones(a.batch)

    def cd_step():
        pos = eight_gaussians(a.batch, g)
        idx = torch.randint(0, 10000, (a.batch,), generator=g)
        neg = buf[idx].clone()
        fresh = torch.rand(a.batch, generator=g) < 0.05
        neg[fresh] = torch.rand(int(fresh.sum()), 2, generator=g) * 9 - 4.5
        alpha = 0.01
        for _ in range(a.k):
            neg.requires_grad_(True)
            gr = torch.autograd.grad(e2(neg, one).sum(), neg)[0]
            neg = (neg - alpha * gr + math.sqrt(2 * alpha) * torch.randn(a.batch, 2, generator=g)).detach()
        buf[idx] = neg
        ep, en = e2(pos, one), e2(neg, one)
        loss = ep.mean() - en.mean() + 0.1 * ((ep ** 2).mean() + (en ** 2).mean())
        opt2.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(e2.parameters(), 10.0)
        opt2.step()

    for name, step in (("dsm", dsm_step), ("cd", cd_step)):
        for _ in range(5):
            step()
        t = time.perf_counter()
        for _ in range(a.steps):
            step()
        out[name + "_ms"] = 1000 * (time.perf_counter() - t) / a.steps
    print(json.dumps(out))


if __name__ == "__main__":
    main()
