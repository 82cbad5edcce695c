"""Run an ONNX score model's graph with PyTorch ops, node by node, so torch's
autograd differentiates it: the reference for ebmrun's log-likelihood
(ref_logp.py). Only the ops ebmrun's shipped models and the W1 MLP use are
implemented; any other op stops with its name. The result is checked against
onnxruntime-free expectations by the caller (it compares with ebmrun's own
forward pass through the saved outputs), so a wrong op cannot pass silently.
"""

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _reshape(x, shape):
    shape = [int(s) for s in shape.tolist()]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _unsqueeze(x, axes):
    for a in sorted(int(v) for v in axes.tolist()):
        x = x.unsqueeze(a if a >= 0 else a + x.dim() + 1)
    return x


def _conv(ins, a):
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    pads = a.get("pads", [0] * (2 * (w.dim() - 2)))
    k = len(pads) // 2
    if any(pads[i] != pads[i + k] for i in range(k)):
        raise SystemExit("onnx_torch: asymmetric Conv padding")
    return F.conv2d(x, w, b, stride=a.get("strides", 1), padding=pads[:k],
                    dilation=a.get("dilations", 1), groups=a.get("group", 1))


def _gemm(ins, a):
    x, w = ins[0], ins[1]
    if a.get("transA", 0):
        x = x.t()
    if a.get("transB", 0):
        w = w.t()
    y = a.get("alpha", 1.0) * (x @ w)
    if len(ins) > 2:
        y = y + a.get("beta", 1.0) * ins[2]
    return y


OPS = {
    "Add": lambda i, a: i[0] + i[1],
    "Sub": lambda i, a: i[0] - i[1],
    "Mul": lambda i, a: i[0] * i[1],
    "Div": lambda i, a: i[0] / i[1],
    "Neg": lambda i, a: -i[0],
    "MatMul": lambda i, a: i[0] @ i[1],
    "Gemm": _gemm,
    "Sigmoid": lambda i, a: torch.sigmoid(i[0]),
    "Tanh": lambda i, a: torch.tanh(i[0]),
    "Relu": lambda i, a: torch.relu(i[0]),
    "Log": lambda i, a: torch.log(i[0]),
    "Exp": lambda i, a: torch.exp(i[0]),
    "Sin": lambda i, a: torch.sin(i[0]),
    "Cos": lambda i, a: torch.cos(i[0]),
    "Identity": lambda i, a: i[0],
    "Reshape": lambda i, a: _reshape(i[0], i[1]),
    "Unsqueeze": lambda i, a: _unsqueeze(i[0], i[1] if len(i) > 1 else torch.tensor(a["axes"])),
    "Concat": lambda i, a: torch.cat(i, dim=a["axis"]),
    "Conv": _conv,
    "InstanceNormalization": lambda i, a: F.instance_norm(i[0], weight=i[1], bias=i[2], eps=a.get("epsilon", 1e-5)),
    "Constant": lambda i, a: torch.from_numpy(numpy_helper.to_array(a["value"]).copy()),
}


class Graph:
    """A callable f(x, sigma) → the model's first output, in torch ops."""

    def __init__(self, path):
        m = onnx.load(path)
        self.meta = {p.key: p.value for p in m.metadata_props}
        self.inits = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
        self.nodes = list(m.graph.node)
        self.inputs = [i.name for i in m.graph.input if i.name not in self.inits]
        self.output = m.graph.output[0].name
        missing = sorted({n.op_type for n in self.nodes} - set(OPS))
        if missing:
            raise SystemExit(f"onnx_torch: {path} uses ops this reference lacks: {missing}")

    def __call__(self, *args):
        env = dict(self.inits)
        env.update(zip(self.inputs, args))
        for n in self.nodes:
            ins = [env[i] for i in n.input if i]
            outs = OPS[n.op_type](ins, _attrs(n))
            env[n.output[0]] = outs
        return env[self.output]
