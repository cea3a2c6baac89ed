"""Reporting a TensorRT build: a progress line while the builder works (minutes on a Jetson), and
TensorRT's own log bridged into ``logging``.

:class:`BuildProgress` keeps the phases TensorRT reports through ``trt.IProgressMonitor`` (TensorRT
10+); :class:`Heartbeat` logs its status line every few seconds whether or not the monitor exists, so
a long build is never silent. Only :func:`make_progress_monitor` and :func:`make_logger` touch
TensorRT, through the module they are given.
"""

from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("ppl_edge.convert.tensorrt_build")
trt_log = logging.getLogger("ppl_edge.tensorrt")

HEARTBEAT_SECONDS = 15.0


class BuildProgress:
    """Phase bookkeeping for TensorRT's IProgressMonitor callbacks and the heartbeat line."""

    def __init__(self, label: str, clock=time.monotonic):
        self.label, self._clock = label, clock
        self.started = clock()
        self.active: dict[str, list] = {}  # phase -> [parent, steps, done], in start order

    def phase_start(self, name: str, parent: str | None, steps: int) -> None:
        self.active[name] = [parent, int(steps), 0]
        (log.info if parent is None else log.debug)("%s: %s", self.label, name)

    def step_complete(self, name: str, step: int) -> bool:
        if name in self.active:
            self.active[name][2] = int(step) + 1
        return True  # keep building

    def phase_finish(self, name: str) -> None:
        parent = self.active.pop(name, [None])[0]
        if parent is None:
            log.info("%s: %s done (%.0f s)", self.label, name, self.elapsed())

    def elapsed(self) -> float:
        return self._clock() - self.started

    def status(self) -> str:
        """e.g. "building keypoints_trt.onnx (fp16): 45 s, Tactic selection 12/40"."""
        text = f"{self.label}: {self.elapsed():.0f} s"
        if self.active:
            name, (_, steps, done) = list(self.active.items())[-1]
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
    levels = {trt.ILogger.INTERNAL_ERROR: logging.ERROR, trt.ILogger.ERROR: logging.ERROR,
              trt.ILogger.WARNING: logging.WARNING, trt.ILogger.INFO: logging.DEBUG,
              trt.ILogger.VERBOSE: logging.DEBUG}

    class Logger(trt.ILogger):
        def __init__(self):
            trt.ILogger.__init__(self)

        def log(self, severity, msg):
            trt_log.log(levels.get(severity, logging.DEBUG), "%s", msg)

    return Logger()
