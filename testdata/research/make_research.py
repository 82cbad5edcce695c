#!/usr/bin/python3
"""Small research-family score networks, exported the way a user would.

Run from the repository root (Debian's PyTorch 1.13 and onnx 1.12, no network):

    /usr/bin/python3 testdata/research/make_research.py

Five families, each a small model written here in the style of the published
architecture (not copied from it), exported by plain torch.onnx.export with a
dynamic batch axis and no ebmrun metadata — the way an outside user hands a
model to ebmrun; the Go tests give roles with the same overrides the CLI flags
set. Parameters and inputs come from numpy's legacy RandomState, so reruns on
the same library versions reproduce every file.

Workaround for pytorch issue 99140: PyTorch 1.13 refuses to export
F.instance_norm / nn.InstanceNorm2d when it cannot see the channel count
("Unsupported: ONNX export of instance_norm for unknown channel size"), which
is what happens inside these conditional-norm blocks under dynamic axes. Users
write the instance norm by hand with mean and variance over H, W; so do the
NCSN v1/v2 norms below (ReduceMean/Sub/Mul/Sqrt/Div in the graph).

Writes testdata/research/<model>/{model.onnx, inputs/*.npy, expected/*.npy,
vjp/{v,grad_x}.npy} and testdata/research/ops/<case>/ (one op each, with
PyTorch's output and its autograd vector-Jacobian product), plus MANIFEST.json.
"""

import json
import math
import os
import shutil

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.abspath(__file__))
BATCH = 4
NUM_LEVELS = 10
SIGMAS = np.geomspace(1.0, 0.01, NUM_LEVELS)

torch.set_num_threads(1)


def init_params(module, seed, gain=1.0, bias_std=0.05):
    """Every parameter from numpy: weights N(0, gain²/fan_in), other tensors N(0, bias_std²)."""
    rs = np.random.RandomState(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.dim() >= 2 and not name.endswith("embed.weight"):
                fan_in = int(np.prod(p.shape[1:]))
                if name.endswith("W"):  # NIN weights are [in, out]
                    fan_in = p.shape[0]
                std = gain / math.sqrt(fan_in)
                p.copy_(torch.from_numpy((rs.standard_normal(tuple(p.shape)) * std).astype(np.float32)))
            elif name.endswith("embed.weight"):
                p.copy_(torch.from_numpy((1 + 0.1 * rs.standard_normal(tuple(p.shape))).astype(np.float32)))
            else:
                p.copy_(torch.from_numpy((rs.standard_normal(tuple(p.shape)) * bias_std).astype(np.float32)))
        for name, b in module.named_buffers():
            if name.endswith("fourier_W"):
                b.copy_(torch.from_numpy((rs.standard_normal(tuple(b.shape)) * 4).astype(np.float32)))
    return rs


# ---------------------------------------------------------------------------
# NCSN v1 / v2: RefineNet with dilated convolutions


def instance_stats(x):
    """Per-sample, per-channel mean and variance over H, W, written out (the #99140 workaround)."""
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = ((x - mu) ** 2).mean(dim=(2, 3), keepdim=True)
    return mu, var


class InstanceNormPlus(nn.Module):
    """Instance norm++: instance norm, plus the normalised channel means scaled by alpha.

    With n_classes > 0 it is conditional: gamma, alpha, beta come from an
    embedding of the int64 noise label (NCSN v1); without, they are plain
    parameters (NCSNv2).
    """

    def __init__(self, c, n_classes=0):
        super().__init__()
        self.c = c
        self.n_classes = n_classes
        if n_classes:
            self.embed = nn.Embedding(n_classes, 3 * c)
        else:
            self.gab = nn.Parameter(torch.zeros(3, c))

    def forward(self, x, y=None):
        mu, var = instance_stats(x)
        means = mu.flatten(1)
        m = means.mean(dim=1, keepdim=True)
        v = ((means - m) ** 2).sum(dim=1, keepdim=True) / (self.c - 1)
        means = (means - m) / torch.sqrt(v + 1e-5)
        h = (x - mu) / torch.sqrt(var + 1e-5)
        if self.n_classes:
            gamma, alpha, beta = self.embed(y).chunk(3, dim=-1)
        else:
            gamma, alpha, beta = (1 + self.gab[0])[None], self.gab[1][None], self.gab[2][None]
        h = h + means[..., None, None] * alpha[..., None, None]
        return gamma[..., None, None] * h + beta[..., None, None]


class NormAct(nn.Module):
    def __init__(self, c, n_classes):
        super().__init__()
        self.norm = InstanceNormPlus(c, n_classes)

    def forward(self, x, y):
        return F.elu(self.norm(x, y))


class ResBlock(nn.Module):
    """norm → ELU → conv → norm → ELU → conv, plus a shortcut; optionally a mean-pool downsample or dilation."""

    def __init__(self, cin, cout, n_classes, down=False, dilation=1):
        super().__init__()
        self.n1 = NormAct(cin, n_classes)
        self.c1 = nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation)
        self.n2 = NormAct(cin, n_classes)
        self.down = down
        if down:
            # ConvMeanPool with the odd-size adjustment: zero-pad top/left, conv, average the four phases
            self.c2 = nn.Conv2d(cin, cout, 3, padding=1)
            self.short = nn.Conv2d(cin, cout, 1)
        else:
            self.c2 = nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation)
            self.short = nn.Conv2d(cin, cout, 1) if cin != cout else None

    @staticmethod
    def mean_pool(h):
        return (h[:, :, ::2, ::2] + h[:, :, 1::2, ::2] + h[:, :, ::2, 1::2] + h[:, :, 1::2, 1::2]) / 4

    def forward(self, x, y):
        h = self.c1(self.n1(x, y))
        h = self.n2(h, y)
        if self.down:
            h = self.mean_pool(self.c2(h))
            s = self.mean_pool(self.short(F.pad(x, (1, 0, 1, 0))[:, :, :-1, :-1]))
        else:
            h = self.c2(h)
            s = x if self.short is None else self.short(x)
        return h + s


