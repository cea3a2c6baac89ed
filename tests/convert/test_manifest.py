"""The export manifest: content, sha256 of files and folders, validation, merging of artifacts."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from ppl_edge.convert.manifest import (
    FORMAT,
    build_manifest,
    distance_reference,
    dumps,
    previous_artifacts,
    read_manifest,
    sha256_path,
    validate_manifest,
    write_manifest,
)
from ppl_edge.errors import PplEdgeError
from ppl_edge.skeleton import edges_from_weights, maximum_spanning_tree


@pytest.fixture()
def manifest(tmp_path, tiny_model):
    (tmp_path / "keypoints.onnx").write_bytes(b"graph")
    package = tmp_path / "keypoints.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Data" / "weight.bin").write_bytes(b"weights")
    return build_manifest(
        tiny_model,
        name="ppl-tiny-humanoid",
        preset="tiny",
        checkpoint_sha256="ab" * 32,
        distance_reference=1.5,
        opset=18,
        dynamic_batch=True,
        max_batch=64,
        precision="fp32",
        artifacts={"keypoints": tmp_path / "keypoints.onnx", "coreml": package},
        tools={"torch": "2.13.0"},
    )


def test_content_follows_the_contract(manifest, tiny_model):
    cfg = tiny_model.cfg
    assert manifest["format"] == FORMAT and manifest["format_version"] == 1
    assert manifest["input"] == {
        "name": "image",
        "height": 32,
        "width": 32,
        "layout": "NCHW",
        "color": "RGB",
        "scale": 1 / 255,
        "mean": [0.5] * 3,
        "std": [0.5] * 3,
    }
    assert manifest["keypoints"]["names"] == [f"kp{i:02d}" for i in range(cfg.num_keypoints)]
    assert manifest["keypoints"]["coords"] == "xy_norm"
    w = tiny_model.connectivity.matrix().detach().double().numpy()
    edges = manifest["skeleton"]["edges"]
    assert edges == [list(e) for e in edges_from_weights(w)]
    assert cfg.num_keypoints - 1 <= len(edges) <= 2 * cfg.num_keypoints  # a sparse skeleton
    assert {tuple(e) for e in maximum_spanning_tree(w)} <= {tuple(e) for e in edges}
    assert manifest["skeleton"]["weights"] == [round(float(w[i, j]), 6) for i, j in edges]
    assert manifest["memory"] == {
        "banks": cfg.mem_banks,
        "entries": cfg.mem_entries,
        "dim": cfg.mem_dim,
        "distance_reference": 1.5,
    }
    assert manifest["artifacts"]["keypoints"]["file"] == "keypoints.onnx"


def test_sha256_of_files_and_package_folders(tmp_path, manifest):
    import hashlib

    assert manifest["artifacts"]["keypoints"]["sha256"] == hashlib.sha256(b"graph").hexdigest()
    before = manifest["artifacts"]["coreml"]["sha256"]
    assert before == sha256_path(tmp_path / "keypoints.mlpackage")
    (tmp_path / "keypoints.mlpackage" / "Data" / "weight.bin").write_bytes(b"other")
    assert sha256_path(tmp_path / "keypoints.mlpackage") != before


def test_write_read_round_trip_and_tamper_detection(tmp_path, manifest):
    write_manifest(tmp_path / "manifest.json", manifest)
    assert read_manifest(tmp_path) == manifest
    (tmp_path / "keypoints.onnx").write_bytes(b"changed")
    with pytest.raises(PplEdgeError, match="does not match the sha256"):
        read_manifest(tmp_path)
    assert read_manifest(tmp_path, check_files=False) == manifest
    (tmp_path / "keypoints.onnx").unlink()
    with pytest.raises(PplEdgeError, match="artifact 'keypoints' is missing"):
        read_manifest(tmp_path)


def test_dumps_is_json_with_short_lists_inline(manifest):
    text = dumps(manifest)
    assert json.loads(text) == manifest
    assert '"mean": [0.5, 0.5, 0.5]' in text


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(format="onnx"), "not a ppl-edge export manifest"),
        (lambda m: m.update(format_version=99), "newer than this ppl-edge reads"),
        (lambda m: m.pop("memory"), "lacks the keys \\['memory'\\]"),
        (lambda m: m["keypoints"]["names"].pop(), "names 15 keypoints"),
        (lambda m: m["skeleton"]["edges"].append([3, 99]), "edge \\[3, 99\\] is outside"),
    ],
)
def test_validation_names_the_problem(manifest, edit, message):
    edit(manifest)
    with pytest.raises(PplEdgeError, match=message):
        validate_manifest(manifest)


def test_missing_or_invalid_manifest_is_refused(tmp_path):
    with pytest.raises(PplEdgeError, match="manifest not found"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(PplEdgeError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_previous_artifacts_only_from_the_same_checkpoint(tmp_path, manifest):
    write_manifest(tmp_path / "manifest.json", manifest)
    kept = previous_artifacts(tmp_path, "ab" * 32)
    assert set(kept) == {"keypoints", "coreml"}
    assert previous_artifacts(tmp_path, "cd" * 32) == {}
    (tmp_path / "keypoints.onnx").unlink()
    assert set(previous_artifacts(tmp_path, "ab" * 32)) == {"coreml"}


def test_distance_reference_is_the_median_of_per_image_means(tiny_model):
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(40, 3, 32, 32, generator=gen) * 2 - 1
    with torch.no_grad():
        per_image = tiny_model.keypoint_path(images)["prototype_distances"].mean(dim=1)
    value = distance_reference(tiny_model, images)
    assert value > 0
    assert value == pytest.approx(float(per_image.median()), rel=1e-6)
