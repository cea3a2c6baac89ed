"""Build a TensorRT engine of an exported graph with TensorRT's Python API (TensorRT 8.6 to 11).

:func:`build_engine` first checks what the build needs, in an order that never crashes the process
(toolchain.md §3): a GPU through the CUDA driver (ctypes), then ``import tensorrt``, then the plugin
library; each missing piece is one ``PplEdgeError`` line, and nothing is written before all are
present. Then: reuse a cached engine (engine_cache.py) or load the plugin, strip the lookup's ONNX
function (so the parser calls the plugin), parse, configure precision (FP32 / FP16 / INT8 with
entropy calibration), one optimisation profile for the dynamic batch, a timing cache, a progress
monitor, build, store in the cache and copy into ``out_dir``. ``nn="native"`` builds the portable
graph (``keypoints.onnx``) without the plugin. The build's settings are one
:class:`~ppl_edge.convert.config.EngineConfig`, validated when it is made. What each TensorRT
release can build (explicit batch on 8.6, the plugin from 10, strongly typed FP16 on 11) is the
table of ``trt_versions.py``; the graph's preparation is ``trt_graph.py``; the calls into TensorRT's
builder API live in ``trt_builder.py``. This file decides what to build and needs neither TensorRT
nor onnx nor torch to import.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from ppl_edge.convert import engine_cache as cache
from ppl_edge.convert.config import EngineConfig
from ppl_edge.convert.engine_cache import EngineKey
from ppl_edge.convert.trt_builder import build_info, build_serialized
from ppl_edge.convert.trt_graph import (  # noqa: F401  (re-exported: the build's graph API)
    ONNX_FILES,
    PreparedGraph,
    prepare_graph,
    resolve_onnx,
)
from ppl_edge.convert.trt_versions import BuildPlan, plan_build, support
from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import sha256_path

log = logging.getLogger(__name__)
trt_log = logging.getLogger("ppl_edge.tensorrt")

PLUGIN_LIBRARY = "libppl_edge_plugins.so"
PLUGIN_ENV = "PPL_EDGE_PLUGIN_LIB"  # the runtime's TensorRT backend reads the same variable
_REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------------- prerequisites
def import_tensorrt():
    """``import tensorrt`` (call only after :func:`engine_cache.probe_gpu` succeeded).

    Raises:
        PplEdgeError: not installed / libraries missing, or older than TensorRT 8.6.
    """
    try:
        import tensorrt as trt
    except (ImportError, OSError) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PplEdgeError(
            "TensorRT Python package not installed: pip install 'ppl-edge[trt]' or use "
            f"JetPack's python3-libnvinfer (import tensorrt: {detail})"
        ) from err
    support(trt)  # raises before 8.6
    return trt


def plugin_search_path(onnx_path: Path | None = None) -> list[Path]:
    """Where the plugin library is looked for: $PPL_EDGE_PLUGIN_LIB, beside the ONNX file, the
    checkout's CMake build folders, ./build."""
    paths = [Path(os.environ[PLUGIN_ENV])] if os.environ.get(PLUGIN_ENV) else []
    if onnx_path is not None:
        paths.append(Path(onnx_path).parent / PLUGIN_LIBRARY)
    paths += [
        _REPO / "build" / PLUGIN_LIBRARY,
        _REPO / "build" / "lib" / PLUGIN_LIBRARY,
        Path.cwd() / "build" / PLUGIN_LIBRARY,
    ]
    return list(dict.fromkeys(paths))


def find_plugin_library(explicit: str | Path | None = None, onnx_path: Path | None = None) -> Path:
    """The plugin library to load for ``nn="plugin"``.

    Raises:
        PplEdgeError: ``explicit`` does not exist, or no library is found on the search path.
    """
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise PplEdgeError(f"plugin library {path} does not exist")
        return path.resolve()
    for path in plugin_search_path(onnx_path):
        if path.is_file():
            return path.resolve()
    raise PplEdgeError(
        f"TensorRT plugin library {PLUGIN_LIBRARY} not found (set ${PLUGIN_ENV} or "
        "pass the path): build it with 'cmake -S . -B build && cmake --build build' "
        "(convert/plugins/nearest_neighbor/README.md), or build with --nn native"
    )


