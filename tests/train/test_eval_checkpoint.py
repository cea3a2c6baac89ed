"""End to end: a randomly initialised tiny checkpoint through evaluate_checkpoint, the occlusion
protocol and ``ppl-edge eval`` (real model, real synthetic data, tiny sizes)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ppl_edge.checkpoint import model_tensors, save_checkpoint
from ppl_edge.cli import main
from ppl_edge.config_utils import to_dict
from ppl_edge.errors import PplEdgeError
from ppl_edge.synth.skeletons import CATEGORIES
from ppl_edge.train import occlusion
from ppl_edge.train.data import build_dataset
from ppl_edge.train.evaluate import fit_h36m, score_h36m
from ppl_edge.train.evaluate import run as eval_run
from ppl_edge.train.evaluate.report import metrics_markdown
from ppl_edge.train.evaluate.run import evaluate_checkpoint


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, tiny_model):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, model_tensors(tiny_model), to_dict(tiny_model.cfg))
    return path


def test_predict_split_matches_the_keypoint_path(tiny_model):
    data = build_dataset("synthetic:humanoid", 32, split="test", length=6)
    pred = eval_run.predict_split(tiny_model, data, 6, batch=4, iterations=1, mode="memory", keep=3)
    assert pred.keypoints.shape == (2, 6, 16, 2) and pred.gt.shape == (
        6,
        len(CATEGORIES["humanoid"].joints),
        2,
    )
    assert pred.images.shape == (2, 3, 3, 32, 32)
    images = torch.stack([data[i]["image"] for i in range(6)])
    with torch.no_grad():
        ref = tiny_model.keypoint_path(images)
    np.testing.assert_allclose(pred.keypoints[0], ref["keypoints"].numpy() * 0.5 + 0.5, atol=1e-5)
    np.testing.assert_allclose(
        pred.refined[0], ref["keypoints_refined"].numpy() * 0.5 + 0.5, atol=1e-5
    )
    # memory mode: iteration 1 is the memory-refined estimate of iteration 0
    np.testing.assert_allclose(pred.keypoints[1], pred.refined[0], atol=1e-5)
    np.testing.assert_allclose(
        pred.gt,
        torch.stack([data[i]["keypoints"] for i in range(6)]).numpy() * 0.5 + 0.5,
        atol=1e-6,
    )


def test_predict_split_workers_keep_the_order(tiny_model):
    data = build_dataset("synthetic:humanoid", 32, split="test", length=5)
    serial = eval_run.predict_split(tiny_model, data, 5, batch=2)
    workers = eval_run.predict_split(tiny_model, data, 5, batch=2, num_workers=2)
    np.testing.assert_array_equal(serial.keypoints, workers.keypoints)
    np.testing.assert_array_equal(serial.gt, workers.gt)


def test_predict_split_keeps_binarised_masks_only_when_asked(tiny_model):
    data = build_dataset("synthetic:humanoid", 32, split="test", length=5)
    assert eval_run.predict_split(tiny_model, data, 5, batch=2).masks is None
    pred = eval_run.predict_split(tiny_model, data, 5, batch=2, masks=True)
    assert pred.masks.shape == (5, 32, 32) and pred.masks.dtype == bool
    np.testing.assert_array_equal(pred.masks[3], data[3]["mask"][0].numpy() > 0.5)
    assert pred.masks.any()


def test_layouts():
    hum = eval_run.layout_for("synthetic:humanoid")
    cat = CATEGORIES["humanoid"]
    assert hum.protocol == "h36m" and hum.swap_pairs == cat.swap_pairs and hum.limbs == cat.edges
    assert hum.torso == (cat.joint_names.index("l_shoulder"), cat.joint_names.index("r_hip"))
    assert eval_run.layout_for("synthetic:bird").torso is None
    assert eval_run.layout_for("h36m:/x").swap_pairs[9] == (21, 28)
    assert eval_run.layout_for("taichi:/x").protocol == "taichi"
    assert eval_run.layout_for("synthetic:humanoid", "cub").protocol == "cub"
    with pytest.raises(PplEdgeError, match="no ground-truth keypoints"):
        eval_run.layout_for("folder:/images")
    with pytest.raises(PplEdgeError, match="unknown protocol"):
        eval_run.layout_for("synthetic:humanoid", "coco")


def test_evaluate_checkpoint_returns_numbers(tiny_ckpt):
    m = evaluate_checkpoint(
        tiny_ckpt, "synthetic:humanoid", n_fit=48, n_test=16, batch=16, iterations=1, mode="image"
    )
    assert m["protocol"] == "h36m" and m["n_fit"] == 48 and m["n_test"] == 16
    assert len(m["error_per_iteration"]) == 2 and m["error_per_iteration"][0] == m["error"]
    for key in (
        "error",
        "error_memory_refined",
        "baseline_mean_pose",
        "pdj",
        "bplp_c",
        "bplp_c_gt",
        "keypoints_on_figure",
        "skeleton_on_figure",
        "keypoint_identity",
    ):
        assert isinstance(m[key], float) and math.isfinite(m[key]), key
    assert 0.0 < m["error"] < 1.0 and 0.0 <= m["pdj"] <= 1.0
    assert len(m["keypoint_identity_per_joint"]) == 19 and 0.0 < m["keypoint_identity"] <= 1.0
    assert 0.0 <= m["keypoints_on_figure"] <= 1.0 and 0.0 <= m["skeleton_on_figure"] <= 1.0
    md = metrics_markdown(m)
    assert "keypoints on the figure" in md and "skeleton length on the figure" in md
    assert "keypoint identity" in md
    # per joint: the h36m error is the mean over joints of these, in the data's joint order
    assert m["joint_names"] == list(CATEGORIES["humanoid"].joint_names)
    assert len(m["error_per_joint"]) == 19 and all(v > 0 for v in m["error_per_joint"])
    assert sum(m["error_per_joint"]) / 19 == pytest.approx(m["error"], rel=1e-9)
    assert f"| error at l_wrist | {100 * m['error_per_joint'][7]:.2f} |" in md
    json.dumps(m)  # JSON-ready
    cub = evaluate_checkpoint(tiny_ckpt, "synthetic:humanoid", "cub", n_fit=48, n_test=16, batch=16)
    assert cub["protocol"] == "cub" and 0.0 < cub["error"] < 1.0


def test_occlusion_errors_use_one_regressor(tiny_model):
    fit_data = build_dataset("synthetic:humanoid", 32, split="train_reg", length=40)
    test_data = build_dataset("synthetic:humanoid", 32, split="test", length=8)
    sp = CATEGORIES["humanoid"].swap_pairs
    fit_pred = eval_run.predict_split(tiny_model, fit_data, 40, batch=20)
    fit = fit_h36m(fit_pred.keypoints[0], fit_pred.gt, sp)
    settings = (occlusion.MaskSetting("none"), occlusion.MaskSetting("center", 12))
    res = occlusion.run_occlusion(
        tiny_model,
        fit,
        test_data,
        sp,
        8,
        batch=8,
        iterations=1,
        mode="image",
        settings=settings,
        keep=2,
    )
    assert res.errors.shape == (2, 2) and np.isfinite(res.errors).all()
    clean = eval_run.predict_split(tiny_model, test_data, 8, batch=8)
    assert res.errors[0, 0] == pytest.approx(
        score_h36m(fit, clean.keypoints[0], clean.gt, sp).error
    )
    assert res.errors[1, 0] != res.errors[0, 0]  # the 12x12 block changes the estimate
    inputs, kpts = res.examples["center 12x12"]
    assert inputs.shape == (2, 2, 3, 32, 32) and kpts.shape == (2, 2, 16, 2)
    assert (inputs[0, :, :, 10:22, 10:22] == 0).all()  # 12 one-pixel patches centred at 32 px


def test_cli_eval_writes_every_file(tiny_ckpt, tmp_path, capsys):
    out = tmp_path / "eval"
    code = main(
        [
            "eval",
            "--checkpoint",
            str(tiny_ckpt),
            "--n-fit",
            "40",
            "--n-test",
            "12",
            "--n-occlusion",
            "4",
            "--iterations",
            "1",
            "--batch-size",
            "12",
            "--occlusion",
            "--refine",
            "memory",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        "metrics.json",
        "metrics.md",
        "overlays.png",
        "occlusion.md",
        "occlusion.csv",
        "occlusion.json",
        "occlusion.png",
        "occlusion_iterations.png",
    }
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["mode"] == "memory" and metrics["occlusion"]["n_test"] == 4
    for key in ("keypoints_on_figure", "skeleton_on_figure"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert "on the figure (mask dilated 1 px): keypoints " in capsys.readouterr().out
    assert "skeleton length on the figure" in (out / "metrics.md").read_text()
    assert len((out / "occlusion.csv").read_text().splitlines()) == 11
    for png in ("overlays.png", "occlusion.png", "occlusion_iterations.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_eval_refuses_unlabelled_data(tiny_ckpt, tmp_path, capsys):
    code = main(
        [
            "eval",
            "--checkpoint",
            str(tiny_ckpt),
            "--data",
            f"folder:{tmp_path}",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 1
    assert "no ground-truth keypoints" in capsys.readouterr().err


def test_cli_eval_refuses_occlusion_with_other_protocols(tiny_ckpt, tmp_path, capsys):
    code = main(
        [
            "eval",
            "--checkpoint",
            str(tiny_ckpt),
            "--protocol",
            "cub",
            "--occlusion",
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 1 and "--protocol h36m" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
