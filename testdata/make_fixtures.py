#!/usr/bin/python3
"""Regenerate ebmrun's ONNX test fixtures.

Run from the repository root:

    /usr/bin/python3 testdata/make_fixtures.py

Needs Debian's python3-torch (1.13) and python3-onnx (1.12); no network.
Everything is deterministic: parameters and inputs come from numpy's legacy
RandomState (whose streams numpy keeps stable across versions), so a rerun on
the same library versions reproduces every file byte for byte.

Writes:
  testdata/models/<name>/model.onnx
  testdata/models/<name>/inputs/<graph input name>.npy
  testdata/models/<name>/expected/<graph output name>.npy
  testdata/models/<name>/vjp/{v,grad_x,neg_grad}.npy
  testdata/models/MANIFEST.json
  testdata/malformed/*.onnx (+ ext_ok.bin, link_out.bin -> /etc/hostname)

After writing, it checks every good model three ways: onnx.checker
(full_check), a fresh torch rebuild reproduces expected/, and a small numpy
interpreter of the exported ONNX graph reproduces expected/ too (so the export
itself is verified, not only the torch model).
"""

import json
import math
import os
import shutil
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.abspath(__file__))
MODELS = os.path.join(ROOT, "models")
MALFORMED = os.path.join(ROOT, "malformed")

BATCH = 16
NUM_LEVELS = 10
SIGMAS = np.geomspace(1.0, 0.01, NUM_LEVELS).astype(np.float64)

torch.set_num_threads(1)  # deterministic reductions


# ---------------------------------------------------------------------------
# deterministic parameter initialisation (numpy RandomState, not torch RNG)


