"""Graph outputs to Results: the folded letterbox map and the Results postprocess builds."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_edge.preprocess import letterbox
from ppl_edge.runtime import Result
from ppl_edge.runtime.postprocess import frame_affines, postprocess, to_frame_px

BOXES = [
    ((480, 640), (0, 0, 640, 480)),  # wide frame, padded top and bottom
    ((480, 640), (100, 40, 260, 400)),  # tall box
    ((360, 640), (-80, -30, 300, 200)),  # past the frame's top-left corner
    ((200, 200), (150, 120, 260, 260)),  # past the bottom-right corner
]


def test_one_multiply_add_is_the_letterbox_map():
    maps = [letterbox(np.zeros((*s, 3), np.uint8), box, 64, 48)[1] for s, box in BOXES]
    gain, bias = frame_affines(maps)
    assert gain.shape == bias.shape == (1, len(maps), 1, 2) and gain.dtype == np.float32
    pts = np.random.default_rng(0).uniform(-1.2, 1.2, (len(maps), 16, 2)).astype(np.float32)
    for b, lb in enumerate(maps):
        np.testing.assert_allclose(
            pts[b] * gain[0, b] + bias[0, b], to_frame_px(pts[b], lb), atol=2e-3
        )


class _Manifest:
    """What postprocess reads of a manifest."""

    distance_reference = 2.0
    edges = ((0, 1), (1, 2))
    keypoint_names = ("a", "b", "c")


def _step(rng, B: int) -> dict[str, np.ndarray]:
    return {
        "keypoints": rng.uniform(-1, 1, (B, 3, 2)).astype(np.float32),
        "keypoints_refined": rng.uniform(-1, 1, (B, 3, 2)).astype(np.float32),
        "confidence": rng.uniform(0, 1, (B, 3)).astype(np.float32),
        "prototype_ids": rng.integers(0, 9, (B, 4)).astype(np.int32),
        "prototype_distances": rng.uniform(0, 4, (B, 4)).astype(np.float32),
    }


@pytest.mark.parametrize("count", [1, 3])
def test_results_equal_the_checked_constructor_with_read_only_arrays(count):
    rng = np.random.default_rng(1)
    steps = [_step(rng, 2) for _ in range(count)]
    maps = [letterbox(np.zeros((*s, 3), np.uint8), box, 64, 64)[1] for s, box in BOXES[:2]]
    results = postprocess(steps, maps, _Manifest(), {"inference": 1.0})
    final = steps[-1]
    for b, (res, lb) in enumerate(zip(results, maps)):
        expected = Result(
            keypoints=to_frame_px(final["keypoints"][b], lb),
            keypoints_refined=to_frame_px(final["keypoints_refined"][b], lb),
            confidence=final["confidence"][b],
            plausibility=float(np.exp(-final["prototype_distances"][b].mean() / 2.0 * np.log(2))),
            prototype_ids=final["prototype_ids"][b],
            prototype_distances=final["prototype_distances"][b],
            edges=_Manifest.edges,
            box=lb.box,
            iterations=tuple(to_frame_px(s["keypoints"][b], lb) for s in steps),
            timings={"inference": 1.0},
            keypoint_names=_Manifest.keypoint_names,
        )
        got, want = res.to_dict(digits=None), expected.to_dict(digits=None)
        got.pop("plausibility"), want.pop("plausibility")
        for key in ("keypoints", "keypoints_refined", "iterations"):
            np.testing.assert_allclose(got.pop(key), want.pop(key), atol=2e-3)
        assert res.plausibility == pytest.approx(expected.plausibility, rel=1e-5)
        assert got == want
        assert res.prototype_ids.dtype == np.int64 and res.keypoints.dtype == np.float32
        assert res.joints is None and res.reconstructions == () and len(res.iterations) == count
        for a in (res.keypoints, res.keypoints_refined, res.confidence, *res.iterations):
            assert not a.flags.writeable
    # the graph's outputs became the Results' arrays: read-only from now on
    with pytest.raises(ValueError, match="read-only"):
        steps[-1]["confidence"][0] = -1.0


def test_owned_refuses_missing_and_unknown_fields():
    with pytest.raises(TypeError, match="missing fields \\['box'"):
        Result.owned(
            keypoints=np.zeros((3, 2), np.float32),
            keypoints_refined=np.zeros((3, 2), np.float32),
            confidence=np.zeros(3, np.float32),
            plausibility=1.0,
            prototype_ids=np.zeros(4, np.int64),
            prototype_distances=np.zeros(4, np.float32),
            edges=(),
        )
    with pytest.raises(TypeError, match="unknown fields \\['colour'\\]"):
        Result.owned(colour="red")
