"""Moving subjects in a fixed camera's frames: background subtraction, boxes, square crops.

NumPy + OpenCV only, shared by the live runtime (``ppl-edge live --crops motion``) and the video
dataset's fixed-camera mode (``video:PATH`` with ``crops="motion"``), so a model trains on the crops
it later sees live.

Boxes are (x0, y0, x1, y1) in frame pixels, x1 / y1 exclusive; a box may extend past the frame
(:func:`crop_square` pads it with zeros, as the runtime's letterbox does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in frame pixels, x1 / y1 exclusive
MOTION_METHODS = ("mog2", "knn")


def square_box(x0: float, y0: float, x1: float, y1: float, padding: float) -> Box:
    """The square around a box, its side = longest side · (1 + 2 · padding), same centre."""
    side = max(1, int(round(max(x1 - x0, y1 - y0) * (1.0 + 2.0 * padding))))
    left = int(round((x0 + x1 - side) / 2.0))
    top = int(round((y0 + y1 - side) / 2.0))
    return left, top, left + side, top + side


def merge_overlapping(boxes: list[list[float]]) -> list[list[float]]:
    """Union boxes that overlap until none do (limbs the mask split from a body join it again)."""
    boxes = [list(b) for b in boxes]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    boxes[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def crop_square(image: np.ndarray, box: Box, size: int, nearest: bool = False) -> np.ndarray:
    """Cut ``box`` out of ``image`` (zeros where it leaves the image) and resize it to size x size.

    Args:
        image: (H, W) or (H, W, C) array, e.g. a uint8 BGR frame or a uint8 mask.
        box: (x0, y0, x1, y1) region in image pixels; may extend past the image.
        size: side of the output.
        nearest: nearest-neighbour resampling (labels); else INTER_AREA when shrinking and
            bilinear when enlarging (the training transform).

    Returns:
        (size, size[, C]) array of ``image``'s dtype.

    Raises:
        PplEdgeError: an empty box.
    """
    h, w = image.shape[:2]
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise PplEdgeError(f"crop box {box} is empty; expected x1 > x0 and y1 > y0")
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if (ix0, iy0, ix1, iy1) == (x0, y0, x1, y1):
        region = image[y0:y1, x0:x1]
    else:
        region = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], dtype=image.dtype)
        if ix1 > ix0 and iy1 > iy0:
            region[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = image[iy0:iy1, ix0:ix1]
    side = max(x1 - x0, y1 - y0)
    if nearest:
        interp = cv2.INTER_NEAREST
    else:
        interp = cv2.INTER_AREA if size < side else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(region), (size, size), interpolation=interp)


def frame_to_crop(points_px: np.ndarray, box: Box, size: int) -> np.ndarray:
    """Map (..., 2) xy frame pixels to pixels of :func:`crop_square`'s output (cv2.resize's
    pixel-centre convention: ``x' = (x - x0 + 0.5) * size / (x1 - x0) - 0.5``)."""
    x0, y0, x1, y1 = box
    origin = np.array([x0, y0], dtype=np.float32)
    scale = np.array([size / (x1 - x0), size / (y1 - y0)], dtype=np.float32)
    return (np.asarray(points_px, dtype=np.float32) - origin + 0.5) * scale - 0.5


@dataclass
class MotionCrops:
    """Boxes around moving subjects, from background subtraction.

    Called on a (H, W, 3) uint8 BGR frame, returns square boxes (x0, y0, x1, y1), largest first:
    moving regions cleaned with morphology, split into connected components, padded into squares;
    several movers -> several boxes.

    Args:
        method: "mog2" or "knn" (OpenCV background subtractors).
        history: frames the background model remembers.
        threshold: MOG2 variance / KNN distance threshold (OpenCV defaults 16 / 400).
        min_area: smallest blob kept, as a fraction of the frame area.
        padding: margin added on each side of a blob, as a fraction of its longest side.
        max_subjects: at most this many boxes, largest first.
        kernel: side of the morphology kernel (pixels at a 640-pixel-wide frame, scaled).
        hold: frames to keep the last boxes when motion stops (a subject that stands still).
        fallback: what to return when nothing moved for longer than ``hold``: "full" (the
            whole frame) or "none" (no box, hence no pose).
    """

    method: str = "mog2"
    history: int = 200
    threshold: float | None = None
    min_area: float = 0.002
    padding: float = 0.1
    max_subjects: int = 4
    kernel: int = 5
    hold: int = 15
    fallback: str = "full"
    _subtractor: object = field(default=None, init=False, repr=False)
    _last: list = field(default_factory=list, init=False, repr=False)
    _still: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.method not in MOTION_METHODS:
            raise PplEdgeError(f"motion method must be 'mog2' or 'knn', got {self.method!r}")
        if self.fallback not in ("full", "none"):
            raise PplEdgeError(f"motion fallback must be 'full' or 'none', got {self.fallback!r}")
        if self.max_subjects < 1 or not 0 <= self.min_area < 1:
            raise PplEdgeError(
                f"need max_subjects >= 1 and 0 <= min_area < 1, got "
                f"{self.max_subjects} and {self.min_area}"
            )
        self.reset()

    def reset(self) -> None:
        """Forget the background model (e.g. after the camera moved)."""
        if self.method == "mog2":
            self._subtractor = cv2.createBackgroundSubtractorMOG2(
                history=self.history, varThreshold=self.threshold or 16.0, detectShadows=False
            )
        else:
            self._subtractor = cv2.createBackgroundSubtractorKNN(
                history=self.history, dist2Threshold=self.threshold or 400.0, detectShadows=False
            )
        self._last, self._still = [], 0

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """(H, W) uint8 foreground mask (0 / 255) after opening (noise) and closing (holes); the
        frame also updates the background model."""
        fg = self._subtractor.apply(frame)
        k = max(3, int(round(self.kernel * frame.shape[1] / 640)) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel)
        return cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel, iterations=2)

    def boxes_in(self, fg: np.ndarray) -> list[Box]:
        """Square boxes around the blobs of a foreground mask, largest first (no hold, no
        fallback).

        Args:
            fg: (H, W) uint8 foreground mask, e.g. from :meth:`mask`.

        Returns:
            At most ``max_subjects`` boxes; empty when no blob reaches ``min_area``.
        """
        h, w = fg.shape[:2]
        count, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        blobs = [stats[i] for i in range(1, count) if stats[i][4] >= self.min_area * h * w]
        # Pad raw boxes by half the margin before merging, so near-touching parts join.
        raw = []
        for x, y, bw, bh, _ in blobs:
            m = 0.5 * self.padding * max(bw, bh)
            raw.append([x - m, y - m, x + bw + m, y + bh + m])
        merged = sorted(merge_overlapping(raw), key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        return [square_box(*b, padding=0.5 * self.padding) for b in merged[: self.max_subjects]]

    def detect(self, frame: np.ndarray) -> tuple[list[Box], np.ndarray]:
        """Update the background model with ``frame``; its raw boxes and foreground mask.

        Returns:
            (boxes largest first, (H, W) uint8 mask 0 / 255); boxes may be empty (no hold or
            fallback applied).
        """
        fg = self.mask(frame)
        return self.boxes_in(fg), fg

    def __call__(self, frame: np.ndarray) -> list[Box]:
        h, w = frame.shape[:2]
        boxes, _ = self.detect(frame)
        if boxes:
            self._last, self._still = boxes, 0
            return boxes
        self._still += 1
        if self._last and self._still <= self.hold:
            return list(self._last)
        return [(0, 0, w, h)] if self.fallback == "full" else []
