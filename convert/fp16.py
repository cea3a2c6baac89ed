"""Float16 versions of the exported ONNX graphs, for TensorRT's strongly typed networks (TensorRT 11
has no FP16 builder flag: an engine's precision is the ONNX graph's types) and for checking that
every graph stays finite in FP16.

:func:`to_float16` rewrites an FP32 graph with onnx alone (no torch, no onnxconverter-common), so a
Jetson can make the FP16 graph from an export folder itself:

- every float tensor becomes float16, except the graph's inputs and outputs (they stay float32, so
  an engine or session built from the FP16 graph takes and returns exactly what the FP32 one does:
  one Cast after each input, one before each output);
- the memory lookup stays float32 (:func:`lookup_nodes`): the ``NearestNeighborLookup`` node, or in
  a portable graph the squared distances -> ReduceSum -> ArgMin chain and the gathers of the
  nearest distance, so prototype ids are chosen on FP32 distances as on the FP32 graph;
- ``LayerNormalization`` stays float32 (its variance overflows FP16 on large activations; TensorRT
  warns about exactly this and recommends FP32 normalisation);
- ``Resize``'s ``roi`` / ``scales`` inputs stay float32 (the operator's schema);
- an initializer or ``Constant`` used in both precisions is stored twice, so no Cast runs on
  weights.

Casts are placed where a float32 tensor meets a float16 consumer and back. The result passes
``onnx.checker`` with full shape inference.
"""

from __future__ import annotations

import logging

import numpy as np

from ppl_edge.errors import PplEdgeError, require

log = logging.getLogger(__name__)

FLOAT, FLOAT16 = 1, 10  # onnx.TensorProto.FLOAT / FLOAT16
FP16_MAX = 65504.0
KEEP_FP32_OPS = ("LayerNormalization", "NearestNeighborLookup")
# op type -> input positions that stay float32 whatever the node's precision
FP32_INPUT_SLOTS = {"Resize": (1, 2)}
# ops of the distance computation a portable lookup feeds into ArgMin
_DISTANCE_OPS = ("ReduceSum", "Mul", "Pow", "Sub")
SUFFIX = {FLOAT: "__fp32", FLOAT16: "__fp16"}


def _producers(nodes) -> dict[str, int]:
    return {out: i for i, node in enumerate(nodes) for out in node.output if out}


def _consumers(nodes) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for i, node in enumerate(nodes):
        for name in node.input:
            if name:
                found.setdefault(name, []).append(i)
    return found


def lookup_nodes(model) -> set[int]:
    """Indices of the main graph's nodes that compute the memory lookup (kept float32).

    The ``NearestNeighborLookup`` node of a plugin graph; in a portable graph each ``ArgMin``, the
    chain of :data:`_DISTANCE_OPS` that computes its distances, and the ``GatherElements`` (and
    ``Squeeze``) that pick the nearest distance out of them.
    """
    nodes = list(model.graph.node)
    producers, consumers = _producers(nodes), _consumers(nodes)
    keep: set[int] = set()
    for i, node in enumerate(nodes):
        if node.op_type == "NearestNeighborLookup":
            keep.add(i)
        if node.op_type != "ArgMin":
            continue
        keep.add(i)
        stack = [node.input[0]]
        while stack:
            j = producers.get(stack.pop())
            if j is not None and j not in keep and nodes[j].op_type in _DISTANCE_OPS:
                keep.add(j)
                stack.extend(nodes[j].input)
        for j in consumers.get(node.input[0], []):
            if nodes[j].op_type == "GatherElements":
                keep.add(j)
                keep.update(
                    k
                    for k in consumers.get(nodes[j].output[0], [])
                    if nodes[k].op_type == "Squeeze"
                )
    return keep


def _float_types(model) -> dict[str, int]:
    """Element type of every tensor of the main graph whose type shape inference knows."""
    onnx = require("onnx", "convert", "converting ONNX graphs to float16")
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception as err:  # a graph onnx cannot type cannot be converted safely
        raise PplEdgeError(f"cannot infer the tensor types of the graph: {err}") from err
    graph = inferred.graph
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in (*graph.input, *graph.output, *graph.value_info)
    }
    types.update({t.name: t.data_type for t in graph.initializer})
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return types


def _wanted(node, index: int, kept: bool) -> int:
    """The float type node input ``index`` must have."""
    if kept or index in FP32_INPUT_SLOTS.get(node.op_type, ()):
        return FLOAT
    return FLOAT16


def _half_tensor(onnx, tensor, name: str):
    """A float16 copy of a float32 TensorProto (values clipped to the FP16 range)."""
    values = onnx.numpy_helper.to_array(tensor).astype(np.float32)
    if np.abs(values).max(initial=0.0) > FP16_MAX:
        log.warning("%s holds values beyond the FP16 range; clipped to +-%g", name, FP16_MAX)
    return onnx.numpy_helper.from_array(
        np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16), name
    )