def init_params(module, seed, gain=1.0, bias_std=0.1):
    """Set every parameter of module from a numpy RandomState.

    Weights of Linear/Conv layers: N(0, gain^2 / fan_in); biases N(0, bias_std^2);
    norm layers: weight 1, bias 0; embeddings handled by the caller.
    """
    rs = np.random.RandomState(seed)
    with torch.no_grad():
        for name, mod in module.named_modules():
            if isinstance(mod, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                w = mod.weight
                if isinstance(mod, nn.ConvTranspose2d):
                    # weight [in, out, kh, kw]; each output sums over in*kh*kw/stride^2 terms
                    fan_in = w.shape[0] * w.shape[2] * w.shape[3] / (mod.stride[0] * mod.stride[1])
                else:
                    fan_in = int(np.prod(w.shape[1:]))
                w.copy_(torch.from_numpy(
                    (rs.standard_normal(tuple(w.shape)) * gain / math.sqrt(fan_in)).astype(np.float32)))
                if mod.bias is not None:
                    mod.bias.copy_(torch.from_numpy(
                        (rs.standard_normal(tuple(mod.bias.shape)) * bias_std).astype(np.float32)))
            elif isinstance(mod, nn.GroupNorm):
                mod.weight.fill_(1.0)
                mod.bias.fill_(0.0)
    return rs


# ---------------------------------------------------------------------------
# models


class NCSNMLP(nn.Module):
    """h = MLP(concat(x, log sigma)); score = h / sigma."""

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
        h = self.l4(h)
        return h / sigma[:, None]


class NCSNv1Labels(nn.Module):
    """NCSN-v1-style: per-level gamma (Embedding) scales hidden features; output / sigmas[labels]."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(NUM_LEVELS, 64)
        self.l1 = nn.Linear(2, 64)
        self.l2 = nn.Linear(64, 64)
        self.l3 = nn.Linear(64, 2)
        self.register_buffer("sigmas", torch.tensor(SIGMAS, dtype=torch.float32))

    def forward(self, x, labels):
        gamma = self.embed(labels)  # [N, 64]
        h = F.softplus(gamma * self.l1(x))
        h = F.softplus(gamma * self.l2(h))
        h = self.l3(h)
        return h / self.sigmas[labels][:, None]


class ConvScore(nn.Module):
    """Tiny U-Net-ish score net on [N,1,8,8] with a Gaussian Fourier embedding of log sigma."""

    def __init__(self):
        super().__init__()
        self.register_buffer("W", torch.zeros(8))
        self.emb = nn.Linear(16, 16)
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.gn1 = nn.GroupNorm(4, 16)
        self.conv2 = nn.Conv2d(16, 16, 3, stride=2, padding=1)
        self.gn2 = nn.GroupNorm(4, 16)
        self.up = nn.ConvTranspose2d(16, 16, 4, stride=2, padding=1)
        self.out = nn.Conv2d(16, 1, 3, padding=1)

    def forward(self, x, sigma):
        proj = 2.0 * math.pi * torch.log(sigma)[:, None] * self.W[None, :]  # [N, 8]
        emb = F.silu(self.emb(torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)))  # [N, 16]
        h1 = F.silu(self.gn1(self.conv1(x))) + emb[:, :, None, None]  # [N,16,8,8]
        h2 = F.silu(self.gn2(self.conv2(h1)))  # [N,16,4,4]
        h3 = self.up(h2)  # [N,16,8,8]
        h = F.silu(h3 + h1)
        return self.out(h) / sigma[:, None, None, None]


class DDPMEps(nn.Module):
    """eps(x, t): sinusoidal embedding of t (dim 32) computed in the graph, MLP on concat(x, emb)."""

    def __init__(self):
        super().__init__()
        half = 16
        freqs = np.exp(-math.log(10000.0) * np.arange(half) / half).astype(np.float32)
        self.register_buffer("freqs", torch.from_numpy(freqs))
        self.l1 = nn.Linear(2 + 32, 128)
        self.l2 = nn.Linear(128, 128)
        self.l3 = nn.Linear(128, 2)

    def forward(self, x, t):
        arg = t.to(torch.float32)[:, None] * self.freqs[None, :]  # [N, 16]
        emb = torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)  # [N, 32]
        h = torch.cat([x, emb], dim=1)
        h = F.silu(self.l1(h))
        h = F.silu(self.l2(h))
        return self.l3(h)


class EnergyMLP(nn.Module):
    """E(x) = MLP(x) + 0.5 * ||x||^2 / 4, one scalar per sample."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(2, 64)
        self.l2 = nn.Linear(64, 64)
        self.l3 = nn.Linear(64, 1)

    def forward(self, x):
        h = F.softplus(self.l1(x))
        h = F.softplus(self.l2(h))
        e = self.l3(h).squeeze(-1)
        return e + 0.5 * (x * x).sum(dim=1) / 4.0


def build_ncsn_mlp():
    m = NCSNMLP()
    init_params(m, 1001, gain=1.6)
    return m


def build_ncsnv1_labels():
    m = NCSNv1Labels()
    rs = init_params(m, 1002, gain=1.5)
    with torch.no_grad():
        m.embed.weight.copy_(torch.from_numpy(rs.uniform(0.5, 1.5, size=(NUM_LEVELS, 64)).astype(np.float32)))
    return m


def build_conv_score():
    m = ConvScore()
    rs = init_params(m, 1003, gain=1.4)
    with torch.no_grad():
        m.W.copy_(torch.from_numpy(rs.standard_normal(8).astype(np.float32)))
    return m


def build_ddpm_eps():
    m = DDPMEps()
    init_params(m, 1004, gain=1.6)
    return m


def build_energy_mlp():
    m = EnergyMLP()
    init_params(m, 1005, gain=1.5)
    return m


# ---------------------------------------------------------------------------
# inputs


def x_input(rs, shape):
    return rs.standard_normal((BATCH,) + tuple(shape)).astype(np.float32)


def sigma_input(rs):
    return np.exp(rs.uniform(math.log(0.01), math.log(1.0), size=BATCH)).astype(np.float32)


def make_inputs(kind, seed):
    rs = np.random.RandomState(seed)
    if kind == "mlp_sigma":
        return {"x": x_input(rs, [2]), "sigma": sigma_input(rs)}
    if kind == "labels":
        return {"x": x_input(rs, [2]), "labels": rs.randint(0, NUM_LEVELS, size=BATCH).astype(np.int64)}
    if kind == "conv_sigma":
        return {"x": x_input(rs, [1, 8, 8]), "sigma": sigma_input(rs)}
    if kind == "t":
        return {"x": x_input(rs, [2]), "t": rs.randint(0, 1000, size=BATCH).astype(np.int64)}
    if kind == "x":
        return {"x": x_input(rs, [2])}
    raise ValueError(kind)


# ---------------------------------------------------------------------------
# fixture table

NCSN_METADATA = {
    "ebmrun.kind": "score",
    "ebmrun.condition": "sigma",
    "ebmrun.x_input": "x",
    "ebmrun.condition_input": "sigma",
    "ebmrun.output": "score",
    "ebmrun.sigmas": json.dumps([float(s) for s in SIGMAS]),
    "ebmrun.data_shape": "[2]",
    "ebmrun.data_range": "[-4,4]",
}

FIXTURES = [
    # name, builder, opset, input kind, input names, output name, input seed, metadata
    ("ncsn_mlp", build_ncsn_mlp, 17, "mlp_sigma", ["x", "sigma"], "score", 2001, NCSN_METADATA),
    ("ncsn_mlp_op13", build_ncsn_mlp, 13, "mlp_sigma", ["x", "sigma"], "score", 2001, None),
    ("ncsnv1_labels", build_ncsnv1_labels, 17, "labels", ["x", "labels"], "score", 2002, None),
    ("conv_score", build_conv_score, 17, "conv_sigma", ["x", "sigma"], "score", 2003, None),
    ("conv_score_op13", build_conv_score, 13, "conv_sigma", ["x", "sigma"], "score", 2003, None),
    ("ddpm_eps", build_ddpm_eps, 17, "t", ["x", "t"], "eps", 2004, None),
    ("energy_mlp", build_energy_mlp, 17, "x", ["x"], "energy", 2005, None),
]


def save_npy(path, arr):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    arr = np.ascontiguousarray(arr)
    assert arr.dtype in (np.float32, np.int64), (path, arr.dtype)
    np.save(path, arr, allow_pickle=False)


def torch_forward(model, names, inputs):
    args = [torch.from_numpy(inputs[n].copy()) for n in names]
    with torch.no_grad():
        return model(*args).numpy()


def torch_vjp(model, names, inputs, out_name, vseed):
    """Return dict of vjp arrays."""
    args = [torch.from_numpy(inputs[n].copy()) for n in names]
    x = args[0].requires_grad_(True)
    out = model(*args)
    res = {}
    if out_name == "energy":
        (g,) = torch.autograd.grad(out.sum(), x)
        g = g.detach().numpy().astype(np.float32)
        res["grad_x"] = g
        res["neg_grad"] = (-g).astype(np.float32)
    else:
        v = np.random.RandomState(vseed).standard_normal(tuple(out.shape)).astype(np.float32)
        (g,) = torch.autograd.grad((torch.from_numpy(v) * out).sum(), x)
        res["v"] = v
        res["grad_x"] = g.detach().numpy().astype(np.float32)
    return res


def export(model, names, out_name, inputs, opset, path):
    args = tuple(torch.from_numpy(inputs[n].copy()) for n in names)
    dyn = {n: {0: "N"} for n in names}
    dyn[out_name] = {0: "N"}
    torch.onnx.export(
        model,
        args,
        path,
        input_names=names,
        output_names=[out_name],
        dynamic_axes=dyn,
        opset_version=opset,
        do_constant_folding=True,
        export_params=True,
        verbose=False,
    )


def make_model_fixture(spec):
    name, builder, opset, kind, names, out_name, seed, meta = spec
    d = os.path.join(MODELS, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    torch.manual_seed(0)
    model = builder().eval()
    inputs = make_inputs(kind, seed)
    path = os.path.join(d, "model.onnx")
    export(model, names, out_name, inputs, opset, path)

    m = onnx.load(path)
    # strip anything that could vary between runs or machines
    m.producer_version = m.producer_version  # kept: records the torch version
    for node in m.graph.node:
        node.doc_string = ""
    m.graph.doc_string = ""
    if meta:
        del m.metadata_props[:]
        for k, v in meta.items():
            p = m.metadata_props.add()
            p.key = k
            p.value = v
    onnx.save(m, path)
    onnx.checker.check_model(onnx.load(path), full_check=True)

    for n in names:
        save_npy(os.path.join(d, "inputs", n + ".npy"), inputs[n])
    out = torch_forward(model, names, inputs)
    save_npy(os.path.join(d, "expected", out_name + ".npy"), out.astype(np.float32))
    for k, v in torch_vjp(model, names, inputs, out_name, seed + 1000).items():
        save_npy(os.path.join(d, "vjp", k + ".npy"), v)

    m = onnx.load(path)
    entry = {
        "opset": opset,
        "ir_version": m.ir_version,
        "inputs": [{"name": n, "dtype": str(inputs[n].dtype), "shape": ["N"] + list(inputs[n].shape[1:])} for n in names],
        "outputs": [{"name": out_name, "dtype": "float32", "shape": ["N"] + list(out.shape[1:])}],
        "batch": BATCH,
        "metadata": dict(meta) if meta else {},
        "vjp": sorted(os.listdir(os.path.join(d, "vjp"))),
        "ops": sorted({n.op_type for n in m.graph.node}),
    }
    return name, entry


# ---------------------------------------------------------------------------
# malformed files


def tiny_relu_model(opset=17, ir_version=None):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "tiny", [x], [y])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="ebmrun-fixtures")
    if ir_version is not None:
        m.ir_version = ir_version
    return m