class RCU(nn.Module):
    """Residual conv unit: (norm → ELU → conv) twice, plus identity."""

    def __init__(self, c, n_classes):
        super().__init__()
        self.n1, self.c1 = NormAct(c, n_classes), nn.Conv2d(c, c, 3, padding=1)
        self.n2, self.c2 = NormAct(c, n_classes), nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x, y):
        return x + self.c2(self.n2(self.c1(self.n1(x, y)), y))


class CRP(nn.Module):
    """Chained residual pooling: a chain of norm → padded 5×5 pool (stride 1) → conv, each added back."""

    def __init__(self, c, n_classes, stages=2, pad_mode="replicate"):
        super().__init__()
        self.norms = nn.ModuleList([InstanceNormPlus(c, n_classes) for _ in range(stages)])
        self.convs = nn.ModuleList([nn.Conv2d(c, c, 3, padding=1) for _ in range(stages)])
        self.pad_mode = pad_mode

    def forward(self, x, y):
        x = F.elu(x)
        path = x
        for norm, conv in zip(self.norms, self.convs):
            path = norm(path, y)
            if self.pad_mode == "avg":
                # AvgPool with count_include_pad: PyTorch exports an explicit Pad before the pool
                path = F.avg_pool2d(path, 5, stride=1, padding=2, count_include_pad=True)
            else:
                path = F.max_pool2d(F.pad(path, (2, 2, 2, 2), mode=self.pad_mode), 5, stride=1)
            path = conv(path)
            x = x + path
        return x


class RefineBlock(nn.Module):
    """RCUs per input, multi-scale fusion (conv, bilinear upsample to the finest input, sum), CRP, output RCU."""

    def __init__(self, cins, c, n_classes, pad_mode):
        super().__init__()
        self.rcus = nn.ModuleList([RCU(ci, n_classes) for ci in cins])
        self.msf = nn.ModuleList([nn.Conv2d(ci, c, 3, padding=1) for ci in cins])
        self.crp = CRP(c, n_classes, pad_mode=pad_mode)
        self.out = RCU(c, n_classes)

    def forward(self, xs, y):
        size = xs[0].shape[-2:]
        s = 0
        for x, rcu, conv in zip(xs, self.rcus, self.msf):
            h = conv(rcu(x, y))
            if h.shape[-2:] != size:
                h = F.interpolate(h, size=size, mode="bilinear", align_corners=True)
            s = s + h
        return self.out(self.crp(s, y), y)


