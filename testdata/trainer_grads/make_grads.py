#!/usr/bin/python3
"""Reference parameter gradients of the trainer's four losses, by PyTorch autograd.

Run from the repository root with Debian's python3-torch (1.13):

    /usr/bin/python3 testdata/trainer_grads/make_grads.py

It draws the weights of a small NCSN MLP (the layout trainer.MLP builds:
x ‖ log σ → Depth × (Linear, SiLU) → Linear → ÷ σ, weights stored [in, out])
and one batch (perturbed data x̃, σ per sample, the DSM noise z, Rademacher
projections v), writes them as float32 .npy, and writes each loss's value
and its gradient with respect to every parameter, computed in float64 from
those float32 inputs. trainer's TestGradientsMatchPyTorch feeds the same
inputs to the trainer's step graph and compares.

Files: p<i>.npy (parameters in trainer.Net.Params order), xt.npy, sigma.npy,
z.npy, v.npy; <loss>_loss.npy and <loss>_g<i>.npy for loss in dsm, ssm,
ssm_vr, fd_ssm. The settings are in the constants below and in the test.
"""
import os

import numpy as np
import torch

D, WIDTH, DEPTH, N = 2, 16, 2, 8
SIGMAS = [1.0, 0.3, 0.1]
# trainer.Config.FDEps: ε = FD_EPS·σ. Larger than the default 0.01 on purpose: the
# difference quotient divides float32 rounding of the forward pass by 2ε, and
# at 0.01 that alone is 2e-5 relative, above the test's tolerance; the graph
# under test is the same at any ε.
FD_EPS = 0.1
OUT = os.path.dirname(os.path.abspath(__file__))

rng = np.random.default_rng(20261202)


def f32(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


params = []
fan_in = D + 1
for i in range(DEPTH + 1):
    out = WIDTH if i < DEPTH else D
    bound = 1 / np.sqrt(fan_in)
    params.append(f32(rng.uniform(-bound, bound, size=(fan_in, out))))
    params.append(f32(rng.uniform(-bound, bound, size=(out,))))
    fan_in = out

x = f32(rng.normal(0, 2, size=(N, D)))
sigma = f32(rng.choice(SIGMAS, size=N))
z = f32(rng.normal(size=(N, D)))
xt = f32(x + sigma[:, None] * z)  # float32 arithmetic, as trainer.fill does
v = f32(rng.choice([-1.0, 1.0], size=(N, D)))

for i, p in enumerate(params):
    np.save(os.path.join(OUT, f"p{i}.npy"), p)
for name, a in [("xt", xt), ("sigma", sigma), ("z", z), ("v", v)]:
    np.save(os.path.join(OUT, f"{name}.npy"), a)


def net(ps, x, s):
    h = torch.cat([x, torch.log(s)[:, None]], dim=1)
    for i in range(DEPTH):
        h = h @ ps[2 * i] + ps[2 * i + 1]
        h = h * torch.sigmoid(h)
    h = h @ ps[2 * DEPTH] + ps[2 * DEPTH + 1]
    return h / s[:, None]


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def dsm(ps):
    s = t64(sigma)
    r = s[:, None] * net(ps, t64(xt), s) + t64(z)
    return (0.5 * (r * r).sum(1)).mean()


def ssm(ps, vr):
    xx = t64(xt, grad=True)
    s = t64(sigma)
    vv = t64(v)
    score = net(ps, xx, s)
    u = (vv * score).sum(1)
    (g,) = torch.autograd.grad(u.sum(), xx, create_graph=True)
    hutch = (g * vv).sum(1)
    second = 0.5 * (score * score).sum(1) if vr else 0.5 * u * u
    return (s * s * (hutch + second)).mean()


def fdssm(ps):
    # x̃ ± εv in float32, rounded as trainer.fill rounds them: e = (ε₀·σ)·v.
    e = (np.float32(FD_EPS) * sigma)[:, None] * v
    xp, xm = f32(xt + e), f32(xt - e)
    s = t64(sigma)
    vv = t64(v)
    up = (vv * net(ps, t64(xp), s)).sum(1)
    um = (vv * net(ps, t64(xm), s)).sum(1)
    u0 = (vv * net(ps, t64(xt), s)).sum(1)
    a = t64(f32(sigma / (2 * FD_EPS)))  # σ²/(2εσ), float32 as fed
    return (a * (up - um) + s * s / 2 * u0 * u0).mean()


for name, f in [("dsm", dsm), ("ssm", lambda ps: ssm(ps, False)), ("ssm_vr", lambda ps: ssm(ps, True)), ("fd_ssm", fdssm)]:
    ps = [t64(p, grad=True) for p in params]
    loss = f(ps)
    grads = torch.autograd.grad(loss, ps)
    np.save(os.path.join(OUT, f"{name}_loss.npy"), np.array(loss.item(), dtype=np.float64))
    for i, g in enumerate(grads):
        np.save(os.path.join(OUT, f"{name}_g{i}.npy"), g.numpy())
    print(f"{name}: loss {loss.item():.6f}")

# Adam: three AdamW steps from the fixture's weights with the DSM gradients
# scaled by 1, −0.5 and 2 (trainer's adam is torch.optim.AdamW's formula;
# weight decay 0 is plain Adam). Files: adam_wd<wd>_p<i>.npy.
dsm_grads = [np.load(os.path.join(OUT, f"dsm_g{i}.npy")) for i in range(len(params))]
for wd in (0.0, 0.1):
    ps = [torch.tensor(p.astype(np.float32), requires_grad=True) for p in params]
    opt = torch.optim.AdamW(ps, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=wd)
    for scale in (1.0, -0.5, 2.0):
        for p, g in zip(ps, dsm_grads):
            p.grad = torch.tensor((scale * g).astype(np.float32))
        opt.step()
    for i, p in enumerate(ps):
        np.save(os.path.join(OUT, f"adam_wd{wd:g}_p{i}.npy"), p.detach().numpy())
