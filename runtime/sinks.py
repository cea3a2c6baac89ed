"""Outputs of the live loop: a display window, a video file and a JSON Lines file.

Every sink is safe to stop at any moment: the video is written under a temporary name and renamed
into place when it is closed, so the final name never holds a half-written file (an interrupted
recording keeps only the hidden temporary one); the JSONL file is written one whole line per frame
and flushed, so each line of it is valid JSON even if the process is killed.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError

log = logging.getLogger(__name__)

# Codecs tried in order per container: mp4v works with the pip OpenCV wheels; avc1 (H.264) where
# OpenCV's FFmpeg has an encoder for it.
CODECS = {
    ".mp4": ("mp4v", "avc1"),
    ".m4v": ("mp4v", "avc1"),
    ".mov": ("mp4v", "avc1"),
    ".avi": ("MJPG", "XVID"),
    ".mkv": ("mp4v", "XVID"),
}


def to_jsonable(value: Any) -> Any:
    """Convert NumPy arrays/scalars, tuples and non-finite floats (-> None) to plain JSON values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class JsonlSink:
    """Writes one JSON object per line, flushed per line.

    Each record goes out as one complete ``write`` of its line, so a reader (or a crash) never sees
    a partial object except, at worst, a truncated last line if the machine loses power.

    Args:
        path: the ``.jsonl`` file; its folder is created. An existing file is replaced.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as err:
            raise PplEdgeError(f"cannot write the JSONL file {self.path}: {err.strerror}") from err
        self.lines = 0

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` (JSON-serialisable after :func:`to_jsonable`) as one line."""
        if self._fd is None:
            raise PplEdgeError(f"JSONL file {self.path} is already closed")
        data = (
            json.dumps(to_jsonable(record), separators=(",", ":"), allow_nan=False) + "\n"
        ).encode()
        view = memoryview(data)
        while view:  # os.write may write less than asked; finish the line before returning
            view = view[os.write(self._fd, view) :]
        self.lines += 1

    def close(self) -> None:
        """Flush to disk and close. Safe to call twice."""
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> JsonlSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoSink:
    """Writes BGR frames to a video file under a temporary name; ``close()`` renames it into place.

    The writer opens on the first frame, whose size fixes the video's size; later frames of another
    size are resized to it (a writer silently drops frames of the wrong size).

    Args:
        path: e.g. ``out.mp4`` (``.mp4``, ``.m4v``, ``.mov``, ``.avi``, ``.mkv``).
        fps: frame rate written in the file.
    """

    def __init__(self, path: str | Path, fps: float = 30.0):
        self.path = Path(path)
        if self.path.suffix.lower() not in CODECS:
            raise PplEdgeError(
                f"video output must end in one of {', '.join(CODECS)}, got '{self.path.name}'"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp_path = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self.fps = fps if fps and fps > 0 else 30.0
        self.codec: str | None = None
        self.frames = 0
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._t0: float | None = None
        self._closed = False

    def _open(self, width: int, height: int) -> None:
        for codec in CODECS[self.path.suffix.lower()]:
            writer = cv2.VideoWriter(
                str(self.tmp_path), cv2.VideoWriter_fourcc(*codec), self.fps, (width, height)
            )
            if writer.isOpened():
                self._writer, self._size, self.codec = writer, (width, height), codec
                log.debug("writing %s with codec %s at %.1f fps", self.path, codec, self.fps)
                return
            writer.release()
        self.tmp_path.unlink(missing_ok=True)
        raise PplEdgeError(
            f"no video encoder for {self.path} (tried "
            f"{', '.join(CODECS[self.path.suffix.lower()])}); try an .avi output"
        )

    def write(self, image: np.ndarray, at: float | None = None) -> None:
        """Append one (H, W, 3) uint8 BGR frame.

        Args:
            image: the frame.
            at: capture time in seconds (any clock) for live sources: the frame is repeated to
                fill the time since the previous one, so the recording plays in real time even
                when frames were dropped. None writes it once.
        """
        if self._closed:
            raise PplEdgeError(f"video {self.path} is already closed")
        h, w = image.shape[:2]
        if self._writer is None:
            self._open(w, h)
            self._t0 = at
        if (w, h) != self._size:
            image = cv2.resize(image, self._size, interpolation=cv2.INTER_AREA)
        repeats = 1
        if at is not None and self._t0 is not None:
            due = int((at - self._t0) * self.fps) + 1  # frames the video should hold by now
            repeats = min(max(due - self.frames, 1), int(self.fps * 10))  # cap: 10 s per gap
        for _ in range(repeats):
            self._writer.write(image)
        self.frames += repeats

    def close(self) -> None:
        """Finish the file and rename it to its final name. With no frame written, nothing is left
        on disk. Safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._writer is None:
            log.warning("no frame was written; %s not created", self.path)
            return
        self._writer.release()
        self._writer = None
        os.replace(self.tmp_path, self.path)

    def __enter__(self) -> VideoSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class WindowSink:
    """Shows frames in an OpenCV window. ``show`` returns False once the user pressed q / Esc or
    closed the window.

    Raises:
        PplEdgeError: when this OpenCV has no GUI support (e.g. opencv-python-headless).
    """

    def __init__(self, title: str = "ppl-edge"):
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as err:
            raise PplEdgeError(
                "cannot open a window: this OpenCV has no GUI support (opencv-python-headless); "
                "pass --headless, or pip install opencv-python"
            ) from err
        self._open = True

    def show(self, image: np.ndarray) -> bool:
        """Display one BGR frame; False when the user asked to quit."""
        if not self._open:
            return False
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
        if key in (ord("q"), 27) or not visible:
            self.close()
            return False
        return True

    def close(self) -> None:
        """Destroy the window. Safe to call twice."""
        if self._open:
            self._open = False
            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                pass

    def __enter__(self) -> WindowSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
