"""Sources read through an OpenCV capture (cameras, video files, network streams, GStreamer
pipelines), with a latest-frame reader thread for live sources and reconnection with back-off.

Reconnection has one budget per stream: ``retries`` attempts in all, however many frames arrive in
between, each after a back-off that doubles per attempt (so a stream that keeps dropping ends). A
stream of known length (a video file over HTTP: it reports a frame count) is read like a file, in
order and without drops; after a reconnection its frames up to the last one delivered are skipped,
so no frame reaches the consumer twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator

import cv2

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.sources.base import Capture, Frame, FrameSource

log = logging.getLogger(__name__)


class CaptureSource(FrameSource):
    """A ``cv2.VideoCapture``-like device, file or stream.

    Args:
        opener: returns a new capture object; called again to reconnect.
        name: shown in messages (camera index, URL, path).
        live: latest-frame capture with drops, and reconnection on failed reads.
        hint: what to check when the capture does not open, for the error message.
        retries: reconnection attempts over the whole stream before it ends (live and network
            sources only).
        backoff_s: first wait before reconnecting; doubles per attempt up to ``max_backoff_s``.
        realtime: for files, pace reads at the file's frame rate (implies latest-frame capture).
        finite_as_file: a live source that reports a frame count (a video file over HTTP) is read
            as a file (in order, no drops) that still reconnects, resuming after the last frame
            delivered.

    Raises:
        PplEdgeError: when the capture does not open.
    """

    def __init__(
        self,
        opener: Callable[[], Capture],
        name: str,
        *,
        live: bool,
        hint: str = "",
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        realtime: bool = False,
        finite_as_file: bool = False,
    ):
        super().__init__()
        self.name = name
        self._opener, self._hint = opener, hint
        self._reconnect = live
        self._retries = retries if live else 0
        self._attempts = 0  # reconnection attempts so far, over the whole stream
        self._backoff, self._max_backoff = backoff_s, max_backoff_s
        self._cap = opener()
        if not self._cap.isOpened():
            self._cap.release()
            raise PplEdgeError(f"could not open {name}" + (f": {hint}" if hint else ""))
        fps = self._get(cv2.CAP_PROP_FPS) or 0.0
        self.fps = fps if 0.0 < fps < 1000.0 else None
        self._finite = self._length() is not None
        self.is_live = live and not (finite_as_file and self._finite)
        self._last_pos: float | None = None  # media position of the last frame delivered
        self._skip_to: float | None = None  # after a reconnection: skip frames up to here
        self._period = 1.0 / self.fps if realtime and self.fps else 0.0
        self._threaded = self.is_live or realtime
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._ended = False
        self._count = 0
        self._thread: threading.Thread | None = None
        if self._threaded:
            self._thread = threading.Thread(
                target=self._reader, name=f"capture:{name}", daemon=True
            )
            self._thread.start()

    # -- reading -------------------------------------------------------------------------------
    def _get(self, prop: int) -> float | None:
        get = getattr(self._cap, "get", None)
        return None if get is None else float(get(prop))

    def _length(self) -> int | None:
        """The frame count of a stream of known length; None for live streams, which report 0, a
        negative count or nonsense."""
        count = self._get(cv2.CAP_PROP_FRAME_COUNT)
        return int(count) if count is not None and 0 < count < 1e12 else None

    def _read_one(self) -> Frame | None:
        """Read the next frame, reconnecting with back-off where allowed; None at the end."""
        while not self._stop.is_set():
            ok, image = self._cap.read()
            if ok:
                self.stats.read += 1
                pos = self._get(cv2.CAP_PROP_POS_FRAMES) if self._finite else None
                if self._skip_to is not None and pos is not None and pos <= self._skip_to:
                    self.stats.replayed += 1  # delivered before the reconnection
                    continue
                self._skip_to, self._last_pos = None, pos
                ms = None if self.is_live else self._get(cv2.CAP_PROP_POS_MSEC)
                frame = Frame(image, self._count, time.time(), time.perf_counter(), ms)
                self._count += 1
                return frame
            if not self._reconnect or self._at_end():
                return None  # end of a file or of a finite stream: nothing to reconnect to
            self.stats.failed_reads += 1
            if not self._reopen():
                return None
        return None

    def _reopen(self) -> bool:
        """One attempt of the stream's reconnection budget, after its back-off; False when the
        budget is spent or the source was stopped during the wait."""
        if self._attempts >= self._retries:
            log.warning("%s: giving up after %d reconnection attempts", self.name, self._attempts)
            return False
        self._attempts += 1
        delay = min(self._backoff * 2 ** (self._attempts - 1), self._max_backoff)
        log.warning(
            "%s: read failed; reconnecting in %.1f s (attempt %d/%d)",
            self.name,
            delay,
            self._attempts,
            self._retries,
        )
        if self._stop.wait(delay):
            return False
        self._cap.release()
        self._cap = self._opener()
        if self._cap.isOpened():
            self.stats.reconnects += 1
            if self._finite and self._last_pos:
                self._resume(self._last_pos)
        return True

    def _resume(self, position: float) -> None:
        """Continue a reopened stream of known length after the frame at ``position``: seek there
        when the capture can (a new HTTP range request), and skip what it replays anyway."""
        self._skip_to = position
        seek = getattr(self._cap, "set", None)
        if seek is not None:
            seek(cv2.CAP_PROP_POS_FRAMES, position)

    def _at_end(self) -> bool:
        """True when a stream of known length (e.g. a video file over HTTP) was read to its end."""
        length = self._length()
        pos = self._get(cv2.CAP_PROP_POS_FRAMES)
        return length is not None and pos is not None and pos >= length

    def _reader(self) -> None:
        """Background thread: keep only the newest frame in ``self._latest``."""
        next_due = time.perf_counter()
        try:
            while not self._stop.is_set():
                frame = self._read_one()
                if frame is None:
                    break
                with self._cond:
                    if self._latest is not None:
                        self.stats.dropped += 1
                    self._latest = frame
                    self._cond.notify()
                if self._period:
                    next_due += self._period
                    self._stop.wait(max(0.0, next_due - time.perf_counter()))
        except Exception:  # a crashing driver must end the stream, not hang the consumer
            log.exception("%s: capture thread failed", self.name)
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def __iter__(self) -> Iterator[Frame]:
        if not self._threaded:
            while not self._stop.is_set():
                frame = self._read_one()
                if frame is None:
                    return
                self.stats.delivered += 1
                yield frame
            return
        while True:
            with self._cond:
                while self._latest is None and not self._ended and not self._stop.is_set():
                    self._cond.wait(0.05)
                if self._latest is None or self._stop.is_set():
                    return
                frame, self._latest = self._latest, None
            self.stats.delivered += 1
            yield frame

    def stop(self) -> None:
        super().stop()
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=3.0)
            if self._thread.is_alive():  # a blocking driver read; releasing under it could crash
                log.warning(
                    "%s: capture thread did not stop; leaving the device to the OS", self.name
                )
                return
            self._thread = None
        if self._cap is not None:
            self._cap.release()
            self._cap = None