class RefineNet(nn.Module):
    """NCSN-style RefineNet on 3×16×16: 16×16 → (mean-pool) 8×8 → dilated 8×8, refined back to 16×16."""

    def __init__(self, nf=8, channels=3, n_classes=0, pad_mode="replicate"):
        super().__init__()
        self.begin = nn.Conv2d(channels, nf, 3, padding=1)
        self.res1 = ResBlock(nf, nf, n_classes)
        self.res2 = ResBlock(nf, 2 * nf, n_classes, down=True)
        self.res3 = ResBlock(2 * nf, 2 * nf, n_classes, dilation=2)
        self.ref3 = RefineBlock([2 * nf], 2 * nf, n_classes, pad_mode)
        self.ref1 = RefineBlock([nf, 2 * nf], nf, n_classes, pad_mode)
        self.end_norm = NormAct(nf, n_classes)
        self.end = nn.Conv2d(nf, channels, 3, padding=1)

    def body(self, x, y):
        h = self.begin(2 * x - 1)
        h1 = self.res1(h, y)
        h2 = self.res2(h1, y)
        h3 = self.res3(h2, y)
        r3 = self.ref3([h3], y)
        r1 = self.ref1([h1, r3], y)
        return self.end(self.end_norm(r1, y))


class NCSNv1(RefineNet):
    """Conditional on int64 noise labels; the output is the score directly."""

    def __init__(self):
        super().__init__(n_classes=NUM_LEVELS, pad_mode="replicate")

    def forward(self, x, labels):
        return self.body(x, labels)


class NCSNv2(RefineNet):
    """Unconditional RefineNet; the noise enters only as score = net(x) / σ."""

    def __init__(self):
        super().__init__(n_classes=0, pad_mode="avg")

    def forward(self, x, sigma):
        return self.body(x, None) / sigma.view(-1, 1, 1, 1)


# ---------------------------------------------------------------------------
# NCSN++: Fourier σ embedding, BigGAN res-blocks, NIN via einsum, einsum attention


class NIN(nn.Module):
    """1×1 'network in network' layer as an einsum over channels."""

    def __init__(self, cin, cout):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(cin, cout))
        self.b = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        return torch.einsum("nchw,cd->ndhw", x, self.W) + self.b[None, :, None, None]


