"""Backend registry: one module per backend, imported only when that backend is used.

``BACKENDS`` maps a name to ``module:Class``. ``open_backend("auto", path)`` picks by file suffix
(.engine -> TensorRT, .mlpackage -> Core ML, .onnx -> ONNX Runtime); :func:`select_backend` does the
same for a resolved model, falling back to ONNX Runtime when the preferred backend is unusable here.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.backends.base import Backend, BackendBase, TensorSpec

if TYPE_CHECKING:
    from ppl_edge.runtime.manifest import ModelFiles

log = logging.getLogger(__name__)

BACKENDS: dict[str, str] = {
    "onnxruntime": "ppl_edge.runtime.backends.onnxruntime:OnnxRuntimeBackend",
    "tensorrt": "ppl_edge.runtime.backends.tensorrt:TensorRTBackend",
    "coreml": "ppl_edge.runtime.backends.coreml:CoreMLBackend",
}
_SUFFIX = {
    ".onnx": "onnxruntime",
    ".engine": "tensorrt",
    ".plan": "tensorrt",
    ".trt": "tensorrt",
    ".mlpackage": "coreml",
    ".mlmodel": "coreml",
}

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendBase",
    "TensorSpec",
    "backend_class",
    "open_backend",
    "select_backend",
    "unavailable_reason",
]


def _check_name(name: str) -> None:
    if name != "auto" and name not in BACKENDS:
        raise PplEdgeError(f"unknown backend {name!r}; choose one of auto, {', '.join(BACKENDS)}")


def backend_class(name: str) -> type:
    """Import and return the class of backend ``name`` (the registry's only import point)."""
    _check_name(name)
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run on this machine, or None when it can (cheap checks only)."""
    _check_name(name)
    if name == "onnxruntime":
        return (
            None
            if importlib.util.find_spec("onnxruntime")
            else ("onnxruntime is not installed: pip install 'ppl-edge[onnxruntime]'")
        )
    if name == "coreml":
        if sys.platform != "darwin":
            return f"Core ML runs only on macOS (this is {sys.platform})"
        return (
            None
            if importlib.util.find_spec("coremltools")
            else ("coremltools is not installed: pip install 'ppl-edge[coreml]'")
        )
    from ppl_edge.runtime.backends.cuda_check import cuda_problem

    problem = cuda_problem()
    if problem:
        return problem
    for module in ("tensorrt", "pycuda"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed: pip install 'ppl-edge[trt]' (JetPack ships both)"
    return None


def open_backend(name: str, path: str | Path, **opts) -> Backend:
    """Open backend ``name`` on the artifact at ``path``.

    Args:
        name: "auto" (by suffix: .engine TensorRT, .mlpackage Core ML, .onnx ONNX Runtime) or a
            key of ``BACKENDS``.
        path: the compiled graph file.
        **opts: backend options (e.g. ``device``, ``threads`` for ONNX Runtime).

    Raises:
        PplEdgeError: unknown name or suffix; MissingDependencyError when the library is missing.
    """
    _check_name(name)
    path = Path(path)
    if name == "auto":
        name = _SUFFIX.get(path.suffix.lower())
        if name is None:
            raise PplEdgeError(
                f"cannot pick a backend for {path.name!r}; expected one of "
                f"{', '.join(sorted(_SUFFIX))} or an explicit backend name"
            )
    return backend_class(name)(path, **opts)


def select_backend(files: ModelFiles, name: str = "auto") -> tuple[str, Path]:
    """Choose the backend and artifact for a resolved model.

    ``auto`` prefers TensorRT when an engine exists and a GPU + TensorRT are usable, then Core ML on
    macOS when a package exists, else ONNX Runtime on keypoints.onnx.

    Raises:
        PplEdgeError: the requested backend has no artifact in this export.
    """
    _check_name(name)
    candidates = {"tensorrt": files.engine, "coreml": files.mlpackage, "onnxruntime": files.onnx}
    if name != "auto":
        path = candidates[name]
        if path is None:
            raise PplEdgeError(
                f"backend {name!r} needs a {_artifact_kind(name)} but the model "
                f"{files.given} has none; convert it with 'ppl-edge convert'"
            )
        return name, path
    given_kind = _SUFFIX.get(files.given.suffix.lower())
    for candidate in ("tensorrt", "coreml", "onnxruntime"):
        path = candidates[candidate]
        if path is None:
            continue
        reason = unavailable_reason(candidate)
        if reason is None:
            return candidate, path
        if given_kind == candidate:
            log.warning("cannot use %s for %s (%s); falling back", candidate, path.name, reason)
    raise PplEdgeError(
        f"no usable backend for {files.given}: it has "
        f"{[k for k, v in candidates.items() if v]} and none can run here "
        "(pip install 'ppl-edge[onnxruntime]' for keypoints.onnx)"
    )


def _artifact_kind(name: str) -> str:
    return {
        "tensorrt": "TensorRT engine",
        "coreml": "Core ML package",
        "onnxruntime": "keypoints.onnx",
    }[name]
