"""Where TensorRT engines are kept, and when a kept engine may be reused (edge_ecosystem.md §4.4).

An engine only runs on the GPU model, TensorRT version and plugin library that built it, so built
engines live in a cache keyed by all of them:

    ${XDG_CACHE_HOME:-~/.cache}/ppl-edge/engines/<sm>/<trt_version>/
        <model-stem>-<onnx_sha8>.<prec>.b<min>-<max>.<H>x<W>.plugin<ver>.engine
                         the engine (".native" instead of ".plugin<ver>" without the plugin)
        <same>.engine.json
                         sidecar: the full key, build settings, the engine's sha256, the manifest
        timing.cache     one TensorRT timing cache per <sm>/<trt_version>

:func:`lookup` returns a cached engine only when its sidecar's key equals the requested one and the
file's sha256 matches; anything else counts as stale and is rebuilt. Writes are atomic (temporary
name + rename, engine before sidecar), so an interrupted build never leaves a usable-looking entry.
This module needs neither TensorRT nor a GPU; :func:`probe_gpu` asks the CUDA driver through ctypes.
"""

from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppl_edge.convert.config import NN_MODES, PRECISIONS
from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.fileio import atomic_write_bytes
from ppl_edge.manifest import sha256_path

log = logging.getLogger(__name__)

FORMAT = "ppl-edge-engine"
FORMAT_VERSION = 1
TIMING_CACHE_NAME = "timing.cache"
_LIBCUDA = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75  # cuda.h CUdevice_attribute
_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76
NO_GPU_MESSAGE = (
    "no NVIDIA GPU/driver found ({} missing): TensorRT engines must be built on the target device"
)


@dataclass(frozen=True)
class GpuInfo:
    """The GPU an engine is built for: name, compute capability (major, minor), driver version."""

    name: str
    compute_capability: tuple[int, int]
    driver_version: int

    @property
    def sm(self) -> str:
        """Cache folder name of the architecture, e.g. "sm87" for Jetson Orin."""
        return f"sm{self.compute_capability[0]}{self.compute_capability[1]}"


def probe_gpu(device: int = 0) -> GpuInfo:
    """Ask the CUDA driver (ctypes, no TensorRT) for GPU ``device``.

    TensorRT objects created without a working GPU can crash the process (toolchain.md §3), so this
    runs before ``import tensorrt``.

    Raises:
        PplEdgeError: no driver library, the driver fails to initialise, or no such device.
    """
    lib = None
    for name in _LIBCUDA:
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        raise PplEdgeError(NO_GPU_MESSAGE.format(_LIBCUDA[0]))
    rc = lib.cuInit(0)
    if rc != 0:
        raise PplEdgeError(
            f"the NVIDIA driver found no usable GPU (cuInit returned CUDA error {rc}): "
            "TensorRT engines must be built on the target device"
        )
    count = ctypes.c_int(0)
    if lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or not 0 <= device < count.value:
        raise PplEdgeError(f"GPU {device} not found: the NVIDIA driver sees {count.value} GPU(s)")
    handle, major, minor, driver = (
        ctypes.c_int(0),
        ctypes.c_int(0),
        ctypes.c_int(0),
        ctypes.c_int(0),
    )
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGet(ctypes.byref(handle), device)
    lib.cuDeviceGetName(name, len(name), handle)
    lib.cuDeviceGetAttribute(
        ctypes.byref(major), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, handle
    )
    lib.cuDeviceGetAttribute(
        ctypes.byref(minor), _CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, handle
    )
    lib.cuDriverGetVersion(ctypes.byref(driver))
    return GpuInfo(name.value.decode(errors="replace"), (major.value, minor.value), driver.value)


