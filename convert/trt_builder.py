"""Everything that talks to TensorRT's builder API, for
:func:`ppl_edge.convert.tensorrt_build.build_engine`: the log bridge, build progress, plugin
registration, parsing, precision / profile / timing-cache configuration and the build itself.

A build takes minutes on a Jetson: :class:`BuildProgress` keeps the phases TensorRT reports through
``trt.IProgressMonitor`` (TensorRT 10+), and :class:`Heartbeat` logs its status line every few
seconds whether or not the monitor exists, so a long build is never silent. Every function takes the
``tensorrt`` module as an argument; importing this file does not import TensorRT.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ppl_edge.convert import engine_cache as cache
from ppl_edge.convert.engine_cache import EngineKey, GpuInfo
from ppl_edge.errors import PplEdgeError

log = logging.getLogger(__name__)
trt_log = logging.getLogger("ppl_edge.tensorrt")

HEARTBEAT_SECONDS = 15.0


class BuildProgress:
    """Phase bookkeeping for TensorRT's IProgressMonitor callbacks and the heartbeat line.

    TensorRT calls the monitor from several builder threads while the heartbeat thread reads the
    status, so every method holds one lock.
    """

    def __init__(self, label: str, clock=time.monotonic):
        self.label, self._clock = label, clock
        self.started = clock()
        self._lock = threading.Lock()
        self.active: dict[str, list] = {}  # phase -> [parent, steps, done], in start order

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        with self._lock:
            self.active[name] = [parent, int(steps), 0]
        (log.info if parent is None else log.debug)("%s: %s", self.label, name)

    def step_complete(self, name: str, step: int) -> bool:
        with self._lock:
            if name in self.active:
                self.active[name][2] = int(step) + 1
        return True  # keep building

    def phase_finish(self, name: str) -> None:
        with self._lock:
            parent = self.active.pop(name, [None])[0]
        if parent is None:
            log.info("%s: %s done (%.0f s)", self.label, name, self.elapsed())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def status(self) -> str:
        """e.g. "building keypoints_trt.onnx (fp16): 45 s, Tactic selection 12/40"."""
        text = f"{self.label}: {self.elapsed():.0f} s"
        with self._lock:
            latest = list(self.active.items())[-1] if self.active else None
        if latest is not None:
            name, (_, steps, done) = latest
            text += f", {name} {done}/{steps}" if steps else f", {name}"
        return text


class Heartbeat:
    """Context manager: a thread that logs ``progress.status()`` every ``interval`` seconds."""

    def __init__(self, progress: BuildProgress, interval: float = HEARTBEAT_SECONDS):
        self.progress, self.interval = progress, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trt-build-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            log.info("%s", self.progress.status())

    def __enter__(self) -> None:
        self._thread.start()

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def make_progress_monitor(trt, progress: BuildProgress):
    """A ``trt.IProgressMonitor`` forwarding to ``progress``, or None on TensorRT without it."""
    if not hasattr(trt, "IProgressMonitor"):
        return None

    class Monitor(trt.IProgressMonitor):
        def __init__(self):
            trt.IProgressMonitor.__init__(self)

        def phase_start(self, phase_name, parent_phase, num_steps):
            progress.phase_start(phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            return progress.step_complete(phase_name, step)

        def phase_finish(self, phase_name):
            progress.phase_finish(phase_name)

    return Monitor()


def make_logger(trt):
    """TensorRT's log bridged to ``logging`` (INFO and VERBOSE at DEBUG: warnings and up show)."""
    levels = {
        trt.ILogger.INTERNAL_ERROR: logging.ERROR,
        trt.ILogger.ERROR: logging.ERROR,
        trt.ILogger.WARNING: logging.WARNING,
        trt.ILogger.INFO: logging.DEBUG,
        trt.ILogger.VERBOSE: logging.DEBUG,
    }

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            trt_log.log(levels.get(severity, logging.DEBUG), "%s", msg)

    return Logger()


# ------------------------------------------------------------------------------------------ build
def load_plugin(trt, library: Path) -> None:
    """Register the library's creators with TensorRT; check NearestNeighborLookup is one of them."""
    from ppl_edge.convert.nn_plugin import OP_TYPE, PLUGIN_NAMESPACE, PLUGIN_VERSION

    registry = trt.get_plugin_registry()
    get_creator = getattr(registry, "get_creator", None) or registry.get_plugin_creator
    if (
        get_creator(OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE) is None
        and registry.load_library(str(library)) is None
    ):
        raise PplEdgeError(
            f"TensorRT could not load the plugin library {library} (see its error above)"
        )
    if get_creator(OP_TYPE, PLUGIN_VERSION, PLUGIN_NAMESPACE) is None:
        raise PplEdgeError(
            f"{library} does not provide the {OP_TYPE} plugin version {PLUGIN_VERSION}: "
            "rebuild it from this checkout"
        )
    log.info("TensorRT plugin library: %s", library)


def parse_graph(trt, builder, logger, graph, flags: int = 0):
    """Parse ``graph`` (a ``PreparedGraph``) into a network made with creation ``flags``
    (``trt_versions.network_flags``: EXPLICIT_BATCH on 8.6, STRONGLY_TYPED); returns
    (network, parser): keep the parser alive."""
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(graph.model_bytes, str(graph.path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)] or ["unknown error"]
        hint = (
            ": the plugin library did not register NearestNeighborLookup"
            if "Plugin not found" in errors[0]
            else ""
        )
        raise PplEdgeError(
            f"TensorRT could not parse {graph.path.name}: {errors[0].splitlines()[0]}{hint}"
        )
    return network, parser