def write_model(name, m):
    with open(os.path.join(MALFORMED, name), "wb") as f:
        f.write(m.SerializeToString())


def external_tensor(name, dims, location, offset=None, length=None):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    t.data_location = TensorProto.EXTERNAL
    kv = [("location", location)]
    if offset is not None:
        kv.append(("offset", str(offset)))
    if length is not None:
        kv.append(("length", str(length)))
    for k, v in kv:
        e = t.external_data.add()
        e.key = k
        e.value = v
    return t


def matmul_model(graph_name, w_tensor, x_cols=3, w_cols=4):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", x_cols])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", w_cols])
    g = helper.make_graph([helper.make_node("MatMul", ["x", w_tensor.name], ["y"], name="matmul")],
                          graph_name, [x], [y], initializer=[w_tensor])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="ebmrun-fixtures")


EXT_OFFSET = 16
EXT_W = (np.arange(12, dtype=np.float32).reshape(3, 4) * 0.5 - 1.0).astype(np.float32)


def make_malformed():
    os.makedirs(os.path.join(ROOT, "foldbomb"), exist_ok=True)
    if os.path.isdir(MALFORMED):
        shutil.rmtree(MALFORMED)
    os.makedirs(MALFORMED)
    F_ = TensorProto.FLOAT

    open(os.path.join(MALFORMED, "empty.onnx"), "wb").close()

    with open(os.path.join(MODELS, "ncsn_mlp", "model.onnx"), "rb") as f:
        data = f.read()
    with open(os.path.join(MALFORMED, "truncated.onnx"), "wb") as f:
        f.write(data[: len(data) // 2])

    with open(os.path.join(MALFORMED, "not_protobuf.onnx"), "w") as f:
        f.write("This is not an ONNX model.\nIt is a plain text file, saved with an .onnx suffix.\n")

    # cycle: a = x + b ; b = a + x
    x = helper.make_tensor_value_info("x", F_, ["N", 2])
    b = helper.make_tensor_value_info("b", F_, ["N", 2])
    g = helper.make_graph([
        helper.make_node("Add", ["x", "b"], ["a"], name="add_a"),
        helper.make_node("Add", ["a", "x"], ["b"], name="add_b"),
    ], "cycle", [x], [b])
    write_model("cycle.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))

    # dangling: input "nowhere" is no graph input, initializer or node output
    y = helper.make_tensor_value_info("y", F_, ["N", 2])
    g = helper.make_graph([helper.make_node("Add", ["x", "nowhere"], ["y"], name="add_dangling")],
                          "dangling", [x], [y])
    write_model("dangling.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))

    # unknown ops
    g = helper.make_graph([
        helper.make_node("FooOp", ["x"], ["h"], name="foo"),
        helper.make_node("BarOp", ["h"], ["y"], name="bar"),
    ], "unknown_ops", [x], [y])
    write_model("unknown_ops.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))

    write_model("future_opset.onnx", tiny_relu_model(opset=99))
    write_model("old_ir.onnx", tiny_relu_model(ir_version=2))

    # bad tensor size: dims [100], 10 floats
    w = TensorProto()
    w.name = "w"
    w.data_type = F_
    w.dims.extend([100])
    w.float_data.extend([float(i) for i in range(10)])
    xi = helper.make_tensor_value_info("x", F_, ["N", 100])
    yo = helper.make_tensor_value_info("y", F_, ["N", 100])
    g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                          "bad_tensor_size", [xi], [yo], initializer=[w])
    write_model("bad_tensor_size.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))

    # huge declared: dims [1e6, 1e6] float (4e12 bytes), 4 bytes of raw_data
    w = TensorProto()
    w.name = "w"
    w.data_type = F_
    w.dims.extend([1000000, 1000000])
    w.raw_data = np.float32(1.0).tobytes()
    xi = helper.make_tensor_value_info("x", F_, ["N", 1000000])
    yo = helper.make_tensor_value_info("y", F_, ["N", 1000000])
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="matmul_huge")],
                          "huge_declared", [xi], [yo], initializer=[w])
    write_model("huge_declared.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))

    # constant-folding bombs (testdata/foldbomb: they load, so they are not
    # malformed): 200 bytes that ask Prepare to materialise 2^30
    # elements (4 GiB) from constants alone — ConstantOfShape, and Expand of
    # a scalar — then add them to the input so the graph stays live
    shape = numpy_helper.from_array(np.array([32768, 32768], dtype=np.int64), name="shape")
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), name="one")
    xi = helper.make_tensor_value_info("x", F_, ["N", 32768])
    yo = helper.make_tensor_value_info("y", F_, ["N", 32768])
    g = helper.make_graph([
        helper.make_node("ConstantOfShape", ["shape"], ["big"], name="fill_huge",
                         value=numpy_helper.from_array(np.array([1.0], dtype=np.float32))),
        helper.make_node("Add", ["x", "big"], ["y"], name="add"),
    ], "fold_bomb_fill", [xi], [yo], initializer=[shape])
    write_model("../foldbomb/fill.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))
    g = helper.make_graph([
        helper.make_node("Expand", ["one", "shape"], ["big"], name="expand_huge"),
        helper.make_node("Add", ["x", "big"], ["y"], name="add"),
    ], "fold_bomb_expand", [xi], [yo], initializer=[shape, one])
    write_model("../foldbomb/expand.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))

    # duplicate output name
    g = helper.make_graph([
        helper.make_node("Relu", ["x"], ["y"], name="relu_1"),
        helper.make_node("Neg", ["x"], ["y"], name="neg_2"),
    ], "duplicate_output", [x], [y])
    write_model("duplicate_output.onnx", helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]))

    # shape conflict: [N,3] @ [4,2]
    w = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), name="w")
    write_model("shape_conflict.onnx", matmul_model("shape_conflict", w, x_cols=3, w_cols=2))

    # external data, valid: 16 bytes of padding, then W [3,4] float32 little-endian (48 bytes)
    raw = EXT_W.astype("<f4").tobytes()
    with open(os.path.join(MALFORMED, "ext_ok.bin"), "wb") as f:
        f.write(b"EBMRUN-PADDING!!"[:EXT_OFFSET])
        f.write(raw)
    ext_ok = matmul_model("ext_ok", external_tensor("w", [3, 4], "ext_ok.bin", EXT_OFFSET, len(raw)))
    write_model("ext_ok.onnx", ext_ok)

    write_model("ext_escape.onnx", matmul_model("ext_escape", external_tensor("w", [3, 4], "../secret.bin")))
    write_model("ext_absolute.onnx", matmul_model("ext_absolute", external_tensor("w", [3, 4], "/etc/hostname")))
    # length 4096 matches dims [32,32] float32, but ext_ok.bin has only 64 bytes
    write_model("ext_too_long.onnx", matmul_model(
        "ext_too_long", external_tensor("w", [32, 32], "ext_ok.bin", EXT_OFFSET, 4096), x_cols=32, w_cols=32))
    write_model("ext_symlink.onnx", matmul_model("ext_symlink", external_tensor("w", [3, 4], "link_out.bin")))
    os.symlink("/etc/hostname", os.path.join(MALFORMED, "link_out.bin"))


