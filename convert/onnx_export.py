"""ONNX export of the keypoint path (``keypoints.onnx``, ``keypoints_trt.onnx``), of the image-space
refinement step (``refine.onnx``) and of one pass through the memory (``memory.onnx``),
docs/contracts.md "Export artifacts".

Exporter choice: torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``). On the tiny
preset it gives 177 nodes with symbolic batch dims named ``B`` on every output, where the legacy
TorchScript exporter gives 339 nodes (218 after onnxsim) with ``If``/``Where``/``Equal`` shape
plumbing and output dims such as ``Castprototype_ids_dim_0``. It is slower (about 6 s against 0.3 s
for the tiny preset), which only matters once per export.

The prior T is computed once from the memory and held as a buffer of the export module, so the
distillation (decoder over the codebook means) is not in the graph and its embedding emb(T) is
folded to a constant.

A model with named joints (:mod:`ppl_edge.convert.joints`) gets one more keypoint-graph output,
``joints`` (B, J, 2) = ``[keypoints_flat, 1] @ M``: one MatMul and one Add on the keypoints; without
names the graph is exactly the one before joints existed.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ppl_edge.errors import PplEdgeError, require

if TYPE_CHECKING:
    from ppl_edge.convert.config import ExportConfig

log = logging.getLogger(__name__)

KEYPOINT_OUTPUTS = (
    "keypoints",
    "keypoints_refined",
    "prototype_ids",
    "prototype_distances",
    "confidence",
)
REFINE_INPUTS = ("image", "keypoints")
REFINE_OUTPUTS = ("reconstruction",)
JOINT_OUTPUT = "joints"  # (B, J, 2), only when the model names its joints
MEMORY_INPUTS = ("keypoints",)
MEMORY_OUTPUTS = ("keypoints_refined", "prototype_ids", "prototype_distances")
MAX_BATCH = 64  # upper bound of the dynamic batch dimension
FILES = {
    "keypoints": "keypoints.onnx",
    "keypoints_trt": "keypoints_trt.onnx",
    "refine": "refine.onnx",
    "memory": "memory.onnx",
}
# The keypoint graphs each flavour writes (refine.onnx and memory.onnx are always written).
FLAVOUR_ROLES = {
    "portable": ("keypoints",),
    "plugin": ("keypoints_trt",),
    "both": ("keypoints", "keypoints_trt"),
}
# onnxsim's MatMul+Add -> Gemm fusion wraps every 3-D Linear in Reshape pairs (177 -> 195 nodes).
_SKIPPED_OPTIMIZERS = ["fuse_matmul_add_bias_into_gemm", "fuse_matmul_add_bias_into_gemm_batched"]


def keypoint_outputs(named: bool) -> tuple[str, ...]:
    """The keypoint graph's outputs: :data:`KEYPOINT_OUTPUTS`, plus ``joints`` when ``named``."""
    return KEYPOINT_OUTPUTS + ((JOINT_OUTPUT,) if named else ())


class KeypointGraph(nn.Module):
    """``keypoints.onnx``: image -> keypoints, memory-refined keypoints, prototype ids, distances
    (and named joints when ``joint_map`` is given).

    Wraps :meth:`PoseModel.keypoint_path` with the prior T precomputed as a buffer.

    Args:
        joint_map: (2N + 1, 2J) ``joints = [keypoints_flat, 1] @ joint_map``, or None (no output).
    """

    def __init__(self, model: nn.Module, joint_map=None):
        super().__init__()
        self.model = model
        self.register_buffer("prior", model.prior().detach().clone())  # (N, 2)
        self.named = joint_map is not None
        if self.named:  # buffers only when named: an unnamed graph stays byte-identical
            matrix = torch.from_numpy(np.array(joint_map, dtype=np.float32))
            self.register_buffer("joint_weight", matrix[:-1].clone())  # (2N, 2J)
            self.register_buffer("joint_bias", matrix[-1].clone())  # (2J,)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """image: (B, 3, H, W) float32 in [-1, 1].

        Returns:
            keypoints (B, N, 2), keypoints_refined (B, N, 2), prototype_ids (B, M) int32,
            prototype_distances (B, M), confidence (B, N), [joints (B, J, 2) when named];
            keypoints xy in [-1, 1].
        """
        out = self.model.keypoint_path(image, self.prior)
        ids = out["prototype_ids"].to(
            torch.int32
        )  # int32: what TensorRT and Core ML carry natively
        result = (
            out["keypoints"],
            out["keypoints_refined"],
            ids,
            out["prototype_distances"],
            out["confidence"],
        )
        if not self.named:
            return result
        kpts = out["keypoints"]
        joints = kpts.reshape(kpts.shape[0], -1) @ self.joint_weight + self.joint_bias
        return (*result, joints.reshape(kpts.shape[0], -1, 2))


class MemoryGraph(nn.Module):
    """``memory.onnx``: keypoints -> Dec(nearest codes of Enc(keypoints)), prototype ids, distances.

    One pass through the hierarchical memory (``memory.encode`` -> ``quantize`` -> ``decode``), the
    step of memory-mode refinement; the lookup is the portable one in every flavour.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.memory = model.memory

    def forward(self, keypoints: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """keypoints: (B, N, 2) xy in [-1, 1].

        Returns:
            keypoints_refined (B, N, 2), prototype_ids (B, M) int32, prototype_distances (B, M).
        """
        z_q, ids, dist = self.memory.quantize(self.memory.encode(keypoints))
        return self.memory.decode(z_q), ids.to(torch.int32), dist


def node_count(proto) -> int:
    """Nodes of the main graph."""
    return len(proto.graph.node)


@contextlib.contextmanager
def _quiet_loggers(level: int = logging.ERROR):
    """Raise the exporter's chatty loggers (onnxscript, onnx_ir, torch.onnx) to ``level``."""
    names = ("onnxscript", "onnx_ir", "torch.onnx")
    loggers = [logging.getLogger(n) for n in names]
    previous = [lg.level for lg in loggers]
    quiet = not log.isEnabledFor(logging.DEBUG)
    for lg in loggers:
        lg.setLevel(level if quiet else lg.level)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, previous):
            lg.setLevel(lvl)


