"""INT8 keypoint graphs for ONNX Runtime CPU: quantised where it should be, close to FP32."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

from ppl_edge.convert.ort_int8 import calibration_inputs, downstream_nodes, quantize_keypoints
from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import Manifest


def test_int8_graph_is_quantised_and_close_to_fp32(tiny_export, tmp_path):
    manifest = Manifest.load(tiny_export)
    images = calibration_inputs(manifest.input, 16)
    assert images.shape == (16, 3, 32, 32) and images.dtype == np.float32
    out = quantize_keypoints(tiny_export / "keypoints.onnx", tmp_path / "int8.onnx", images)
    graph = onnx.load(str(out))
    ops = [n.op_type for n in graph.graph.node]
    assert ops.count("QuantizeLinear") > 5 and "ArgMin" in ops  # the lookup stays FP32
    # everything computed from the keypoints (the memory's encoder, lookup, decoder) is FP32
    after = downstream_nodes(graph, "keypoints")
    assert after and not [
        n.name for n in graph.graph.node if n.name in after and "Quant" in n.op_type
    ]
    fp32 = ort.InferenceSession(str(tiny_export / "keypoints.onnx"))
    int8 = ort.InferenceSession(str(out))
    x = calibration_inputs(manifest.input, 8, seed=3)
    a = fp32.run(None, {"image": x})
    b = int8.run(None, {"image": x})
    names = [o.name for o in fp32.get_outputs()]
    kp = names.index("keypoints")
    assert np.isfinite(b[kp]).all()
    assert np.abs(a[kp] - b[kp]).max() < 0.1  # [-1, 1] units: within ~1.6 px at 32 px
    assert out.stat().st_size < (tiny_export / "keypoints.onnx").stat().st_size


def test_int8_needs_enough_finite_calibration_images(tiny_export, tmp_path):
    with pytest.raises(PplEdgeError, match="at least 8 finite"):
        quantize_keypoints(tiny_export / "keypoints.onnx", tmp_path / "x.onnx",
                           np.zeros((4, 3, 32, 32), np.float32))  # fmt: skip
    assert not (tmp_path / "x.onnx").exists()


def test_export_writes_the_int8_graph_the_runtime_runs_at_precision_int8(
    tiny_model, tiny_export, tmp_path
):
    """``convert --target onnx --int8 --fp16``: keypoints.int8.onnx in the manifest, run by the
    Estimator with ``precision="int8"`` (and the FP16 graph with "fp16"), close to the FP32 graph;
    an export without that graph, or another backend, is refused."""
    from ppl_edge.convert import ExportConfig, export
    from ppl_edge.runtime import Estimator

    out = tmp_path / "export"
    config = ExportConfig(out=out, int8_graphs=True, fp16_graphs=True, data="synthetic:humanoid")
    export(tiny_model, config)
    manifest = Manifest.load(out)
    path = manifest.artifact_path("keypoints_int8")
    assert path.name == "keypoints.int8.onnx"
    manifest.verify("keypoints_int8")
    from ppl_edge.convert.verify import verify_onnx

    checks = {c.name: c for c in verify_onnx(tiny_model, out, count=32, threads=1)}
    int8_check = checks["keypoints.int8.onnx vs torch"]
    assert int8_check.passed and 0 < int8_check.metrics["mean_keypoint_error"] < 0.05
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(path)).graph.node}
    frame = calibration_inputs(manifest.input, 1, seed=5)[0]
    frame = np.clip((frame.transpose(1, 2, 0)[..., ::-1] * 0.5 + 0.5) * 255, 0, 255)
    frame = np.ascontiguousarray(frame.astype(np.uint8))
    with (
        Estimator(out, threads=1) as fp32,
        Estimator(out, precision="int8", threads=1) as int8,
        Estimator(out, precision="fp16", threads=1) as fp16,
    ):
        assert int8.backend.path == path and fp32.backend.path.name == "keypoints.onnx"
        assert fp16.backend.path.name == "keypoints.fp16.onnx"
        a, b, c = fp32.estimate(frame), int8.estimate(frame), fp16.estimate(frame)
    assert np.abs(a.keypoints - b.keypoints).max() < 0.1 * 16  # 0.1 of the half-width, 32 px
    assert np.abs(a.keypoints - c.keypoints).max() < 0.01 * 16
    with pytest.raises(PplEdgeError, match="has no int8 graph"):
        Estimator(tiny_export, precision="int8")
    with pytest.raises(PplEdgeError, match="picks an ONNX Runtime graph, not a tensorrt one"):
        Estimator(out, precision="int8", backend="tensorrt")


def test_int8_calibration_needs_images_when_the_data_cannot_be_rendered(tiny_export, tmp_path):
    from ppl_edge.convert.manifest import read_manifest
    from ppl_edge.convert.onnx_target import write_int8_graph

    with pytest.raises(PplEdgeError, match="--int8 needs --calib-data DIR"):
        write_int8_graph(
            tmp_path,
            tiny_export / "keypoints.onnx",
            read_manifest(tiny_export),
            "video:a.mp4",
            None,
        )
    assert not list(tmp_path.iterdir())
