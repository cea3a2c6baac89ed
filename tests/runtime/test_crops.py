"""Where the subject is: full frame, fixed ROI, motion crops on a synthetic two-subject clip."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime import Estimator, FixedRoi, FullFrame, MotionCrops
from ppl_edge.runtime.crops import make_cropper, merge_overlapping, square_box

H, W = 240, 320


def two_movers(frames: int = 40, seed: int = 0):
    """A static textured background with two ellipses moving in opposite directions.

    Returns:
        list of (H, W, 3) uint8 BGR frames, and per frame the two centres (x, y).
    """
    rng = np.random.default_rng(seed)
    background = cv2.GaussianBlur(rng.integers(0, 256, (H, W, 3), dtype=np.uint8), (0, 0), 3)
    clip, centres = [], []
    for t in range(frames):
        frame = background.copy()
        a = (int(40 + 3 * t), int(70 + 10 * np.sin(t / 5)))
        b = (int(280 - 3 * t), int(170 - 10 * np.sin(t / 5)))
        cv2.ellipse(frame, a, (22, 38), 0, 0, 360, (30, 200, 250), -1)
        cv2.ellipse(frame, b, (16, 26), 0, 0, 360, (240, 60, 40), -1)
        clip.append(frame)
        centres.append((a, b))
    return clip, centres


def _contains(box, point) -> bool:
    x0, y0, x1, y1 = box
    return x0 <= point[0] < x1 and y0 <= point[1] < y1


def test_two_moving_subjects_give_two_square_boxes_around_them():
    clip, centres = two_movers()
    crops = MotionCrops(min_area=0.002)
    for frame in clip[:-1]:
        crops(frame)
    boxes = crops(clip[-1])
    assert len(boxes) == 2
    for box in boxes:
        assert box[2] - box[0] == box[3] - box[1]  # square
        assert 50 <= box[2] - box[0] <= 120  # about the subject's size plus padding
    for centre in centres[-1]:
        assert sum(_contains(b, centre) for b in boxes) == 1


def test_two_moving_subjects_give_two_poses_in_frame_pixels(tiny_export):
    clip, centres = two_movers()
    with Estimator(tiny_export, backend="onnxruntime", crops="motion") as est:
        for frame in clip[:-1]:
            est(frame)
        results = est(clip[-1])
    assert len(results) == 2
    for res in results:
        x0, y0, x1, y1 = res.box
        assert ((res.keypoints >= [x0 - 1, y0 - 1]) | (res.keypoints <= [x1, y1])).all()
        assert res.keypoints.shape == (16, 2)
    for centre in centres[-1]:
        assert any(_contains(r.box, centre) for r in results)


def test_max_subjects_keeps_the_largest():
    clip, centres = two_movers()
    crops = MotionCrops(max_subjects=1)
    for frame in clip:
        boxes = crops(frame)
    assert len(boxes) == 1 and _contains(boxes[0], centres[-1][0])  # the larger ellipse


def test_still_scene_holds_the_last_boxes_then_falls_back():
    clip, _ = two_movers()
    for fallback, after in [("none", []), ("full", [(0, 0, W, H)])]:
        crops = MotionCrops(hold=3, fallback=fallback)
        for frame in clip:
            moving = crops(frame)
        crops.mask = lambda frame: np.zeros(frame.shape[:2], np.uint8)  # nothing moves any more
        still = [crops(clip[-1]) for _ in range(5)]
        assert len(moving) == 2 and still[:3] == [moving] * 3 and still[3:] == [after] * 2


def test_full_frame_and_roi():
    frame = np.zeros((H, W, 3), np.uint8)
    assert FullFrame()(frame) == [(0, 0, W, H)]
    assert FixedRoi(10, 20, 100, 50)(frame) == [(10, 20, 110, 70)]
    with pytest.raises(PplEdgeError, match="outside"):
        FixedRoi(400, 0, 10, 10)(frame)
    with pytest.raises(PplEdgeError, match="roi must be"):
        FixedRoi(0, 0, 0, 10)


def test_make_cropper_modes_and_errors():
    assert isinstance(make_cropper("full"), FullFrame)
    assert isinstance(make_cropper(roi=(1, 2, 3, 4)), FixedRoi)  # a roi alone implies "roi"
    assert isinstance(make_cropper("motion", method="knn"), MotionCrops)
    custom = lambda frame: [(0, 0, 5, 5)]
    assert make_cropper(custom) is custom
    with pytest.raises(PplEdgeError, match="choose one of full, roi, motion"):
        make_cropper("yolo")
    with pytest.raises(PplEdgeError, match="needs roi"):
        make_cropper("roi")
    with pytest.raises(PplEdgeError, match="mog2"):
        MotionCrops(method="vibe")


def test_box_helpers():
    assert square_box(0, 0, 20, 10, padding=0.0) == (0, -5, 20, 15)
    assert square_box(0, 0, 20, 10, padding=0.5) == (-10, -15, 30, 25)
    merged = merge_overlapping([[0, 0, 10, 10], [5, 5, 20, 20], [50, 50, 60, 60]])
    assert sorted(merged) == [[0, 0, 20, 20], [50, 50, 60, 60]]