def _retype(onnx, graph, kept: set[int], types: dict[str, int]) -> dict[str, int]:
    """Convert weights, constants and Cast targets in place; returns the type each float tensor
    has afterwards (before any Cast is inserted)."""
    nodes = list(graph.node)
    consumers = _consumers(nodes)
    is_float = lambda name: types.get(name) == FLOAT
    has: dict[str, int] = {i.name: FLOAT for i in graph.input if is_float(i.name)}
    constants = {n.output[0] for n in nodes if n.op_type == "Constant"}
    weights = {t.name: t for t in graph.initializer if t.data_type == FLOAT}
    for name in [*weights, *(c for c in constants if is_float(c))]:
        wants = {
            _wanted(nodes[j], k, j in kept)
            for j in consumers.get(name, [])
            for k, x in enumerate(nodes[j].input)
            if x == name
        }
        has[name] = FLOAT if FLOAT in wants else FLOAT16
        if wants == {FLOAT, FLOAT16} and name in weights:  # a second, float16 copy
            graph.initializer.append(_half_tensor(onnx, weights[name], name + SUFFIX[FLOAT16]))
            has[name + SUFFIX[FLOAT16]] = FLOAT16
        elif has[name] == FLOAT16 and name in weights:
            weights[name].CopyFrom(_half_tensor(onnx, weights[name], name))
    for i, node in enumerate(nodes):
        precision = FLOAT if i in kept else FLOAT16
        if node.op_type == "Constant" and node.output[0] in has:
            if has[node.output[0]] == FLOAT16:
                attr = next(a for a in node.attribute if a.name == "value")
                attr.t.CopyFrom(_half_tensor(onnx, attr.t, attr.t.name))
            continue
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == FLOAT:
                attr.i = precision
            is_fill = node.op_type == "ConstantOfShape" and attr.name == "value"
            if is_fill and precision == FLOAT16 and attr.t.data_type == FLOAT:
                attr.t.CopyFrom(_half_tensor(onnx, attr.t, attr.t.name))
        for name in node.output:
            if is_float(name):
                has[name] = precision
    return has


def _insert_casts(graph, kept: set[int], has: dict[str, int]) -> None:
    """Rebuild the node list with the Casts each consumer needs (each made once), and a final
    Cast to float32 before every float16 graph output."""
    from onnx import helper

    made: set[str] = set(has)
    rebuilt = []

    def cast_to(name: str, to: int) -> str:
        target = name + SUFFIX[to]
        if target not in made:
            rebuilt.append(helper.make_node("Cast", [name], [target], to=to, name=target))
            made.add(target)
        return target

    for i, node in enumerate(graph.node):
        for k, name in enumerate(node.input):
            if name in has and has[name] != (want := _wanted(node, k, i in kept)):
                node.input[k] = cast_to(name, want)
        rebuilt.append(node)
    for output in graph.output:  # outputs keep float32: the last node writes <name>__fp16
        if has.get(output.name) == FLOAT16:
            inner = output.name + SUFFIX[FLOAT16]
            for node in rebuilt:
                node.output[:] = [inner if o == output.name else o for o in node.output]
                node.input[:] = [inner if x == output.name else x for x in node.input]
            cast = helper.make_node("Cast", [inner], [output.name], to=FLOAT, name=inner + "_out")
            rebuilt.append(cast)
    del graph.node[:]
    graph.node.extend(rebuilt)


def to_float16(model, keep_fp32_ops: tuple[str, ...] = KEEP_FP32_OPS):
    """A float16 copy of an FP32 ONNX graph (see the module docstring for what stays float32).

    Args:
        model: onnx.ModelProto with float32 inputs and outputs; not modified.
        keep_fp32_ops: op types computed in float32 besides the memory lookup.

    Returns:
        A new onnx.ModelProto, same inputs and outputs (names, float32 types), checked by
        ``onnx.checker`` (full check).

    Raises:
        PplEdgeError: the graph's types cannot be inferred, or the result fails the checker.
    """
    onnx = require("onnx", "convert", "converting ONNX graphs to float16")
    types = _float_types(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    kept = lookup_nodes(out) | {i for i, n in enumerate(graph.node) if n.op_type in keep_fp32_ops}
    has = _retype(onnx, graph, kept, types)
    _insert_casts(graph, kept, has)
    del graph.value_info[:]
    try:
        onnx.checker.check_model(out, full_check=True)
    except Exception as err:
        raise PplEdgeError(f"the float16 graph fails onnx.checker: {err}") from err
    log.debug("float16 graph: %d nodes kept float32", len(kept))
    return out


def fp16_name(file_name: str) -> str:
    """``keypoints_trt.onnx`` -> ``keypoints_trt.fp16.onnx``."""
    stem = file_name[: -len(".onnx")] if file_name.endswith(".onnx") else file_name
    return f"{stem}.fp16.onnx"
