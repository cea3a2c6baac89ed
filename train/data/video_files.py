"""Video files for ``video:PATH``: finding them, counting their frames, picking reference frames,
and the in-order background-subtraction scan of ``crops="motion"`` (NumPy + OpenCV)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import VIDEO_SUFFIXES
from ppl_edge.motion import Box, MotionCrops, crop_square

log = logging.getLogger(__name__)


def _frame_count(path: Path) -> int:
    """Frames in a video (0 when it cannot be opened)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:  # some containers do not store it: count by decoding
            count = 0
            while cap.grab():
                count += 1
        return count
    finally:
        cap.release()


def list_videos(root: str | Path) -> list[Path]:
    """The video files of ``video:PATH``: PATH itself, or the videos under a folder, sorted.

    Raises:
        PplEdgeError: PATH does not exist.
    """
    root = Path(root).expanduser()
    if root.is_file():
        return [root]
    if root.is_dir():
        return sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
    raise PplEdgeError(
        f"video dataset: {root} does not exist (expected a video file or a "
        f"folder of {', '.join(VIDEO_SUFFIXES)} files)"
    )


def pick_gapped_reference(frame: int, count: int, min_gap: int, max_gap: int) -> int:
    """A random frame of ``[0, count)`` with ``min_gap <= |ref - frame| <= max_gap`` (torch's
    RNG); the farthest frame when none is that close, ``frame`` itself in a one-frame video."""
    below = max(0, frame - min_gap - max(0, frame - max_gap) + 1)  # frames before, in the band
    above = max(0, min(count - 1, frame + max_gap) - (frame + min_gap) + 1)
    if below + above == 0:
        return 0 if frame >= count - 1 - frame else count - 1
    k = int(torch.randint(below + above, ()))
    return max(0, frame - max_gap) + k if k < below else frame + min_gap + (k - below)


def scan_motion(
    path: Path,
    crops: MotionCrops,
    size: int,
    warmup: int,
    stride: int,
    keep_frames: list | None = None,
) -> tuple[list[int], list[Box], list[np.ndarray], int]:
    """Run the background subtractor over a video in order; the frames with a moving subject.

    The first ``crops.history`` frames are read once beforehand to learn the background; then
    every frame updates the model, and each ``stride``-th frame from ``warmup`` on with a motion
    box becomes an item.

    Args:
        path: the video.
        crops: a MotionCrops (reset here).
        size: side of the stored masks.
        warmup: frames at the start that never become items (their masks are poor).
        stride: keep every ``stride``-th frame.
        keep_frames: when a list, every frame read is appended to it JPEG-encoded (quality 95), so
            the dataset can serve frames without seeking in the video.

    Returns:
        (frame indices, their largest motion box, their (size, size) foreground masks packed by
        np.packbits, frames read).
    """
    crops.reset()
    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(crops.history):
            ok, img = cap.read()
            if not ok or img is None:
                break
            crops.mask(img)
    finally:
        cap.release()
    frames, boxes, masks, index = [], [], [], 0
    cap = cv2.VideoCapture(str(path))
    try:
        while True:
            ok, img = cap.read()
            if not ok or img is None:
                break
            if keep_frames is not None:
                keep_frames.append(cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 95])[1])
            found, fg = crops.detect(img)
            if found and index >= warmup and index % stride == 0:
                frames.append(index)
                boxes.append(found[0])
                masks.append(np.packbits(crop_square(fg, found[0], size) > 127))
            index += 1
            if index % 2000 == 0:
                log.info("%s: background subtraction at frame %d", path.name, index)
    finally:
        cap.release()
    return frames, boxes, masks, index