@dataclass(frozen=True)
class EngineKey:
    """Everything an engine depends on; two builds with equal keys give interchangeable engines.

    Attributes:
        model_stem: the ONNX file's stem, e.g. "keypoints_trt".
        onnx_sha256: of the ONNX file as given (before the lookup function is stripped).
        precision: "fp32", "fp16" or "int8".
        nn: "plugin" (the NearestNeighborLookup plugin) or "native" (standard ONNX lookup).
        plugin_version: the plugin's version for nn="plugin", None for "native".
        plugin_sha256: of the plugin library file (a rebuilt library invalidates engines).
        min_batch, opt_batch, max_batch: the optimisation profile.
        height, width: the image input size.
        gpu_name, sm: the GPU model and its architecture ("sm87").
        trt_version: TensorRT's version string.
        calibration: sha256 of the INT8 calibration data (images or cache), None otherwise.
        strongly_typed: built as a strongly typed network (precision from the graph's types).
    """

    model_stem: str
    onnx_sha256: str
    precision: str
    nn: str
    plugin_version: str | None
    plugin_sha256: str | None
    min_batch: int
    opt_batch: int
    max_batch: int
    height: int
    width: int
    gpu_name: str
    sm: str
    trt_version: str
    calibration: str | None = None
    strongly_typed: bool = False

    def __post_init__(self):
        check_choice(self.precision, PRECISIONS, "precision")
        check_choice(self.nn, NN_MODES, "nn")
        if (self.nn == "plugin") != (self.plugin_version is not None):
            raise PplEdgeError(
                f"plugin_version must be set exactly when nn='plugin', got nn={self.nn!r}, "
                f"plugin_version={self.plugin_version!r}"
            )
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise PplEdgeError(
                f"batches must satisfy 1 <= min <= opt <= max, got {self.min_batch}, "
                f"{self.opt_batch}, {self.max_batch}"
            )
        if self.height < 1 or self.width < 1:
            raise PplEdgeError(f"input size must be positive, got {self.height}x{self.width}")

    @property
    def file_name(self) -> str:
        """``<stem>-<sha8>.<prec>.b<min>-<max>.<H>x<W>.plugin<ver>.engine`` (``.native`` without
        the plugin; ``.typed`` added for a strongly typed network)."""
        lookup = f"plugin{self.plugin_version}" if self.nn == "plugin" else "native"
        lookup += ".typed" if self.strongly_typed else ""
        return (
            f"{self.model_stem}-{self.onnx_sha256[:8]}.{self.precision}.b{self.min_batch}-"
            f"{self.max_batch}.{self.height}x{self.width}.{lookup}.engine"
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON form (what the sidecar stores and :func:`lookup` compares)."""
        return dataclasses.asdict(self)


def cache_root(environ: dict[str, str] | None = None) -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/ppl-edge/engines``."""
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "ppl-edge" / "engines"


def cache_dir(key: EngineKey, root: Path | None = None) -> Path:
    """``<root>/<sm>/<trt_version>``: engines and the timing cache of one GPU architecture."""
    return (root or cache_root()) / key.sm / key.trt_version


def engine_path(key: EngineKey, root: Path | None = None) -> Path:
    """Where the engine of ``key`` lives in the cache (whether or not it exists)."""
    return cache_dir(key, root) / key.file_name


def sidecar_path(engine: Path) -> Path:
    """``<engine>.json``, the name the runtime also looks for."""
    return engine.with_name(engine.name + ".json")


def timing_cache_path(key: EngineKey, root: Path | None = None) -> Path:
    """The timing cache shared by every build for this GPU architecture and TensorRT version."""
    return cache_dir(key, root) / TIMING_CACHE_NAME


def _stale_reason(engine: Path, key: EngineKey) -> str | None:
    """Why the cached entry at ``engine`` cannot serve ``key``, or None if it can."""
    sidecar = sidecar_path(engine)
    if not engine.is_file() or not sidecar.is_file():
        return "not built yet"
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"unreadable sidecar ({err})"
    if not isinstance(meta, dict):
        return "sidecar is not a JSON object"
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        return f"sidecar format {meta.get('format')!r} v{meta.get('format_version')}"
    stored = meta.get("key", {})
    changed = sorted(k for k, v in key.as_dict().items() if stored.get(k) != v)
    if changed:
        return "built with different " + ", ".join(changed)
    if meta.get("engine_sha256") != sha256_path(engine):
        return "engine file changed after it was built"
    return None


def lookup(key: EngineKey, root: Path | None = None) -> Path | None:
    """The cached engine for ``key`` if it exists and is valid, else None (the reason is logged)."""
    engine = engine_path(key, root)
    reason = _stale_reason(engine, key)
    if reason is None:
        log.info("TensorRT engine cache hit: %s", engine)
        return engine
    log.info("TensorRT engine cache miss (%s): %s", reason, engine.name)
    return None


def sidecar_document(
    key: EngineKey, engine_sha256: str, build: dict[str, Any], manifest: dict[str, Any] | str | None
) -> dict[str, Any]:
    """The sidecar JSON: format, key, build settings, engine sha256 and (when known) the manifest,
    inline or as a path relative to the sidecar, which the runtime reads to preprocess frames."""
    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "key": key.as_dict(),
        "engine_sha256": engine_sha256,
        "build": build,
    }
    if manifest is not None:
        doc["manifest"] = manifest
    return doc


def store(
    key: EngineKey,
    engine: bytes,
    build: dict[str, Any],
    manifest: dict[str, Any] | None = None,
    root: Path | None = None,
) -> Path:
    """Write ``engine`` and its sidecar into the cache (engine first; both atomic).

    Returns:
        The cached engine's path.
    """
    path = engine_path(key, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, engine)
    doc = sidecar_document(key, hashlib.sha256(engine).hexdigest(), build, manifest)
    atomic_write_bytes(sidecar_path(path), json.dumps(doc, indent=2, allow_nan=False).encode())
    log.info("TensorRT engine cached: %s (%.1f MiB)", path, len(engine) / 2**20)
    return path


def invalidate(key: EngineKey, root: Path | None = None) -> bool:
    """Delete the cached engine of ``key`` and its sidecar; True if anything was removed."""
    path = engine_path(key, root)
    removed = False
    for file in (sidecar_path(path), path):  # sidecar first: a half-removed entry is never valid
        if file.exists():
            file.unlink()
            removed = True
    return removed


def entries(root: Path | None = None) -> list[dict[str, Any]]:
    """Every cached engine's sidecar (with ``path`` added), for listing the cache."""
    found = []
    for sidecar in sorted((root or cache_root()).glob("*/*/*.engine.json")):
        try:
            doc = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            continue
        if isinstance(doc, dict) and doc.get("format") == FORMAT:
            found.append({**doc, "path": str(sidecar.with_name(sidecar.name[: -len(".json")]))})
    return found


def publish(cached: Path, out_dir: Path, name: str, manifest: dict[str, Any] | str | None) -> Path:
    """Copy a cached engine into ``out_dir`` as ``name`` with its sidecar (atomic writes).

    Args:
        manifest: what the copied sidecar records as the manifest (inline or a relative path).

    Returns:
        The copy's path.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / name
    data = cached.read_bytes()
    doc = json.loads(sidecar_path(cached).read_text(encoding="utf-8"))
    if manifest is not None:
        doc["manifest"] = manifest
    else:
        doc.pop("manifest", None)
    doc["cached_engine"] = str(cached)
    atomic_write_bytes(target, data)
    atomic_write_bytes(sidecar_path(target), json.dumps(doc, indent=2, allow_nan=False).encode())
    return target
