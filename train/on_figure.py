"""On-figure metrics: how much of the predicted pose lies on the subject's foreground mask.

Both metrics use the figure region: the mask binarised at > 0.5 and dilated by ``dilation`` pixels
(a 3 x 3 square per pixel). Keypoints are (x, y) in [-1, 1] (pixel centres at -1 and +1 at the
borders, :func:`ppl_edge.coords.norm_to_px`) and a point is looked up at its nearest pixel; points
outside the image are off the figure.

- :func:`keypoints_on_figure`: fraction of all keypoints that land in the figure region.
- :func:`skeleton_on_figure`: fraction of the total length of the drawn skeleton (segments between
  keypoints along the given edges) that lies in the figure region, sampled every ``step`` pixels.

NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ppl_edge.coords import norm_to_px


def figure_region(masks: np.ndarray, dilation: int = 1) -> np.ndarray:
    """Binarise masks at > 0.5 and dilate them by ``dilation`` pixels (3 x 3 square steps).

    Args:
        masks: (..., H, W) foreground coverage in [0, 1] (float) or bool.
        dilation: pixels to grow the figure by; 0 only binarises.

    Returns:
        (..., H, W) bool.
    """
    region = np.asarray(masks) > 0.5
    for _ in range(int(dilation)):
        pad = [(0, 0)] * (region.ndim - 2) + [(1, 1), (1, 1)]
        padded = np.pad(region, pad)
        h, w = region.shape[-2:]
        grown = np.zeros_like(region)
        for dy in range(3):
            for dx in range(3):
                grown |= padded[..., dy : dy + h, dx : dx + w]
        region = grown
    return region


def _lookup(region: np.ndarray, px: np.ndarray) -> np.ndarray:
    """Whether pixel positions (..., 2) xy fall in a (H, W) bool region, nearest pixel."""
    h, w = region.shape
    ix = np.floor(px[..., 0] + 0.5).astype(np.int64)
    iy = np.floor(px[..., 1] + 0.5).astype(np.int64)
    valid = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = np.zeros(ix.shape, dtype=bool)
    out[valid] = region[iy[valid], ix[valid]]
    return out


def _check(kpts: np.ndarray, masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kpts = np.asarray(kpts, dtype=np.float64)
    masks = np.asarray(masks)
    if masks.ndim == 4 and masks.shape[1] == 1:  # (S, 1, H, W) as datasets give them
        masks = masks[:, 0]
    if kpts.ndim != 3 or kpts.shape[2] != 2 or masks.ndim != 3 or len(masks) != len(kpts):
        raise ValueError(
            f"expected keypoints (S, N, 2) and masks (S, H, W), got {kpts.shape} and {masks.shape}"
        )
    return kpts, masks


def keypoints_on_figure(kpts: np.ndarray, masks: np.ndarray, dilation: int = 1) -> float:
    """Fraction of keypoints inside the dilated figure mask of their image.

    Args:
        kpts: (S, N, 2) xy in [-1, 1].
        masks: (S, H, W) (or (S, 1, H, W)) foreground coverage in [0, 1] or bool.
        dilation: pixels the binarised mask is grown by (see :func:`figure_region`).

    Returns:
        The fraction in [0, 1] over all S x N keypoints (nan when there are none).
    """
    kpts, masks = _check(kpts, masks)
    if kpts.size == 0:
        return float("nan")
    h, w = masks.shape[-2:]
    px = norm_to_px(kpts, w, h).astype(np.float64)  # (S, N, 2)
    inside = [_lookup(region, p) for region, p in zip(figure_region(masks, dilation), px)]
    return float(np.mean(inside))


def skeleton_on_figure(
    kpts: np.ndarray,
    edges: Sequence[tuple[int, int]],
    masks: np.ndarray,
    dilation: int = 1,
    step: float = 0.25,
) -> float:
    """Fraction of the skeleton's total drawn length inside the dilated figure mask.

    Each segment is cut into pieces of at most ``step`` pixels; a piece counts as inside when its
    midpoint's nearest pixel is in the figure region. Lengths are pooled over all images.

    Args:
        kpts: (S, N, 2) xy in [-1, 1].
        edges: skeleton edges (i, j) into the N keypoints.
        masks: (S, H, W) (or (S, 1, H, W)) foreground coverage in [0, 1] or bool.
        dilation: pixels the binarised mask is grown by (see :func:`figure_region`).
        step: longest piece a segment is sampled with, in pixels.

    Returns:
        Inside length / total length in [0, 1] (nan when the skeleton has no length).
    """
    kpts, masks = _check(kpts, masks)
    if step <= 0:
        raise ValueError(f"step must be positive, got {step}")
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if len(edges) == 0:
        return float("nan")
    h, w = masks.shape[-2:]
    px = norm_to_px(kpts, w, h).astype(np.float64)  # (S, N, 2)
    inside_len = total_len = 0.0
    for region, p in zip(figure_region(masks, dilation), px):
        a, b = p[edges[:, 0]], p[edges[:, 1]]  # (E, 2) segment ends
        length = np.linalg.norm(b - a, axis=1)  # (E,)
        if not np.isfinite(length).all():
            raise ValueError("keypoints must be finite")
        pieces = max(1, math.ceil(float(length.max()) / step))
        t = (np.arange(pieces) + 0.5) / pieces  # (P,) piece midpoints along each segment
        pts = a[:, None] + t[None, :, None] * (b - a)[:, None]  # (E, P, 2)
        frac = _lookup(region, pts).mean(axis=1)  # (E,) inside share of each segment
        inside_len += float((frac * length).sum())
        total_len += float(length.sum())
    return inside_len / total_len if total_len > 0 else float("nan")
