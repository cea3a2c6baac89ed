"""Frame sources for the live loop: cameras, video files, image folders and globs, network streams,
GStreamer pipelines (Jetson CSI cameras) and in-memory frames.

Live sources (cameras, URLs, pipelines) are read by a background thread that keeps only the newest
frame, so latency never grows when inference is slower than the camera; the frames it overwrites are
counted as dropped. Files are read in order with no drops, unless ``realtime=True`` paces them at the
file's frame rate through the same latest-frame reader. A live stream whose read fails is reopened
with exponential back-off, then ends cleanly. Sources hand frames over as read; the live loop
validates them with :func:`sanitize_frame`, which fixes what it can and rejects the rest.
"""

from __future__ import annotations

import glob
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import IMAGE_SUFFIXES

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
        image: (H, W, 3) uint8 BGR for a good frame; anything (None, another dtype, ...) for a bad one.
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


class CaptureSource(FrameSource):
    """A ``cv2.VideoCapture``-like device, file or stream.

    Args:
        opener: returns a new capture object; called again to reconnect.
        name: shown in messages (camera index, URL, path).
        live: latest-frame capture with drops, and reconnection on failed reads.
        hint: what to check when the capture does not open, for the error message.
        retries: reconnection attempts after a failed read before the stream ends (live only).
        backoff_s: first wait before reconnecting; doubles per attempt up to ``max_backoff_s``.
        realtime: for files, pace reads at the file's frame rate (implies latest-frame capture).

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
    ):
        super().__init__()
        self.name, self.is_live = name, live
        self._opener, self._hint = opener, hint
        self._retries = retries if live else 0
        self._backoff, self._max_backoff = backoff_s, max_backoff_s
        self._cap = opener()
        if not self._cap.isOpened():
            self._cap.release()
            raise PplEdgeError(f"could not open {name}" + (f": {hint}" if hint else ""))
        get = getattr(self._cap, "get", None)
        fps = float(get(cv2.CAP_PROP_FPS)) if get else 0.0
        self.fps = fps if 0.0 < fps < 1000.0 else None
        self._period = 1.0 / self.fps if realtime and self.fps else 0.0
        self._threaded = live or realtime
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
    def _read_one(self) -> Frame | None:
        """Read the next frame, reconnecting with back-off on live sources; None at the end."""
        attempt = 0
        while not self._stop.is_set():
            ok, image = self._cap.read()
            if ok:
                self.stats.read += 1
                get = getattr(self._cap, "get", None)
                pos = None if self.is_live or get is None else float(get(cv2.CAP_PROP_POS_MSEC))
                frame = Frame(image, self._count, time.time(), time.perf_counter(), pos)
                self._count += 1
                return frame
            if not self.is_live or self._at_end():
                return None  # end of a file or of a finite stream: nothing to reconnect to
            self.stats.failed_reads += 1
            if attempt >= self._retries:
                log.warning("%s: giving up after %d reconnection attempts", self.name, attempt)
                return None
            attempt += 1
            delay = min(self._backoff * 2 ** (attempt - 1), self._max_backoff)
            log.warning(
                "%s: read failed; reconnecting in %.1f s (attempt %d/%d)",
                self.name,
                delay,
                attempt,
                self._retries,
            )
            if self._stop.wait(delay):
                return None
            self._cap.release()
            self._cap = self._opener()
            if self._cap.isOpened():
                self.stats.reconnects += 1
        return None

    def _at_end(self) -> bool:
        """True when a stream of known length (e.g. a video file over HTTP) was read to its end;
        live streams report no frame count (0 or negative)."""
        get = getattr(self._cap, "get", None)
        if get is None:
            return False
        count = float(get(cv2.CAP_PROP_FRAME_COUNT))
        return 0 < count < 1e12 and float(get(cv2.CAP_PROP_POS_FRAMES)) >= count

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


# -- opening sources by name -------------------------------------------------------------------
def csi_pipeline(
    sensor_id: int = 0, width: int = 1280, height: int = 720, fps: int = 30, flip: int = 0
) -> str:
    """The GStreamer pipeline for a Jetson CSI camera (nvarguscamerasrc), ending in a BGR appsink
    that keeps one buffer, so the driver never queues stale frames."""
    return (
        f"nvarguscamerasrc sensor-id={sensor_id} ! video/x-raw(memory:NVMM), width={width}, "
        f"height={height}, framerate={fps}/1 ! nvvidconv flip-method={flip} ! video/x-raw, "
        f"format=BGRx ! videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1"
    )


def _has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if "GStreamer:" in line:
            return "YES" in line
    return False


def _camera_opener(index: int | str, api: int, width: int | None, height: int | None):
    def opener() -> cv2.VideoCapture:
        cap = cv2.VideoCapture(index, api)
        if width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # fewer stale frames in the driver's queue
        return cap

    return opener


def open_source(
    spec: int | str,
    *,
    realtime: bool = False,
    retries: int = 5,
    backoff_s: float = 0.5,
    width: int | None = None,
    height: int | None = None,
) -> FrameSource:
    """Open a frame source from a camera index or a URI.

    Args:
        spec: camera index (``0`` or ``"0"``); ``/dev/video0`` or ``v4l2:///dev/video0``;
            ``csi://0`` (Jetson CSI camera); a GStreamer pipeline (contains ``!``); an
            ``rtsp://`` / ``http(s)://`` / ``rtmp://`` / ``udp://`` URL; a video file, an image file,
            a folder of images or a quoted glob such as ``"frames/*.png"`` (``file://`` allowed).
        realtime: pace video files at their frame rate with latest-frame capture.
        retries: reconnection attempts of live sources after a failed read.
        backoff_s: first reconnection delay, doubling per attempt.
        width, height: requested camera resolution (cameras and csi:// only).

    Returns:
        An iterable :class:`FrameSource`.

    Raises:
        PplEdgeError: the source does not exist or does not open; the message says what to check.
    """
    kw = {"retries": retries, "backoff_s": backoff_s}
    text = str(spec).strip()
    if isinstance(spec, int) or text.isdigit():
        hint = (
            f"check that camera {int(text)} is connected and not used by another program "
            "(Linux: ls /dev/video*, v4l2-ctl --list-devices), or pass --source for a file or URL"
        )
        return CaptureSource(
            _camera_opener(int(text), cv2.CAP_ANY, width, height),
            f"camera {int(text)}",
            live=True,
            hint=hint,
            **kw,
        )
    if text.startswith(("v4l2://", "/dev/video")):
        device = text.removeprefix("v4l2://")
        hint = f"check that {device} exists and is readable (v4l2-ctl --list-devices)"
        return CaptureSource(
            _camera_opener(device, cv2.CAP_V4L2, width, height), device, live=True, hint=hint, **kw
        )
    if text.startswith("csi://") or "!" in text:
        if not _has_gstreamer():
            raise PplEdgeError(
                f"source '{text}' needs OpenCV with GStreamer, but this OpenCV has none "
                "(cv2.getBuildInformation()); on a Jetson use JetPack's OpenCV (python3-opencv)"
            )
        if text.startswith("csi://"):
            sensor = text.removeprefix("csi://")
            if not sensor.isdigit():
                raise PplEdgeError(f"expected csi://N with a sensor number N, got '{text}'")
            text = csi_pipeline(int(sensor), width or 1280, height or 720)
        hint = (
            "check the pipeline with gst-launch-1.0 (it must end in appsink); for CSI cameras: "
            "sudo systemctl restart nvargus-daemon"
        )
        return CaptureSource(
            lambda: cv2.VideoCapture(text, cv2.CAP_GSTREAMER), str(spec), live=True, hint=hint, **kw
        )
    if text.lower().startswith(STREAM_SCHEMES):
        hint = "check the URL, the network and the credentials (try: ffprobe URL)"
        return CaptureSource(
            lambda: cv2.VideoCapture(text, cv2.CAP_FFMPEG), text, live=True, hint=hint, **kw
        )
    text = text.removeprefix("file://")
    path = Path(text).expanduser()
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise PplEdgeError(f"folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)})")
        return ImageSequenceSource(images, name=str(path))
    if path.is_file():
        if path.suffix.lower() in IMAGE_SUFFIXES:
            return ImageSequenceSource([path], name=str(path))
        hint = "not a video OpenCV can decode (try: ffprobe FILE)"
        return CaptureSource(
            lambda: cv2.VideoCapture(str(path)),
            str(path),
            live=False,
            hint=hint,
            realtime=realtime,
            **kw,
        )
    if any(c in text for c in "*?["):
        matches = sorted(glob.glob(str(path)))
        images = [m for m in matches if Path(m).suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise PplEdgeError(f"glob '{text}' matches no image files")
        return ImageSequenceSource(images, name=text)
    raise PplEdgeError(
        f"source not found: '{text}'; expected a camera index, a video file, an image folder or "
        "glob, an rtsp/http URL, csi://N or a GStreamer pipeline"
    )
