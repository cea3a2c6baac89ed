"""The embedding API: ``Estimator(model)(frame_bgr) -> list[Result]``, with no torch anywhere.

Pipeline per frame (house style 10): sanitise -> find subjects (crops) -> letterbox + normalise ->
backend (keypoints graph, batched over subjects) -> refinement (none / memory / image) ->
frame pixels, plausibility -> optional One Euro smoothing -> named joints (the manifest's joint map
applied to the final keypoints, when the model names its joints).

Thread safety: an Estimator may be shared between threads; calls are serialised by an internal lock,
because the motion cropper and the smoother carry state from frame to frame. For parallel throughput
create one Estimator per thread (each holds its own backend session).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ppl_edge.preprocess import Box, Scratch, as_bgr8, check_boxes, denormalise, preprocess
from ppl_edge.runtime.aux_graphs import open_aux
from ppl_edge.runtime.backends import Backend, backend_class, select_backend
from ppl_edge.runtime.batching import batch_limits, run_in_chunks
from ppl_edge.runtime.config import RuntimeConfig
from ppl_edge.runtime.crops import make_cropper
from ppl_edge.runtime.graph_check import open_checked
from ppl_edge.runtime.manifest import ModelFiles, resolve_model, verify_model
from ppl_edge.runtime.postprocess import attach_joints, check_joint_output, postprocess
from ppl_edge.runtime.refine import GraphClock, make_step
from ppl_edge.runtime.refine import refine as run_refinement
from ppl_edge.runtime.result import Result
from ppl_edge.runtime.smoothing import PoseSmoother

log = logging.getLogger(__name__)


class Estimator:
    """Pose estimation on BGR frames from an exported PPL model.

    Args:
        model: an export folder, manifest.json, .onnx, .engine or .mlpackage.
        config: the settings (:class:`~ppl_edge.runtime.config.RuntimeConfig`: backend,
            refinement, crops, smoothing, threads, device, ...); keyword ``settings`` are its
            fields, applied on top of ``config`` (default: a config of ``settings`` alone)::

                Estimator("models/ppl-small-humanoid", refine="image", iterations=2)
                Estimator(path, config=RuntimeConfig(backend="onnxruntime", threads=1))

    Raises:
        PplEdgeError: bad settings, a missing/invalid manifest or artifact, or no usable backend.
    """

    def __init__(self, model: str | Path, *, config: RuntimeConfig | None = None, **settings):
        if config is None:
            config = RuntimeConfig(**settings)
        elif settings:
            config = config.replace(**settings)
        self.config = config
        self.files: ModelFiles = resolve_model(model)
        self.manifest = self.files.manifest
        self.cropper = make_cropper(config.crops, config.roi, **(config.motion or {}))
        self.smoother = PoseSmoother(config.smooth) if config.smooth is not None else None
        self._lock = threading.RLock()
        self._aux: dict[str, Backend | None] = {}
        # Per-frame buffers, reused: the model input (last batch size), a letterbox canvas and the
        # fused path's padded double-size canvas.
        spec = self.manifest.input
        self._input = np.empty((1, 3, spec.height, spec.width), np.float32)
        self._canvas = np.empty((spec.height, spec.width, 3), np.uint8)
        self._scratch = Scratch(spec.width, spec.height)
        self.backend_name, path = select_backend(self.files, config.backend, config.precision)
        if config.verify:
            verify_model(self.files, path, self.backend_name)
        options = backend_class(self.backend_name).options(config, self.manifest)
        self.backend: Backend = open_checked(self.backend_name, path, self.manifest, **options)
        try:
            check_joint_output(self.manifest, self.backend.output_spec, path.name)
        except BaseException:
            self.backend.close()
            raise
        manifest_max = self.manifest.max_batch if self.manifest.dynamic_batch else 1
        self.min_batch, self.max_batch = batch_limits(self.backend, manifest_max)
        self._input_name = self.backend.input_spec[0].name
        self._open_refinement()
        log.info(
            "estimator: %s on %s (%d keypoints, %dx%d input)",
            path.name,
            self.backend_name,
            self.manifest.num_keypoints,
            self.manifest.input.width,
            self.manifest.input.height,
        )

    @property
    def refine_mode(self) -> str:
        """The default refinement mode."""
        return self.config.refine

    @property
    def iterations(self) -> int:
        """The default refinement iteration count."""
        return self.config.iterations

    # -- backends -------------------------------------------------------------------------------
    def _open_refinement(self) -> None:
        """Open the graph the default refinement needs now, so that one that contradicts the
        manifest fails here, not at the first frame; the estimator is closed on failure."""
        mode, count = self.config.refine, self.config.iterations
        key = "refine" if mode == "image" else "memory" if mode == "memory" and count > 1 else None
        try:
            if key is not None:
                self._aux_backend(key)
        except BaseException:
            self.close()
            raise

    def _aux_backend(self, key: str) -> Backend | None:
        """The refine / memory graph, opened on first use: the backend's own build of it when the
        export lists one (a TensorRT engine, a Core ML package), else the .onnx on ONNX Runtime
        (``runtime/aux_graphs.py``)."""
        if key not in self._aux:
            self._aux[key] = open_aux(self.files, self.backend_name, key, self.config)
        return self._aux[key]

    def _run_keypoints(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The keypoint graph over a batch of any size, in chunks within the backend's batch range
        (an engine's optimisation profile, else the manifest's limit)."""
        return run_in_chunks(self.backend.run, feeds, self.min_batch, self.max_batch)

    def _run_aux(self, key: str) -> Callable | None:
        backend = self._aux_backend(key)
        if backend is None:
            return None
        low, high = batch_limits(
            backend, self.manifest.max_batch if self.manifest.dynamic_batch else 1
        )
        return lambda feeds: run_in_chunks(backend.run, feeds, low, high)

    # -- public API -----------------------------------------------------------------------------
    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """Skeleton edges (i, j) from the learned connectivity."""
        return self.manifest.edges

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the model input."""
        return self.manifest.input.width, self.manifest.input.height

    def __call__(
        self,
        frame: np.ndarray,
        refine: str | None = None,
        iterations: int | None = None,
        timestamp: float | None = None,
        boxes: list[Box] | None = None,
    ) -> list[Result]:
        """Estimate every subject's pose in a frame.

        Args:
            frame: (H, W, 3) uint8 BGR (gray, BGRA, 16-bit and [0, 1] floats are converted).
            refine: refinement mode for this call (default: the estimator's).
            iterations: refinement iterations for this call (default: the estimator's).
            timestamp: seconds, for smoothing (default: time.monotonic()).
            boxes: subject boxes (x0, y0, x1, y1) to use instead of the cropper's.

        Returns:
            One Result per subject (empty when the cropper found none).

        Raises:
            BadFrameError: a frame that is not an image (None, empty, NaN, ...), or boxes that
                are not a list of (x0, y0, x1, y1) finite numbers with x0 < x1, y0 < y1.
            PplEdgeError: an unknown mode or a negative iteration count.
        """
        mode, count = self.config.refinement(refine, iterations)
        with self._lock:
            t0 = time.perf_counter()
            image = as_bgr8(frame)
            boxes = check_boxes(self.cropper(image) if boxes is None else boxes)
            if not boxes:
                return []
            return self._estimate(image, boxes, mode, count, timestamp, t0)

    def _estimate(
        self,
        image: np.ndarray,
        boxes: list[Box],
        mode: str,
        count: int,
        timestamp: float | None,
        t0: float,
    ) -> list[Result]:
        """Preprocess -> keypoint graph -> refinement -> postprocess -> smoothing, with timings."""
        cfg, spec = self.config, self.manifest.input
        if len(self._input) != len(boxes):
            self._input = np.empty((len(boxes), 3, spec.height, spec.width), np.float32)
        x, maps = preprocess(
            image, boxes, spec, cfg.pad_value, cfg.resize, self._input, self._canvas, self._scratch
        )
        t1 = time.perf_counter()
        initial = self._run_keypoints({self._input_name: x})
        t2 = time.perf_counter()
        graphs = GraphClock()  # the refinement's own graph runs, timed apart from its bookkeeping
        step = None
        if mode != "none" and count > 0:
            memory = mode == "memory" and count > 1
            step = make_step(
                mode,
                keypoints=graphs.timed(self._run_keypoints),
                reconstruct=graphs.timed(self._run_aux("refine")) if mode == "image" else None,
                memory=graphs.timed(self._run_aux("memory")) if memory else None,
                reference=x,
                input_name=self._input_name,
            )
        trace = run_refinement(initial, count, step)
        t3 = time.perf_counter()
        recon = (
            [denormalise(s["input"], self.manifest.input) for s in trace.steps[1:] if "input" in s]
            if cfg.keep_reconstructions
            else None
        )
        timings = {
            "preprocess": (t1 - t0) * 1e3,
            "inference": (t2 - t1) * 1e3,
            "refine": (t3 - t2) * 1e3,
            "refine_inference": graphs.ms,
        }
        results = postprocess(list(trace.steps), maps, self.manifest, None, recon)
        if self.smoother is not None:
            results = self.smoother(results, time.monotonic() if timestamp is None else timestamp)
        results = attach_joints(results, maps, self.manifest.joints)
        t4 = time.perf_counter()
        timings.update(postprocess=(t4 - t3) * 1e3, total=(t4 - t0) * 1e3)
        for res in results:
            res.timings.update(timings)
        return results

    def estimate(self, frame: np.ndarray, **kwargs) -> Result | None:
        """The first (largest) subject's Result, or None when the cropper found no subject."""
        results = self(frame, **kwargs)
        return results[0] if results else None

    def warmup(self, runs: int = 2) -> None:
        """Run a blank frame so first-call allocations don't land in measured latencies."""
        blank = np.zeros((self.manifest.input.height, self.manifest.input.width, 3), np.uint8)
        for _ in range(runs):
            self(blank, boxes=[(0, 0, blank.shape[1], blank.shape[0])], timestamp=0.0)
        if self.smoother is not None:
            self.smoother.reset()

    def reset(self) -> None:
        """Forget frame-to-frame state (background model, smoothing tracks)."""
        with self._lock:
            if hasattr(self.cropper, "reset"):
                self.cropper.reset()
            if self.smoother is not None:
                self.smoother.reset()

    def close(self) -> None:
        """Release every backend; the estimator cannot be used afterwards."""
        with self._lock:
            for backend in [self.backend, *self._aux.values()]:
                if backend is not None:
                    backend.close()
            self._aux = {}

    def __enter__(self) -> Estimator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Estimator({str(self.files.given)!r}, backend={self.backend_name!r}, "
            f"refine={self.refine_mode!r}, iterations={self.iterations})"
        )
