"""The memory lookup as one custom ONNX node, ``ppl_edge::NearestNeighborLookup``, for the TensorRT
plugin in ``convert/plugins/nearest_neighbor/`` (docs/contracts.md, architecture.md "The
nearest-neighbour operator").

Three helpers:

- :func:`register` adds the ``plugin`` implementation to ``ppl_edge.model.nn_lookup``: inside
  ``torch.onnx.export(..., dynamo=True)`` it emits the node through
  ``torch.onnx.ops.symbolic_multi_out`` with the attributes TensorRT's ONNX parser looks the creator
  up by (``plugin_version`` "1", ``plugin_namespace`` ""); in eager mode it is the reference lookup.
- :func:`attach_lookup_function` adds a model-local ONNX function with the node's domain and name,
  built from standard ops, so plain ONNX Runtime (and onnxsim / onnx.checker) can run the same file
  (toolchain.md §6). It uses the model's own default-domain opset, which onnxsim requires (§1).
- :func:`strip_lookup_function` removes it again right before TensorRT parses the graph: a parser
  that sees the function may inline it instead of calling the plugin (toolchain.md §3).

Node: inputs queries (B, M, D) and codebook (M, K, D), float32 or float16; outputs selected
(B, M, D) (queries' dtype), indices (B, M) int32, squared distances (B, M) (queries' dtype, summed
in float32). Ties pick the lowest index. Only torch (for :func:`register`) and onnx (for the
function helpers) are needed, each imported where used, so an engine build on a device without
torch can strip functions.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

OP_TYPE = "NearestNeighborLookup"  # also the plugin (creator) name
DOMAIN = "ppl_edge"  # the node's and the function's domain: ONNX Runtime matches on (domain, name)
DOMAIN_VERSION = 1
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = ""
ATTRIBUTES = {"plugin_version": PLUGIN_VERSION, "plugin_namespace": PLUGIN_NAMESPACE}
INPUTS = ("queries", "codebook")
OUTPUTS = ("selected", "indices", "distances")


def plugin_lookup(queries, codebook):
    """The ``plugin`` lookup: the custom node while exporting to ONNX, the reference otherwise.

    Args:
        queries: (B, M, D) float32 | float16.
        codebook: (M, K, D) same dtype.

    Returns:
        selected (B, M, D), indices (B, M) int64 (the node's int32 cast up, as the model gathers
        with int64), squared distances (B, M).
    """
    import torch

    from ppl_edge.model.nn_lookup import reference_lookup

    if not torch.onnx.is_in_onnx_export():
        return reference_lookup(queries, codebook)
    B, M, _ = queries.shape
    selected, indices, distances = torch.onnx.ops.symbolic_multi_out(
        f"{DOMAIN}::{OP_TYPE}",
        (queries, codebook),
        attrs=dict(ATTRIBUTES),
        dtypes=(queries.dtype, torch.int32, queries.dtype),
        shapes=(queries.shape, (B, M), (B, M)),
        version=DOMAIN_VERSION,
    )
    return selected, indices.to(torch.int64), distances


def register() -> None:
    """Register :func:`plugin_lookup` as ``plugin`` in ``ppl_edge.model.nn_lookup`` (idempotent)."""
    from ppl_edge.model.nn_lookup import register_lookup

    register_lookup("plugin", plugin_lookup)


def _default_opset(model) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return entry.version
    raise ValueError("the model imports no default-domain opset")


def _int64s(name: str, values: list[int]):
    from onnx import TensorProto, helper

    tensor = helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
    return helper.make_node("Constant", [], [name], value=tensor)


def lookup_function(opset: int):
    """The ONNX function that defines ``ppl_edge::NearestNeighborLookup`` with standard ops.

    Same decomposition as ``reference_lookup``, with the distances summed in float32: squared
    difference -> ReduceSum over D -> ArgMin (first minimum, like the plugin) -> GatherElements for
    the distance, GatherND with batch_dims=1 over banks for the selected code.

    Args:
        opset: the model's default-domain opset version (>= 15, for CastLike).
    """
    from onnx import TensorProto, helper

    if opset < 15:
        raise ValueError(f"the lookup function needs opset >= 15 (CastLike), the model has {opset}")
    n = helper.make_node
    nodes = [
        _int64s("axis_0", [0]),
        _int64s("axis_2", [2]),
        _int64s("axis_last", [-1]),
        n("Cast", ["queries"], ["q32"], to=TensorProto.FLOAT),  # fp32 accumulation for fp16 inputs
        n("Cast", ["codebook"], ["c32"], to=TensorProto.FLOAT),
        n("Unsqueeze", ["q32", "axis_2"], ["q4"]),  # (B, M, 1, D)
        n("Unsqueeze", ["c32", "axis_0"], ["c4"]),  # (1, M, K, D)
        n("Sub", ["q4", "c4"], ["diff"]),  # (B, M, K, D)
        n("Mul", ["diff", "diff"], ["squares"]),
        n("ReduceSum", ["squares", "axis_last"], ["all_distances"], keepdims=0),  # (B, M, K)
        n(
            "ArgMin", ["all_distances"], ["nearest"], axis=-1, keepdims=1, select_last_index=0
        ),  # (B, M, 1)
        n("GatherElements", ["all_distances", "nearest"], ["nearest_distance"], axis=-1),
        n("Squeeze", ["nearest_distance", "axis_last"], ["distances32"]),  # (B, M)
        n("CastLike", ["distances32", "queries"], ["distances"]),
        n("Squeeze", ["nearest", "axis_last"], ["nearest64"]),  # (B, M)
        n("Cast", ["nearest64"], ["indices"], to=TensorProto.INT32),
        n("Transpose", ["nearest"], ["nearest_by_bank"], perm=[1, 0, 2]),  # (M, B, 1)
        n(
            "GatherND", ["codebook", "nearest_by_bank"], ["selected_by_bank"], batch_dims=1
        ),  # (M, B, D)
        n("Transpose", ["selected_by_bank"], ["selected"], perm=[1, 0, 2]),  # (B, M, D)
    ]
    return helper.make_function(
        DOMAIN,
        OP_TYPE,
        list(INPUTS),
        list(OUTPUTS),
        nodes,
        [helper.make_opsetid("", opset)],
        attributes=list(ATTRIBUTES),
        doc_string="Nearest code per bank (ppl-edge); executed by the TensorRT plugin of the same "
        "name once this function is stripped.",
    )


def _is_lookup(function) -> bool:
    return function.domain == DOMAIN and function.name == OP_TYPE


def lookup_nodes(model) -> list:
    """The ``NearestNeighborLookup`` nodes of the main graph."""
    return [node for node in model.graph.node if node.op_type == OP_TYPE and node.domain == DOMAIN]


def fold_index_casts(model) -> int:
    """Remove the int32 -> int64 -> int32 Cast pair between a lookup node's ``indices`` and an
    int32 tensor (the model gathers with int64, the graph's ``prototype_ids`` output is int32 as
    the node's): the node then writes the int32 tensor itself.

    Args:
        model: onnx.ModelProto; edited in place.

    Returns:
        The number of pairs removed.
    """
    from onnx import TensorProto

    nodes = list(model.graph.node)
    users: dict[str, list] = {}
    for node in nodes:
        for name in node.input:
            users.setdefault(name, []).append(node)
    to = lambda node: next((a.i for a in node.attribute if a.name == "to"), None)
    removed = []
    for lookup in lookup_nodes(model):
        first = users.get(lookup.output[1], [])
        if len(first) != 1 or first[0].op_type != "Cast" or to(first[0]) != TensorProto.INT64:
            continue
        second = users.get(first[0].output[0], [])
        if len(second) != 1 or second[0].op_type != "Cast" or to(second[0]) != TensorProto.INT32:
            continue
        lookup.output[1] = second[0].output[0]
        removed += [id(first[0]), id(second[0])]
    kept = [node for node in nodes if id(node) not in removed]
    del model.graph.node[:]
    model.graph.node.extend(kept)
    return len(removed) // 2


def attach_lookup_function(model):
    """Add the model-local function (replacing an older one) and the ``ppl_edge`` opset import,
    and fold the index Cast pair the export leaves after the node (:func:`fold_index_casts`).

    Args:
        model: onnx.ModelProto holding ``NearestNeighborLookup`` nodes; edited in place.

    Returns:
        The same ModelProto.
    """
    from onnx import helper

    fold_index_casts(model)

    kept = [f for f in model.functions if not _is_lookup(f)]
    del model.functions[:]
    model.functions.extend(kept)
    model.functions.append(lookup_function(_default_opset(model)))
    if not any(entry.domain == DOMAIN for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid(DOMAIN, DOMAIN_VERSION))
    log.debug("attached the %s function (opset %d)", OP_TYPE, _default_opset(model))
    return model


def strip_lookup_function(model):
    """Remove the model-local function so TensorRT's parser hands the node to the plugin.

    The nodes, their attributes and the ``ppl_edge`` opset import stay.

    Args:
        model: onnx.ModelProto; edited in place.

    Returns:
        The same ModelProto.
    """
    kept = [f for f in model.functions if not _is_lookup(f)]
    removed = len(model.functions) - len(kept)
    del model.functions[:]
    model.functions.extend(kept)
    log.debug("stripped %d %s function(s)", removed, OP_TYPE)
    return model
