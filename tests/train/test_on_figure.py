"""On-figure metrics on hand-made masks: the dilated region, keypoints and skeleton length."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_edge.coords import px_to_norm
from ppl_edge.train.on_figure import figure_region, keypoints_on_figure, skeleton_on_figure


def _square(size: int = 9, lo: int = 3, hi: int = 6) -> np.ndarray:
    """(1, size, size) float coverage: a figure on pixels lo..hi-1, a faint 0.4 rim outside it."""
    m = np.zeros((1, size, size), np.float32)
    m[0, lo - 1 : hi + 1, lo - 1 : hi + 1] = 0.4  # below the 0.5 threshold: not figure
    m[0, lo:hi, lo:hi] = 1.0
    return m


def _norm(px, size: int = 9) -> np.ndarray:
    return px_to_norm(np.asarray(px, np.float64), size, size)


def test_figure_region_binarises_then_grows_by_one_pixel():
    region = figure_region(_square())[0]
    expected = np.zeros((9, 9), bool)
    expected[2:7, 2:7] = True
    np.testing.assert_array_equal(region, expected)
    np.testing.assert_array_equal(figure_region(_square(), dilation=0)[0, 3:6, 3:6], True)
    assert figure_region(_square(), dilation=0).sum() == 9
    assert figure_region(_square() > 0.5).sum() == 25  # bool masks work too


def test_keypoints_inside_outside_and_on_the_dilated_border():
    mask = _square()
    inside = [[4, 4], [3, 5]]
    border = [[2, 2], [6, 4], [6.4, 4.2], [1.6, 4]]  # the 1 px ring the dilation adds (rounded)
    outside = [[1, 1], [8, 8], [7, 4], [4, 1.4], [-3, 4], [12, 12]]  # incl. out of frame
    for pts, want in ((inside, 1.0), (border, 1.0), (outside, 0.0)):
        assert keypoints_on_figure(_norm([pts]), mask) == want, pts
    assert keypoints_on_figure(_norm([inside + outside]), mask) == pytest.approx(2 / 8)
    assert keypoints_on_figure(_norm([border]), mask, dilation=0) == 0.0
    # (S, 1, H, W) and several images: pooled over all keypoints
    two = np.concatenate([mask, np.zeros_like(mask)])
    assert keypoints_on_figure(_norm([inside, inside]), two) == pytest.approx(0.5)


def test_the_project_pixel_convention_is_used():
    mask = np.zeros((1, 5, 5), np.float32)
    mask[0, 0, 4] = 1.0  # the top-right pixel; no dilation
    assert keypoints_on_figure(np.array([[[1.0, -1.0]]]), mask, dilation=0) == 1.0
    assert keypoints_on_figure(np.array([[[0.6, -1.0]]]), mask, dilation=0) == 0.0  # pixel 3.2


def test_a_segment_half_inside_gives_half():
    size = 64
    mask = np.zeros((1, size, size), np.float32)
    mask[0, :, 30:] = 1.0  # the dilated figure starts at x = 29 (pixel centre), i.e. x >= 28.5
    seg = _norm([[[8.5, 20.0], [48.5, 20.0]]], size)  # 40 px long, 20 px of it at x >= 28.5
    assert skeleton_on_figure(seg, [(0, 1)], mask) == pytest.approx(0.5, abs=0.01)
    diagonal = _norm([[[8.5, 8.5], [48.5, 48.5]]], size)
    assert skeleton_on_figure(diagonal, [(0, 1)], mask) == pytest.approx(0.5, abs=0.01)


def test_skeleton_length_is_pooled_and_weighted_by_length():
    mask = _square()
    kpts = _norm([[[4, 4], [4, 5], [0, 0], [0, 8]]])  # a 1 px edge inside, an 8 px edge outside
    assert skeleton_on_figure(kpts, [(0, 1)], mask) == 1.0
    assert skeleton_on_figure(kpts, [(2, 3)], mask) == 0.0
    assert skeleton_on_figure(kpts, [(0, 1), (2, 3)], mask) == pytest.approx(1 / 9)
    assert np.isnan(skeleton_on_figure(kpts, [], mask))
    assert np.isnan(skeleton_on_figure(_norm([[[4, 4], [4, 4]]]), [(0, 1)], mask))


def test_shapes_are_checked():
    with pytest.raises(ValueError, match="expected keypoints"):
        keypoints_on_figure(np.zeros((2, 3, 2)), np.zeros((3, 9, 9)))
    with pytest.raises(ValueError, match="step"):
        skeleton_on_figure(np.zeros((1, 2, 2)), [(0, 1)], np.zeros((1, 9, 9)), step=0.0)
