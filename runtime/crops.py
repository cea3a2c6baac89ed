"""Where the subject is: PPL expects it to fill the crop, so the frame is cropped first.

Three croppers, each called on a (H, W, 3) uint8 BGR frame and returning boxes (x0, y0, x1, y1) in
frame pixels (x1 / y1 exclusive; a box may extend past the frame, the letterbox pads it):

- :class:`FullFrame`: the whole frame (letterboxed to the model's square input).
- :class:`FixedRoi`: one fixed region (x, y, w, h).
- :class:`MotionCrops`: moving regions from background subtraction (MOG2 or KNN), cleaned with
  morphology, split into connected components, padded into squares; several movers -> several boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.preprocess import Box

CROP_MODES = ("full", "roi", "motion")


class FullFrame:
    """The whole frame as one box."""

    def __call__(self, frame: np.ndarray) -> list[Box]:
        h, w = frame.shape[:2]
        return [(0, 0, w, h)]

    def reset(self) -> None:
        """Nothing to forget."""


@dataclass(frozen=True)
class FixedRoi:
    """One fixed region (x, y, w, h) in frame pixels."""

    x: int
    y: int
    w: int
    h: int

    def __post_init__(self) -> None:
        if self.w <= 0 or self.h <= 0 or self.x < 0 or self.y < 0:
            raise PplEdgeError(f"roi must be (x, y, w, h) with x, y >= 0 and w, h > 0, got "
                               f"{(self.x, self.y, self.w, self.h)}")

    def __call__(self, frame: np.ndarray) -> list[Box]:
        fh, fw = frame.shape[:2]
        if self.x >= fw or self.y >= fh:
            raise PplEdgeError(f"roi {(self.x, self.y, self.w, self.h)} lies outside the "
                               f"{fw}x{fh} frame")
        return [(self.x, self.y, self.x + self.w, self.y + self.h)]

    def reset(self) -> None:
        """Nothing to forget."""


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


@dataclass
class MotionCrops:
    """Boxes around moving subjects, from background subtraction.

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
        if self.method not in ("mog2", "knn"):
            raise PplEdgeError(f"motion method must be 'mog2' or 'knn', got {self.method!r}")
        if self.fallback not in ("full", "none"):
            raise PplEdgeError(f"motion fallback must be 'full' or 'none', got {self.fallback!r}")
        if self.max_subjects < 1 or not 0 <= self.min_area < 1:
            raise PplEdgeError(f"need max_subjects >= 1 and 0 <= min_area < 1, got "
                               f"{self.max_subjects} and {self.min_area}")
        self.reset()

    def reset(self) -> None:
        """Forget the background model (e.g. after the camera moved)."""
        if self.method == "mog2":
            self._subtractor = cv2.createBackgroundSubtractorMOG2(
                history=self.history, varThreshold=self.threshold or 16.0, detectShadows=False)
        else:
            self._subtractor = cv2.createBackgroundSubtractorKNN(
                history=self.history, dist2Threshold=self.threshold or 400.0, detectShadows=False)
        self._last, self._still = [], 0

    def mask(self, frame: np.ndarray) -> np.ndarray:
        """(H, W) uint8 foreground mask after opening (noise) and closing (holes)."""
        fg = self._subtractor.apply(frame)
        k = max(3, int(round(self.kernel * frame.shape[1] / 640)) | 1)
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, kernel)
        return cv2.morphologyEx(fg, cv2.MORPH_CLOSE, kernel, iterations=2)

    def __call__(self, frame: np.ndarray) -> list[Box]:
        h, w = frame.shape[:2]
        count, _, stats, _ = cv2.connectedComponentsWithStats(self.mask(frame), connectivity=8)
        blobs = [stats[i] for i in range(1, count) if stats[i][4] >= self.min_area * h * w]
        # Pad raw boxes by half the margin before merging, so near-touching parts join.
        raw = []
        for x, y, bw, bh, _ in blobs:
            m = 0.5 * self.padding * max(bw, bh)
            raw.append([x - m, y - m, x + bw + m, y + bh + m])
        merged = sorted(merge_overlapping(raw), key=lambda b: -(b[2] - b[0]) * (b[3] - b[1]))
        boxes = [square_box(*b, padding=0.5 * self.padding) for b in merged[: self.max_subjects]]
        if boxes:
            self._last, self._still = boxes, 0
            return boxes
        self._still += 1
        if self._last and self._still <= self.hold:
            return list(self._last)
        return [(0, 0, w, h)] if self.fallback == "full" else []


def make_cropper(crops: str | object = "full", roi: tuple[int, int, int, int] | None = None,
                 **motion_opts):
    """A cropper from a mode name ("full", "roi", "motion") or a ready cropper (any callable).

    Raises:
        PplEdgeError: unknown mode, "roi" without a roi, or a malformed roi.
    """
    if callable(crops):
        return crops
    if crops not in CROP_MODES:
        raise PplEdgeError(f"unknown crop mode {crops!r}; choose one of {', '.join(CROP_MODES)}")
    if crops == "roi" or (crops == "full" and roi is not None):
        if roi is None or len(roi) != 4:
            raise PplEdgeError(f"crop mode 'roi' needs roi=(x, y, w, h), got {roi!r}")
        return FixedRoi(*(int(v) for v in roi))
    if crops == "motion":
        return MotionCrops(**motion_opts)
    return FullFrame()