def _quiet_export(module: nn.Module, args: tuple, **kwargs) -> Any:
    """torch.onnx.export with its progress prints and deprecation chatter sent to the debug log."""
    buffer = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(buffer), _quiet_loggers():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, args, dynamo=True, external_data=False, **kwargs)
    log.debug("torch.onnx.export: %s", buffer.getvalue().strip())
    return program


def export_graph(
    module: nn.Module,
    example: tuple[torch.Tensor, ...],
    input_names: tuple[str, ...],
    output_names: tuple[str, ...],
    opset: int,
    dynamic_batch: bool,
):
    """Export ``module`` with the dynamo exporter and return the onnx.ModelProto.

    Args:
        example: example inputs; use batch 2 for a dynamic batch (batch 1 would be specialised).
        dynamic_batch: make dim 0 of every input the symbolic dim ``B`` in [1, MAX_BATCH].
    """
    dynamic_shapes = None
    if dynamic_batch:
        batch = torch.export.Dim("B", min=1, max=MAX_BATCH)
        dynamic_shapes = {name: {0: batch} for name in input_names}
    try:
        program = _quiet_export(
            module,
            example,
            input_names=list(input_names),
            output_names=list(output_names),
            opset_version=opset,
            dynamic_shapes=dynamic_shapes,
        )
    except Exception as err:
        raise PplEdgeError(
            f"torch.onnx.export failed for {type(module).__name__} at opset {opset}: "
            f"{str(err).strip().splitlines()[0] if str(err).strip() else err!r}"
        ) from err
    return program.model_proto


def simplify_graph(proto, label: str):
    """onnxsim with the Gemm fusions skipped; logs the node counts before and after.

    Returns:
        (simplified proto, nodes before, nodes after).
    """
    onnxsim = require("onnxsim", "convert", "ONNX simplification")
    before = node_count(proto)
    simplified, ok = onnxsim.simplify(proto, skipped_optimizers=list(_SKIPPED_OPTIMIZERS))
    if not ok:
        raise PplEdgeError(
            f"onnxsim could not validate the simplified {label}; retry with --no-simplify"
        )
    log.info("%s: onnxsim %d -> %d nodes", label, before, node_count(simplified))
    return simplified, before, node_count(simplified)


def check_graph(proto, label: str) -> None:
    """onnx.checker with full shape inference; PplEdgeError on failure."""
    import onnx

    try:
        onnx.checker.check_model(proto, full_check=True)
    except Exception as err:
        raise PplEdgeError(f"onnx.checker rejected {label}: {err}") from err


def lookup_helpers():
    """The TensorRT lookup helpers (``ppl_edge.convert.nn_plugin``), registered."""
    try:
        from ppl_edge.convert import nn_plugin
    except ImportError as err:
        raise PplEdgeError(
            f"the TensorRT flavour of keypoints.onnx needs ppl_edge.convert.nn_plugin, "
            f"which failed to import ({err}); export with --nn native"
        ) from err
    nn_plugin.register()
    return nn_plugin


