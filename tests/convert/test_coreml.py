"""`ppl-edge convert --target coreml`: the packages' Linux checks (keypoint path and memory pass),
precision split, metadata; prediction parity on macOS only."""

from __future__ import annotations

import copy
import dataclasses
import json
import platform

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("coremltools", reason="needs coremltools (pip install 'ppl-edge[coreml]')")

from ppl_edge.checkpoint import model_tensors, save_checkpoint
from ppl_edge.cli import main
from ppl_edge.convert.coreml import PACKAGE_NAME, _main_operations, check_package, verify_coreml
from ppl_edge.convert.coreml_memory import MEMORY_KEY, MEMORY_PACKAGE, check_memory_package
from ppl_edge.convert.manifest import read_manifest, sha256_path
from ppl_edge.convert.verify import sample_images
from ppl_edge.model.config import preset
from ppl_edge.model.ppl import PoseModel


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("coreml")
    torch.manual_seed(0)
    model = PoseModel(preset("tiny")).eval()
    ckpt = root / "ppl-tiny.safetensors"
    save_checkpoint(ckpt, model_tensors(model), dataclasses.asdict(model.cfg))
    out = root / "out"
    code = main(
        [
            "-q",
            "convert",
            "--checkpoint",
            str(ckpt),
            "--target",
            "coreml",
            "--out",
            str(out),
            "--verify",
            "--verify-images",
            "8",
        ]
    )
    assert code == 0
    return {"model": model, "out": out, "manifest": read_manifest(out)}


def spec_of(exported):
    import coremltools as ct

    return ct.models.MLModel(str(exported["out"] / PACKAGE_NAME), skip_model_load=True).get_spec()


def test_package_and_manifest_written(exported):
    assert sorted(p.name for p in exported["out"].iterdir()) == [
        "keypoints.mlpackage",
        "manifest.json",
        "memory.mlpackage",
    ]
    entry = exported["manifest"]["artifacts"]["coreml"]
    assert entry == {"file": PACKAGE_NAME, "sha256": sha256_path(exported["out"] / PACKAGE_NAME)}
    assert "coremltools" in exported["manifest"]["tools"]


def test_linux_checks_pass(exported):
    check = check_package(exported["out"] / PACKAGE_NAME, exported["manifest"], exported["model"])
    assert check.passed, check.line()
    assert check.metrics["codebook_max_error"] == 0.0


def test_mlprogram_with_image_input_and_fp16_network(exported):
    from coremltools.proto import MIL_pb2

    spec = spec_of(exported)
    assert spec.WhichOneof("Type") == "mlProgram"
    assert spec.specificationVersion >= 7  # iOS 16 / macOS 13
    image = spec.description.input[0]
    assert image.name == "image" and image.type.WhichOneof("Type") == "imageType"
    ops = _main_operations(spec)
    conv_dtypes = set()
    names = {out.name: out.type.tensorType.dataType for op in ops for out in op.outputs}
    for op in ops:
        if op.type == "conv":
            conv_dtypes.add(names[op.inputs["x"].arguments[0].name])
    assert conv_dtypes == {MIL_pb2.FLOAT16}  # the network runs in FP16 (the lookup in FP32: above)


def test_metadata_carries_names_edges_and_manifest(exported):
    meta = dict(spec_of(exported).description.metadata.userDefined)
    manifest = exported["manifest"]
    assert json.loads(meta["keypoint_names"]) == manifest["keypoints"]["names"]
    assert json.loads(meta["skeleton_edges"]) == manifest["skeleton"]["edges"]
    embedded = json.loads(meta["manifest"])
    assert embedded["input"] == manifest["input"] and embedded["memory"] == manifest["memory"]


def test_checks_catch_a_manifest_or_model_that_does_not_match(exported):
    package = exported["out"] / PACKAGE_NAME
    wrong = copy.deepcopy(exported["manifest"])
    wrong["memory"]["banks"] += 1
    assert not check_package(package, wrong, exported["model"]).passed
    other = PoseModel(preset("tiny")).eval()  # different random codebook
    check = check_package(package, exported["manifest"], other)
    assert not check.passed and check.metrics["codebook_max_error"] > 0


@pytest.mark.macos
@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML prediction needs macOS")
def test_predictions_match_torch_on_macos(exported):
    images = sample_images("synthetic:humanoid", 32, 64)
    checks = verify_coreml(exported["model"], exported["out"], images)
    assert len(checks) == 2 and all(c.passed for c in checks), [c.line() for c in checks]


def test_memory_package_for_memory_refinement_on_the_device(exported):
    import coremltools as ct
    from coremltools.proto import MIL_pb2

    out, manifest, model = exported["out"], exported["manifest"], exported["model"]
    entry = manifest["artifacts"][MEMORY_KEY]
    assert entry == {"file": MEMORY_PACKAGE, "sha256": sha256_path(out / MEMORY_PACKAGE)}
    check = check_memory_package(out / MEMORY_PACKAGE, manifest, model)
    assert check.passed and check.metrics["codebook_max_error"] == 0.0, check.line()
    spec = ct.models.MLModel(str(out / MEMORY_PACKAGE), skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "mlProgram" and spec.specificationVersion >= 7
    ids = {f.name: f.type.multiArrayType.dataType for f in spec.description.output}
    assert ids["prototype_ids"] == ct.proto.FeatureTypes_pb2.ArrayFeatureType.INT32
    names = {
        o.name: o.type.tensorType.dataType for op in _main_operations(spec) for o in op.outputs
    }
    linear = [names[op.inputs["x"].arguments[0].name] for op in _main_operations(spec)
              if op.type == "linear"]  # fmt: skip
    assert MIL_pb2.FLOAT16 in linear  # the memory encoder / decoder run in FP16
    other = PoseModel(preset("tiny")).eval()  # a different random codebook
    assert not check_memory_package(out / MEMORY_PACKAGE, manifest, other).passed
    wrong = copy.deepcopy(manifest)
    wrong["keypoints"]["count"] += 1
    assert not check_memory_package(out / MEMORY_PACKAGE, wrong, model).passed