class AttnPP(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(min(c // 4, 32), c)
        self.q, self.k, self.v, self.o = NIN(c, c), NIN(c, c), NIN(c, c), NIN(c, c)

    def forward(self, x):
        n, c, hh, ww = x.shape
        h = self.norm(x)
        q, k, v = self.q(h), self.k(h), self.v(h)
        w = torch.einsum("nchw,ncij->nhwij", q, k) * (int(c) ** -0.5)
        w = torch.softmax(w.reshape(n, hh, ww, hh * ww), dim=-1).reshape(n, hh, ww, hh, ww)
        h = torch.einsum("nhwij,ncij->nchw", w, v)
        return (x + self.o(h)) / math.sqrt(2.0)


class BigGANBlock(nn.Module):
    def __init__(self, cin, cout, temb, up=False, down=False):
        super().__init__()
        self.n1 = nn.GroupNorm(min(cin // 4, 32), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.dense = nn.Linear(temb, cout)
        self.n2 = nn.GroupNorm(min(cout // 4, 32), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = NIN(cin, cout) if cin != cout or up or down else None
        self.up, self.down = up, down

    def resample(self, h):
        if self.up:
            return F.interpolate(h, scale_factor=2.0, mode="bilinear", align_corners=False)
        if self.down:
            return F.avg_pool2d(h, 2, 2)
        return h

    def forward(self, x, emb):
        h = F.silu(self.n1(x))
        h = self.resample(h)
        x = self.resample(x)
        h = self.c1(h) + self.dense(F.silu(emb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        if self.skip is not None:
            x = self.skip(x)
        return (x + h) / math.sqrt(2.0)


class NCSNpp(nn.Module):
    def __init__(self, nf=8, channels=3):
        super().__init__()
        self.register_buffer("fourier_W", torch.zeros(8))
        self.d1 = nn.Linear(16, 4 * nf)
        self.d2 = nn.Linear(4 * nf, 4 * nf)
        self.conv_in = nn.Conv2d(channels, nf, 3, padding=1)
        t = 4 * nf
        self.b1 = BigGANBlock(nf, nf, t)
        self.b2 = BigGANBlock(nf, 2 * nf, t, down=True)
        self.attn = AttnPP(2 * nf)
        self.b3 = BigGANBlock(2 * nf, 2 * nf, t)
        self.b4 = BigGANBlock(2 * nf, nf, t, up=True)
        self.norm_out = nn.GroupNorm(2, nf)
        self.conv_out = nn.Conv2d(nf, channels, 3, padding=1)

    def forward(self, x, sigma):
        proj = torch.log(sigma)[:, None] * self.fourier_W[None, :] * (2 * math.pi)
        emb = torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)
        emb = self.d2(F.silu(self.d1(emb)))
        h0 = self.conv_in(x)
        h1 = self.b1(h0, emb)
        h = self.b2(h1, emb)
        h = self.attn(h)
        h = self.b3(h, emb)
        h = self.b4(h, emb) + h1
        h = self.conv_out(F.silu(self.norm_out(h)))
        return h / sigma[:, None, None, None]


# ---------------------------------------------------------------------------
# DDPM ε-network


def timestep_embedding(t, dim):
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * (-math.log(10000.0) / (half - 1)))
    a = t.float()[:, None] * freqs[None, :]
    return torch.cat([torch.sin(a), torch.cos(a)], dim=1)


class DDPMRes(nn.Module):
    def __init__(self, cin, cout, temb):
        super().__init__()
        self.n1 = nn.GroupNorm(min(cin // 4, 32), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout)
        self.n2 = nn.GroupNorm(min(cout // 4, 32), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.short = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(F.silu(emb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return (x if self.short is None else self.short(x)) + h


class DDPMAttn(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.norm = nn.GroupNorm(min(c // 4, 32), c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = nn.Conv2d(c, c, 1)

    def forward(self, x):
        n, c, hh, ww = x.shape
        q, k, v = self.qkv(self.norm(x)).chunk(3, dim=1)
        q = q.reshape(n, c, hh * ww).permute(0, 2, 1)
        k = k.reshape(n, c, hh * ww)
        w = torch.softmax(torch.bmm(q, k) * (int(c) ** -0.5), dim=2)
        v = v.reshape(n, c, hh * ww)
        h = torch.bmm(v, w.permute(0, 2, 1)).reshape(n, c, hh, ww)
        return x + self.proj(h)


class DDPMEps(nn.Module):
    def __init__(self, ch=8, channels=3):
        super().__init__()
        t = 4 * ch
        self.ch = ch
        self.t1, self.t2 = nn.Linear(ch, t), nn.Linear(t, t)
        self.conv_in = nn.Conv2d(channels, ch, 3, padding=1)
        self.down0 = DDPMRes(ch, ch, t)
        self.downsample = nn.Conv2d(ch, ch, 3, stride=2)
        self.down1 = DDPMRes(ch, 2 * ch, t)
        self.down1_attn = DDPMAttn(2 * ch)
        self.mid1, self.mid_attn, self.mid2 = DDPMRes(2 * ch, 2 * ch, t), DDPMAttn(2 * ch), DDPMRes(2 * ch, 2 * ch, t)
        self.up1 = DDPMRes(4 * ch, 2 * ch, t)
        self.up1_attn = DDPMAttn(2 * ch)
        self.upsample = nn.Conv2d(2 * ch, 2 * ch, 3, padding=1)
        self.up0 = DDPMRes(3 * ch, ch, t)
        self.norm_out = nn.GroupNorm(2, ch)
        self.conv_out = nn.Conv2d(ch, channels, 3, padding=1)

    def forward(self, x, t):
        emb = self.t2(F.silu(self.t1(timestep_embedding(t, self.ch))))
        h0 = self.down0(self.conv_in(x), emb)
        h = self.downsample(F.pad(h0, (0, 1, 0, 1)))  # DDPM's asymmetric pad before the strided conv
        h1 = self.down1_attn(self.down1(h, emb))
        h = self.mid2(self.mid_attn(self.mid1(h1, emb)), emb)
        h = self.up1_attn(self.up1(torch.cat([h, h1], dim=1), emb))
        h = self.upsample(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        h = self.up0(torch.cat([h, h0], dim=1), emb)
        return self.conv_out(F.silu(self.norm_out(h)))


# ---------------------------------------------------------------------------
# NICE energy model


class NICEEnergy(nn.Module):
    """Additive couplings on the even/odd halves of the flattened 1×8×8 input, a diagonal scaling, and
    E(x) = ½‖z‖² − Σ s (the negative log-density under a standard normal prior, up to a constant)."""

    def __init__(self, d=64, hidden=32, layers=4):
        super().__init__()
        self.nets = nn.ModuleList(
            [nn.Sequential(nn.Linear(d // 2, hidden), nn.Softplus(), nn.Linear(hidden, d // 2)) for _ in range(layers)])
        self.s = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        z = x.flatten(1)
        for i, net in enumerate(self.nets):
            a, b = z[:, 0::2], z[:, 1::2]
            if i % 2:
                a, b = b, a
            b = b + net(a)
            if i % 2:
                a, b = b, a
            z = torch.stack([a, b], dim=2).flatten(1)
        z = z * torch.exp(self.s)
        return 0.5 * (z * z).sum(dim=1) - self.s.sum()


# ---------------------------------------------------------------------------
# inputs, export, references


def make_inputs(cond, shape, seed):
    rs = np.random.RandomState(seed)
    feeds = {"x": rs.standard_normal((BATCH,) + shape).astype(np.float32)}
    if cond == "labels":
        feeds["labels"] = rs.randint(0, NUM_LEVELS, size=BATCH).astype(np.int64)
    elif cond == "sigma":
        feeds["sigma"] = np.exp(rs.uniform(math.log(0.01), 0.0, size=BATCH)).astype(np.float32)
    elif cond == "time":
        feeds["t"] = rs.randint(0, 1000, size=BATCH).astype(np.int64)
    elif cond == "time_float":
        feeds["t"] = rs.randint(0, 1000, size=BATCH).astype(np.float32)
    return feeds


def export(model, names, out_name, feeds, opset, path, fold=True):
    args = tuple(torch.from_numpy(feeds[n].copy()) for n in names)
    dyn = {n: {0: "N"} for n in names + [out_name]}
    torch.onnx.export(model, args, path, input_names=names, output_names=[out_name], dynamic_axes=dyn,
                      opset_version=opset, do_constant_folding=fold)


def save(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, np.ascontiguousarray(arr), allow_pickle=False)


def references(model, names, feeds, vseed):
    """PyTorch's output and the VJP ∇ₓ Σ(v ⊙ out) (energy models: v = 1)."""
    args = [torch.from_numpy(feeds[n].copy()) for n in names]
    args[0].requires_grad_(True)
    out = model(*args)
    rs = np.random.RandomState(vseed)
    v = rs.standard_normal(tuple(out.shape)).astype(np.float32)
    (g,) = torch.autograd.grad((out * torch.from_numpy(v)).sum(), args[0])
    return out.detach().numpy(), v, g.numpy()


# name, class, opset, condition, input names, output name, data shape, param seed
MODELS = [
    ("ncsnv1_op13", NCSNv1, 13, "labels", ["x", "labels"], "score", (3, 16, 16), 11),
    ("ncsnv1_op17", NCSNv1, 17, "labels", ["x", "labels"], "score", (3, 16, 16), 11),
    ("ncsnv2_op14", NCSNv2, 14, "sigma", ["x", "sigma"], "score", (3, 16, 16), 12),
    ("ncsnpp_op14", NCSNpp, 14, "sigma", ["x", "sigma"], "score", (3, 16, 16), 13),
    ("ncsnpp_op17", NCSNpp, 17, "sigma", ["x", "sigma"], "score", (3, 16, 16), 13),
    ("ddpm_op13", DDPMEps, 13, "time", ["x", "t"], "eps", (3, 16, 16), 14),
    ("ddpm_float_op17", DDPMEps, 17, "time_float", ["x", "t"], "eps", (3, 16, 16), 14),
    ("nice_op14", NICEEnergy, 14, "none", ["x"], "energy", (1, 8, 8), 15),
    # Exported with do_constant_folding=False, as some users do: the argument
    # arithmetic (pads, scales) stays in the graph for ebmrun to fold.
    ("ncsnv2_nofold_op13", NCSNv2, 13, "sigma", ["x", "sigma"], "score", (3, 16, 16), 12),
    ("ncsnpp_nofold_op17", NCSNpp, 17, "sigma", ["x", "sigma"], "score", (3, 16, 16), 13),
]


def make_model(spec, manifest):
    name, cls, opset, cond, names, out_name, shape, seed = spec
    d = os.path.join(ROOT, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model = cls().eval()
    init_params(model, seed)
    feeds = make_inputs(cond, shape, seed + 100)
    path = os.path.join(d, "model.onnx")
    export(model, names, out_name, feeds, opset, path, fold="nofold" not in name)
    out, v, g = references(model, names, feeds, seed + 200)
    for n in names:
        save(os.path.join(d, "inputs", n + ".npy"), feeds[n])
    save(os.path.join(d, "expected", out_name + ".npy"), out)
    save(os.path.join(d, "vjp", "v.npy"), v)
    save(os.path.join(d, "vjp", "grad_x.npy"), g)
    m = onnx.load(path)
    onnx.checker.check_model(m, full_check=True)
    manifest[name] = {
        "family": cls.__name__, "opset": opset, "condition": cond.replace("_float", ""),
        "inputs": names, "output": out_name, "data_shape": list(shape),
        "ops": sorted({n.op_type for n in m.graph.node}),
    }


# ---------------------------------------------------------------------------
# single-op cases: PyTorch output and autograd VJP for the ops the families use


class Op(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


def _idx():
    rs = np.random.RandomState(7)
    return torch.from_numpy(rs.randint(0, 5, size=(2, 4, 6)).astype(np.int64))


_W = torch.from_numpy(np.random.RandomState(8).standard_normal((3, 5)).astype(np.float32))
_W1 = torch.from_numpy(np.random.RandomState(9).standard_normal((4, 3, 3)).astype(np.float32) / 3)
_W3 = torch.from_numpy(np.random.RandomState(10).standard_normal((4, 3, 2, 3, 3)).astype(np.float32) / 5)

# name, function, input shape, opset, differentiable
OPS = [
    ("pad_constant", lambda x: F.pad(x, (1, 2, 0, 3), value=0.5), (2, 3, 4, 5), 13, True),
    ("pad_reflect", lambda x: F.pad(x, (2, 1, 1, 3), mode="reflect"), (2, 3, 4, 5), 13, True),
    ("pad_edge", lambda x: F.pad(x, (2, 2, 3, 1), mode="replicate"), (2, 3, 4, 5), 17, True),
    ("pad_negative", lambda x: F.pad(x, (-1, 2, 1, -2)), (2, 3, 4, 5), 17, True),
    ("resize_bilinear_align", lambda x: F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=True),
     (2, 3, 4, 5), 13, True),
    ("resize_bilinear_half", lambda x: F.interpolate(x, size=(7, 9), mode="bilinear", align_corners=False),
     (2, 3, 4, 5), 17, True),
    ("resize_bilinear_down", lambda x: F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False),
     (2, 3, 6, 8), 17, True),
    ("resize_nearest", lambda x: F.interpolate(x, scale_factor=2.0, mode="nearest"), (2, 3, 4, 5), 13, True),
    ("resize_linear1d", lambda x: F.interpolate(x, size=11, mode="linear", align_corners=False), (2, 3, 5), 17, True),
    ("einsum_nin", lambda x: torch.einsum("nchw,cd->ndhw", x, _W), (2, 3, 4, 5), 14, True),
    ("einsum_attn", lambda x: torch.einsum("nchw,ncij->nhwij", x, x * 0.5 + 1), (2, 3, 2, 3), 14, True),
    ("einsum_batch", lambda x: torch.einsum("bij,bkj->bik", x, x.flip(1)), (2, 4, 3), 17, True),
    ("einsum_ellipsis", lambda x: torch.einsum("...ij,jk->...ik", x, _W[:, :4].T.contiguous()), (2, 3, 5, 4), 17, True),
    ("einsum_trace", lambda x: torch.einsum("bii->b", x), (3, 4, 4), 17, True),
    ("einsum_diag_outer", lambda x: torch.einsum("bii,bj->bij", x, x[:, 0]), (3, 4, 4), 17, True),
    ("cumsum", lambda x: torch.cumsum(x, dim=1), (2, 5, 3), 13, True),
    ("gather_elements", lambda x: torch.gather(x, 1, _idx()), (2, 5, 6), 13, True),
    ("reduce_l1", lambda x: torch.norm(x, p=1, dim=1), (2, 5, 3), 13, True),
    ("reduce_l2", lambda x: torch.norm(x, p=2, dim=(1, 2), keepdim=True), (2, 5, 3), 17, True),
    ("trilu_upper", lambda x: torch.triu(x, 1), (2, 4, 5), 14, True),
    ("trilu_lower", lambda x: torch.tril(x, -1), (2, 5, 4), 14, True),
    ("argmax", lambda x: torch.argmax(x, dim=2, keepdim=True), (2, 3, 5), 13, False),
    ("argmin", lambda x: torch.argmin(x, dim=1), (2, 3, 5), 13, False),
    ("conv1d", lambda x: F.conv1d(x, _W1, stride=2, padding=1, dilation=1), (2, 3, 9), 13, True),
    ("conv1d_dilated", lambda x: F.conv1d(x, _W1, padding=2, dilation=2), (2, 3, 9), 17, True),
    ("conv3d", lambda x: F.conv3d(x, _W3, stride=(1, 2, 1), padding=(0, 1, 1)), (2, 3, 3, 5, 4), 13, True),
    ("maxpool1d", lambda x: F.max_pool1d(x, 3, stride=2, padding=1), (2, 3, 9), 13, True),
    ("avgpool1d", lambda x: F.avg_pool1d(x, 3, stride=2, padding=1, count_include_pad=False), (2, 3, 9), 13, True),
    ("maxpool3d", lambda x: F.max_pool3d(x, 2, stride=2), (2, 3, 4, 4, 6), 17, True),
    ("avgpool3d", lambda x: F.avg_pool3d(x, (2, 3, 2), stride=(1, 2, 2), padding=(0, 1, 1),
                                         count_include_pad=False), (2, 3, 3, 5, 4), 17, True),
    ("pixel_shuffle", lambda x: F.pixel_shuffle(x, 2), (2, 8, 2, 3), 13, True),
    ("pixel_unshuffle", lambda x: F.pixel_unshuffle(x, 2), (2, 2, 4, 6), 17, True),
]


def make_op(spec, manifest):
    name, f, shape, opset, diff = spec
    d = os.path.join(ROOT, "ops", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    rs = np.random.RandomState(len(manifest) + 1)  # cases run in list order
    x = rs.standard_normal(shape).astype(np.float32)
    model = Op(f).eval()
    export(model, ["x"], "y", {"x": x}, opset, os.path.join(d, "model.onnx"))
    xt = torch.from_numpy(x.copy()).requires_grad_(diff)
    y = model(xt)
    save(os.path.join(d, "x.npy"), x)
    save(os.path.join(d, "y.npy"), y.detach().numpy())
    if diff:
        v = rs.standard_normal(tuple(y.shape)).astype(np.float32)
        (g,) = torch.autograd.grad((y * torch.from_numpy(v)).sum(), xt)
        save(os.path.join(d, "v.npy"), v)
        save(os.path.join(d, "grad_x.npy"), g.numpy())
    m = onnx.load(os.path.join(d, "model.onnx"))
    onnx.checker.check_model(m, full_check=True)
    manifest[name] = {"opset": opset, "differentiable": diff, "ops": sorted({n.op_type for n in m.graph.node})}


def main():
    manifest = {"models": {}, "ops": {}}
    for spec in MODELS:
        make_model(spec, manifest["models"])
    for spec in OPS:
        make_op(spec, manifest["ops"])
    with open(os.path.join(ROOT, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    for name, m in manifest["models"].items():
        print(name, m["opset"], " ".join(m["ops"]))
    for name, m in manifest["ops"].items():
        print("op", name, " ".join(m["ops"]))


if __name__ == "__main__":
    main()
