"""The onnxruntime engine's int4 weights, made to hold the model's own blocks exactly.

The embedded model comes as a GGUF in Q4_1: each block of 32 weights of a row is
`w = d * k + m`, with k in 0..15 and a float scale d and minimum m per block. ONNX Runtime's
fast int4 kernel (`MatMulNBits`) computes `w = s * (q - z)` with an *integer* zero point z, so
re-quantizing a Q4_1 block for it moves every weight of the block by up to half a step (top-1
agreement with float32 fell to 68%). Instead we keep each block's codes and scale as they are
(q = k, s = d, z = 8) and carry what is left, a constant r = m + 8d per block, in a second,
small matmul:

    y[n] = Σ_b s[n,b] Σ_i (q[n,b,i] - 8) x[b,i]   +   Σ_b r[n,b] X[b],   X[b] = Σ_i x[b,i]

The first term is the int4 kernel; the second reads the block sums of x, (K/32) numbers (one
matmul by a 0/1 matrix), against an (N, K/32) float matrix: about 1/8 of the int4 bytes again. For weights that came from Q4_1
the graph's weights equal the float32 model's; for any other model this is plain asymmetric
4-bit rounding with a float minimum, as the torch engine's int4 does.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..errors import ModelError

BLOCK = 32
LAYER_MATMUL = re.compile(
    r"/model/layers\.(\d+)/(attn|mlp)/(qkv_proj|o_proj|gate_up_proj|gate_proj|up_proj|down_proj)/MatMul"
)


def source_matrix(weights: dict[str, np.ndarray], node_name: str) -> np.ndarray:
    """The (N, K) float matrix of the checkpoint that a layer's `MatMulNBits` node multiplies by."""
    found = LAYER_MATMUL.match(node_name)
    if found is None:
        raise ModelError(f"the ONNX graph has an int4 matmul tokenloop can't place ({node_name}); try --engine torch")
    layer, _, part = found.groups()
    p = f"model.layers.{layer}."
    if part == "qkv_proj":  # the builder fuses queries, keys and values, in that order
        return np.concatenate([weights[p + f"self_attn.{c}_proj.weight"] for c in "qkv"])
    if part == "gate_up_proj":  # fused below (`fuse_gate_up`): the gate's rows, then the up projection's
        return np.concatenate([weights[p + f"mlp.{c}_proj.weight"] for c in ("gate", "up")])
    return weights[p + ("self_attn." if part == "o_proj" else "mlp.") + part + ".weight"]


def blocks(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes q (N, K/32, 32) in 0..15, scales s (N, K/32), offsets r (N, K/32)) with w = s*(q-8) + r."""
    n, k = w.shape
    wb = w.astype(np.float32).reshape(n, k // BLOCK, BLOCK)
    low, high = wb.min(-1), wb.max(-1)
    step = (high - low) / 15
    flat = step == 0  # a block of one value: codes 8, all of it in the offset
    scale = np.where(flat, 1.0, step).astype(np.float32)
    codes = np.clip(np.rint((wb - low[..., None]) / scale[..., None]), 0, 15)
    codes = np.where(flat[..., None], 8, codes).astype(np.uint8)
    offset = np.where(flat, low, low + 8 * step).astype(np.float32)
    return codes, scale, offset


def pack(codes: np.ndarray) -> np.ndarray:
    """Two 4-bit codes a byte, the first in the low half: MatMulNBits' layout, (N, K/32, 16)."""
    return (codes[..., 0::2] | (codes[..., 1::2] << 4)).astype(np.uint8)


