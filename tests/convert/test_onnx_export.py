"""`ppl-edge convert --target onnx` end to end on a tiny random model: graphs, manifest, parity.

One export (through the CLI, with --verify) is shared by the module; each test checks one property.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
pytest.importorskip("onnxsim")

from ppl_edge.checkpoint import model_tensors, save_checkpoint
from ppl_edge.cli import main
from ppl_edge.convert.manifest import read_manifest, sha256_path
from ppl_edge.convert.onnx_export import KEYPOINT_OUTPUTS, MEMORY_OUTPUTS
from ppl_edge.convert.verify import ort_session, torch_keypoints, verify_memory, verify_onnx
from ppl_edge.model.config import preset
from ppl_edge.model.ppl import PoseModel

CFG = preset("tiny")


def trained_like_model(seed: int = 0) -> PoseModel:
    """A tiny model whose codebook entries are well separated, as after training (random init
    leaves many near-ties that no two float implementations would break the same way)."""
    torch.manual_seed(seed)
    model = PoseModel(CFG).eval()
    with torch.no_grad():
        model.memory.codebook.mul_(3.0)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("export")
    model = trained_like_model()
    ckpt = root / "ppl-tiny-humanoid.safetensors"
    save_checkpoint(
        ckpt,
        model_tensors(model),
        dataclasses.asdict(CFG),
        {"config": {"data": "synthetic:humanoid"}},
    )
    out = root / "out"
    code = main(
        [
            "-q",
            "convert",
            "--checkpoint",
            str(ckpt),
            "--target",
            "onnx",
            "--out",
            str(out),
            "--verify",
            "--verify-images",
            "64",
        ]
    )
    assert code == 0
    return {"model": model, "out": out, "ckpt": ckpt, "manifest": read_manifest(out)}


def test_writes_both_flavours_refine_memory_and_manifest_only(exported):
    names = sorted(p.name for p in exported["out"].iterdir())
    assert names == [
        "keypoints.onnx",
        "keypoints_trt.onnx",
        "manifest.json",
        "memory.onnx",
        "refine.onnx",
    ]
    assert not [p for p in exported["out"].parent.iterdir() if p.name.startswith(".out.staging")]


@pytest.mark.parametrize(
    "name", ["keypoints.onnx", "keypoints_trt.onnx", "refine.onnx", "memory.onnx"]
)
def test_checker_clean_and_self_contained(exported, name):
    proto = onnx.load(str(exported["out"] / name))
    onnx.checker.check_model(proto, full_check=True)
    assert not (exported["out"] / f"{name}.data").exists()
    assert {o.domain: o.version for o in proto.opset_import}.get("") == 18


def _dims(value_info) -> list:
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("name", ["keypoints.onnx", "keypoints_trt.onnx"])
def test_keypoint_graph_io_follows_the_contract(exported, name):
    proto = onnx.load(str(exported["out"] / name))
    n, m = CFG.num_keypoints, CFG.mem_banks
    assert [i.name for i in proto.graph.input] == ["image"]
    assert _dims(proto.graph.input[0]) == ["B", 3, CFG.img_size, CFG.img_size]
    outputs = {o.name: o for o in proto.graph.output}
    assert list(outputs) == list(KEYPOINT_OUTPUTS)
    want = {
        "keypoints": ["B", n, 2],
        "keypoints_refined": ["B", n, 2],
        "prototype_ids": ["B", m],
        "prototype_distances": ["B", m],
        "confidence": ["B", n],
    }
    assert {k: _dims(v) for k, v in outputs.items()} == want
    assert outputs["prototype_ids"].type.tensor_type.elem_type == onnx.TensorProto.INT32
    assert outputs["keypoints"].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_prior_is_a_constant_not_distilled_in_the_graph(exported):
    ops = Counter(n.op_type for n in onnx.load(str(exported["out"] / "keypoints.onnx")).graph.node)
    assert ops["ReduceMean"] == 0  # the distillation averages the codebook over entries
    assert ops["ArgMin"] == 1  # only the inference lookup


def test_plugin_graph_has_one_custom_node_and_its_function(exported):
    proto = onnx.load(str(exported["out"] / "keypoints_trt.onnx"))
    nodes = [n for n in proto.graph.node if n.op_type == "NearestNeighborLookup"]
    assert len(nodes) == 1 and nodes[0].domain == "ppl_edge"
    attrs = {a.name: a.s.decode() for a in nodes[0].attribute}
    assert attrs == {"plugin_version": "1", "plugin_namespace": ""}
    assert [f.name for f in proto.functions] == ["NearestNeighborLookup"]
    assert "ArgMin" not in Counter(n.op_type for n in proto.graph.node)


def test_parity_with_torch_on_256_images(exported):
    checks = {c.name: c for c in verify_onnx(exported["model"], exported["out"], threads=1)}
    kp = checks["keypoints.onnx vs torch"]
    assert kp.passed and kp.metrics["images"] == 256
    assert kp.metrics["max_keypoint_error"] <= 1e-4
    assert kp.metrics["id_agreement_pct"] >= 99.9
    same = checks["keypoints_trt.onnx vs keypoints.onnx"]
    assert same.passed and same.metrics["id_agreement_pct"] == 100.0
    assert same.metrics["max_keypoint_error"] <= 1e-5
    refine = checks["refine.onnx vs torch"]
    assert refine.passed and refine.metrics["max_abs_error"] <= 1e-4
    memory = checks["memory.onnx vs torch"]
    assert memory.passed and memory.metrics["poses"] == 512
    assert (
        memory.metrics["max_refined_error"] <= 1e-4 and memory.metrics["id_agreement_pct"] == 100.0
    )


def test_dynamic_batch_one_and_three_in_one_session(exported):
    session = ort_session(exported["out"] / "keypoints.onnx", threads=1)
    gen = torch.Generator().manual_seed(3)
    images = torch.rand(3, 3, CFG.img_size, CFG.img_size, generator=gen) * 2 - 1
    ref = torch_keypoints(exported["model"], images)
    for batch in (images[:1], images):
        got = dict(zip(KEYPOINT_OUTPUTS, session.run(None, {"image": batch.numpy()})))
        b = batch.shape[0]
        assert got["keypoints"].shape == (b, CFG.num_keypoints, 2)
        np.testing.assert_allclose(got["keypoints"], ref["keypoints"][:b], atol=1e-4)
        np.testing.assert_array_equal(got["prototype_ids"], ref["prototype_ids"][:b])


def test_refine_graph_takes_image_and_keypoints(exported):
    session = ort_session(exported["out"] / "refine.onnx", threads=1)
    assert [i.name for i in session.get_inputs()] == ["image", "keypoints"]
    model = exported["model"]
    image = torch.rand(1, 3, CFG.img_size, CFG.img_size) * 2 - 1
    kpts = torch.rand(1, CFG.num_keypoints, 2) * 1.6 - 0.8
    (got,) = session.run(None, {"image": image.numpy(), "keypoints": kpts.numpy()})
    with torch.no_grad():
        ref = model.refine_image(image, kpts).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)
    moved = session.run(None, {"image": image.numpy(), "keypoints": (kpts * 0.5).numpy()})[0]
    assert np.abs(moved - got).max() > 1e-3  # the keypoints drive the reconstruction


def test_memory_graph_io_follows_the_contract(exported):
    proto = onnx.load(str(exported["out"] / "memory.onnx"))
    n, m = CFG.num_keypoints, CFG.mem_banks
    assert [i.name for i in proto.graph.input] == ["keypoints"]
    assert _dims(proto.graph.input[0]) == ["B", n, 2]
    outputs = {o.name: o for o in proto.graph.output}
    assert list(outputs) == list(MEMORY_OUTPUTS)
    assert {k: _dims(v) for k, v in outputs.items()} == {
        "keypoints_refined": ["B", n, 2],
        "prototype_ids": ["B", m],
        "prototype_distances": ["B", m],
    }
    assert outputs["prototype_ids"].type.tensor_type.elem_type == onnx.TensorProto.INT32
    ops = Counter(node.op_type for node in proto.graph.node)
    assert ops["ArgMin"] == 1 and "NearestNeighborLookup" not in ops  # portable lookup


def test_memory_graph_continues_the_keypoint_graph_at_any_batch(exported):
    """memory.onnx on keypoints.onnx's keypoints reproduces its refined keypoints and ids, at
    batch 1 and 3 in one session; a second pass matches the torch memory (iterative refinement)."""
    keypoints = ort_session(exported["out"] / "keypoints.onnx", threads=1)
    memory = ort_session(exported["out"] / "memory.onnx", threads=1)
    images = torch.rand(
        3, 3, CFG.img_size, CFG.img_size, generator=torch.Generator().manual_seed(4)
    )
    est = dict(zip(KEYPOINT_OUTPUTS, keypoints.run(None, {"image": (images * 2 - 1).numpy()})))
    for b in (1, 3):
        got = dict(zip(MEMORY_OUTPUTS, memory.run(None, {"keypoints": est["keypoints"][:b]})))
        assert got["keypoints_refined"].shape == (b, CFG.num_keypoints, 2)
        np.testing.assert_allclose(
            got["keypoints_refined"], est["keypoints_refined"][:b], atol=1e-5
        )
        np.testing.assert_array_equal(got["prototype_ids"], est["prototype_ids"][:b])
    again = dict(zip(MEMORY_OUTPUTS, memory.run(None, {"keypoints": est["keypoints_refined"]})))
    with torch.no_grad():
        ref = exported["model"].memory(torch.from_numpy(est["keypoints_refined"]))
    np.testing.assert_allclose(again["keypoints_refined"], ref.keypoints.numpy(), atol=1e-4)
    np.testing.assert_array_equal(again["prototype_ids"], ref.indices.numpy())


def test_memory_check_fails_on_another_models_memory(exported):
    other = trained_like_model(seed=7)
    images = torch.rand(
        8, 3, CFG.img_size, CFG.img_size, generator=torch.Generator().manual_seed(5)
    )
    check = verify_memory(other, exported["out"] / "memory.onnx", images * 2 - 1, threads=1)
    assert not check.passed and check.metrics["max_refined_error"] > 1e-2
    assert "FAILED" in check.line()


def test_manifest_matches_files_and_model(exported):
    manifest, out, model = exported["manifest"], exported["out"], exported["model"]
    assert manifest["model"]["name"] == "ppl-tiny-humanoid"
    assert manifest["model"]["preset"] == "tiny"
    assert manifest["model"]["checkpoint_sha256"] == sha256_path(exported["ckpt"])
    for role, file in [
        ("keypoints", "keypoints.onnx"),
        ("keypoints_trt", "keypoints_trt.onnx"),
        ("refine", "refine.onnx"),
        ("memory", "memory.onnx"),
    ]:
        assert manifest["artifacts"][role] == {"file": file, "sha256": sha256_path(out / file)}
    assert manifest["input"]["height"] == CFG.img_size and manifest["input"]["color"] == "RGB"
    assert manifest["keypoints"]["names"][:2] == ["kp00", "kp01"]
    assert manifest["keypoints"]["count"] == CFG.num_keypoints
    assert manifest["memory"] == {
        **manifest["memory"],
        "banks": CFG.mem_banks,
        "entries": CFG.mem_entries,
        "dim": CFG.mem_dim,
    }
    assert manifest["memory"]["distance_reference"] > 0
    assert manifest["batch"] == {"dynamic": True, "max": 64}
    assert manifest["opset"] == 18 and manifest["precision"] == "fp32"
    assert set(manifest["tools"]) >= {"torch", "onnx", "onnxruntime"}
    edges = manifest["skeleton"]["edges"]
    assert len(edges) >= CFG.num_keypoints - 1 and len(manifest["skeleton"]["weights"]) == len(
        edges
    )
    w = model.connectivity.matrix().detach().numpy()
    i, j = edges[0]
    assert manifest["skeleton"]["weights"][0] == pytest.approx(float(w[i, j]), rel=1e-4)
    assert json.loads((out / "manifest.json").read_text()) == manifest


def test_sha256_mismatch_is_detected(exported, tmp_path):
    import shutil

    from ppl_edge.errors import PplEdgeError

    copy = tmp_path / "copy"
    shutil.copytree(exported["out"], copy)
    (copy / "refine.onnx").write_bytes(b"tampered")
    with pytest.raises(PplEdgeError, match="sha256"):
        read_manifest(copy)


def test_static_batch_at_opset_17(tmp_path, caplog):
    from ppl_edge.convert import export_onnx

    model = trained_like_model(seed=1)
    export_onnx(model, tmp_path / "static", opset=17, dynamic_batch=False)
    manifest = read_manifest(tmp_path / "static")
    assert manifest["batch"] == {"dynamic": False, "max": 1} and manifest["opset"] == 17
    proto = onnx.load(str(tmp_path / "static" / "keypoints.onnx"))
    assert {o.domain: o.version for o in proto.opset_import}[""] == 17
    assert _dims(proto.graph.input[0]) == [1, 3, CFG.img_size, CFG.img_size]
    assert _dims(onnx.load(str(tmp_path / "static" / "memory.onnx")).graph.input[0]) == [
        1,
        CFG.num_keypoints,
        2,
    ]
    with caplog.at_level(logging.INFO, logger="ppl_edge.convert.verify"):
        checks = verify_onnx(model, tmp_path / "static", count=8, threads=1)
    assert [(c.name.split()[0], c.passed) for c in checks] == [
        ("keypoints.onnx", True),
        ("refine.onnx", True),
        ("memory.onnx", True),
    ]
    # `convert --verify` prints each check once: the library does not also log it at INFO
    lines = {c.line() for c in checks}
    assert not [r for r in caplog.records if r.levelno >= logging.INFO and r.getMessage() in lines]


def test_refine_graph_of_a_normalised_link_model_matches_torch():
    """``link_normalize`` (the mask recipe) divides W by its max inside the exported graph."""
    from ppl_edge.convert.onnx_export import build_refine_graph

    torch.manual_seed(1)
    model = PoseModel(preset("tiny", link_normalize=True)).eval()
    with torch.no_grad():
        model.connectivity.theta.mul_(3.0)  # a spread of weights, as after training
        proto, _ = build_refine_graph(model, 18, dynamic_batch=True, simplify=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    kpts = torch.rand(2, model.cfg.num_keypoints, 2) * 1.6 - 0.8
    (got,) = session.run(None, {"image": image.numpy(), "keypoints": kpts.numpy()})
    with torch.no_grad():
        ref = model.refine_image(image, kpts).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_refine_graph_draws_only_links_above_the_tolerance():
    """refine.onnx of a model with ``refine_link_tolerance``: the same computation as
    ``refine_image`` (1e-4), fewer links, and its link map within the tolerance of the full
    PyTorch rasteriser's."""
    from ppl_edge.convert.onnx_export import build_refine_graph, export_graph
    from ppl_edge.convert.refine_graph import RefineGraph
    from ppl_edge.model.links import rasterize_links_log

    torch.manual_seed(2)
    cfg = preset("tiny", link_normalize=True, refine_link_tolerance=0.05)
    model = PoseModel(cfg).eval()
    with torch.no_grad():
        model.connectivity.theta.mul_(3.0)
    graph = RefineGraph(model)
    assert 0 < graph.links_kept < cfg.num_links
    image = torch.rand(3, 3, 32, 32) * 2 - 1
    kpts = torch.rand(3, cfg.num_keypoints, 2) * 1.6 - 0.8
    with torch.no_grad():
        proto, _ = build_refine_graph(model, 18, dynamic_batch=True, simplify=True)
    ops = {n.op_type for n in proto.graph.node}
    assert "ReduceMax" not in ops and "Resize" in ops and "AveragePool" in ops
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": image.numpy(), "keypoints": kpts.numpy()})
    with torch.no_grad():
        ref = model.refine_image(image, kpts).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)

    class LinkMap(torch.nn.Module):  # the graph's rasteriser alone, exported the same way
        def forward(self, keypoints):
            return rasterize_links_log(keypoints, graph.log_weights, graph.pairs, 32, 2e-2)

    with torch.no_grad():
        links = export_graph(LinkMap(), (kpts[:2],), ("keypoints",), ("links",), 18, True)
        full = model.connectivity(kpts, 32).numpy()
    session = ort.InferenceSession(links.SerializeToString(), providers=["CPUExecutionProvider"])
    (drawn,) = session.run(None, {"keypoints": kpts.numpy()})
    gap = full - drawn
    assert gap.min() >= -1e-6 and gap.max() <= 0.05 + 1e-6


def test_keypoint_graph_of_an_encoder_with_skips_matches_torch():
    """``enc_skips`` (the skip connections of the small recipe) export like the rest of φ_enc."""
    from ppl_edge.convert.onnx_export import build_keypoint_graph

    torch.manual_seed(2)
    model = PoseModel(preset("tiny", enc_skips=True)).eval()
    proto, _ = build_keypoint_graph(model, "portable", 18, dynamic_batch=True, simplify=True)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    image = torch.rand(3, 3, 32, 32) * 2 - 1
    got = dict(
        zip([o.name for o in session.get_outputs()], session.run(None, {"image": image.numpy()}))
    )
    with torch.no_grad():
        ref = model.keypoint_path(image)
    np.testing.assert_allclose(got["keypoints"], ref["keypoints"].numpy(), atol=1e-4)
    np.testing.assert_allclose(got["confidence"], ref["confidence"].numpy(), atol=1e-4)
