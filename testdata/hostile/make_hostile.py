#!/usr/bin/python3
"""Writes testdata/hostile/: small files that once crashed, hung or exhausted
memory in ebmrun (issue "Hardening"), one per defect. Each is tiny; what it
claims is large. FIFOs and device links are made by the tests themselves.

Run from the repository root: /usr/bin/python3 testdata/hostile/make_hostile.py
"""
import gzip
import json
import os
import struct
import zlib

import onnx
from onnx import TensorProto, helper

OUT = os.path.dirname(os.path.abspath(__file__))


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def npy_header(descr, shape, version=1):
    sh = ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "")
    d = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, sh)
    total = 10 + len(d) + 1
    d += " " * ((64 - total % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode()


# Defect 5: .npy headers that decide allocations before any data is read.
write("npy_huge_header.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xF0FFFFFF) + b"{" * 52)
write("npy_huge_data.npy", npy_header("<f4", [1 << 31]) + bytes(1600))
write("npy_truncated.npy", npy_header("<f4", [100, 2]) + bytes(12))

# Defect 6: a gzipped CSV that expands ~1000× (64 MiB of "0,0\n").
write("bomb.csv.gz", gzip.compress(b"0,0\n" * (16 << 20), 9, mtime=0))


def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


# Defect 6: a 16-bit PNG whose header claims 30000×30000 pixels.
os.makedirs(os.path.join(OUT, "png16_huge"), exist_ok=True)
ihdr = struct.pack(">IIBBBBB", 30000, 30000, 16, 0, 0, 0, 0)
idat = zlib.compress(b"\x00" * 60001 * 4, 9)
with open(os.path.join(OUT, "png16_huge", "a.png"), "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))

# Defect 13: rows lost to a byte-order mark and to a quoted newline.
write("bom.csv", "\ufeff1,2\n3,4\n5,6\n".encode())
write("quoted_newline.csv", b'"1\n",2\n3,4\n')


def score_model(meta, data_shape=("N", 2)):
    """x [N,2], sigma [N] → score = -x / sigma², with the given metadata."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(data_shape))
    s = helper.make_tensor_value_info("sigma", TensorProto.FLOAT, ["N"])
    y = helper.make_tensor_value_info("score", TensorProto.FLOAT, list(data_shape))
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1])
    nodes = [
        helper.make_node("Reshape", ["sigma", "shape"], ["s2"]),
        helper.make_node("Mul", ["s2", "s2"], ["var"]),
        helper.make_node("Neg", ["x"], ["nx"]),
        helper.make_node("Div", ["nx", "var"], ["score"]),
    ]
    g = helper.make_graph(nodes, "g", [x, s], [y], initializer=[shape])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_hostile.py")
    m.ir_version = 8
    for k, v in meta.items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    return m.SerializeToString()


base = {"ebmrun.kind": "score", "ebmrun.condition": "sigma", "ebmrun.sigmas": "[1, 0.1]"}
# Defect 2: per-sample size from metadata or the model's shape.
write("meta_data_shape_huge.onnx", score_model({**base, "ebmrun.data_shape": json.dumps([1 << 20, 1 << 20, 1 << 20])}))
write("meta_data_shape_big.onnx", score_model({**base, "ebmrun.data_shape": json.dumps([3, 4096, 4096])}))
write("shape_huge.onnx", score_model(base, data_shape=("N", 1 << 40)))
# Defect 7: metadata used before it is validated.
write("meta_betas_zero.onnx", score_model({**base, "ebmrun.betas": '{"start": 0.0001, "end": 0.02, "steps": 0}'}))
write("meta_betas_negative.onnx", score_model({**base, "ebmrun.betas": '{"start": 0.0001, "end": 0.02, "steps": -5}'}))
write("meta_betas_huge.onnx", score_model({**base, "ebmrun.betas": '{"start": 0.0001, "end": 0.02, "steps": 4000000000000}'}))
write("meta_sigmas_empty.onnx", score_model({**base, "ebmrun.sigmas": "[]"}))
write("meta_sigmas_nan.onnx", score_model({**base, "ebmrun.sigmas": '[1, "NaN"]'}))
write("meta_sampler_steps_huge.onnx", score_model({**base, "ebmrun.sampler": '{"steps": 9000000000000}'}))
write("meta_data_range_inf.onnx", score_model({**base, "ebmrun.data_range": "[-1e400, 1]"}))
print("wrote", OUT)

# Defect 10: an ONNX Loop whose trip count never ends in practice.
body = helper.make_graph(
    [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
     helper.make_node("Add", ["v_in", "one"], ["v_out"])],
    "body",
    [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
     helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
     helper.make_tensor_value_info("v_in", TensorProto.FLOAT, ["N", 2])],
    [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
     helper.make_tensor_value_info("v_out", TensorProto.FLOAT, ["N", 2])],
    initializer=[helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])])
loop = helper.make_graph(
    [helper.make_node("Loop", ["trips", "cond", "x"], ["score"], body=body)],
    "loop",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
    [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["N", 2])],
    initializer=[helper.make_tensor("trips", TensorProto.INT64, [], [1 << 62]),
                 helper.make_tensor("cond", TensorProto.BOOL, [], [True])])
lm = helper.make_model(loop, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_hostile.py")
lm.ir_version = 8
for k, v in {"ebmrun.kind": "score", "ebmrun.condition": "none", "ebmrun.data_shape": "[2]"}.items():
    e = lm.metadata_props.add()
    e.key, e.value = k, v
write("loop_forever.onnx", lm.SerializeToString())

# Defect 15: an error deep inside nested If subgraphs once made a 3.4 kB line.
def nested_if(depth):
    if depth == 0:
        inner = [helper.make_node("NoSuchOp", ["x"], ["y%d" % depth])]
    else:
        sub = nested_if(depth - 1)
        leaf = helper.make_graph([helper.make_node("Identity", ["x"], ["z%d" % depth])], "else_%d" % depth, [],
                                 [helper.make_tensor_value_info("z%d" % depth, TensorProto.FLOAT, ["N", 2])])
        inner = [helper.make_node("If", ["c"], ["y%d" % depth], then_branch=sub, else_branch=leaf)]
    return helper.make_graph(inner, "branch_%d_with_a_long_descriptive_name" % depth, [],
                             [helper.make_tensor_value_info("y%d" % depth, TensorProto.FLOAT, ["N", 2])])


top = nested_if(40)
g = helper.make_graph(top.node, "nested", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
                      list(top.output), initializer=[helper.make_tensor("c", TensorProto.BOOL, [], [True])])
nm = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="make_hostile.py")
nm.ir_version = 8
write("nested_if.onnx", nm.SerializeToString())
