"""ONNX Runtime backend: CPU by default, CUDA or TensorRT execution providers when present.

``InferenceSession.run`` is thread-safe, so one backend may serve several threads.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ppl_edge.errors import PplEdgeError, check_choice, require
from ppl_edge.runtime.backends.base import BackendBase, TensorSpec

if TYPE_CHECKING:
    from ppl_edge.manifest import Manifest
    from ppl_edge.runtime.config import RuntimeConfig

log = logging.getLogger(__name__)

# ONNX type string -> NumPy dtype, for the types our graphs use.
_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}
# device -> execution providers to ask for, best first (CPU is always the last resort).
_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}
_OPT_LEVELS = ("disable", "basic", "extended", "all")


def _spec(node) -> TensorSpec:
    """TensorSpec from an ORT NodeArg; symbolic dims become None."""
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)
    return TensorSpec(node.name, shape, np.dtype(_DTYPES.get(node.type, np.float32)))


class OnnxRuntimeBackend(BackendBase):
    """Run an ONNX graph with ONNX Runtime.

    Args:
        path: the .onnx file.
        device: "cpu" (default), "cuda", "cuda:N" or "tensorrt" (ORT execution providers; N is the
            GPU index). Providers that this onnxruntime build lacks are skipped with a warning;
            the session falls back to CPU.
        threads: intra-op threads (None: ORT's default, one per physical core).
        optimization: graph optimisation level: "disable", "basic", "extended" or "all".

    Raises:
        MissingDependencyError: onnxruntime is not installed (names the pip extra).
        PplEdgeError: unknown device / optimisation level, or the file is not a loadable model.
    """

    name = "onnxruntime"
    suffixes = (".onnx",)
    artifact_keys = ("keypoints",)
    artifact_kind = "keypoints.onnx"
    auto_rank = 2  # everywhere, after the accelerators

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None when onnxruntime is installed."""
        if importlib.util.find_spec("onnxruntime"):
            return None
        return "onnxruntime is not installed: pip install 'ppl-edge[onnxruntime]'"

    @classmethod
    def options(cls, config: RuntimeConfig, manifest: Manifest) -> dict[str, Any]:
        """``device`` (default "cpu") and ``threads`` of the config."""
        return {"device": config.device or "cpu", "threads": config.threads}

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        threads: int | None = None,
        optimization: str = "all",
    ):
        ort = require("onnxruntime", "onnxruntime", "the ONNX Runtime backend")
        kind, _, index = device.partition(":")
        if kind not in _PROVIDERS or (index and (kind == "cpu" or not index.isdigit())):
            raise PplEdgeError(
                f"unknown ONNX Runtime device {device!r}; choose one of "
                f"{', '.join(_PROVIDERS)} (or cuda:N)"
            )
        check_choice(optimization, _OPT_LEVELS, "optimisation level")
        self.path = Path(path)
        if not self.path.is_file():
            raise PplEdgeError(f"ONNX model not found: {self.path}")
        available = set(ort.get_available_providers())
        wanted = _PROVIDERS[kind]
        gpu = {"device_id": int(index or 0)}
        providers = [
            (p, gpu) if p != "CPUExecutionProvider" else p for p in wanted if p in available
        ]
        missing = [p for p in wanted if p not in available]
        if kind != "cpu" and missing:
            log.warning(
                "ONNX: %s not in this onnxruntime build (has %s); install "
                "onnxruntime-gpu for GPU execution",
                ", ".join(missing),
                sorted(available),
            )
        opts = ort.SessionOptions()
        opts.graph_optimization_level = getattr(
            ort.GraphOptimizationLevel,
            {
                "disable": "ORT_DISABLE_ALL",
                "basic": "ORT_ENABLE_BASIC",
                "extended": "ORT_ENABLE_EXTENDED",
                "all": "ORT_ENABLE_ALL",
            }[optimization],
        )
        if threads is not None:
            if threads < 1:
                raise PplEdgeError(f"threads must be >= 1, got {threads}")
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only; ORT's warnings are about graph rewrites
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=opts, providers=providers
            )
        except Exception as err:  # ORT raises its own exception types (InvalidGraph, Fail, ...)
            raise PplEdgeError(f"ONNX Runtime cannot load {self.path}: {err}") from err
        self.providers = self._session.get_providers()
        self._inputs = [_spec(n) for n in self._session.get_inputs()]
        self._outputs = [_spec(n) for n in self._session.get_outputs()]
        log.debug("ONNX: %s on %s", self.path.name, self.providers)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the session; ``feeds`` are cast to the graph's dtypes.

        Raises:
            PplEdgeError: missing inputs, wrong fixed dims, or the closed backend.
        """
        self._check_open()
        arrays = self.check_feeds(feeds)
        values = self._session.run(None, arrays)
        return {spec.name: value for spec, value in zip(self._outputs, values)}

    def close(self) -> None:
        """Drop the session (ORT frees it when the last reference goes)."""
        self._session = None
        self._closed = True
