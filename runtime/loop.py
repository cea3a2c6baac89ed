"""The live loop: frame source -> estimator -> drawing -> window / video / JSONL / callback.

:func:`run_loop` is the embeddable part: a robot app passes its own estimator, source and a
callback (``runtime/live.py`` builds all of them from options for ``ppl-edge live`` and ``demo``).
The loop never crashes on a bad frame (it is validated, converted or skipped and counted), ends
cleanly on SIGINT / SIGTERM, at the end of the source or when the window is closed, and reports
what it did in a :class:`~ppl_edge.runtime.stats.LiveSummary`.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.estimator import Estimator
from ppl_edge.runtime.sinks import JsonlSink, VideoSink, WindowSink
from ppl_edge.runtime.sources import Frame, FrameSource, sanitize_frame
from ppl_edge.runtime.stats import LiveSummary, StageStats

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_ERRORS = 50  # estimator failures in a row before the loop gives up
OVERLAY_REFRESH_S = 0.5  # how often the on-screen FPS and stage times change
OVERLAY_STAGES = ("preprocess", "inference", "refine", "postprocess", "draw", "total")


def _draw(
    image: np.ndarray, results: list, fps: float | None, stages: dict[str, float] | None
) -> np.ndarray:
    """The learned skeleton of every result (runtime/draw.py) and the FPS / timing overlay, drawn
    on a copy of the frame; ``stages`` None draws no overlay."""
    from ppl_edge.runtime.draw import draw_results

    return draw_results(
        image.copy(), results, fps=fps, timings=stages if stages is not None else {}
    )


def _record(frame: Frame, image: np.ndarray, results: list, timings: dict[str, float]) -> dict:
    """The JSONL object of one frame.

    Keys: ``frame`` (source index; gaps = frames dropped by latest-frame capture), ``capture_time``
    and ``wall_time`` (seconds since the epoch: when the frame was read, when its line was
    written), ``latency_ms`` (read -> written), ``position_ms`` (media time in a file, else null),
    ``width`` / ``height`` (frame pixels), ``subjects`` (``Result.to_dict()`` per pose: keypoints
    in frame pixels, confidence, plausibility, prototype ids, edges, box, iterations) and
    ``timings_ms`` (capture, validate, the estimator's stages, estimate, draw).
    """
    return {
        "frame": frame.index,
        "capture_time": round(frame.capture_time, 6),
        "wall_time": round(time.time(), 6),
        "latency_ms": round((time.perf_counter() - frame.capture_mono) * 1e3, 3),
        "position_ms": frame.position_ms,
        "width": image.shape[1],
        "height": image.shape[0],
        "subjects": [r.to_dict() for r in results],
        "timings_ms": {k: round(v, 4) for k, v in timings.items()},
    }


class LiveLoop:
    """One run of the loop over a source; see :func:`run_loop` for the arguments."""

    def __init__(
        self,
        estimator: Callable[[np.ndarray], list],
        source: FrameSource,
        *,
        window: WindowSink | None = None,
        video: VideoSink | None = None,
        jsonl: JsonlSink | None = None,
        callback: Callable[[Frame, list], bool | None] | None = None,
        max_frames: int | None = None,
        fps_every: float = 5.0,
        overlay: bool = True,
    ):
        self.estimator, self.source = estimator, source
        self.window, self.video, self.jsonl, self.callback = window, video, jsonl, callback
        self.max_frames, self.fps_every, self.overlay = max_frames, fps_every, overlay
        self.summary, self.stats = LiveSummary(), StageStats()
        self.stopped: list[str] = []  # why the loop ends; appended by signal handlers too
        self._errors_in_row = 0
        self._shown: dict[str, Any] = {}  # what the overlay currently displays
        self._recent: deque = deque(maxlen=30)  # end times of the last frames, for the FPS
        self._start = self._last_log = self._last_overlay = time.perf_counter()

    def stop(self, reason: str) -> None:
        """End the loop after the current frame (safe from signal handlers and other threads)."""
        self.stopped.append(reason)
        self.source.stop()

    def run(self, handle_signals: bool = True) -> LiveSummary:
        """Process frames until the source ends or something stops the loop."""
        previous: dict[int, Any] = {}

        def on_signal(signum, _frame) -> None:
            self.stop(signal.Signals(signum).name)
            for sig, handler in previous.items():  # a second signal acts at once
                signal.signal(sig, handler)

        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, on_signal)
        self._start = self._last_log = self._last_overlay = time.perf_counter()
        try:
            frames = iter(self.source)
            while not self.stopped:
                t0 = time.perf_counter()
                frame = next(frames, None)
                if frame is None:
                    break
                self._process(frame, t0, time.perf_counter())
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            s = self.summary
            s.seconds = time.perf_counter() - self._start
            s.dropped, s.reconnects = self.source.stats.dropped, self.source.stats.reconnects
            s.stages = self.stats.summary()
            if self.stopped:
                s.stopped_by = self.stopped[0]
        return self.summary

    def _estimate(self, image: np.ndarray, frame: Frame) -> list:
        """Run the estimator; an :class:`Estimator` gets the frame's own time for its smoothing:
        the media time in a file (processed faster or slower than real time), the capture time of
        a live frame."""
        if not isinstance(self.estimator, Estimator):
            return self.estimator(image)  # any callable frame -> results
        if frame.position_ms is not None:
            return self.estimator(image, timestamp=frame.position_ms / 1e3)
        return self.estimator(image, timestamp=frame.capture_mono)

    def _skip(self, reason: str) -> None:
        self.summary.bad_frames += 1
        self.summary.bad_reasons[reason] += 1

    def _process(self, frame: Frame, t0: float, t1: float) -> None:
        """Validate, estimate, draw and emit one frame; t0 / t1: before / after it was read."""
        image, why = sanitize_frame(frame.image)
        t2 = time.perf_counter()
        if image is None:
            self._skip(why)
            return
        try:  # estimation and drawing: one failing frame must not end a live run
            results = self._estimate(image, frame)
            t3 = time.perf_counter()
            canvas = self._canvas(image, results)
            self._errors_in_row = 0
        except Exception as err:
            self._errors_in_row += 1
            self._skip(f"error {type(err).__name__}")
            log.warning("frame %d skipped: %s", frame.index, err, exc_info=self._errors_in_row == 1)
            if self._errors_in_row >= MAX_CONSECUTIVE_ERRORS:
                raise PplEdgeError(
                    f"{self._errors_in_row} frames in a row failed; last error: {err}"
                ) from err
            return
        t4 = time.perf_counter()
        timings = {
            "capture": (t1 - t0) * 1e3,
            "validate": (t2 - t1) * 1e3,
            **_estimator_timings(results),
            "estimate": (t3 - t2) * 1e3,
        }
        if canvas is not None:
            timings["draw"] = (t4 - t3) * 1e3
        self._emit(frame, image, canvas, results, timings)
        timings["output"] = (time.perf_counter() - t4) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        self._account(timings, len(results))

    def _canvas(self, image: np.ndarray, results: list) -> np.ndarray | None:
        """The frame with the poses and the overlay drawn, when a window or a video shows it."""
        if self.window is None and self.video is None:
            return None
        show = self.overlay
        return _draw(
            image,
            results,
            self._shown.get("fps") if show else None,
            self._shown.get("stages", {}) if show else None,
        )

    def _emit(
        self,
        frame: Frame,
        image: np.ndarray,
        canvas: np.ndarray | None,
        results: list,
        timings: dict[str, float],
    ) -> None:
        """Hand the frame to every sink and the callback."""
        if self.jsonl is not None:
            self.jsonl.write(_record(frame, image, results, timings))
        if self.video is not None:
            self.video.write(canvas, at=frame.capture_mono if self.source.is_live else None)
        if self.window is not None and not self.window.show(canvas):
            self.stop("window closed")
        if self.callback is not None and self.callback(frame, results) is False:
            self.stop("callback")

    def _account(self, timings: dict[str, float], subjects: int) -> None:
        """Statistics, overlay values, the periodic log line and the frame limit."""
        for stage, ms in timings.items():
            self.stats.add(stage, ms)
        self.summary.frames += 1
        self.summary.subjects += subjects
        now = time.perf_counter()
        self._recent.append(now)
        # Every frame at first (so a short clip never shows the first frame's values), then at
        # OVERLAY_REFRESH_S intervals so the numbers stay readable.
        if now - self._last_overlay >= OVERLAY_REFRESH_S or self.summary.frames <= 30:
            self._shown["fps"] = (len(self._recent) - 1) / max(now - self._recent[0], 1e-9)
            self._shown["stages"] = {
                k: round(float(np.mean(self.stats.recent(k, 30))), 1)
                for k in OVERLAY_STAGES
                if k in timings
            }
            self._last_overlay = now
        if now - self._last_log >= self.fps_every:
            log.info(
                "%d frames | %.1f FPS | total %.1f ms | bad %d | dropped %d",
                self.summary.frames,
                self._shown["fps"],
                self.stats.mean("total"),
                self.summary.bad_frames,
                self.source.stats.dropped,
            )
            self._last_log = now
        if self.max_frames is not None and self.summary.frames >= self.max_frames:
            self.stop("max frames")


def run_loop(
    estimator: Callable[[np.ndarray], list],
    source: FrameSource,
    *,
    window: WindowSink | None = None,
    video: VideoSink | None = None,
    jsonl: JsonlSink | None = None,
    callback: Callable[[Frame, list], bool | None] | None = None,
    max_frames: int | None = None,
    fps_every: float = 5.0,
    overlay: bool = True,
    handle_signals: bool = True,
) -> LiveSummary:
    """Run ``estimator`` on every frame of ``source`` until it ends, a signal, the window closes,
    ``callback`` returns False or ``max_frames`` frames were processed.

    Bad frames (see :func:`~ppl_edge.runtime.sources.sanitize_frame`) and frames the estimator
    fails on are skipped and counted; 50 failures in a row raise. Safe to run in a thread (no
    signal handling there): a robot app runs it beside its control loop.

    Args:
        estimator: ``estimator(frame_bgr (H, W, 3) uint8) -> list[Result]``, e.g. ``Estimator``.
        source: where frames come from; stopped (not closed) when the loop is stopped.
        window, video, jsonl: optional sinks (the caller closes them).
        callback: ``callback(frame, results)`` after each processed frame; return False to stop.
        max_frames: stop after this many processed frames.
        fps_every: seconds between FPS log lines.
        overlay: draw FPS and stage times on the displayed / recorded frames.
        handle_signals: in the main thread, turn the first SIGINT / SIGTERM into a clean stop (a
            second one interrupts at once).

    Returns:
        The run's :class:`LiveSummary`.

    Raises:
        PplEdgeError: the estimator failed on 50 frames in a row.
    """
    loop = LiveLoop(
        estimator,
        source,
        window=window,
        video=video,
        jsonl=jsonl,
        callback=callback,
        max_frames=max_frames,
        fps_every=fps_every,
        overlay=overlay,
    )
    return loop.run(handle_signals=handle_signals)


def _estimator_timings(results: list) -> dict[str, float]:
    """The estimator's per-stage ms of this frame (shared by its results; none without a subject),
    without its "total" (the loop's "estimate" is the same span seen from outside)."""
    timings = dict(results[0].timings) if results else {}
    timings.pop("total", None)
    return timings