def batch_profile(builder, graph, low: int, opt: int, high: int):
    """An optimisation profile over every input's batch: (low | opt | high, *shape)."""
    profile = builder.create_optimization_profile()
    for name, shape in graph.inputs:
        profile.set_shape(name, (low, *shape), (opt, *shape), (high, *shape))
    return profile


def attach_calibrator(
    trt,
    builder,
    config,
    graph,
    images,
    calib_cache: Path | None,
    manifest: dict | None,
    calib_batch: int,
):
    """Set up INT8 entropy calibration; returns the device buffer to free after the build."""
    from ppl_edge.convert import calibrator as calib

    batches = None
    if images:
        spec = calib.input_spec(manifest)
        if (spec.height, spec.width) != (graph.height, graph.width):
            raise PplEdgeError(
                f"the manifest's input is {spec.height}x{spec.width}, the graph's "
                f"{graph.height}x{graph.width}: use the manifest of this export"
            )
        batches = calib.CalibrationBatches(images, spec, calib_batch)
    bs = batches.batch_size if batches is not None else 1
    buffer = (
        calib.DeviceBuffer(4 * bs * 3 * graph.height * graph.width) if batches is not None else None
    )
    session = calib.CalibrationSession(
        batches, calib_cache, buffer.upload if buffer else lambda b: 0
    )
    config.int8_calibrator = calib.make_calibrator(trt, session)
    config.set_calibration_profile(batch_profile(builder, graph, bs, bs, bs))
    return buffer


def build_serialized(
    trt,
    graph,
    key: EngineKey,
    library: Path | None,
    *,
    workspace_mb: int | None,
    timing_cache: Path,
    images,
    calib_cache: Path | None,
    manifest: dict | None,
    calib_batch: int,
    plan=None,
) -> bytes:
    """Register the plugin, parse ``graph``, configure and build.

    Args:
        graph: the ``PreparedGraph`` (lookup function already stripped for the plugin).
        key: precision, batch profile and the names logged.
        library: plugin library to register, None for the native lookup.
        timing_cache: read when it exists, written after a successful build.
        images, calib_cache, manifest, calib_batch: INT8 calibration (see
            :func:`attach_calibrator`).
        plan: the ``trt_versions.BuildPlan`` (network and builder flags); None: the flags of
            ``key.precision`` on TensorRT 10.

    Returns:
        The serialised engine.
    """
    from ppl_edge.convert.trt_versions import network_flags, plan_build, support

    logger = make_logger(trt)
    if library is not None:
        load_plugin(trt, library)
    builder = trt.Builder(logger)
    plan = plan or plan_build(support(trt), key.precision, key.nn, key.strongly_typed)
    flags = network_flags(trt, plan)
    network, _parser = parse_graph(trt, builder, logger, graph, flags)  # parser outlives build
    config = builder.create_builder_config()
    if workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    buffer = None
    for flag in plan.builder_flags:  # INT8 also sets FP16: layers without INT8 kernels use it
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if plan.calibrate:
        buffer = attach_calibrator(
            trt, builder, config, graph, images, calib_cache, manifest, calib_batch
        )
    config.add_optimization_profile(
        batch_profile(builder, graph, key.min_batch, key.opt_batch, key.max_batch)
    )
    timing = config.create_timing_cache(
        timing_cache.read_bytes() if timing_cache.is_file() else b""
    )
    config.set_timing_cache(timing, False)
    progress = BuildProgress(f"building {graph.path.name} ({key.precision}, {key.nn} lookup)")
    monitor = make_progress_monitor(trt, progress)
    if monitor is not None:
        config.progress_monitor = monitor
    what = f"{key.precision}{' strongly typed' if plan.strongly_typed else ''}"
    log.info("building a TensorRT %s engine of %s for %s (%s), TensorRT %s: this takes minutes",
             what, graph.path.name, key.gpu_name, key.sm, key.trt_version)  # fmt: skip
    try:
        with Heartbeat(progress):
            serialized = builder.build_serialized_network(network, config)
    finally:
        if buffer is not None:
            buffer.free()
    if serialized is None:
        raise PplEdgeError(
            f"TensorRT could not build an engine from {graph.path.name} (its errors are "
            "logged above)"
        )
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    cache.atomic_write_bytes(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
    log.info("TensorRT build finished in %.0f s", progress.elapsed())
    return bytes(memoryview(serialized))


def build_info(
    gpu: GpuInfo,
    key: EngineKey,
    library: Path | None,
    workspace_mb: int | None,
    timing_cache: Path,
    images,
    calib_cache: Path | None,
    seconds: float,
) -> dict[str, Any]:
    """The sidecar's ``build`` record: versions, GPU, L4T release, settings, duration."""
    from ppl_edge import __version__

    tegra = Path("/etc/nv_tegra_release")
    return {
        "ppl_edge_version": __version__,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "build_seconds": round(seconds, 1),
        "gpu": {"name": gpu.name, "sm": gpu.sm, "driver_version": gpu.driver_version},
        "host": platform.machine(),
        "l4t": tegra.read_text(errors="replace").splitlines()[0] if tegra.is_file() else None,
        "plugin_library": str(library) if library else None,
        "workspace_mb": workspace_mb,
        "timing_cache": str(timing_cache),
        "calibration": {
            "images": len(images or ()),
            "cache": str(calib_cache) if calib_cache else None,
        }
        if key.precision == "int8"
        else None,
    }