# ---------------------------------------------------------------------------
# a small numpy interpreter for the ops the exporter emits, to verify the
# exported graphs (there is no onnxruntime for Python here, and onnx 1.12 has
# no reference evaluator)


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _conv(x, w, b, strides, pads, dilations, group):
    assert group == 1 and all(d == 1 for d in dilations)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    oh = (xp.shape[2] - kh) // strides[0] + 1
    ow = (xp.shape[3] - kw) // strides[1] + 1
    out = np.zeros((n, o, oh, ow), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i:i + strides[0] * oh:strides[0], j:j + strides[1] * ow:strides[1]]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    if b is not None:
        out += b[None, :, None, None]
    return out


def _conv_transpose(x, w, b, strides, pads, group):
    assert group == 1
    n, c, h, wd = x.shape
    _, o, kh, kw = w.shape
    full = np.zeros((n, o, (h - 1) * strides[0] + kh, (wd - 1) * strides[1] + kw), dtype=np.float64)
    for i in range(kh):
        for j in range(kw):
            full[:, :, i:i + strides[0] * h:strides[0], j:j + strides[1] * wd:strides[1]] += \
                np.einsum("nchw,co->nohw", x, w[:, :, i, j])
    out = full[:, :, pads[0]:full.shape[2] - pads[2], pads[1]:full.shape[3] - pads[3]]
    if b is not None:
        out = out + b[None, :, None, None]
    return out


