"""Named joints at run time: ``Result.joints`` is the manifest's joint map applied to the final
keypoints in every refinement mode (and after smoothing), it reaches ``to_dict``, the JSONL lines
and the ROS 2 payload, the overlay draws and labels it, and a manifest that disagrees with its graph
is refused in one line."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ppl_edge.coords import px_to_norm
from ppl_edge.manifest import Manifest, ManifestError
from ppl_edge.preprocess import preprocess
from ppl_edge.runtime import Estimator, draw_pose, draw_results
from ppl_edge.runtime.live import run_loop
from ppl_edge.runtime.sinks import JsonlSink
from ppl_edge.runtime.sources import ArraySource

NAMES = ("head", "l_hand", "r_hand", "l_foot", "r_foot")
EDGES = ((0, 1), (0, 2), (0, 3), (0, 4))
ATOL = 1e-4  # normalised units, the keypoint contract
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def named_export(tmp_path_factory) -> Path:
    """A tiny random model with a random 5-joint map in its checkpoint, exported (portable)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from ppl_edge import checkpoint as ckpt
    from ppl_edge.convert import ExportConfig, export
    from ppl_edge.model.config import preset
    from ppl_edge.model.ppl import PoseModel

    torch.manual_seed(0)
    cfg = preset("tiny")
    model = PoseModel(cfg).eval()
    rng = np.random.default_rng(0)
    matrix = rng.normal(0, 0.3, (2 * cfg.num_keypoints + 1, 2 * len(NAMES))).astype(np.float32)
    tensors = {**ckpt.model_tensors(model), "joints.map": torch.from_numpy(matrix)}
    joints = {"names": list(NAMES), "edges": [list(e) for e in EDGES], "swap_pairs": [[1, 2]]}
    root = tmp_path_factory.mktemp("named")
    path = root / "named.safetensors"
    ckpt.save_checkpoint(path, tensors, dataclasses.asdict(cfg), {}, {**joints, "report": {}})
    export(path, ExportConfig(out=root / "export", target="onnx", flavour="portable"))
    return root / "export"


def _frames(count: int = 4) -> np.ndarray:
    from ppl_edge.synth.render import render_clip

    return render_clip("humanoid", count, 96, 3)[0]


def _normalised(est: Estimator, frame: np.ndarray, result, points: np.ndarray) -> np.ndarray:
    """Frame pixels of ``result``'s subject back to the model's [-1, 1]."""
    lb = preprocess(frame, [result.box], est.manifest.input)[1][0]
    return px_to_norm(lb.to_model(points), *lb.size)


@pytest.mark.parametrize(
    "settings",
    [
        {"refine": "none"},
        {"refine": "memory", "iterations": 2},
        {"refine": "image", "iterations": 1},
        {"refine": "memory", "iterations": 1, "smooth": {}},
    ],
    ids=["none", "memory2", "image1", "smoothed"],
)
def test_joints_are_the_map_of_the_final_keypoints(named_export, settings):
    matrix = np.asarray(Manifest.load(named_export).joints.matrix, np.float64)
    with Estimator(named_export, backend="onnxruntime", threads=1, **settings) as est:
        for t, frame in enumerate(_frames()):
            res = est.estimate(frame, timestamp=t / 25)
        assert res.joints.shape == (len(NAMES), 2) and res.joint_names == NAMES
        assert res.joint_edges == EDGES
        keypoints = _normalised(est, frame, res, res.keypoints).reshape(-1).astype(np.float64)
        want = (keypoints @ matrix[:-1] + matrix[-1]).reshape(-1, 2)
        got = _normalised(est, frame, res, res.joints)
        assert np.abs(got - want).max() < ATOL
        assert res.named_joints["head"] == pytest.approx(tuple(res.joints[0]))


def test_without_refinement_the_joints_equal_the_graph_output(named_export):
    frame = _frames(1)[0]
    with Estimator(named_export, backend="onnxruntime", threads=1) as est:
        res = est.estimate(frame)
        x, _ = preprocess(frame, [res.box], est.manifest.input)
        graph = est.backend.run({"image": x})["joints"][0]
        assert np.abs(_normalised(est, frame, res, res.joints) - graph).max() < ATOL


