"""Iterative refinement: the pure loop, and the three modes against iterative_inference."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ppl_edge.coords import px_to_norm
from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime import Estimator, refine

KPT_ATOL = 1e-4  # normalised units


def test_refine_applies_the_step_exactly_n_times_and_keeps_each_estimate():
    calls = []

    def step(est, i):
        calls.append(i)
        return {"keypoints": est["keypoints"] + 1}

    trace = refine({"keypoints": np.zeros(2)}, 3, step)
    assert calls == [0, 1, 2]
    assert [s["keypoints"][0] for s in trace.steps] == [0, 1, 2, 3]
    assert trace.final["keypoints"][0] == 3 and len(trace.step_ms) == 3
    lean = refine({"keypoints": np.zeros(2)}, 3, step, keep=False)
    assert len(lean.steps) == 1 and lean.final["keypoints"][0] == 3


def test_refine_without_step_or_iterations_returns_the_initial_estimate():
    initial = {"keypoints": np.ones(2)}
    assert refine(initial, 5, None).final is initial
    assert refine(initial, 0, lambda e, i: pytest.fail("called")).steps == (initial,)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "2"])
def test_refine_rejects_bad_iteration_counts(bad):
    with pytest.raises(PplEdgeError, match="iterations"):
        refine({}, bad, lambda e, i: e)


def _torch_steps(model, crop, iterations, mode):
    from ppl_edge.train.data.common import image_to_tensor

    steps = model.iterative_inference(image_to_tensor(crop)[None], iterations, mode)
    return [{k: v[0].numpy() for k, v in s.items() if k != "input"} for s in steps]


@pytest.fixture(scope="module")
def crop():
    return np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)


def _norm(pts):
    return px_to_norm(pts, 32, 32)


def test_image_mode_matches_torch_iterative_inference(tiny_export, tiny_model, crop):
    ref = _torch_steps(tiny_model, crop, 2, "image")
    with Estimator(tiny_export, backend="onnxruntime", keep_reconstructions=True) as est:
        res = est.estimate(crop, refine="image", iterations=2)
    assert len(res.iterations) == 3 and len(res.reconstructions) == 2
    assert res.reconstructions[0].shape == (32, 32, 3) and res.reconstructions[0].dtype == np.uint8
    for got, want in zip(res.iterations, ref):
        np.testing.assert_allclose(_norm(got), want["keypoints"], atol=KPT_ATOL)
    np.testing.assert_allclose(
        _norm(res.keypoints_refined), ref[-1]["keypoints_refined"], atol=KPT_ATOL
    )
    np.testing.assert_array_equal(res.prototype_ids, ref[-1]["prototype_ids"])
    assert res.timings["refine"] > 0


def test_memory_mode_with_memory_graph_matches_torch(tiny_export_memory, tiny_model, crop):
    ref = _torch_steps(tiny_model, crop, 3, "memory")
    with Estimator(tiny_export_memory, backend="onnxruntime") as est:
        res = est.estimate(crop, refine="memory", iterations=3)
    assert len(res.iterations) == 4
    for got, want in zip(res.iterations, ref):
        np.testing.assert_allclose(_norm(got), want["keypoints"], atol=KPT_ATOL)
    np.testing.assert_allclose(
        _norm(res.keypoints_refined), ref[-1]["keypoints_refined"], atol=KPT_ATOL
    )
    np.testing.assert_array_equal(res.prototype_ids, ref[-1]["prototype_ids"])


def test_memory_mode_without_memory_graph_stops_after_one_snap(tiny_export, tiny_model, crop):
    ref = _torch_steps(tiny_model, crop, 1, "memory")
    with Estimator(tiny_export, backend="onnxruntime") as est:
        one = est.estimate(crop, refine="memory", iterations=1)
        three = est.estimate(crop, refine="memory", iterations=3)
    np.testing.assert_allclose(_norm(one.keypoints), ref[1]["keypoints"], atol=KPT_ATOL)
    assert len(three.iterations) == 4
    for later in three.iterations[2:]:
        np.testing.assert_array_equal(later, three.iterations[1])
    np.testing.assert_array_equal(three.keypoints, one.keypoints)


def test_none_mode_ignores_the_count_and_modes_switch_per_call(tiny_export, crop):
    with Estimator(tiny_export, backend="onnxruntime", refine="image", iterations=1) as est:
        default = est.estimate(crop)
        plain = est.estimate(crop, refine="none", iterations=4)
    assert len(default.iterations) == 2 and len(plain.iterations) == 1
    np.testing.assert_array_equal(plain.keypoints, default.iterations[0])


def test_image_mode_without_refine_graph_says_what_to_do(tiny_export, tmp_path, crop):
    folder = tmp_path / "no_refine"
    shutil.copytree(tiny_export, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["artifacts"]["refine"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (folder / "refine.onnx").unlink()
    with Estimator(folder, backend="onnxruntime") as est:
        assert len(est(crop, refine="memory", iterations=1)) == 1
        with pytest.raises(PplEdgeError, match="refine.onnx"):
            est(crop, refine="image", iterations=1)