def run_onnx_numpy(model, feeds):
    env = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feeds.items()}
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        env[init.name] = a.astype(np.float64) if a.dtype == np.float32 else a
    for node in model.graph.node:
        a = _attrs(node)
        ins = [env[i] if i else None for i in node.input]
        op = node.op_type
        if op == "Constant":
            v = numpy_helper.to_array(a["value"])
            r = v.astype(np.float64) if v.dtype == np.float32 else v
        elif op in ("Add", "Sub", "Mul", "Div", "Pow"):
            r = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Pow": np.power}[op](*ins)
        elif op == "Log":
            r = np.log(ins[0])
        elif op == "Sin":
            r = np.sin(ins[0])
        elif op == "Cos":
            r = np.cos(ins[0])
        elif op == "Sigmoid":
            r = 1.0 / (1.0 + np.exp(-ins[0]))
        elif op == "Softplus":
            r = np.logaddexp(0.0, ins[0])
        elif op == "Relu":
            r = np.maximum(ins[0], 0)
        elif op == "Identity":
            r = ins[0]
        elif op == "Neg":
            r = -ins[0]
        elif op == "MatMul":
            r = ins[0] @ ins[1]
        elif op == "Gemm":
            A, B = ins[0], ins[1]
            if a.get("transA", 0):
                A = A.T
            if a.get("transB", 0):
                B = B.T
            r = a.get("alpha", 1.0) * (A @ B)
            if len(ins) > 2 and ins[2] is not None:
                r = r + a.get("beta", 1.0) * ins[2]
        elif op == "Concat":
            r = np.concatenate(ins, axis=a["axis"])
        elif op == "Unsqueeze":
            axes = a["axes"] if "axes" in a else list(ins[1])
            r = ins[0]
            for ax in sorted(int(v) if v >= 0 else int(v) + r.ndim + 1 for v in axes):
                r = np.expand_dims(r, ax)
        elif op == "Squeeze":
            axes = a["axes"] if "axes" in a else (list(ins[1]) if len(ins) > 1 and ins[1] is not None else None)
            r = np.squeeze(ins[0], axis=tuple(int(v) for v in axes) if axes is not None else None)
        elif op == "Gather":
            r = np.take(ins[0], ins[1].astype(np.int64), axis=a.get("axis", 0))
        elif op == "Cast":
            to = a["to"]
            r = ins[0].astype({TensorProto.FLOAT: np.float64, TensorProto.INT64: np.int64,
                               TensorProto.INT32: np.int64, TensorProto.DOUBLE: np.float64}[to])
        elif op == "Shape":
            r = np.array(ins[0].shape, dtype=np.int64)
        elif op == "Reshape":
            shape = [int(s) for s in ins[1]]
            shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
            r = ins[0].reshape(shape)
        elif op == "ReduceSum":
            axes = a["axes"] if "axes" in a else (list(ins[1]) if len(ins) > 1 and ins[1] is not None else None)
            r = np.sum(ins[0], axis=tuple(int(v) for v in axes) if axes is not None else None,
                       keepdims=bool(a.get("keepdims", 1)))
        elif op == "Conv":
            r = _conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a.get("strides", [1, 1]),
                      a.get("pads", [0, 0, 0, 0]), a.get("dilations", [1, 1]), a.get("group", 1))
        elif op == "ConvTranspose":
            assert "output_padding" not in a or all(v == 0 for v in a["output_padding"])
            r = _conv_transpose(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a.get("strides", [1, 1]),
                                a.get("pads", [0, 0, 0, 0]), a.get("group", 1))
        elif op == "InstanceNormalization":
            xx = ins[0]
            axes = tuple(range(2, xx.ndim))
            mean = xx.mean(axis=axes, keepdims=True)
            var = xx.var(axis=axes, keepdims=True)
            bshape = (1, -1) + (1,) * (xx.ndim - 2)
            r = (xx - mean) / np.sqrt(var + a.get("epsilon", 1e-5)) * ins[1].reshape(bshape) + ins[2].reshape(bshape)
        elif op == "GroupNormalization":
            raise NotImplementedError(op)
        else:
            raise NotImplementedError(op)
        assert len(node.output) == 1, op
        env[node.output[0]] = np.asarray(r)
    return {o.name: env[o.name] for o in model.graph.output}


