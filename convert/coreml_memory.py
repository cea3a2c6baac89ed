"""Core ML memory graph: ``memory.mlpackage``, the step of memory-space refinement on the device.

The same graph as ``memory.onnx`` (:class:`~ppl_edge.convert.onnx_export.MemoryGraph`: keypoints
(1, N, 2) -> keypoints_refined (1, N, 2), prototype_ids (1, M) int32, prototype_distances (1, M)),
traced and converted like the keypoint package (:mod:`ppl_edge.convert.coreml`): mlprogram for
iOS 16 / macOS 13, the memory encoder and decoder in FP16, the nearest-neighbour lookup in FP32.
``ppl-edge convert --target coreml`` writes it beside ``keypoints.mlpackage`` and lists it under
the manifest key ``memory_coreml``, which the runtime's Core ML backend opens for memory
refinement beyond the first iteration (``runtime/aux_graphs.py``). On Linux it is built and
inspected (:func:`check_memory_package`), not run.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from ppl_edge.convert.coreml import _spec_shape, check_lookup, load_spec
from ppl_edge.convert.coreml_program import import_coremltools, to_mlprogram
from ppl_edge.convert.verify import Check

log = logging.getLogger(__name__)

MEMORY_PACKAGE = "memory.mlpackage"
MEMORY_KEY = "memory_coreml"
MEMORY_OUTPUTS = ("keypoints_refined", "prototype_ids", "prototype_distances")


def convert_memory(model):
    """Convert a PoseModel's memory pass to a Core ML mlprogram (batch 1, multi-array input).

    Raises:
        PplEdgeError: coremltools cannot convert it.
    """
    import torch

    from ppl_edge.convert.onnx_export import MemoryGraph

    ct = import_coremltools()
    n = model.cfg.num_keypoints
    graph = MemoryGraph(model.eval()).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated in torch 2.13
        traced = torch.jit.trace(graph, torch.zeros(1, n, 2))
    outputs = [
        ct.TensorType(name=name, dtype=np.int32 if name == "prototype_ids" else np.float32)
        for name in MEMORY_OUTPUTS
    ]
    inputs = [ct.TensorType(name="keypoints", shape=(1, n, 2), dtype=np.float32)]
    mlmodel = to_mlprogram(traced, inputs, outputs, model, "the memory graph")
    mlmodel.short_description = "Pose Prior Learner memory pass (memory-space refinement step)"
    return mlmodel


def write_memory_package(model, staging: Path, manifest: dict) -> Path:
    """Save ``memory.mlpackage`` into ``staging``; list it in ``manifest`` as ``memory_coreml``."""
    from ppl_edge.convert.manifest import sha256_path

    package = staging / MEMORY_PACKAGE
    convert_memory(model).save(str(package))
    manifest["artifacts"][MEMORY_KEY] = {"file": MEMORY_PACKAGE, "sha256": sha256_path(package)}
    return package


def check_memory_package(package: str | Path, manifest: dict, model) -> Check:
    """The Linux checks of ``memory.mlpackage`` (no prediction): it loads as an mlprogram; input
    ``keypoints`` (1, N, 2) and the outputs' shapes match the manifest; a stored FP32 constant
    equals the codebook exactly, and the argmin runs in FP32."""
    package = Path(package)
    spec = load_spec(package)
    n, m = manifest["keypoints"]["count"], manifest["memory"]["banks"]
    problems = []
    got_in = {f.name: _spec_shape(f) for f in spec.description.input}
    if got_in != {"keypoints": (1, n, 2)}:
        problems.append(f"inputs {got_in}, expected {{'keypoints': (1, {n}, 2)}}")
    want = {"keypoints_refined": (1, n, 2), "prototype_ids": (1, m), "prototype_distances": (1, m)}
    got = {f.name: _spec_shape(f) for f in spec.description.output}
    if got != want:
        problems.append(f"outputs {got}, expected {want}")
    codebook_err = check_lookup(package, spec, model, problems)
    for problem in problems:
        log.warning("%s: %s", package.name, problem)
    return Check(
        f"{package.name} (spec)",
        {"codebook_max_error": codebook_err, "problems": len(problems)},
        not problems,
    )