def check_prerequisites(
    nn: str = "plugin",
    plugin_lib: str | Path | None = None,
    onnx_path: Path | None = None,
    device: int = 0,
):
    """GPU (driver), then TensorRT, then the plugin library: the first missing one raises.

    Returns:
        (GpuInfo, the tensorrt module, plugin library path or None for nn="native").
    """
    gpu = cache.probe_gpu(device)
    trt = import_tensorrt()
    plan_build(support(trt), "fp32", nn)  # the plugin needs TensorRT 10+
    library = find_plugin_library(plugin_lib, onnx_path) if nn == "plugin" else None
    return gpu, trt, library


# ------------------------------------------------------------------------------------ manifest
def load_manifest_document(manifest: dict | str | Path | None, onnx_path: Path) -> dict | None:
    """The export manifest: given as a dict or a file, or the ``manifest.json`` beside the ONNX."""
    if isinstance(manifest, dict):
        return manifest
    path = Path(manifest) if manifest is not None else onnx_path.parent / "manifest.json"
    if manifest is None and not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PplEdgeError(f"cannot read the export manifest {path}: {err}") from err


# ------------------------------------------------------------------------------------------ build
def build_engine(
    onnx_path: str | Path,
    out_dir: str | Path,
    precision: str = "fp16",
    nn: str = "plugin",
    plugin_lib: str | Path | None = None,
    min_batch: int = 1,
    opt_batch: int = 1,
    max_batch: int = 8,
    calib_data: str | Path | None = None,
    calib_cache: str | Path | None = None,
    workspace_mb: int | None = None,
    timing_cache: str | Path | None = None,
    force_rebuild: bool = False,
    manifest: dict | str | Path | None = None,
    *,
    device: int = 0,
    cache_root: str | Path | None = None,
    calib_batch: int = 8,
) -> Path:
    """Build (or reuse from the cache) a TensorRT engine of the keypoint graph and copy it to
    ``out_dir``.

    Args:
        onnx_path: ``keypoints_trt.onnx`` (nn="plugin"), ``keypoints.onnx`` (nn="native"), or an
            export folder holding them.
        out_dir: where ``<onnx-stem>.<precision>.engine`` and its ``.json`` sidecar are written.
        manifest: the export manifest (dict or file; default ``manifest.json`` beside the ONNX), for
            INT8 preprocessing and for the engine's sidecar.
        precision, nn, plugin_lib, min_batch, opt_batch, max_batch, calib_data, calib_cache,
            workspace_mb, timing_cache, force_rebuild, device, cache_root, calib_batch: the
            build's settings, as the fields of :class:`~ppl_edge.convert.config.EngineConfig`.

    Returns:
        The engine's path in ``out_dir``.

    Raises:
        PplEdgeError: a bad argument, no GPU / driver, no TensorRT, no plugin library, a graph
            TensorRT cannot parse or build; nothing is written in these cases.
    """
    settings = EngineConfig(
        precision=precision,
        nn=nn,
        plugin_lib=plugin_lib,
        min_batch=min_batch,
        opt_batch=opt_batch,
        max_batch=max_batch,
        calib_data=calib_data,
        calib_cache=calib_cache,
        calib_batch=calib_batch,
        workspace_mb=workspace_mb,
        timing_cache=timing_cache,
        force_rebuild=force_rebuild,
        device=device,
        cache_root=cache_root,
    )
    return build_engine_from(onnx_path, out_dir, settings, manifest=manifest)


