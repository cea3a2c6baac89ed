"""Backend registry: one module per backend, each a :class:`~.base.BackendBase` subclass that
declares its name, file suffixes, manifest artifact keys, availability and options.

``BACKENDS`` maps a name to ``module:Class``; it is the one list of backends (``--backend`` choices,
the checks of :class:`~ppl_edge.runtime.config.RuntimeConfig`, ``auto``). A backend module is
imported when its class is first needed; importing this package loads none (nor NumPy).
``open_backend("auto", path)`` picks by file suffix; :func:`select_backend` picks for a resolved
model, falling back through the usable backends by their ``auto_rank``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppl_edge.errors import PplEdgeError, check_choice

if TYPE_CHECKING:
    from ppl_edge.runtime.backends.base import Backend, BackendBase, TensorSpec
    from ppl_edge.runtime.manifest import ModelFiles

log = logging.getLogger(__name__)

BACKENDS: dict[str, str] = {
    "onnxruntime": "ppl_edge.runtime.backends.onnxruntime:OnnxRuntimeBackend",
    "tensorrt": "ppl_edge.runtime.backends.tensorrt:TensorRTBackend",
    "coreml": "ppl_edge.runtime.backends.coreml:CoreMLBackend",
}

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendBase",
    "TensorSpec",
    "backend_choices",
    "backend_class",
    "backend_classes",
    "backend_for",
    "open_backend",
    "select_backend",
    "unavailable_reason",
]


def __getattr__(name: str) -> Any:
    if name in ("Backend", "BackendBase", "TensorSpec"):
        from ppl_edge.runtime.backends import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def backend_choices() -> tuple[str, ...]:
    """What a backend setting may be: "auto" or a name of ``BACKENDS``."""
    return ("auto", *BACKENDS)


def backend_class(name: str) -> type[BackendBase]:
    """Import and return the class of backend ``name`` (the registry's only import point).

    Raises:
        PplEdgeError: ``name`` is not in ``BACKENDS``.
    """
    if name not in BACKENDS:
        check_choice(name, backend_choices(), "backend")  # names the choices
        raise PplEdgeError(f"backend 'auto' is chosen per model; name one of {', '.join(BACKENDS)}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def backend_classes() -> list[type[BackendBase]]:
    """Every backend class, in registry order."""
    return [backend_class(name) for name in BACKENDS]


def backend_for(path: Path) -> type[BackendBase] | None:
    """The backend whose files have ``path``'s suffix, or None."""
    return next((cls for cls in backend_classes() if cls.claims(path)), None)


def unavailable_reason(name: str) -> str | None:
    """Why backend ``name`` cannot run on this machine, or None when it can (cheap checks only)."""
    return backend_class(name).unavailable_reason()


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
    check_choice(name, backend_choices(), "backend")
    path = Path(path)
    if name != "auto":
        return backend_class(name)(path, **opts)
    cls = backend_for(path)
    if cls is None:
        suffixes = sorted(s for c in backend_classes() for s in c.suffixes)
        raise PplEdgeError(
            f"cannot pick a backend for {path.name!r}; expected one of "
            f"{', '.join(suffixes)} or an explicit backend name"
        )
    return cls(path, **opts)


def select_backend(
    files: ModelFiles, name: str = "auto", precision: str = "fp32"
) -> tuple[str, Path]:
    """Choose the backend and artifact for a resolved model.

    ``auto`` tries the backends with an artifact in this export by ascending ``auto_rank``
    (TensorRT when a GPU + TensorRT are usable, then Core ML on macOS, then ONNX Runtime) and takes
    the first that can run here. A ``precision`` other than "fp32" picks ONNX Runtime and the
    export's ``keypoints_<precision>`` graph (``keypoints.fp16.onnx``, ``keypoints.int8.onnx``).

    Raises:
        PplEdgeError: the requested backend has no artifact in this export, (auto) none of the
            export's backends can run here, or the export has no graph of that precision.
    """
    check_choice(name, backend_choices(), "backend")
    if precision != "fp32":
        return "onnxruntime", _precision_graph(files, name, precision)
    if name != "auto":
        path = files.graphs.get(name)
        if path is None:
            raise PplEdgeError(
                f"backend {name!r} needs a {backend_class(name).artifact_kind} but the model "
                f"{files.given} has none; convert it with 'ppl-edge convert'"
            )
        return name, path
    given = backend_for(files.given)
    reasons = {}
    for cls in sorted(backend_classes(), key=lambda c: c.auto_rank):
        path = files.graphs.get(cls.name)
        if path is None:
            continue
        reason = cls.unavailable_reason()
        if reason is None:
            return cls.name, path
        reasons[cls.name] = reason
        if cls is given:
            log.warning("cannot use %s for %s (%s); falling back", cls.name, path.name, reason)
    why = "; ".join(f"{n}: {r}" for n, r in reasons.items()) or "no keypoint graph was exported"
    raise PplEdgeError(
        f"no usable backend for {files.given}: it has {list(reasons)} and none can run here ({why})"
    )


def _precision_graph(files: ModelFiles, name: str, precision: str) -> Path:
    """The export's ONNX Runtime keypoint graph of ``precision`` ("fp16", "int8")."""
    if name not in ("auto", "onnxruntime"):
        raise PplEdgeError(
            f"precision {precision!r} picks an ONNX Runtime graph, not a {name} one: an engine or "
            "package runs the precision it was built with (set when converting)"
        )
    key = f"keypoints_{precision}"
    path = files.manifest.artifact_path(key)
    if path is None or not path.exists():
        raise PplEdgeError(
            f"the model {files.given} has no {precision} graph ({key} in its manifest); write it "
            f"with 'ppl-edge convert --target onnx --{precision}'"
        )
    return path
