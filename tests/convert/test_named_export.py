"""Named joints in the export: a tiny model named from synthetic labels (``ppl-edge name``) exports
through ``ppl-edge convert --verify`` with a ``joints`` output on every keypoint graph and a
``joints`` manifest section; a template-prior model names its keypoints; an unnamed export has
neither."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxsim")

from ppl_edge import checkpoint as ckpt
from ppl_edge.cli import main
from ppl_edge.convert import ExportConfig, export
from ppl_edge.convert.onnx_export import KEYPOINT_OUTPUTS
from ppl_edge.convert.verify import ort_session, sample_images, verify_onnx
from ppl_edge.manifest import Manifest, ManifestError
from ppl_edge.model.config import preset
from ppl_edge.model.ppl import PoseModel
from ppl_edge.named_joints import NamedJoints

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = preset("tiny")


def _model(cfg=CFG) -> PoseModel:
    torch.manual_seed(0)
    model = PoseModel(cfg).eval()
    with torch.no_grad():
        model.memory.codebook.mul_(3.0)  # well-separated entries, as after training
    return model


@pytest.fixture(scope="module")
def named(tmp_path_factory):
    """(named checkpoint, export folder, convert's exit code and output lines) of a tiny model
    named on 24 labels, exported by ``ppl-edge convert --verify`` (both keypoint graphs)."""
    from ppl_edge.synth.folder import write_synthetic
    from ppl_edge.train.naming import name_checkpoint

    root = tmp_path_factory.mktemp("named")
    model = _model()
    plain = root / "tiny.safetensors"
    meta = {"config": {"data": "synthetic:humanoid"}}
    ckpt.save_checkpoint(plain, ckpt.model_tensors(model), dataclasses.asdict(CFG), meta)
    write_synthetic(root / "labels", count=24, size=32, split="train_reg")
    name_checkpoint(plain, root / "labels", root / "named.safetensors")
    out = root / "export"
    args = ["-q", "convert", "--checkpoint", str(root / "named.safetensors"), "--target", "onnx"]
    args += ["--out", str(out), "--verify", "--verify-images", "32"]  # --nn plugin: both graphs
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        code = main(args)
    return root / "named.safetensors", out, (code, printed.getvalue().splitlines())


def test_named_export_passes_verify_with_the_joint_output(named):
    code, lines = named[2]
    assert code == 0, lines
    keypoint_lines = [line for line in lines if line.startswith("keypoints") and " vs " in line]
    assert len(keypoint_lines) == 2 and all("max_joint_error=" in x for x in keypoint_lines)
    assert all(line.endswith("OK") for line in lines if " vs " in line)


def test_graphs_output_joints_equal_to_the_map(named):
    path, out, _ = named
    meta = ckpt.read_metadata(path)["joints"]
    matrix = ckpt.load_tensors(path, prefix="joints.")["map"].numpy()
    images = sample_images("synthetic:humanoid", CFG.img_size, 8).numpy()
    for name in ("keypoints.onnx", "keypoints_trt.onnx"):
        session = ort_session(out / name)
        outputs = [o.name for o in session.get_outputs()]
        assert outputs == [*KEYPOINT_OUTPUTS, "joints"]
        assert session.get_outputs()[-1].shape[1:] == [len(meta["names"]), 2]
        got = dict(zip(outputs, session.run(None, {"image": images})))
        flat = got["keypoints"].reshape(len(images), -1).astype(np.float64)
        want = (flat @ matrix[:-1] + matrix[-1]).reshape(len(images), -1, 2)
        assert np.abs(got["joints"] - want).max() < 1e-5


def test_manifest_lists_the_joints(named):
    path, out, _ = named
    meta = ckpt.read_metadata(path)["joints"]
    doc = json.loads((out / "manifest.json").read_text())
    section = doc["joints"]
    assert section["names"] == meta["names"] and section["count"] == len(meta["names"])
    assert section["edges"] == meta["edges"] and section["swap_pairs"] == meta["swap_pairs"]
    assert section["source"] == "map" and section["coords"] == "xy_norm"
    matrix = ckpt.load_tensors(path, prefix="joints.")["map"].numpy()
    assert np.array_equal(np.asarray(section["map"], np.float32), matrix)  # exact float32 values
    assert doc["keypoints"]["names"][0] == "kp00"  # a fitted map names joints, not keypoints
    assert Manifest.load(out).joints.names == tuple(meta["names"])


def test_manifest_with_another_joint_count_is_refused_in_one_line(named):
    _, out, _ = named
    doc = json.loads((out / "manifest.json").read_text())
    doc["joints"]["names"] = doc["joints"]["names"][:-1]
    with pytest.raises(ManifestError) as err:
        Manifest.from_dict(doc)
    assert "\n" not in str(err.value) and "joints.count" in str(err.value)
    doc["joints"]["count"] -= 1  # names and count agree, the map does not
    with pytest.raises(ManifestError, match="joint map"):
        Manifest.from_dict(doc)


def test_verify_fails_when_a_named_model_exports_without_joints(tiny_model, tiny_export):
    matrix = np.zeros((2 * CFG.num_keypoints + 1, 4), np.float32)
    joints = NamedJoints(("a", "b"), ((0, 1),), (), matrix)
    images = sample_images("synthetic:humanoid", CFG.img_size, 4)
    checks = verify_onnx(tiny_model, tiny_export, images, joints=joints)
    assert not checks[0].passed and checks[0].metrics["max_joint_error"] == float("inf")


def test_unnamed_export_has_no_joints(tiny_export):
    doc = json.loads((tiny_export / "manifest.json").read_text())
    assert "joints" not in doc
    assert doc["keypoints"]["names"] == [f"kp{i:02d}" for i in range(CFG.num_keypoints)]
    session = ort_session(tiny_export / "keypoints.onnx")
    assert [o.name for o in session.get_outputs()] == list(KEYPOINT_OUTPUTS)


def test_template_prior_names_keypoints_and_outputs_them_as_joints(tmp_path):
    from ppl_edge.templates import load_template

    template = load_template("humanoid")
    model = _model(dataclasses.replace(CFG, prior="template:humanoid"))
    config = ExportConfig(out=tmp_path / "t", target="onnx", verify=True, verify_images=8)
    report = export(model, config)
    assert report.passed and "max_joint_error" in report.checks[0].metrics
    doc = json.loads((tmp_path / "t" / "manifest.json").read_text())
    assert doc["keypoints"]["names"] == list(template.names) == doc["joints"]["names"]
    assert doc["joints"]["source"] == "template"
    assert doc["joints"]["edges"] == [list(e) for e in template.edges]
    session = ort_session(tmp_path / "t" / "keypoints.onnx")
    images = sample_images("synthetic:humanoid", CFG.img_size, 2).numpy()
    kpts, joints = session.run(["keypoints", "joints"], {"image": images})
    assert np.array_equal(kpts, joints)  # identity map: joint k is keypoint k


def test_coreml_package_has_the_joint_output(named, tmp_path):
    pytest.importorskip("coremltools")
    from ppl_edge.convert.coreml import check_package

    path, _, _ = named
    config = ExportConfig(out=tmp_path / "cm", target="coreml")
    export(path, config)
    doc = json.loads((tmp_path / "cm" / "manifest.json").read_text())
    package = tmp_path / "cm" / doc["artifacts"]["coreml"]["file"]
    check = check_package(package, doc, ckpt.load_model(path)[0])
    assert check.passed and check.metrics["outputs"] == len(KEYPOINT_OUTPUTS) + 1