def fuse_gate_up(model) -> list:
    """The graph's nodes with each layer's gate and up projections (the same input) as one int4
    matmul of twice the rows and a Split, as the torch engine does: fewer, larger kernels a step."""
    from onnx import helper, numpy_helper

    nodes = list(model.graph.node)
    ups = {n.input[0]: n for n in nodes if n.op_type == "MatMulNBits" and "/mlp/up_proj/" in n.name}
    gone, unused, out = set(), set(), []
    for node in nodes:
        up = ups.get(node.input[0]) if node.op_type == "MatMulNBits" and "/mlp/gate_proj/" in node.name else None
        if up is None:
            if node.name not in gone:
                out.append(node)
            continue
        n = next(a.i for a in node.attribute if a.name == "N")
        prefix = node.name.split("/mlp/")[0]
        fused = helper.make_node(
            "MatMulNBits",
            list(node.input),  # its weights are replaced by the fused ones in `rewrite`
            [f"{prefix}/mlp/gate_up_proj/MatMul/output_0"],
            name=f"{prefix}/mlp/gate_up_proj/MatMul_Q4",
            domain=node.domain,
        )
        fused.attribute.extend(a if a.name != "N" else helper.make_attribute("N", 2 * n) for a in node.attribute)
        sizes = f"{prefix}/mlp/gate_up_proj/split_sizes"
        model.graph.initializer.append(numpy_helper.from_array(np.array([n, n], np.int64), sizes))
        split = helper.make_node(
            "Split",
            [fused.output[0], sizes],
            [node.output[0], up.output[0]],
            name=f"{prefix}/mlp/gate_up_proj/split",
            axis=-1,
        )
        out += [fused, split]
        gone.add(up.name)
        unused.update(up.input[1:])
    kept = [t for t in model.graph.initializer if t.name not in unused]  # the up projections' weights
    del model.graph.initializer[:]
    model.graph.initializer.extend(kept)
    return out


def rewrite(graph_dir: Path, model_dir: Path) -> float:
    """Give every int4 matmul of the graph in `graph_dir` the checkpoint's own blocks, with its
    offsets as a correction matmul over block sums; saves the graph in place. Returns the largest
    difference from the checkpoint's weights, relative to the largest weight (0.0 for Q4_1)."""
    import onnx
    from onnx import helper, numpy_helper
    from safetensors.numpy import load_file

    weights: dict[str, np.ndarray] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        weights.update(load_file(str(file)))
    model = onnx.load(str(graph_dir / "model.onnx"))
    graph_nodes = fuse_gate_up(model)
    stored = {t.name: t for t in model.graph.initializer}  # (gate_up reuses the gate's names)
    nodes, sums, extra, worst = [], {}, [], 0.0
    for node in graph_nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type != "MatMulNBits" or attrs.get("bits") != 4:
            nodes.append(node)
            continue
        if attrs.get("block_size") != BLOCK or len(node.input) != 3:
            raise ModelError(f"{node.name}: expected symmetric int4 blocks of {BLOCK}; try --engine torch")
        w = source_matrix(weights, node.name)
        codes, scale, offset = blocks(w)
        back = scale[..., None] * (codes.astype(np.float32) - 8) + offset[..., None]
        worst = max(worst, float(np.abs(back.reshape(w.shape) - w).max() / max(float(np.abs(w).max()), 1e-30)))
        stored[node.input[1]].CopyFrom(numpy_helper.from_array(pack(codes), node.input[1]))
        stored[node.input[2]].CopyFrom(numpy_helper.from_array(scale, node.input[2]))
        x, y = node.input[0], node.output[0]
        if x not in sums:  # one set of block sums per input: q, k, v and gate, up share theirs
            k = attrs["K"]
            ones = f"block_sums_{k}"  # (K, K/32) of 0 and 1: one per width, shared by every layer
            if ones not in stored:
                stored[ones] = numpy_helper.from_array(
                    np.kron(np.eye(k // BLOCK, dtype=np.float32), np.ones((BLOCK, 1), np.float32)), ones
                )
                extra.append(stored[ones])
            nodes.append(helper.make_node("MatMul", [x, ones], [f"{x}/sums"], name=f"{x}/sums"))
            sums[x] = f"{x}/sums"
        node.output[0] = f"{y}/int4"
        nodes.append(node)
        extra.append(numpy_helper.from_array(np.ascontiguousarray(offset.T), f"{node.name}/offsets"))  # (K/32, N)
        nodes.append(helper.make_node("MatMul", [sums[x], f"{node.name}/offsets"], [f"{y}/offset"], name=f"{y}/offset"))
        nodes.append(helper.make_node("Add", [f"{y}/int4", f"{y}/offset"], [y], name=f"{y}/add"))
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    model.graph.initializer.extend(extra)
    for old in graph_dir.glob("model.onnx*"):
        old.unlink()
    onnx.save(model, str(graph_dir / "model.onnx"), save_as_external_data=True, location="model.onnx.data")
    return worst