def build_engine_from(
    onnx_path: str | Path,
    out_dir: str | Path,
    settings: EngineConfig,
    manifest: dict | str | Path | None = None,
    *,
    name: str | None = None,
    lookup_required: bool = True,
) -> Path:
    """:func:`build_engine` with its settings given as one (validated) ``EngineConfig``.

    Args:
        name: the engine's file name in ``out_dir`` (default ``<onnx-stem>.<precision>.engine``).
        lookup_required: the graph must hold the plugin's node for nn="plugin" (False for the
            refine and memory graphs, which have none).
    """
    onnx_file = resolve_onnx(onnx_path, settings.nn)
    images = calibration_images(settings)
    gpu, trt, library = check_prerequisites(
        settings.nn, settings.plugin_lib, onnx_file, settings.device
    )
    info = support(trt)
    plan = plan_build(info, settings.precision, settings.nn, settings.strongly_typed)
    graph = prepare_graph(onnx_file, settings.nn, lookup_required, float16=plan.fp16_graph)
    plan_build(
        info, settings.precision, settings.nn, plan.strongly_typed, graph.opset, onnx_file.name
    )
    if graph.batch is not None and not all(b == graph.batch for b in settings.batches):
        raise PplEdgeError(
            f"{onnx_file.name} has a static batch of {graph.batch}: set min/opt/max batch "
            f"to {graph.batch}, or export with a dynamic batch"
        )
    manifest_doc = load_manifest_document(manifest, onnx_file)
    key = engine_key(onnx_file, graph, settings, gpu, trt, library, images, plan)
    root = settings.cache_root if settings.cache_root is not None else cache.cache_root()
    if settings.force_rebuild and cache.invalidate(key, root):
        log.info("removed the cached engine %s (force rebuild)", key.file_name)
    cached = cache.lookup(key, root)
    if cached is None:
        cached = _build_and_store(
            trt, gpu, graph, key, library, settings, images, manifest_doc, root, plan
        )
    out = Path(out_dir).expanduser()
    recorded = (
        manifest_doc
        if manifest_doc is not None
        else ("manifest.json" if (out / "manifest.json").is_file() else None)
    )
    target = name or f"{onnx_file.stem}.{settings.precision}.engine"
    return cache.publish(cached, out, target, recorded)


def calibration_images(settings: EngineConfig) -> list[Path] | None:
    """The INT8 calibration images of ``settings.calib_data`` (None without INT8 or images)."""
    if settings.precision != "int8" or settings.calib_data is None:
        return None
    from ppl_edge.convert.calibrator import find_calibration_images

    return find_calibration_images(settings.calib_data)


def engine_key(
    onnx_file: Path,
    graph: PreparedGraph,
    settings: EngineConfig,
    gpu,
    trt,
    library: Path | None,
    images: list[Path] | None,
    plan: BuildPlan | None = None,
) -> EngineKey:
    """The cache key of the engine ``settings`` would build from ``graph`` on this GPU."""
    from ppl_edge.convert.nn_plugin import PLUGIN_VERSION

    calibration = None
    if settings.precision == "int8":
        from ppl_edge.convert.calibrator import images_digest

        calibration = images_digest(images) if images else sha256_path(settings.calib_cache)
    return EngineKey(
        model_stem=onnx_file.stem,
        onnx_sha256=graph.sha256,
        precision=settings.precision,
        nn=settings.nn,
        plugin_version=PLUGIN_VERSION if settings.nn == "plugin" else None,
        plugin_sha256=sha256_path(library) if library else None,
        min_batch=settings.min_batch,
        opt_batch=settings.opt_batch,
        max_batch=settings.max_batch,
        height=graph.height,
        width=graph.width,
        gpu_name=gpu.name,
        sm=gpu.sm,
        trt_version=trt.__version__,
        calibration=calibration,
        strongly_typed=bool(plan and plan.strongly_typed),
    )


def _build_and_store(
    trt,
    gpu,
    graph: PreparedGraph,
    key: EngineKey,
    library: Path | None,
    settings: EngineConfig,
    images: list[Path] | None,
    manifest_doc: dict | None,
    root: Path,
    plan: BuildPlan,
) -> Path:
    """Build the engine of ``key`` and store it in the cache under ``root``; its cached path."""
    timing = settings.timing_cache or cache.timing_cache_path(key, root)
    calib_file = settings.calib_cache
    if calib_file is None and settings.precision == "int8":  # one table per calibration set
        calib_file = cache.engine_path(key, root).with_suffix(f".{key.calibration[:8]}.calib")
    start = time.monotonic()
    engine = build_serialized(
        trt,
        graph,
        key,
        library,
        workspace_mb=settings.workspace_mb,
        timing_cache=timing,
        images=images,
        calib_cache=calib_file,
        manifest=manifest_doc,
        calib_batch=settings.calib_batch,
        plan=plan,
    )
    info = build_info(
        gpu,
        key,
        library,
        settings.workspace_mb,
        timing,
        images,
        calib_file,
        time.monotonic() - start,
    )
    info["network_flags"], info["builder_flags"] = (
        list(plan.network_flags),
        list(plan.builder_flags),
    )
    return cache.store(key, engine, info, manifest_doc, root)