# ---------------------------------------------------------------------------
# verification


def verify_models(manifest):
    builders = {spec[0]: spec for spec in FIXTURES}
    worst = {}
    for name in manifest:
        _, builder, _, _, names, out_name, _, _ = builders[name]
        d = os.path.join(MODELS, name)
        m = onnx.load(os.path.join(d, "model.onnx"))
        onnx.checker.check_model(m, full_check=True)
        inputs = {n: np.load(os.path.join(d, "inputs", n + ".npy")) for n in names}
        expected = np.load(os.path.join(d, "expected", out_name + ".npy"))
        # 1. a fresh torch build reproduces expected/ exactly
        torch.manual_seed(0)
        again = torch_forward(builder().eval(), names, inputs)
        assert np.array_equal(again, expected), name + ": torch rebuild differs"
        # 2. the ONNX graph, interpreted in float64, agrees with torch's float32
        got = run_onnx_numpy(m, inputs)[out_name]
        assert got.shape == expected.shape, (name, got.shape, expected.shape)
        err = np.max(np.abs(got - expected)) / np.max(np.abs(expected))
        assert err < 1e-5, "%s: ONNX graph vs torch, max abs err / max |expected| = %g" % (name, err)
        # 3. batch independence of the graph: a sub-batch gives the same rows
        sub = run_onnx_numpy(m, {n: v[3:8] for n, v in inputs.items()})[out_name]
        assert np.allclose(sub, got[3:8], rtol=1e-9, atol=1e-9), name + ": not batch independent"
        # 4. VJP reference against central finite differences in float64 through the ONNX graph
        vjp = {f[:-4]: np.load(os.path.join(d, "vjp", f)) for f in os.listdir(os.path.join(d, "vjp"))}
        v = vjp.get("v", np.ones(expected.shape))
        xs = inputs["x"].astype(np.float64)
        fd = np.zeros_like(xs)
        eps = 1e-5
        flat = xs.reshape(-1)
        fdf = fd.reshape(-1)
        for i in range(flat.size):
            for sgn in (1, -1):
                xp = flat.copy()
                xp[i] += sgn * eps
                feeds = dict(inputs)
                feeds["x"] = xp.reshape(xs.shape)
                fdf[i] += sgn * np.sum(v * run_onnx_numpy(m, feeds)[out_name]) / (2 * eps)
        gerr = np.max(np.abs(fd - vjp["grad_x"])) / np.max(np.abs(fd))
        assert gerr < 1e-4, "%s: grad_x vs finite differences, max abs err / max |fd| = %g" % (name, gerr)
        if "neg_grad" in vjp:
            assert np.array_equal(vjp["neg_grad"], -vjp["grad_x"])
        worst[name] = (float(err), float(gerr))
    return worst


