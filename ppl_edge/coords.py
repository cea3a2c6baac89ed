"""The one pair of functions that converts keypoints between normalised and pixel coordinates.

Keypoints are (x, y) everywhere (house style 3). Inside models and graphs they are normalised to
[-1, 1], where -1 is the centre of the first pixel and +1 the centre of the last one (the
``linspace(-1, 1, W)`` grid of the official code); at public APIs they are pixels.
"""

from __future__ import annotations

import numpy as np


def norm_to_px(kpts_norm: np.ndarray, width: int, height: int) -> np.ndarray:
    """Map (..., 2) xy keypoints in [-1, 1] to pixel coordinates of a width x height image."""
    kpts_norm = np.asarray(kpts_norm, dtype=np.float32)
    scale = np.array([(width - 1) / 2.0, (height - 1) / 2.0], dtype=np.float32)
    return (kpts_norm + 1.0) * scale


def px_to_norm(kpts_px: np.ndarray, width: int, height: int) -> np.ndarray:
    """Inverse of :func:`norm_to_px`."""
    kpts_px = np.asarray(kpts_px, dtype=np.float32)
    scale = np.array([(width - 1) / 2.0, (height - 1) / 2.0], dtype=np.float32)
    return kpts_px / scale - 1.0
