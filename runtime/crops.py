"""Where the subject is: PPL expects it to fill the crop, so the frame is cropped first.

Three croppers, each called on a (H, W, 3) uint8 BGR frame and returning boxes (x0, y0, x1, y1) in
frame pixels (x1 / y1 exclusive; a box may extend past the frame, the letterbox pads it):

- :class:`FullFrame`: the whole frame (letterboxed to the model's square input).
- :class:`FixedRoi`: one fixed region (x, y, w, h).
- :class:`MotionCrops`: moving regions from background subtraction (MOG2 or KNN), cleaned with
  morphology, split into connected components, padded into squares; several movers -> several boxes.
  It lives in :mod:`ppl_edge.motion` (the video dataset's fixed-camera mode uses the same one) and
  is re-exported here with ``square_box`` and ``merge_overlapping``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.motion import Box, MotionCrops, merge_overlapping, square_box
from ppl_edge.runtime.config import CROP_MODES

__all__ = [
    "CROP_MODES",
    "Box",
    "FixedRoi",
    "FullFrame",
    "MotionCrops",
    "make_cropper",
    "merge_overlapping",
    "square_box",
]


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
            raise PplEdgeError(
                f"roi must be (x, y, w, h) with x, y >= 0 and w, h > 0, got "
                f"{(self.x, self.y, self.w, self.h)}"
            )

    def __call__(self, frame: np.ndarray) -> list[Box]:
        fh, fw = frame.shape[:2]
        if self.x >= fw or self.y >= fh:
            raise PplEdgeError(
                f"roi {(self.x, self.y, self.w, self.h)} lies outside the {fw}x{fh} frame"
            )
        return [(self.x, self.y, self.x + self.w, self.y + self.h)]

    def reset(self) -> None:
        """Nothing to forget."""


def make_cropper(
    crops: str | object = "full", roi: tuple[int, int, int, int] | None = None, **motion_opts
):
    """A cropper from a mode name ("full", "roi", "motion") or a ready cropper (any callable).

    Raises:
        PplEdgeError: unknown mode, "roi" without a roi, or a malformed roi.
    """
    if callable(crops):
        return crops
    check_choice(crops, CROP_MODES, "crop mode")
    if crops == "roi" or (crops == "full" and roi is not None):
        if roi is None or len(roi) != 4:
            raise PplEdgeError(f"crop mode 'roi' needs roi=(x, y, w, h), got {roi!r}")
        return FixedRoi(*(int(v) for v in roi))
    if crops == "motion":
        return MotionCrops(**motion_opts)
    return FullFrame()
