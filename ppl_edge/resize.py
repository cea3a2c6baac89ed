"""The anti-aliased shrink of the input pipeline, and OpenCV's thread count around it (NumPy +
OpenCV only; :mod:`ppl_edge.preprocess` builds the letterbox on it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError

RESIZE_METHODS = ("fast", "area")


def resize(image: np.ndarray, width: int, height: int, method: str = "fast") -> np.ndarray:
    """Resize with anti-aliasing when shrinking.

    ``area`` is the training transform: OpenCV's INTER_AREA when shrinking (every source pixel
    counts; 5 ms for a 1080p frame on one core), bilinear when enlarging. ``fast`` first samples
    bilinearly at twice the target size, then area-averages 2x2 (each output pixel averages 4
    bilinear samples, 16 source pixels): about 10x cheaper on camera frames, within a few grey
    levels of ``area`` on natural images. Both follow the pixel-centre convention of
    :class:`Letterbox`, so the map stays exact.

    Args:
        image: (H, W, 3) uint8.
        width, height: output size.
        method: "fast" or "area".
    """
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if width >= w and height >= h:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    if method == "fast" and w > 2 * width and h > 2 * height:
        image = double_size_samples(image, width, height)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def double_size_samples(
    image: np.ndarray, width: int, height: int, out: np.ndarray | None = None
) -> np.ndarray:
    """The fast resize's first stage: bilinear samples at twice the target size (written into
    ``out``, a (2 height, 2 width, 3) uint8 array or view, when given)."""
    h, w = image.shape[:2]
    # At an odd integer ratio every bilinear sample sits on a source pixel centre, where
    # nearest-exact picks the same pixel: identical output, about half the time.
    odd = w % (2 * width) == 0 and h % (2 * height) == 0
    odd = odd and (w // (2 * width)) % 2 == 1 and (h // (2 * height)) % 2 == 1
    inter = cv2.INTER_NEAREST_EXACT if odd else cv2.INTER_LINEAR
    samples = cv2.resize(image, (2 * width, 2 * height), dst=out, interpolation=inter)
    if out is not None and not np.may_share_memory(samples, out):
        out[...] = samples  # an OpenCV that did not write into the view
        return out
    return samples


@contextmanager
def opencv_threads(count: int | None) -> Iterator[None]:
    """OpenCV's thread count set to ``count`` for the block, then restored (None: unchanged).

    OpenCV's resizes and blob building split even a 64 x 64 image over its whole pool; with the
    model on one thread, waking (or, on a busy CPU, waiting for) the pool costs more than the
    work. ``ppl-edge live`` and ``bench`` run the pipeline with their ``--threads``.
    """
    if count is None:
        yield
        return
    if count < 1:
        raise PplEdgeError(f"threads must be >= 1, got {count}")
    before = cv2.getNumThreads()
    cv2.setNumThreads(count)
    try:
        yield
    finally:
        cv2.setNumThreads(before)
