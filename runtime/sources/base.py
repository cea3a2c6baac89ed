"""What every frame source shares: the :class:`Frame` record, statistics, frame sanitising, the
:class:`FrameSource` interface and the sources that need no capture device (arrays, image files)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

log = logging.getLogger(__name__)

STREAM_SCHEMES = (
    "rtsp://",
    "rtsps://",
    "rtmp://",
    "http://",
    "https://",
    "udp://",
    "rtp://",
    "tcp://",
)
MAX_SIDE = 4096  # larger frames are shrunk: nothing downstream needs more, and writers choke on it
MAX_PIXELS = 1 << 28  # 268 M pixels: beyond this a frame is rejected instead of resized


@dataclass(frozen=True)
class Frame:
    """One frame as a source delivered it.

    Attributes:
        image: (H, W, 3) uint8 BGR for a good frame; anything (None, another dtype, ...) for a bad
            one.
        index: 0-based position in the stream; gaps are frames dropped by latest-frame capture.
        capture_time: wall-clock time of the read, seconds since the epoch (``time.time()``).
        capture_mono: ``time.perf_counter()`` at the read, for latency.
        position_ms: media time of the frame in a file, None for live sources.
    """

    image: Any
    index: int
    capture_time: float
    capture_mono: float
    position_ms: float | None = None


@dataclass
class SourceStats:
    """Counters of a source (updated by its reader; read them after iteration)."""

    read: int = 0  # frames the device / file returned
    delivered: int = 0  # frames handed to the consumer
    dropped: int = 0  # frames overwritten by a newer one before the consumer took them
    reconnects: int = 0  # successful reopenings after a failed read
    failed_reads: int = 0  # reads that failed (each triggers a reconnect attempt on live sources)
    replayed: int = 0  # frames read again after a reconnection to a finite stream, not delivered


class Capture(Protocol):
    """What a source needs from a ``cv2.VideoCapture``-like object."""

    def read(self) -> tuple[bool, Any]: ...
    def isOpened(self) -> bool: ...  # OpenCV's name
    def release(self) -> None: ...


def sanitize_frame(image: Any, max_side: int = MAX_SIDE) -> tuple[np.ndarray | None, str]:
    """Turn whatever a source returned into an (H, W, 3) uint8 BGR frame, or reject it.

    Conversions are the estimator's (:func:`ppl_edge.preprocess.as_bgr8`: grayscale, BGRA,
    16-bit, float [0, 1] / [0, 255]); in addition frames over ``MAX_PIXELS`` are rejected before any
    conversion, and frames with a side above ``max_side`` are shrunk to fit (aspect kept), so that
    sinks and drawing never see a giant image.

    Args:
        image: anything; normally (H, W, 3) uint8 BGR.
        max_side: largest side kept as is, in pixels.

    Returns:
        (frame, "") for a usable frame, else (None, reason) with a one-line reason.
    """
    from ppl_edge.preprocess import BadFrameError, as_bgr8

    if (
        isinstance(image, np.ndarray)
        and image.ndim >= 2
        and image.shape[0] * image.shape[1] > MAX_PIXELS
    ):
        return None, f"frame of {image.shape[1]}x{image.shape[0]} pixels is too large"
    try:
        img = as_bgr8(image)
    except BadFrameError as err:
        return None, str(err)
    h, w = img.shape[:2]
    if max(h, w) > max_side:
        f = max_side / max(h, w)
        img = cv2.resize(
            img, (max(1, round(w * f)), max(1, round(h * f))), interpolation=cv2.INTER_AREA
        )
    return img, ""


class FrameSource:
    """Base class: iterate to get :class:`Frame` objects; ``stop()`` ends the iteration from any
    thread (a signal handler included); ``close()`` releases the device. A context manager."""

    name: str = "source"
    is_live: bool = False
    fps: float | None = None  # nominal frame rate when known

    def __init__(self) -> None:
        self.stats = SourceStats()
        self._stop = threading.Event()

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def stop(self) -> None:
        """Ask the iteration to end after the current frame (thread- and signal-safe)."""
        self._stop.set()

    def close(self) -> None:
        """Stop and release the device. Safe to call twice."""
        self.stop()

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArraySource(FrameSource):
    """Frames already in memory, e.g. a rendered synthetic clip. ``frames``: (T, H, W, 3) uint8 BGR
    or a sequence of frames (bad ones allowed: they reach the loop's validation)."""

    def __init__(self, frames: Sequence[Any] | np.ndarray, fps: float = 30.0, name: str = "frames"):
        super().__init__()
        self.frames, self.fps, self.name = frames, fps, name

    def __iter__(self) -> Iterator[Frame]:
        for i, image in enumerate(self.frames):
            if self._stop.is_set():
                return
            self.stats.read += 1
            self.stats.delivered += 1
            yield Frame(image, i, time.time(), time.perf_counter(), i * 1000.0 / self.fps)


class ImageSequenceSource(FrameSource):
    """Image files read in the given order; an unreadable file becomes a bad (None) frame."""

    def __init__(self, paths: Sequence[str | Path], name: str = "images"):
        super().__init__()
        self.paths, self.name = [Path(p) for p in paths], name

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            if self._stop.is_set():
                return
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                log.warning("could not read image %s", path)
            self.stats.read += 1
            self.stats.delivered += 1
            yield Frame(image, i, time.time(), time.perf_counter(), None)
