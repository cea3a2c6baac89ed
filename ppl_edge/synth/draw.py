"""cv2 drawing of the renderer's tapered capsules, in fixed point (sub-pixel accurate)."""

from __future__ import annotations

import cv2
import numpy as np

SHIFT = 4  # cv2 sub-pixel bits
FIXED = float(1 << SHIFT)


def capsules(p0: np.ndarray, p1: np.ndarray, r0: np.ndarray, r1: np.ndarray) -> list:
    """Fixed-point geometry of tapered capsules for cv2 (all bones at once).

    Args:
        p0, p1: (B, 2) end points in render pixels; r0, r1: (B,) end radii.

    Returns:
        B tuples ``(centre0, centre1, radius0, radius1, quad (4, 2) int32)`` in 1/16 pixels.
    """
    d = p1 - p0
    n = (
        np.stack([-d[:, 1], d[:, 0]], axis=1)
        / np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)[:, None]
    )
    quad = np.stack(
        [p0 + n * r0[:, None], p1 + n * r1[:, None], p1 - n * r1[:, None], p0 - n * r0[:, None]],
        axis=1,
    )  # (B, 4, 2)
    quad = np.round(quad * FIXED).astype(np.int32)
    c0 = np.round(p0 * FIXED).astype(np.int64).tolist()
    c1 = np.round(p1 * FIXED).astype(np.int64).tolist()
    rr0 = np.round(r0 * FIXED).astype(np.int64).tolist()
    rr1 = np.round(r1 * FIXED).astype(np.int64).tolist()
    return list(zip(c0, c1, rr0, rr1, quad))


def fill_capsule(img: np.ndarray, geometry: tuple, color, aa: bool) -> None:
    """Draw one filled tapered capsule (geometry from :func:`capsules`) into ``img``."""
    c0, c1, r0, r1, quad = geometry
    line = cv2.LINE_AA if aa else cv2.LINE_8
    cv2.circle(img, c0, r0, color, -1, line, SHIFT)
    cv2.circle(img, c1, r1, color, -1, line, SHIFT)
    cv2.fillConvexPoly(img, quad, color, line, SHIFT)