def verify_malformed():
    d = MALFORMED
    # must not parse
    for name in ("truncated.onnx", "not_protobuf.onnx"):
        try:
            onnx.load(os.path.join(d, name))
        except Exception:
            pass
        else:
            raise AssertionError(name + " parsed")
    assert os.path.getsize(os.path.join(d, "empty.onnx")) == 0
    # parse, but must fail the checker
    # (onnx 1.12's checker accepts future_opset.onnx, bad_tensor_size.onnx and
    # huge_declared.onnx: the importer must catch those itself)
    for name in ("cycle.onnx", "dangling.onnx", "unknown_ops.onnx", "old_ir.onnx",
                 "duplicate_output.onnx", "shape_conflict.onnx"):
        m = onnx.load(os.path.join(d, name))
        try:
            onnx.checker.check_model(m, full_check=True)
        except Exception:
            pass
        else:
            raise AssertionError(name + " passed the checker")
    # ext_ok is valid and its data is really in the file
    m = onnx.load(os.path.join(d, "ext_ok.onnx"))  # loads external data relative to the model
    w = numpy_helper.to_array(m.graph.initializer[0])
    assert np.array_equal(w, EXT_W)
    onnx.checker.check_model(os.path.join(d, "ext_ok.onnx"), full_check=True)
    assert os.path.islink(os.path.join(d, "link_out.bin"))
    assert os.readlink(os.path.join(d, "link_out.bin")) == "/etc/hostname"
    for name in ("fill.onnx", "expand.onnx"):  # valid ONNX, but huge once folded
        onnx.checker.check_model(os.path.join(ROOT, "foldbomb", name), full_check=True)
    for name in ("ext_escape.onnx", "ext_absolute.onnx", "ext_too_long.onnx", "ext_symlink.onnx",
                 "huge_declared.onnx"):
        onnx.load(os.path.join(d, name), load_external_data=False)  # parses as protobuf


def main():
    if os.path.abspath(os.getcwd()) != os.path.dirname(ROOT):
        print("note: run from the repository root; writing under", ROOT, file=sys.stderr)
    os.makedirs(MODELS, exist_ok=True)
    manifest = {}
    for spec in FIXTURES:
        name, entry = make_model_fixture(spec)
        manifest[name] = entry
        print("wrote", name, "opset", entry["opset"], "ops", ",".join(entry["ops"]))
    with open(os.path.join(MODELS, "MANIFEST.json"), "w") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
        f.write("\n")
    make_malformed()
    worst = verify_models(manifest)
    for name, (err, gerr) in worst.items():
        print("verified %-16s ONNX graph (float64 numpy) vs torch: %.1e, grad_x vs finite differences: %.1e"
              " (max abs err / max abs value)" % (name, err, gerr))
    verify_malformed()
    print("verified malformed/")
    print("torch", torch.__version__, "onnx", onnx.__version__, "numpy", np.__version__)


if __name__ == "__main__":
    main()
