"""INT8 keypoint graphs for ONNX Runtime CPU: quantised where it should be, close to FP32."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

from ppl_edge.convert.ort_int8 import calibration_inputs, quantize_keypoints
from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import Manifest


def test_int8_graph_is_quantised_and_close_to_fp32(tiny_export, tmp_path):
    manifest = Manifest.load(tiny_export)
    images = calibration_inputs(manifest.input, 16)
    assert images.shape == (16, 3, 32, 32) and images.dtype == np.float32
    out = quantize_keypoints(tiny_export / "keypoints.onnx", tmp_path / "int8.onnx", images)
    ops = [n.op_type for n in onnx.load(str(out)).graph.node]
    assert ops.count("QuantizeLinear") > 5 and "ArgMin" in ops  # the lookup stays FP32
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