def test_jsonl_lines_and_the_ros2_payload_carry_the_names(named_export, tiny_export, tmp_path):
    with (
        Estimator(named_export, backend="onnxruntime", threads=1) as est,
        JsonlSink(tmp_path / "out.jsonl") as sink,
    ):
        run_loop(est, ArraySource(_frames(3)), jsonl=sink, handle_signals=False)
        results = est(_frames(1)[0])
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    for line in lines:
        subject = line["subjects"][0]
        assert subject["joint_names"] == list(NAMES) and len(subject["joints"]) == len(NAMES)
        assert subject["joint_edges"] == [list(e) for e in EDGES]
    package = ROOT / "samples" / "ros2" / "ppl_edge_ros" / "ppl_edge_ros"
    spec = importlib.util.spec_from_file_location("ros2_convert", package / "convert.py")
    ros = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = ros  # its dataclasses look their module up
    spec.loader.exec_module(ros)
    skeleton = ros.skeleton_fields(results[0])
    assert skeleton["joint_names"] == list(NAMES) and len(skeleton["joint_x"]) == len(NAMES)
    assert skeleton["joint_edges"] == [v for e in EDGES for v in e]
    with Estimator(tiny_export, backend="onnxruntime", threads=1) as plain:
        unnamed = plain.estimate(_frames(1)[0])
    assert unnamed.joints is None and "joints" not in unnamed.to_dict()


def test_overlay_draws_the_named_skeleton_and_labels(named_export):
    frame = cv2_resize(_frames(1)[0], 384)
    with Estimator(named_export, backend="onnxruntime", threads=1) as est:
        res = est.estimate(frame)
    plain = draw_pose(frame.copy(), res, names=False)
    labelled = draw_pose(frame.copy(), res)
    assert (plain != frame).any() and (labelled != plain).any()  # the names add pixels
    learned = draw_pose(frame.copy(), res, refined=True)  # the learned skeleton, no names
    assert (learned != labelled).any()
    draw_results(frame.copy(), [res, res], fps=30.0)
    tiny = np.zeros((8, 8, 3), np.uint8)
    nan = dataclasses.replace(res, joints=np.full((len(NAMES), 2), np.nan))
    draw_pose(tiny, nan, draw_box=True, label=True)


def cv2_resize(frame: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(frame, (size, size), interpolation=cv2.INTER_LINEAR)


def _edited(export: Path, tmp_path: Path, edit) -> Path:
    from ppl_edge.manifest import write_manifest

    out = tmp_path / export.name
    shutil.copytree(export, out)
    doc = json.loads((out / "manifest.json").read_text())
    edit(doc)
    write_manifest(out / "manifest.json", doc)
    return out


def test_a_joint_count_other_than_the_graphs_is_refused_in_one_line(named_export, tmp_path):
    def one_more(doc):
        section = doc["joints"]
        section["names"].append("tail")
        section["count"] += 1
        section["map"] = [row + [0.0, 0.0] for row in section["map"]]

    with pytest.raises(ManifestError) as err:
        Estimator(_edited(named_export, tmp_path, one_more), backend="onnxruntime")
    message = str(err.value)
    assert "\n" not in message and "names 6 joints" in message and "5 joints" in message


def test_joints_on_a_graph_without_them_are_refused(tiny_export, tmp_path):
    def add(doc):
        n = doc["keypoints"]["count"]
        doc["joints"] = {"count": 1, "names": ["a"], "map": [[0.0, 0.0]] * (2 * n + 1)}

    with pytest.raises(ManifestError, match="no 'joints' output"):
        Estimator(_edited(tiny_export, tmp_path, add), backend="onnxruntime")


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda s: s.update(count=4), "joints.count"),
        (lambda s: s["names"].pop(), "joints.count"),
        (lambda s: s.update(map=s["map"][:-1]), "joint map"),
        (lambda s: s.update(edges=[[0, 9]]), "joint pairs"),
        (lambda s: s.update(map=[[float("nan")] * 10] * 33), "non-finite"),
        (lambda s: s.update(coords="xy_px"), "coords"),
    ],
)
def test_malformed_joint_sections_are_refused_in_one_line(named_export, edit, expected):
    doc = json.loads((named_export / "manifest.json").read_text())
    edit(doc["joints"])
    with pytest.raises(ManifestError, match=expected) as err:
        Manifest.from_dict(doc)
    assert "\n" not in str(err.value)
