"""Drawing helpers: skeletons from the learned edges, confidence colours, overlays."""

from __future__ import annotations

import numpy as np

from ppl_edge.runtime import Result, draw_iterations, draw_pose, draw_results, draw_timings
from ppl_edge.runtime.draw import confidence_colour, edge_colours


def _result(conf=1.0, box=(0, 0, 200, 200)) -> Result:
    kpts = np.array([[50.0, 50.0], [150.0, 50.0], [100.0, 150.0]])
    return Result(
        keypoints=kpts,
        keypoints_refined=kpts + 5,
        confidence=np.full(3, conf),
        plausibility=0.7,
        prototype_ids=np.zeros(2),
        prototype_distances=np.zeros(2),
        edges=((0, 1), (1, 2)),
        box=box,
        iterations=(kpts - 10, kpts),
    )


def test_edges_are_drawn_between_their_keypoints_only():
    img = np.zeros((200, 200, 3), np.uint8)
    draw_pose(img, _result())
    colours = np.array(edge_colours(2), np.int32)
    close = lambda px, c: np.abs(px.astype(np.int32) - c).max() <= 40
    assert close(img[50, 100], colours[0])  # midpoint of edge (0, 1)
    assert close(img[100, 125], colours[1])  # midpoint of edge (1, 2)
    assert img[100, 75].sum() == 0  # no edge (0, 2) in the skeleton
    assert tuple(img[50, 50]) == confidence_colour(1.0)  # keypoint dot centre


def test_low_confidence_keypoints_are_skipped_and_coloured_red():
    img = np.zeros((200, 200, 3), np.uint8)
    draw_pose(img, _result(conf=0.1), min_confidence=0.5)
    assert img.sum() == 0
    draw_pose(img, _result(conf=0.0))
    assert tuple(img[50, 50]) == (0, 0, 255)


def test_drawing_survives_odd_inputs():
    tiny = np.zeros((8, 8, 3), np.uint8)
    nan = _result()
    object.__setattr__(nan, "keypoints", np.full((3, 2), np.nan, np.float32))
    draw_pose(tiny, nan, draw_box=True, label=True)
    draw_pose(tiny, _result(box=(-50, -50, 400, 400)), draw_box=True, label=True)
    draw_iterations(tiny, _result())
    draw_timings(tiny, 30.0, {"inference": 1.0})
    draw_results(np.zeros((1, 1, 3), np.uint8), [], fps=None)


def test_overlay_and_iterations_change_the_image():
    img = np.zeros((240, 320, 3), np.uint8)
    draw_results(img, [_result(), _result()], fps=29.97, timings={"inference": 3.2})
    assert img[:30, :100].any()  # the text box
    before = img.copy()
    draw_iterations(img, _result())
    assert (img != before).any()
