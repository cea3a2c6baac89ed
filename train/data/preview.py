"""Contact sheets of dataset items with their ground-truth skeletons (``ppl-edge data show``)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from ppl_edge.coords import norm_to_px
from ppl_edge.skeleton import edge_colours

MIN_TILE = 128  # small images are enlarged to at least this side so that labels stay readable


def tensor_to_bgr(image) -> np.ndarray:
    """(3, H, W) float RGB in [-1, 1] (torch or NumPy) -> (H, W, 3) uint8 BGR."""
    arr = np.asarray(image.detach().cpu().numpy() if hasattr(image, "detach") else image)
    rgb = np.clip((arr.transpose(1, 2, 0) + 1.0) * 127.5, 0, 255).round().astype(np.uint8)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def draw_skeleton(
    img: np.ndarray,
    kpts_px: np.ndarray,
    visible: np.ndarray | None,
    edges: Sequence[tuple[int, int]] = (),
) -> np.ndarray:
    """Draw keypoints and edges on a copy of ``img``.

    Args:
        img: (H, W, 3) uint8 BGR.
        kpts_px: (J, 2) xy pixels of ``img``.
        visible: (J,) bool or None; hidden joints are drawn as hollow circles, their edges
        dashed-thin.
        edges: (i, j) joint index pairs.

    Returns:
        (H, W, 3) uint8 BGR.
    """
    out = img.copy()
    J = len(kpts_px)
    visible = np.ones(J, dtype=bool) if visible is None else np.asarray(visible, dtype=bool)
    colors = edge_colours(J)  # one hue per joint
    radius = max(2, img.shape[0] // 64)
    pts = [(round(x), round(y)) for x, y in kpts_px]
    for i, j in edges:
        both = visible[i] and visible[j]
        cv2.line(
            out,
            pts[i],
            pts[j],
            (255, 255, 255) if both else (128, 128, 128),
            2 if both else 1,
            cv2.LINE_AA,
        )
    for k in range(J):
        cv2.circle(out, pts[k], radius, colors[k], -1 if visible[k] else 1, cv2.LINE_AA)
    return out


def item_tile(item: dict, edges: Sequence[tuple[int, int]] = ()) -> np.ndarray:
    """One item as a BGR tile: the image with its skeleton, then the reference frame if any."""
    img = tensor_to_bgr(item["image"])
    H, W = img.shape[:2]
    scale = max(1, int(np.ceil(MIN_TILE / max(H, W))))
    big = cv2.resize(img, (W * scale, H * scale), interpolation=cv2.INTER_NEAREST)
    if "keypoints" in item:
        kp = np.asarray(item["keypoints"], dtype=np.float32)
        kp = (norm_to_px(kp, W, H) + 0.5) * scale - 0.5
        vis = np.asarray(item["visible"]) if "visible" in item else None
        big = draw_skeleton(big, kp, vis, edges)
    tiles = [big]
    if "reference" in item:
        ref = tensor_to_bgr(item["reference"])
        tiles.append(cv2.resize(ref, (W * scale, H * scale), interpolation=cv2.INTER_NEAREST))
    return np.concatenate(tiles, axis=1)


def contact_sheet(tiles: Sequence[np.ndarray], cols: int, gap: int = 4) -> np.ndarray:
    """Arrange equal-sized tiles in a grid with ``gap`` pixels of dark grey between them."""
    h, w = tiles[0].shape[:2]
    rows = (len(tiles) + cols - 1) // cols
    sheet = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 40, dtype=np.uint8)
    for n, tile in enumerate(tiles):
        r, c = divmod(n, cols)
        y, x = gap + r * (h + gap), gap + c * (w + gap)
        sheet[y : y + h, x : x + w] = tile
    return sheet
