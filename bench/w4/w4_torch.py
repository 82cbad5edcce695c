"""PyTorch peer of bench/w4: forward passes and a DSM training step of a conv
score network, timed like the Go side (median of --repeat measurements of at
least --time seconds each), printed as one JSON object.

--family names a class of testdata/research/make_research.py (NCSNv2, NCSNpp,
DDPMEps): the research families' own PyTorch modules, with the parameters of
the fixture (make_research's init_params at --seed), checked against the
fixture's saved outputs before anything is timed. --family onnx runs the ONNX
graph itself op by op with torch functions (the shipped Fashion-MNIST U-Net,
which ebmrun built and trained, has no other PyTorch code); that is what eager
PyTorch executes for the equivalent module.

Multiply-adds are counted as the model runs (Conv, Linear/Gemm, MatMul, bmm,
einsum), per sample, so the Go side can report GFLOP/s.
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHECK_TOL = 1e-4  # relative to the largest expected output

MACS = [0]  # multiply-adds of the current forward pass, when counting
COUNTING = [False]


def count(n):
    if COUNTING[0]:
        MACS[0] += int(n)


# --------------------------------------------------------------------------
# counting wrappers around the functions that do the arithmetic

_conv2d, _linear, _matmul, _bmm, _einsum = F.conv2d, F.linear, torch.matmul, torch.bmm, torch.einsum


def conv2d(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    y = _conv2d(x, w, b, stride, padding, dilation, groups)
    count(y.numel() * w.shape[1] * w.shape[2] * w.shape[3])
    return y


def linear(x, w, b=None):
    y = _linear(x, w, b)
    count(y.numel() * w.shape[1])
    return y


def matmul(a, b):
    y = _matmul(a, b)
    count(y.numel() * a.shape[-1])
    return y


def bmm(a, b):
    y = _bmm(a, b)
    count(y.numel() * a.shape[-1])
    return y


def einsum(eq, *ops):
    y = _einsum(eq, *ops)
    if COUNTING[0]:
        sizes = {}
        for spec, t in zip(eq.split("->")[0].split(","), ops):
            for c, d in zip(spec.replace("...", ""), t.shape[len(t.shape) - len(spec.replace("...", "")):]):
                sizes[c] = d
        count(math.prod(sizes.values()))
    return y


F.conv2d, F.linear, torch.matmul, torch.bmm, torch.einsum = conv2d, linear, matmul, bmm, einsum


# --------------------------------------------------------------------------
# the research families' modules

def research_module(family, seed, model_path):
    sys.path.insert(0, os.path.join(ROOT, "testdata", "research"))
    import make_research as mr
    # the modules call nn.Conv2d/nn.Linear, whose forward reaches F.conv2d and
    # F.linear through the functional module, so the counters see them
    cls = getattr(mr, family)
    model = cls().eval()
    mr.init_params(model, seed)
    d = os.path.dirname(model_path)
    names = [i.name for i in onnx.load(model_path).graph.input]
    feeds = [torch.from_numpy(np.load(os.path.join(d, "inputs", n + ".npy"))) for n in names]
    outs = os.listdir(os.path.join(d, "expected"))
    want = np.load(os.path.join(d, "expected", outs[0]))
    with torch.no_grad():
        got = model(*feeds).numpy()
    err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-30))
    return model, names, err


# --------------------------------------------------------------------------
# an ONNX graph run op by op

class OnnxModule(nn.Module):
    def __init__(self, path):
        super().__init__()
        m = onnx.load(path)
        self.graph = m.graph
        self.params = nn.ParameterDict()
        self.consts = {}
        for init in m.graph.initializer:
            a = numpy_helper.to_array(init)
            t = torch.from_numpy(a.copy())
            if t.dtype == torch.float32 and t.dim() >= 1 and t.numel() > 1:
                key = "p%d" % len(self.params)
                self.params[key] = nn.Parameter(t)
                self.consts[init.name] = ("param", key)
            else:
                self.consts[init.name] = ("const", t)
        self.names = [i.name for i in m.graph.input if i.name not in self.consts]
        self.out = m.graph.output[0].name

    def value(self, env, name):
        if name in env:
            return env[name]
        kind, v = self.consts[name]
        return self.params[v] if kind == "param" else v

    def forward(self, *args):
        env = dict(zip(self.names, args))
        for n in self.graph.node:
            ins = [self.value(env, i) if i else None for i in n.input]
            a = {at.name: onnx.helper.get_attribute_value(at) for at in n.attribute}
            env[n.output[0]] = run_node(n.op_type, ins, a)
        return env[self.out]


def run_node(op, ins, a):
    x = ins[0] if ins else None
    if op == "Conv":
        w = ins[1]
        b = ins[2] if len(ins) > 2 else None
        pads = a.get("pads", [0] * 4)
        if pads[0] != pads[2] or pads[1] != pads[3]:
            x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
            pads = [0, 0]
        return F.conv2d(x, w, b, a.get("strides", 1), pads[:2], a.get("dilations", 1), a.get("group", 1))
    if op == "InstanceNormalization":
        return F.instance_norm(x, weight=ins[1], bias=ins[2], eps=a.get("epsilon", 1e-5))
    if op == "MatMul":
        return torch.matmul(x, ins[1])
    if op == "Gemm":
        aa = x.t() if a.get("transA", 0) else x
        bb = ins[1].t() if a.get("transB", 0) else ins[1]
        y = torch.matmul(aa, bb) * a.get("alpha", 1.0)
        if len(ins) > 2 and ins[2] is not None:
            y = y + a.get("beta", 1.0) * ins[2]
        return y
    if op == "Add":
        return x + ins[1]
    if op == "Sub":
        return x - ins[1]
    if op == "Mul":
        return x * ins[1]
    if op == "Div":
        return x / ins[1]
    if op == "Sigmoid":
        return torch.sigmoid(x)
    if op == "Relu":
        return torch.relu(x)
    if op == "Log":
        return torch.log(x)
    if op == "Sin":
        return torch.sin(x)
    if op == "Cos":
        return torch.cos(x)
    if op == "Exp":
        return torch.exp(x)
    if op == "Identity":
        return x
    if op == "Reshape":
        shape = [int(v) for v in ins[1].tolist()]
        shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return x.reshape(shape)
    if op == "Unsqueeze":
        axes = a["axes"] if "axes" in a else [int(v) for v in ins[1].tolist()]
        for ax in sorted(ax % (x.dim() + len(axes)) for ax in axes):
            x = x.unsqueeze(ax)
        return x
    if op == "Concat":
        return torch.cat(ins, dim=a["axis"])
    if op == "Constant":
        return torch.from_numpy(numpy_helper.to_array(a["value"]).copy())
    raise NotImplementedError("w4_torch: ONNX op %s" % op)


# --------------------------------------------------------------------------
# timing

def timeit(f, repeat, least):
    f()
    times = []
    for _ in range(repeat):
        n, start = 0, time.perf_counter()
        while True:
            f()
            n += 1
            if time.perf_counter() - start >= least:
                break
        times.append((time.perf_counter() - start) / n)
    return statistics.median(times)


def feeds(names, shape, b, rs):
    out = []
    for n in names:
        if n == "x":
            out.append(torch.from_numpy((0.5 + 0.25 * rs.standard_normal((b,) + shape)).astype(np.float32)))
        elif n == "sigma":
            out.append(torch.from_numpy(np.exp(math.log(0.01) * rs.uniform(size=b)).astype(np.float32)))
        elif n == "t":
            out.append(torch.from_numpy(rs.randint(0, 1000, size=b).astype(np.int64)))
        elif n == "labels":
            out.append(torch.from_numpy(rs.randint(0, 10, size=b).astype(np.int64)))
        else:
            raise ValueError("w4_torch: input %s" % n)
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--family", default="onnx")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", default="1,16,128")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--time", type=float, default=0.3)
    p.add_argument("--peak-threads", type=int, default=2)
    args = p.parse_args()

    res = {"torch": torch.__version__, "forward": {}, "train": {}}
    if args.family == "onnx":
        model = OnnxModule(args.model)
        names = model.names
    else:
        model, names, err = research_module(args.family, args.seed, args.model)
        res["check_rel_err"] = err
        res["check_ok"] = err <= CHECK_TOL
        if not res["check_ok"]:
            print(json.dumps(res))
            return
    g = onnx.load(args.model).graph
    xin = [i for i in g.input if i.name == "x"][0]
    shape = tuple(d.dim_value for d in xin.type.tensor_type.shape.dim[1:])
    rs = np.random.RandomState(4)

    with torch.no_grad():
        COUNTING[0] = True
        model(*feeds(names, shape, 1, rs))
        COUNTING[0] = False
    res["flops_per_sample"] = MACS[0]

    torch.set_num_threads(args.peak_threads)
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    res["peak_gflops"] = 2 * 512 ** 3 / timeit(lambda: _matmul(a, b), args.repeat, args.time) / 1e9

    for t in [int(v) for v in args.threads.split(",")]:
        torch.set_num_threads(t)
        for bsz in [int(v) for v in args.batch.split(",")]:
            ins = feeds(names, shape, bsz, rs)
            with torch.no_grad():
                res["forward"]["%d/%d" % (bsz, t)] = timeit(lambda: model(*ins), args.repeat, args.time)
        if args.train_batch > 0 and names == ["x", "sigma"]:
            res["train"][str(t)] = time_train(model, shape, args, rs)
    if not res["train"]:
        res["note"] = "no DSM step: the model is not s(x, sigma)"
    print(json.dumps(res))


def time_train(model, shape, args, rs):
    """One DSM step: x̃ = x + σz, loss = mean σ²·½‖s(x̃, σ) + z/σ‖², backward, Adam."""
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    sigmas = torch.from_numpy(np.geomspace(1.0, 0.01, 10).astype(np.float32))
    n = args.train_batch

    def step():
        x = torch.rand((n,) + shape)
        sigma = sigmas[torch.randint(0, len(sigmas), (n,))]
        z = torch.randn_like(x)
        s = sigma.view(-1, *([1] * len(shape)))
        xt = x + s * z
        out = model(xt, sigma)
        loss = 0.5 * ((s * out + z) ** 2).flatten(1).sum(1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sec = timeit(step, args.repeat, args.time)
    model.eval()
    return sec


if __name__ == "__main__":
    main()
