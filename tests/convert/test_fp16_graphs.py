"""Every exported graph in float16 (convert/fp16.py): keypoints (portable and plugin lookup), refine
and memory graphs of the shipped model run on ONNX Runtime CPU after the float16 conversion, which
stores every intermediate tensor in FP16 (ONNX Runtime casts around each node it has no FP16 kernel
for, so each tensor is rounded to FP16 as on a GPU). No output may be NaN or infinite, and the
outputs stay within :data:`TOLERANCE` of the FP32 graph on synthetic stick figures, the input on
which an FP16 entropy used to underflow to NaN."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ppl_edge.convert.fp16 import FLOAT, FLOAT16, fp16_name, lookup_nodes, to_float16
from ppl_edge.synth.render import render_clip

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "ppl-small-humanoid"
# FP16 against FP32, in the outputs' units. Measured on 64 images: keypoints 2.3e-4, confidence
# 2.4e-4, distances 8.5e-3 relative (p99 4.5e-3: a sum of 128 squares of FP16 queries),
# reconstruction 5.5e-3 (16 images), prototype ids 99.95 % equal (1 of 2,176), memory-refined
# keypoints 2.8e-4 where an image's ids all agree.
TOLERANCE = {
    "keypoints": 1e-2,  # [-1, 1] units, the FP16 engine bound of --verify
    "confidence": 1e-2,
    "prototype_distances": 2e-2,  # relative, where the prototype ids agree
    "reconstruction": 2e-2,  # [-1, 1] image units
    "prototype_ids": 0.99,  # share of equal ids
    "keypoints_refined": 1e-2,  # on images whose prototype ids all agree
}


def images(count: int) -> np.ndarray:
    """(count, 3, 64, 64) float32 in [-1, 1]: synthetic humanoid stick figures."""
    frames, _, _ = render_clip("humanoid", count, 64, 0)
    rgb = frames[..., ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(((rgb - 0.5) / 0.5).transpose(0, 3, 1, 2))


def run(model, feeds: dict) -> dict:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


@pytest.fixture(scope="module")
def inputs():
    x = images(64)
    keypoints = run(onnx.load(SHIPPED / "keypoints.onnx"), {"image": x})["keypoints"]
    return {"image": x, "keypoints": keypoints}


def feeds_of(graph: str, inputs: dict) -> dict:
    if graph.startswith("keypoints"):
        return {"image": inputs["image"]}
    if graph == "memory":
        return {"keypoints": inputs["keypoints"]}
    return {"image": inputs["image"][:16], "keypoints": inputs["keypoints"][:16]}


def check_close(fp32: dict, fp16: dict) -> None:
    """Every float output finite and within TOLERANCE of FP32; ids agree as TOLERANCE says."""
    for name, ref in fp32.items():
        got = fp16[name]
        assert got.dtype == ref.dtype and got.shape == ref.shape, name
        if got.dtype.kind == "f":
            assert np.isfinite(got).all(), f"{name} has NaN/Inf in FP16"
    if "prototype_ids" in fp32:
        same = fp32["prototype_ids"] == fp16["prototype_ids"]
        assert same.mean() >= TOLERANCE["prototype_ids"]
        agree = same.all(axis=1)  # images whose every bank picked the same prototype
        assert agree.mean() >= 0.9
        err = np.abs(fp32["keypoints_refined"][agree] - fp16["keypoints_refined"][agree]).max()
        assert err <= TOLERANCE["keypoints_refined"]
        ref = fp32["prototype_distances"]
        rel = np.abs(ref - fp16["prototype_distances"]) / np.maximum(np.abs(ref), 1e-6)
        assert rel[same].max() <= TOLERANCE["prototype_distances"]
    for name in ("keypoints", "confidence", "reconstruction"):
        if name in fp32:
            assert np.abs(fp32[name] - fp16[name]).max() <= TOLERANCE[name], name


@pytest.mark.parametrize("graph", ["keypoints", "keypoints_trt", "memory", "refine"])
def test_shipped_graph_is_finite_and_close_in_fp16(graph, inputs):
    model = onnx.load(SHIPPED / f"{graph}.onnx")
    half = to_float16(model)
    feeds = feeds_of(graph, inputs)
    check_close(run(model, feeds), run(half, feeds))


def test_confidence_is_finite_on_blank_and_saturated_images():
    """Flat images give flat attention (maximal entropy); saturated ones peaked attention."""
    model = to_float16(onnx.load(SHIPPED / "keypoints.onnx"))
    x = np.stack([np.full((3, 64, 64), v, np.float32) for v in (-1.0, 0.0, 1.0)])
    x = np.concatenate([x, np.sign(images(3))])  # hard-edged figures: near one-hot attention
    confidence = run(model, {"image": x})["confidence"]
    assert np.isfinite(confidence).all() and (confidence >= -1e-3).all()
    assert (confidence <= 1 + 1e-3).all()


def test_io_stays_float32_and_lookup_stays_float32():
    model = onnx.load(SHIPPED / "keypoints.onnx")
    half = to_float16(model)
    assert [i.type.tensor_type.elem_type for i in half.graph.input] == [FLOAT]
    assert [(o.name, o.type.tensor_type.elem_type) for o in half.graph.output] == [
        (o.name, o.type.tensor_type.elem_type) for o in model.graph.output
    ]
    typed = onnx.shape_inference.infer_shapes(half).graph
    types = {v.name: v.type.tensor_type.elem_type for v in typed.value_info}
    types.update({t.name: t.data_type for t in typed.initializer})
    nodes = list(half.graph.node)
    argmin = next(n for n in nodes if n.op_type == "ArgMin")
    assert types[argmin.input[0]] == FLOAT  # ids chosen on FP32 distances
    for node in nodes:
        if node.op_type == "LayerNormalization":
            assert types[node.input[0]] == FLOAT
        if node.op_type == "Conv":  # the encoder runs in FP16
            assert types[node.input[1]] == FLOAT16
    kept = {nodes[i].op_type for i in lookup_nodes(half)}
    assert kept == {"ArgMin", "ReduceSum", "Mul", "Sub", "GatherElements", "Squeeze"}


def test_plugin_node_gets_float32_inputs():
    half = to_float16(onnx.load(SHIPPED / "keypoints_trt.onnx"))
    producers = {o: n for n in half.graph.node for o in n.output}
    weights = {t.name: t.data_type for t in half.graph.initializer}
    node = next(n for n in half.graph.node if n.op_type == "NearestNeighborLookup")
    queries, codebook = node.input
    assert producers[queries].op_type == "Cast"
    assert weights.get(codebook) == FLOAT or producers[codebook].op_type == "Cast"
    assert any(f.name == "NearestNeighborLookup" for f in half.functions)


def test_tiny_export_is_finite_in_fp16(tiny_export_memory):
    """The current exporter's graphs (random tiny model), not only the shipped files."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (4, 3, 32, 32)).astype(np.float32)
    kp = run(onnx.load(tiny_export_memory / "keypoints.onnx"), {"image": x})["keypoints"]
    for graph, feeds in (
        ("keypoints", {"image": x}),
        ("memory", {"keypoints": kp}),
        ("refine", {"image": x, "keypoints": kp}),
    ):
        out = run(to_float16(onnx.load(tiny_export_memory / f"{graph}.onnx")), feeds)
        for name, value in out.items():
            assert value.dtype.kind != "f" or np.isfinite(value).all(), (graph, name)


