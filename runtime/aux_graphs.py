"""The refinement graphs (``refine``: image-space, ``memory``: memory-space) opened on the same
device as the keypoint graph when the export has them for its backend.

A backend declares, in ``aux_artifact_keys``, the manifest keys of its own builds of these graphs:
TensorRT ``refine_engine`` / ``memory_engine`` (``ppl-edge convert --from DIR --target trt``), Core
ML ``refine_coreml`` / ``memory_coreml`` (e.g. ``memory.mlpackage``). A listed one that exists is
opened with the keypoint graph's backend and options, so a refinement iteration never leaves the
GPU or Neural Engine for the CPU. Otherwise the ONNX graph (``refine.onnx`` / ``memory.onnx``) runs
on ONNX Runtime, on the keypoint graph's device when that is ONNX Runtime too, else on the CPU,
and the log says so once per graph.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ppl_edge.manifest import ManifestError
from ppl_edge.runtime.backends import backend_class
from ppl_edge.runtime.graph_check import open_checked

if TYPE_CHECKING:
    from ppl_edge.runtime.backends.base import Backend
    from ppl_edge.runtime.config import RuntimeConfig
    from ppl_edge.runtime.manifest import ModelFiles

log = logging.getLogger(__name__)

ROLES = ("refine", "memory")


def device_artifact(files: ModelFiles, backend: str, role: str) -> Path | None:
    """The export's build of graph ``role`` for ``backend`` (its ``aux_artifact_keys``), if it
    lists one that exists; None otherwise.

    Raises:
        ManifestError: a listed path that leads out of the export folder.
    """
    for key in backend_class(backend).aux_artifact_keys.get(role, ()):
        path = files.manifest.artifact_path(key)
        if path is not None and path.exists():
            return path
    return None


def plan(files: ModelFiles, backend: str) -> dict[str, tuple[str, Path] | None]:
    """role -> (backend, file) each refinement graph would run on; None when the export has no
    such graph (what ``ppl-edge info`` reports)."""
    placed: dict[str, tuple[str, Path] | None] = {}
    for role in ROLES:
        try:
            own = device_artifact(files, backend, role)
        except ManifestError:
            own = None
        onnx = files.refine if role == "refine" else files.memory
        placed[role] = (backend, own) if own else ("onnxruntime", onnx) if onnx else None
    return placed


def open_aux(files: ModelFiles, backend: str, role: str, config: RuntimeConfig) -> Backend | None:
    """Open graph ``role`` ("refine" or "memory") beside a keypoint graph run by ``backend``.

    Returns:
        The opened graph (checked against the manifest), or None when the export has neither a
        device build nor the ONNX graph of ``role``.

    Raises:
        ManifestError: the graph contradicts the manifest; PplEdgeError: it cannot be opened.
    """
    cls = backend_class(backend)
    own = device_artifact(files, backend, role)
    if own is not None:
        log.info("refinement: %s runs on %s (%s)", role, backend, own.name)
        return open_checked(
            backend, own, files.manifest, role, **cls.options(config, files.manifest)
        )
    onnx = files.refine if role == "refine" else files.memory
    if onnx is None:
        return None
    on_ort = backend == "onnxruntime"
    device = (config.device or "cpu") if on_ort else "cpu"
    if not on_ort:
        keys = " / ".join(cls.aux_artifact_keys.get(role, ())) or "device build"
        log.warning(
            "refinement: %s runs on ONNX Runtime CPU, not on %s: the export lists no %s%s",
            onnx.name,
            backend,
            keys,
            " (build it with 'ppl-edge convert --from EXPORT_DIR --target trt')"
            if backend == "tensorrt"
            else "",
        )
    return open_checked(
        "onnxruntime", onnx, files.manifest, role, device=device, threads=config.threads
    )