def build_keypoint_graph(
    model: nn.Module,
    flavour: str,
    opset: int,
    dynamic_batch: bool,
    simplify: bool = True,
    joint_map=None,
) -> tuple[Any, dict]:
    """Export ``keypoints.onnx`` (flavour "portable") or ``keypoints_trt.onnx`` ("plugin"), with
    the ``joints`` output when ``joint_map`` (2N + 1, 2J) is given.

    Returns:
        (onnx.ModelProto, stats {"nodes_exported", "nodes_simplified"}).
    """
    from ppl_edge.model.nn_lookup import lookup_impl

    size = model.cfg.img_size
    example = (torch.zeros(2 if dynamic_batch else 1, 3, size, size),)
    label = FILES["keypoints" if flavour == "portable" else "keypoints_trt"]
    graph = KeypointGraph(model, joint_map).eval()
    outputs = keypoint_outputs(graph.named)
    if flavour == "portable":
        proto = export_graph(graph, example, ("image",), outputs, opset, dynamic_batch)
    else:
        helpers = lookup_helpers()
        with lookup_impl("plugin"):
            proto = export_graph(graph, example, ("image",), outputs, opset, dynamic_batch)
        # The model-local function lets plain ONNX Runtime (and onnxsim's checks) run the node.
        proto = helpers.attach_lookup_function(proto) or proto
    stats = {"nodes_exported": node_count(proto), "nodes_simplified": node_count(proto)}
    if simplify:
        proto, stats["nodes_exported"], stats["nodes_simplified"] = simplify_graph(proto, label)
    check_graph(proto, label)
    if flavour == "plugin":
        ops = Counter(node.op_type for node in proto.graph.node)
        if ops.get("NearestNeighborLookup", 0) != 1:
            raise PplEdgeError(
                f"{label} should hold one NearestNeighborLookup node, found "
                f"{ops.get('NearestNeighborLookup', 0)}"
            )
    return proto, stats


def _build_plain_graph(
    module: nn.Module,
    role: str,
    example: tuple[torch.Tensor, ...],
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    opset: int,
    dynamic_batch: bool,
    simplify: bool,
) -> tuple[Any, dict]:
    """Export, simplify and check one graph without a custom node."""
    proto = export_graph(module.eval(), example, inputs, outputs, opset, dynamic_batch)
    stats = {"nodes_exported": node_count(proto), "nodes_simplified": node_count(proto)}
    if simplify:
        proto, stats["nodes_exported"], stats["nodes_simplified"] = simplify_graph(
            proto, FILES[role]
        )
    check_graph(proto, FILES[role])
    return proto, stats


def build_refine_graph(
    model: nn.Module, opset: int, dynamic_batch: bool, simplify: bool = True
) -> tuple[Any, dict]:
    """Export ``refine.onnx``: (image (B,3,H,W), keypoints (B,N,2)) -> reconstruction (B,3,H,W)."""
    from ppl_edge.convert.refine_graph import RefineGraph

    size, n = model.cfg.img_size, model.cfg.num_keypoints
    batch = 2 if dynamic_batch else 1
    example = (torch.zeros(batch, 3, size, size), torch.zeros(batch, n, 2))
    return _build_plain_graph(
        RefineGraph(model),
        "refine",
        example,
        REFINE_INPUTS,
        REFINE_OUTPUTS,
        opset,
        dynamic_batch,
        simplify,
    )


def build_memory_graph(
    model: nn.Module, opset: int, dynamic_batch: bool, simplify: bool = True
) -> tuple[Any, dict]:
    """Export ``memory.onnx``: keypoints (B,N,2) -> keypoints_refined (B,N,2), prototype_ids (B,M)
    int32, prototype_distances (B,M), with the portable lookup."""
    example = (torch.zeros(2 if dynamic_batch else 1, model.cfg.num_keypoints, 2),)
    return _build_plain_graph(
        MemoryGraph(model),
        "memory",
        example,
        MEMORY_INPUTS,
        MEMORY_OUTPUTS,
        opset,
        dynamic_batch,
        simplify,
    )


def save_proto(proto, path: Path) -> Path:
    """Serialise one self-contained .onnx file (no external data)."""
    from ppl_edge.fileio import atomic_write_bytes

    atomic_write_bytes(path, proto.SerializeToString())
    return path


def export_graphs(
    model: nn.Module, folder: Path, config: ExportConfig, joint_map=None
) -> tuple[dict[str, Path], dict[str, dict]]:
    """Write the ONNX files of ``config.flavour`` into ``folder``, at ``config.opset``, with a
    dynamic or static batch and simplified or not as ``config`` says; the keypoint graphs get the
    ``joints`` output when ``joint_map`` (2N + 1, 2J) is given.

    Returns:
        (role -> path, role -> node-count stats).
    """
    opset, dynamic_batch, simplify = config.opset, config.dynamic_batch, config.simplify
    model = model.eval()
    paths, stats = {}, {}
    with torch.no_grad():
        for role in FLAVOUR_ROLES[config.flavour] + ("refine", "memory"):
            if role == "refine":
                proto, stats[role] = build_refine_graph(model, opset, dynamic_batch, simplify)
            elif role == "memory":
                proto, stats[role] = build_memory_graph(model, opset, dynamic_batch, simplify)
            else:
                kind = "portable" if role == "keypoints" else "plugin"
                proto, stats[role] = build_keypoint_graph(
                    model, kind, opset, dynamic_batch, simplify, joint_map
                )
            paths[role] = save_proto(proto, folder / FILES[role])
    return paths, stats
