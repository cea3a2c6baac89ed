"""The manifest the estimator reads: validation messages, artifact checksums, model path forms."""

from __future__ import annotations

import copy
import hashlib
import json

import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import sha256_path
from ppl_edge.runtime.manifest import ManifestError, load_manifest, parse_manifest, resolve_model


@pytest.fixture(scope="module")
def document(tiny_export) -> dict:
    return json.loads((tiny_export / "manifest.json").read_text())


def test_export_manifest_reads_as_the_contract_says(tiny_export):
    m = load_manifest(tiny_export / "manifest.json")
    assert (m.input.width, m.input.height, m.input.color) == (32, 32, "RGB")
    assert m.input.mean == (0.5, 0.5, 0.5) and m.input.scale == pytest.approx(1 / 255)
    assert m.num_keypoints == 16 and len(m.keypoint_names) == 16
    assert (m.banks, m.entries, m.dim) == (8, 8, 64) and m.distance_reference > 0
    assert m.dynamic_batch and m.max_batch >= 1
    assert m.artifact_path("keypoints") == tiny_export / "keypoints.onnx"
    assert m.artifact_path("memory") is None


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d.update(format="something-else"), "expected 'ppl-edge-export'"),
        (lambda d: d.update(format_version=99), "newer than this ppl-edge reads"),
        (lambda d: d["input"].pop("height"), "field 'input.height' is missing"),
        (lambda d: d["input"].update(width="64"), "'input.width' must be int"),
        (lambda d: d["input"].update(std=[0.5, 0.0, 0.5]), "std non-zero"),
        (lambda d: d["input"].update(layout="NHWC"), "unsupported"),
        (lambda d: d["keypoints"].update(names=["a"]), "need 16 names"),
        (lambda d: d["skeleton"].update(edges=[[0, 99]]), "outside 0..15"),
        (lambda d: d["memory"].pop("distance_reference"), "memory.distance_reference"),
        (lambda d: d["artifacts"].update(refine="refine.onnx"), "artifacts.refine must be"),
    ],
)
def test_invalid_manifests_say_what_is_wrong(document, tiny_export, edit, message):
    broken = copy.deepcopy(document)
    edit(broken)
    with pytest.raises(ManifestError, match=message):
        parse_manifest(broken, tiny_export / "manifest.json")


def test_unreadable_or_missing_manifest(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest(tmp_path / "manifest.json")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path / "manifest.json")


def test_checksums_match_the_exporter_and_catch_changes(tiny_export, tmp_path):
    m = load_manifest(tiny_export / "manifest.json")
    m.verify("keypoints")
    m.verify("refine")
    package = tmp_path / "model.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Data" / "model.mlmodel").write_bytes(b"abc")
    (package / "Manifest.json").write_text("{}")
    # a folder hashes each file's relative path, a NUL byte and its content, in sorted order
    want = hashlib.sha256(b"Data/model.mlmodel\0abc" + b"Manifest.json\0{}").hexdigest()
    assert sha256_path(package) == want
    changed = tmp_path / "export"
    changed.mkdir()
    for name in ("manifest.json", "keypoints.onnx"):
        (changed / name).write_bytes((tiny_export / name).read_bytes())
    with open(changed / "keypoints.onnx", "ab") as fh:
        fh.write(b"\0")
    copy_ = load_manifest(changed / "manifest.json")
    with pytest.raises(ManifestError, match="changed after export"):
        copy_.verify("keypoints")
    with pytest.raises(ManifestError, match="artifact 'refine' is missing"):
        copy_.verify("refine")
    with pytest.raises(ManifestError, match="no artifact 'engine'"):
        copy_.verify("engine")


def test_every_model_path_form_resolves_to_the_same_export(tiny_export):
    forms = [tiny_export, tiny_export / "manifest.json", tiny_export / "keypoints.onnx"]
    for form in forms:
        files = resolve_model(form)
        assert files.onnx == tiny_export / "keypoints.onnx", form
        assert files.refine == tiny_export / "refine.onnx"
        assert files.engine is None and files.mlpackage is None and files.memory is None


def test_bad_model_paths(tiny_export, tmp_path):
    with pytest.raises(PplEdgeError, match="model not found"):
        resolve_model(tmp_path / "nope.onnx")
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(PplEdgeError, match="unsupported model file"):
        resolve_model(weights)
    lonely = tmp_path / "lonely.onnx"
    lonely.write_bytes((tiny_export / "keypoints.onnx").read_bytes())
    with pytest.raises(ManifestError, match="manifest not found"):
        resolve_model(lonely)