def test_fp16_file_name():
    assert fp16_name("keypoints_trt.onnx") == "keypoints_trt.fp16.onnx"
    assert fp16_name("refine.onnx") == "refine.fp16.onnx"


@pytest.mark.slow
def test_export_lists_fp16_graphs_and_a_plain_export_drops_them(tiny_model, tmp_path, one_thread):
    """``convert --target onnx --fp16``: every graph also as ``<graph>.fp16.onnx``, in the
    manifest as ``<role>_fp16``; exporting again without --fp16 leaves none behind."""
    from ppl_edge.convert import ExportConfig, export
    from ppl_edge.manifest import Manifest

    out = tmp_path / "export"
    export(tiny_model, ExportConfig(out=out, flavour="both", fp16_graphs=True))
    manifest = Manifest.load(out)
    manifest.verify_all()
    assert {k: v["file"] for k, v in manifest.artifacts.items() if k.endswith("_fp16")} == {
        "keypoints_fp16": "keypoints.fp16.onnx",
        "keypoints_trt_fp16": "keypoints_trt.fp16.onnx",
        "refine_fp16": "refine.fp16.onnx",
        "memory_fp16": "memory.fp16.onnx",
    }
    half = onnx.load(out / "keypoints_trt.fp16.onnx")
    assert any(t.data_type == FLOAT16 for t in half.graph.initializer)
    export(tiny_model, ExportConfig(out=out, flavour="both", simplify=False))
    assert not list(out.glob("*.fp16.onnx"))
    assert not [k for k in Manifest.load(out).artifacts if k.endswith("_fp16")]
