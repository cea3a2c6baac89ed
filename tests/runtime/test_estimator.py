"""Estimator: parity with the PyTorch model, coordinates, batching, bad frames, no torch import."""

from __future__ import annotations

import json
import subprocess
import sys
import threading

import numpy as np
import pytest

from ppl_edge.coords import px_to_norm
from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime import BadFrameError, Estimator, Result

# Tolerances: keypoints in normalised units (contract), distances relative.
KPT_ATOL = 1e-4
DIST_RTOL = 1e-4


def _frame(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def est(tiny_export):
    with Estimator(tiny_export, backend="onnxruntime", threads=1) as estimator:
        yield estimator


def _torch_reference(model, crop_bgr: np.ndarray) -> dict:
    import torch

    from ppl_edge.train.data.common import image_to_tensor

    with torch.no_grad():
        out = model.keypoint_path(image_to_tensor(crop_bgr)[None])
    return {k: v[0].numpy() for k, v in out.items()}


def test_matches_torch_on_the_same_crop(est, tiny_model):
    frame = _frame(32, 32)
    res = est.estimate(frame)
    ref = _torch_reference(tiny_model, frame)
    np.testing.assert_allclose(px_to_norm(res.keypoints, 32, 32), ref["keypoints"], atol=KPT_ATOL)
    np.testing.assert_allclose(
        px_to_norm(res.keypoints_refined, 32, 32), ref["keypoints_refined"], atol=KPT_ATOL
    )
    np.testing.assert_allclose(res.confidence, ref["confidence"], atol=1e-5)
    np.testing.assert_array_equal(res.prototype_ids, ref["prototype_ids"])
    np.testing.assert_allclose(res.prototype_distances, ref["prototype_distances"], rtol=DIST_RTOL)
    mean = float(ref["prototype_distances"].mean())
    assert res.plausibility == pytest.approx(
        np.exp(-mean / est.manifest.distance_reference * np.log(2)), rel=1e-4
    )
    assert res.box == (0, 0, 32, 32)
    assert res.edges == est.edges and len(res.edges) >= 15  # spanning tree over 16 keypoints


def test_roi_in_a_non_square_frame_maps_back_to_frame_pixels(tiny_export, tiny_model):
    crop = _frame(32, 32, seed=1)
    frame = _frame(90, 160, seed=2)
    frame[20:52, 50:82] = crop
    with Estimator(tiny_export, backend="onnxruntime", roi=(50, 20, 32, 32)) as est:
        res = est.estimate(frame)
    ref = _torch_reference(tiny_model, crop)
    expected_px = (ref["keypoints"] + 1.0) * 15.5 + np.array([50, 20])  # norm_to_px + roi offset
    np.testing.assert_allclose(res.keypoints, expected_px, atol=KPT_ATOL * 16)
    assert res.box == (50, 20, 82, 52)


def test_subjects_are_batched_and_chunked_like_single_calls(est):
    frame = _frame(120, 200, seed=3)
    boxes = [(0, 0, 60, 60), (100, 20, 190, 110), (30, 50, 90, 120)]
    singles = [est(frame, boxes=[b])[0] for b in boxes]
    batched = est(frame, boxes=boxes)
    saved, est.max_batch = est.max_batch, 2  # forces chunks of 2 + 1
    try:
        chunked = est(frame, boxes=boxes)
    finally:
        est.max_batch = saved
    for one, many, chunk in zip(singles, batched, chunked):
        np.testing.assert_allclose(many.keypoints, one.keypoints, atol=1e-3)
        np.testing.assert_allclose(chunk.keypoints, one.keypoints, atol=1e-3)
        assert many.box == one.box


def test_result_is_frozen_and_json_ready(est):
    res = est.estimate(_frame(48, 64))
    assert isinstance(res, Result)
    assert res.keypoints.shape == (16, 2) and res.keypoints.dtype == np.float32
    assert res.confidence.shape == (16,) and res.prototype_ids.shape == (8,)
    with pytest.raises(ValueError):
        res.keypoints[0, 0] = 1.0
    with pytest.raises(AttributeError):
        res.plausibility = 1.0
    data = json.loads(json.dumps(res.to_dict()))
    assert len(data["keypoints"]) == 16 and set(data["timings"]) >= {
        "preprocess",
        "inference",
        "refine",
        "postprocess",
        "total",
    }


BAD = {
    "none": None,
    "empty": np.zeros((0, 0, 3), np.uint8),
    "zero_width": np.zeros((10, 0, 3), np.uint8),
    "nan_float": np.full((40, 50, 3), np.nan, np.float32),
    "two_channels": np.zeros((40, 50, 2), np.uint8),
    "batch_of_frames": np.zeros((2, 40, 50, 3), np.uint8),
    "not_an_array": [[1, 2, 3]],
    "complex": np.zeros((40, 50, 3), np.complex64),
}
GOOD = {
    "gray": np.full((40, 50), 128, np.uint8),
    "gray_1ch": np.full((40, 50, 1), 128, np.uint8),
    "bgra": np.full((40, 50, 4), 200, np.uint8),
    "uint16": np.full((40, 50, 3), 40000, np.uint16),
    "float01": np.random.default_rng(0).random((40, 50, 3)).astype(np.float32),
    "float255": np.full((40, 50, 3), 200.0, np.float64),
    "non_contiguous": _frame(80, 100)[::2, ::2],
    "huge": np.zeros((3000, 4000, 3), np.uint8),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_unusable_frames_raise_bad_frame_error(est, name):
    with pytest.raises(BadFrameError):
        est(BAD[name])


@pytest.mark.parametrize("name", sorted(GOOD))
def test_convertible_frames_give_a_pose(est, name):
    results = est(GOOD[name])
    assert len(results) == 1 and np.isfinite(results[0].keypoints).all()
    h, w = GOOD[name].shape[:2]
    assert results[0].box == (0, 0, w, h)


def test_conversions_are_what_the_frame_means(est):
    from ppl_edge.preprocess import as_bgr8

    assert as_bgr8(GOOD["uint16"]).max() == 40000 >> 8
    assert as_bgr8(GOOD["bgra"]).shape == (40, 50, 3)
    np.testing.assert_array_equal(as_bgr8(np.full((2, 2, 3), 0.5, np.float32)), 128)
    np.testing.assert_array_equal(as_bgr8(GOOD["gray"])[..., 2], GOOD["gray"])


def test_arguments_are_validated(tiny_export, est, tmp_path):
    with pytest.raises(PplEdgeError, match="choose one of auto, onnxruntime"):
        Estimator(tiny_export, backend="openvino")
    with pytest.raises(PplEdgeError, match="refinement mode"):
        Estimator(tiny_export, refine="dream")
    with pytest.raises(PplEdgeError, match="choose one of fast, area"):
        Estimator(tiny_export, resize="cubic")
    with pytest.raises(PplEdgeError, match="iterations"):
        est(_frame(32, 32), iterations=-1)
    with pytest.raises(PplEdgeError, match="model not found"):
        Estimator(tmp_path / "missing")
    with pytest.raises(PplEdgeError, match="needs a TensorRT engine"):
        Estimator(tiny_export, backend="tensorrt")


def test_shared_between_threads_gives_the_sequential_answers(est):
    frames = [_frame(48, 64, seed=s) for s in range(6)]
    expected = [est.estimate(f).keypoints for f in frames]
    got: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        got[i] = est.estimate(frames[i]).keypoints

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(frames))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, kpts in enumerate(expected):
        np.testing.assert_array_equal(got[i], kpts)


def test_closed_estimator_refuses_to_run(tiny_export):
    est = Estimator(tiny_export, backend="onnxruntime")
    est.close()
    with pytest.raises(PplEdgeError, match="closed"):
        est(_frame(32, 32))


def test_runtime_never_imports_torch(tiny_export):
    code = f"""
import sys
import numpy as np
from ppl_edge.runtime import Estimator, OneEuroFilter, draw_results, refine
with Estimator({str(tiny_export)!r}, refine="image", iterations=1, crops="motion",
               smooth=True) as est:
    frame = np.zeros((48, 64, 3), np.uint8)
    results = est(frame) + est(frame, refine="memory", iterations=2)
    draw_results(frame, results, fps=30.0)
import ppl_edge.runtime.backends.tensorrt, ppl_edge.runtime.backends.coreml
assert len(results) == 2, results
loaded = [m for m in ("torch", "tensorrt", "coremltools", "pycuda") if m in sys.modules]
assert not loaded, loaded
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
