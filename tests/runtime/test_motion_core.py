"""``ppl_edge.motion``: the one motion-crop implementation the runtime and the video dataset share;
torch-free, importing nothing from train / convert / runtime."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np

from ppl_edge import motion, preprocess
from ppl_edge.runtime import MotionCrops
from ppl_edge.runtime import crops as runtime_crops


def test_the_runtime_uses_the_core_implementation():
    assert MotionCrops is motion.MotionCrops
    assert runtime_crops.square_box is motion.square_box
    assert runtime_crops.merge_overlapping is motion.merge_overlapping
    assert runtime_crops.Box is preprocess.Box is motion.Box


def test_the_core_module_imports_no_torch_and_no_part():
    code = (
        "import sys, ppl_edge.motion; "
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith("
        "('ppl_edge.train', 'ppl_edge.runtime', 'ppl_edge.convert'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _mover(t: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), (0, 0), 3)
    cv2.ellipse(frame, (30 + 3 * t, 60), (12, 25), 0, 0, 360, (30, 200, 250), -1)
    return frame


def test_detect_gives_the_boxes_of_a_call_and_the_mask():
    calls, detects = motion.MotionCrops(), motion.MotionCrops()
    for t in range(25):
        frame = _mover(t)
        boxes = calls(frame)
        found, fg = detects.detect(frame)
        assert fg.shape == (120, 160) and fg.dtype == np.uint8
        if found:
            assert found == boxes
    x0, y0, x1, y1 = found[0]
    assert x0 <= 30 + 3 * 24 < x1 and y0 <= 60 < y1
    inside = np.zeros_like(fg, bool)
    inside[max(y0, 0) : y1, max(x0, 0) : x1] = True
    assert (fg[inside] == 255).sum() > 100 and not fg[~inside].any()


def test_crop_square_pads_with_zeros_and_frame_to_crop_maps_points():
    frame = np.full((60, 80, 3), 90, np.uint8)
    frame[10, 5] = 255  # a bright pixel near the top-left corner
    box = (-10, -20, 30, 20)  # a 40-pixel square that leaves the frame
    crop = motion.crop_square(frame, box, 40)
    assert crop.shape == (40, 40, 3) and (crop[:20] == 0).all() and (crop[:, :10] == 0).all()
    x, y = motion.frame_to_crop(np.array([5.0, 10.0]), box, 40)
    assert crop[int(y), int(x)].tolist() == [255, 255, 255]
    half = motion.crop_square(frame, box, 20)
    assert np.allclose(motion.frame_to_crop(np.array([5.5, 10.5]), box, 20), [7.5, 15.0])
    assert half.shape == (20, 20, 3)
    mask = np.zeros((60, 80), np.uint8)
    mask[:5, :5] = 255
    assert motion.crop_square(mask, box, 40, nearest=True).max() == 255
