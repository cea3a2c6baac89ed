"""TensorRT backend: a serialised engine, the plugin library, pycuda buffers and one async stream.

Order matters (toolchain.md §3): first check that the CUDA driver sees a GPU (ctypes, no TensorRT),
then import tensorrt and pycuda, load the plugin library (the memory lookup's
``NearestNeighborLookup`` creator) and only then deserialise the engine. Buffers are allocated once
for the engine's largest batch; ``run`` copies host -> device, enqueues and copies back on one
stream. Calls are serialised by a lock (the buffers are shared), so one backend may serve several
threads.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ppl_edge.errors import PplEdgeError, require
from ppl_edge.manifest import Manifest, ManifestError
from ppl_edge.runtime.backends import cuda_check
from ppl_edge.runtime.backends.base import BackendBase, TensorSpec
from ppl_edge.runtime.backends.cuda_check import cuda_problem
from ppl_edge.runtime.backends.trt_profile import (
    BatchProfile,
    batch_profile,
    input_names,
    set_input_shape,
    tensor_profile,
)

if TYPE_CHECKING:
    from ppl_edge.runtime.config import RuntimeConfig

log = logging.getLogger(__name__)

PLUGIN_LIBRARY = "libppl_edge_plugins.so"
PLUGIN_ENV = "PPL_EDGE_PLUGIN_LIB"  # the exporter's TensorRT build reads the same variable
PLUGIN_OP = "NearestNeighborLookup"
_REPO = Path(__file__).resolve().parents[2]


def _sidecar_library(engine: Path) -> list[Path]:
    """The plugin library the engine was built with, as its cache sidecar records it."""
    sidecar = engine.with_name(engine.name + ".json")
    try:
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
        recorded = (doc.get("build") or {}).get("plugin_library")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return []
    return [Path(recorded)] if isinstance(recorded, str) and recorded else []


def sidecar_manifest(engine: Path) -> Manifest | None:
    """The manifest of a cached engine: a JSON sidecar ``<engine>.json`` or ``<stem>.json`` holding
    either a manifest or ``{"manifest": <path relative to the sidecar, or a manifest object>}``;
    None when the engine has no sidecar.

    Raises:
        ManifestError: a sidecar that is not JSON, or whose manifest is invalid.
    """
    for sidecar in (engine.with_name(engine.name + ".json"), engine.with_suffix(".json")):
        if not sidecar.is_file():
            continue
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestError(f"engine sidecar {sidecar} is not valid JSON: {err}") from err
        ref = data.get("manifest", data) if isinstance(data, dict) else data
        if isinstance(ref, str):
            return Manifest.load((sidecar.parent / ref).resolve())
        return Manifest.from_dict(ref, sidecar)
    return None


def _sidecar_document(engine: Path) -> dict:
    """The ``<engine>.json`` sidecar as a dict ({} when missing or unreadable)."""
    try:
        doc = json.loads(engine.with_name(engine.name + ".json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def engine_pairs_with(engine: Path, manifest: Manifest) -> bool:
    """Whether an engine the manifest does not list was built from this model: its sidecar's key
    names the sha256 of an ONNX graph the manifest lists, or its inline manifest names the same
    checkpoint sha256."""
    doc = _sidecar_document(engine)
    key, inline = doc.get("key"), doc.get("manifest")
    built_from = key.get("onnx_sha256") if isinstance(key, dict) else None
    listed = {e.get("sha256") for e in manifest.artifacts.values()} - {None, ""}
    if isinstance(built_from, str) and built_from in listed:
        return True
    ours = (manifest.raw.get("model") or {}).get("checkpoint_sha256")
    model = inline.get("model") if isinstance(inline, dict) else None
    return bool(ours) and isinstance(model, dict) and model.get("checkpoint_sha256") == ours


def plugin_search_path(engine: Path) -> list[Path]:
    """Where the plugin library is looked for, in order: $PPL_EDGE_PLUGIN_LIB, the library the
    engine's sidecar records, beside the engine, the checkout's CMake build folders, ./build (the
    exporter's search path, ``ppl_edge.convert.tensorrt_build.plugin_search_path``)."""
    paths = [Path(os.environ[PLUGIN_ENV])] if os.environ.get(PLUGIN_ENV) else []
    paths += _sidecar_library(engine)
    paths.append(engine.parent / PLUGIN_LIBRARY)
    paths += [
        _REPO / "build" / PLUGIN_LIBRARY,
        _REPO / "build" / "lib" / PLUGIN_LIBRARY,
        Path.cwd() / "build" / PLUGIN_LIBRARY,
    ]
    return list(dict.fromkeys(paths))


def load_plugin_library(trt, logger, engine: Path, explicit: str | Path | None) -> Path | None:
    """Load the plugin library so the engine's plugin layers find their creator.

    The library is opened with RTLD_GLOBAL, TensorRT's own plugins are initialised, and the
    library's IPluginV3 creators (``getCreators``) are registered with the plugin registry.

    Returns:
        The library loaded, or None when none was found (engines without the plugin still work).

    Raises:
        PplEdgeError: an explicitly given library does not exist, cannot be loaded, or lacks the
            ``NearestNeighborLookup`` creator.
    """
    candidates = [Path(explicit)] if explicit else plugin_search_path(engine)
    trt.init_libnvinfer_plugins(logger, "")
    registry = trt.get_plugin_registry()
    get_creator = getattr(registry, "get_creator", None) or registry.get_plugin_creator
    for lib in candidates:
        if not lib.is_file():
            continue
        try:
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
        except OSError as err:
            raise PplEdgeError(f"cannot load the TensorRT plugin library {lib}: {err}") from err
        if get_creator(PLUGIN_OP, "1", "") is None:
            registry.load_library(str(lib))
        if get_creator(PLUGIN_OP, "1", "") is None:
            raise PplEdgeError(
                f"{lib} does not provide the {PLUGIN_OP} plugin version 1: rebuild "
                "it from this checkout (cmake -S . -B build && cmake --build build)"
            )
        log.info("TensorRT: plugin library %s", lib)
        return lib
    if explicit:
        raise PplEdgeError(f"TensorRT plugin library not found: {explicit}")
    log.debug("TensorRT: no plugin library in %s", [str(p) for p in candidates])
    return None


def _make_logger(trt):
    """A TensorRT ILogger that forwards to Python logging (TensorRT's INFO/VERBOSE at DEBUG)."""

    class _Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            sev = trt.ILogger.Severity
            level = {
                sev.INTERNAL_ERROR: logging.ERROR,
                sev.ERROR: logging.ERROR,
                sev.WARNING: logging.WARNING,
            }.get(severity, logging.DEBUG)
            log.log(level, "TensorRT: %s", msg)

    return _Logger()


class TensorRTBackend(BackendBase):
    """Run a serialised TensorRT engine.

    Args:
        path: the .engine file (built on this device by ``ppl-edge convert --target trt``).
        device: CUDA device index.
        plugin: path of ``libppl_edge_plugins.so``; searched for when None (plugin_search_path).

    Raises:
        PplEdgeError: no usable GPU (named: no driver, no device, ...), a missing engine file, or
            an engine that does not deserialise (TensorRT version, GPU or plugin mismatch).
        MissingDependencyError: tensorrt or pycuda is missing (names the 'trt' extra).
    """

    name = "tensorrt"
    suffixes = (".engine", ".plan", ".trt")
    artifact_keys = ("keypoints_engine", "engine", "tensorrt")
    aux_artifact_keys = {"refine": ("refine_engine",), "memory": ("memory_engine",)}
    artifact_kind = "TensorRT engine"
    find_alone = True
    auto_rank = 0  # the fastest where it runs

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None with a usable NVIDIA GPU and tensorrt + pycuda installed."""
        problem = cuda_check.cuda_problem()
        if problem:
            return problem
        for module in ("tensorrt", "pycuda"):
            if importlib.util.find_spec(module) is None:
                extra = "pip install 'ppl-edge[trt]' (JetPack ships both)"
                return f"{module} is not installed: {extra}"
        return None

    @classmethod
    def options(cls, config: RuntimeConfig, manifest: Manifest) -> dict[str, Any]:
        """The CUDA device index of ``device`` "cuda:N" (default 0)."""
        device = config.device
        return {"device": int(device.split(":")[1]) if device and ":" in device else 0}

    @classmethod
    def artifact_manifest(cls, path: Path) -> Manifest | None:
        """The engine cache's sidecar manifest (:func:`sidecar_manifest`), if any."""
        return sidecar_manifest(path)

    @classmethod
    def pairs_with(cls, path: Path, manifest: Manifest) -> bool:
        """An unlisted engine whose sidecar names this model (:func:`engine_pairs_with`)."""
        return engine_pairs_with(path, manifest)

    @classmethod
    def recorded_sha256(cls, path: Path) -> str | None:
        """The ``engine_sha256`` of the engine's sidecar, if any."""
        recorded = _sidecar_document(path).get("engine_sha256")
        return recorded if isinstance(recorded, str) and recorded else None

    def __init__(self, path: str | Path, device: int = 0, plugin: str | Path | None = None):
        self.path = Path(path)
        problem = cuda_problem()
        if problem:
            raise PplEdgeError(
                f"the TensorRT backend needs a usable NVIDIA GPU: {problem}; use "
                "backend 'onnxruntime' on this machine"
            )
        if not self.path.is_file():
            raise PplEdgeError(f"TensorRT engine not found: {self.path}")
        trt = require("tensorrt", "trt", "the TensorRT backend")
        cuda = require("pycuda.driver", "trt", "the TensorRT backend")
        self._trt, self._cuda, self._lock = trt, cuda, threading.Lock()
        cuda.init()
        self._ctx = cuda.Device(device).retain_primary_context()
        self._ctx.push()
        try:
            self._logger = _make_logger(trt)
            self.plugin = load_plugin_library(trt, self._logger, self.path, plugin)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
            if self._engine is None:
                hint = (
                    ""
                    if self.plugin
                    else (
                        f"; no plugin library was found (set ${PLUGIN_ENV} if the engine has the "
                        f"{PLUGIN_OP} plugin)"
                    )
                )
                raise PplEdgeError(
                    f"TensorRT could not deserialise {self.path} (TensorRT {trt.__version__}); "
                    "engines are tied to the GPU, TensorRT version and plugin library that built "
                    f"them: rebuild it with 'ppl-edge convert --target trt' on this device{hint}"
                )
            self._context = self._engine.create_execution_context()
            self._stream = cuda.Stream()
            self._allocate()
        except BaseException:
            self._ctx.pop()
            self._ctx.detach()
            raise
        self._ctx.pop()

    def _allocate(self) -> None:
        """Read the batch profile, then pinned host + device buffers for every I/O tensor at the
        profile's largest shape."""
        trt, cuda, engine = self._trt, self._cuda, self._engine
        self._inputs, self._outputs, self._buffers = [], [], {}
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = input_names(engine, trt.TensorIOMode.INPUT)
        self.batch_profile: BatchProfile = batch_profile(engine, inputs, self.path.name)
        for name in inputs:
            shape = tuple(engine.get_tensor_shape(name))
            if -1 in shape:
                shape = tensor_profile(engine, name)[2]  # max of profile 0
            set_input_shape(self._context, name, shape, self.batch_profile, self.path.name)
        for name in names:
            is_input = name in inputs
            dtype = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            declared = tuple(engine.get_tensor_shape(name))
            spec = TensorSpec(name, tuple(None if d < 0 else d for d in declared), dtype)
            (self._inputs if is_input else self._outputs).append(spec)
            size = int(np.prod(tuple(self._context.get_tensor_shape(name))))
            host = cuda.pagelocked_empty(max(size, 1), dtype)
            self._buffers[name] = (host, cuda.mem_alloc(max(host.nbytes, 1)))
            self._context.set_tensor_address(name, int(self._buffers[name][1]))
        log.info("TensorRT: %s, batch profile %s", self.path.name, self.batch_profile)

    @property
    def batch_range(self) -> tuple[int, int]:
        """(min, max) batch of the engine's optimisation profile."""
        return self.batch_profile.range

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Copy inputs in, execute asynchronously on the stream, copy outputs back.

        Raises:
            PplEdgeError: wrong inputs, a batch outside the engine's optimisation profile (one
                line naming the batch and the range), or a failed enqueue.
        """
        self._check_open()
        arrays = self.check_feeds(feeds)
        cuda, stream, label = self._cuda, self._stream, self.path.name
        with self._lock:
            self._ctx.push()
            try:
                for name, arr in arrays.items():
                    host, dev = self._buffers[name]
                    set_input_shape(self._context, name, arr.shape, self.batch_profile, label)
                    view = host[: arr.size]
                    np.copyto(view, arr.ravel())
                    cuda.memcpy_htod_async(dev, view, stream)
                if not self._context.execute_async_v3(stream.handle):
                    raise PplEdgeError(
                        f"TensorRT failed to enqueue {self.path.name}; see the TensorRT log above"
                    )
                shapes = {}
                for spec in self._outputs:
                    host, dev = self._buffers[spec.name]
                    shapes[spec.name] = tuple(self._context.get_tensor_shape(spec.name))
                    cuda.memcpy_dtoh_async(host[: int(np.prod(shapes[spec.name]))], dev, stream)
                stream.synchronize()
            finally:
                self._ctx.pop()
            return {
                name: self._buffers[name][0][: int(np.prod(shape))].reshape(shape).copy()
                for name, shape in shapes.items()
            }

    def close(self) -> None:
        """Free device buffers, the context and the engine, then release the CUDA context."""
        if self._closed:
            return
        self._closed = True
        self._ctx.push()
        try:
            for _, dev in self._buffers.values():
                dev.free()
            self._buffers = {}
            self._context = self._engine = self._runtime = None
        finally:
            self._ctx.pop()
            self._ctx.detach()
