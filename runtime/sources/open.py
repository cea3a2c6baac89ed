"""Opening a frame source by name: camera indices, device paths, CSI cameras and GStreamer
pipelines, stream URLs, files, folders and globs (:func:`open_source`)."""

from __future__ import annotations

import glob
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import IMAGE_SUFFIXES
from ppl_edge.runtime.sources.base import STREAM_SCHEMES, FrameSource, ImageSequenceSource
from ppl_edge.runtime.sources.capture import CaptureSource

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class OpenOptions:
    """What :func:`open_source` passes to every opener."""

    realtime: bool = False
    retries: int = 5
    backoff_s: float = 0.5
    width: int | None = None
    height: int | None = None

    @property
    def capture(self) -> dict[str, Any]:
        return {"retries": self.retries, "backoff_s": self.backoff_s}


def _open_camera(text: str, opt: OpenOptions) -> FrameSource:
    index = int(text)
    hint = (
        f"check that camera {index} is connected and not used by another program "
        "(Linux: ls /dev/video*, v4l2-ctl --list-devices), or pass --source for a file or URL"
    )
    opener = _camera_opener(index, cv2.CAP_ANY, opt.width, opt.height)
    return CaptureSource(opener, f"camera {index}", live=True, hint=hint, **opt.capture)


def _open_v4l2(text: str, opt: OpenOptions) -> FrameSource:
    device = text.removeprefix("v4l2://")
    hint = f"check that {device} exists and is readable (v4l2-ctl --list-devices)"
    opener = _camera_opener(device, cv2.CAP_V4L2, opt.width, opt.height)
    return CaptureSource(opener, device, live=True, hint=hint, **opt.capture)


def _open_gstreamer(text: str, opt: OpenOptions) -> FrameSource:
    if not _has_gstreamer():
        raise PplEdgeError(
            f"source '{text}' needs OpenCV with GStreamer, but this OpenCV has none "
            "(cv2.getBuildInformation()); on a Jetson use JetPack's OpenCV (python3-opencv)"
        )
    name = text
    if text.startswith("csi://"):
        sensor = text.removeprefix("csi://")
        if not sensor.isdigit():
            raise PplEdgeError(f"expected csi://N with a sensor number N, got '{text}'")
        text = csi_pipeline(int(sensor), opt.width or 1280, opt.height or 720)
    hint = (
        "check the pipeline with gst-launch-1.0 (it must end in appsink); for CSI cameras: "
        "sudo systemctl restart nvargus-daemon"
    )
    return CaptureSource(
        lambda: cv2.VideoCapture(text, cv2.CAP_GSTREAMER), name, live=True, hint=hint, **opt.capture
    )


def _open_stream(text: str, opt: OpenOptions) -> FrameSource:
    hint = "check the URL, the network and the credentials (try: ffprobe URL)"
    return CaptureSource(
        lambda: cv2.VideoCapture(text, cv2.CAP_FFMPEG),
        text,
        live=True,
        hint=hint,
        finite_as_file=True,  # a video file over HTTP: in order, resumed after a reconnection
        **opt.capture,
    )


def _open_path(text: str, opt: OpenOptions) -> FrameSource:
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
            realtime=opt.realtime,
            **opt.capture,
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


Opener = Callable[[str, OpenOptions], FrameSource]
# The registry of source kinds, tried in order: (name, matches(text), opener). A new kind of source
# is one opener and one line here (docs/contracts.md, "Where additions go").
OPENERS: list[tuple[str, Callable[[str], bool], Opener]] = [
    ("camera", str.isdigit, _open_camera),
    ("v4l2", lambda t: t.startswith(("v4l2://", "/dev/video")), _open_v4l2),
    ("gstreamer", lambda t: t.startswith("csi://") or "!" in t, _open_gstreamer),
    ("stream", lambda t: t.lower().startswith(STREAM_SCHEMES), _open_stream),
    ("path", lambda t: True, _open_path),  # files, folders, globs, file://
]


def open_source(
    spec: int | str,
    *,
    realtime: bool = False,
    retries: int = 5,
    backoff_s: float = 0.5,
    width: int | None = None,
    height: int | None = None,
) -> FrameSource:
    """Open a frame source from a camera index or a URI (the first matching entry of
    :data:`OPENERS`).

    Args:
        spec: camera index (``0`` or ``"0"``); ``/dev/video0`` or ``v4l2:///dev/video0``;
            ``csi://0`` (Jetson CSI camera); a GStreamer pipeline (contains ``!``); an
            ``rtsp://`` / ``http(s)://`` / ``rtmp://`` / ``udp://`` URL; a video file, an image
            file, a folder of images or a quoted glob such as ``"frames/*.png"`` (``file://``
            allowed).
        realtime: pace video files at their frame rate with latest-frame capture.
        retries: reconnection attempts of a live or network source, over the whole stream.
        backoff_s: first reconnection delay, doubling per attempt.
        width, height: requested camera resolution (cameras and csi:// only).

    Returns:
        An iterable :class:`FrameSource`.

    Raises:
        PplEdgeError: the source does not exist or does not open; the message says what to check.
    """
    options = OpenOptions(realtime, retries, backoff_s, width, height)
    text = str(spec).strip()
    for _, matches, opener in OPENERS:
        if matches(text):
            return opener(text, options)
    raise AssertionError("the path opener matches everything")  # pragma: no cover
