"""INT8 keypoint graphs for CPUs (Raspberry Pi class boards, a Jetson's CPU): ONNX Runtime static
quantisation, calibrated on the runtime's own preprocessing.

The convolutions and matrix products that make the keypoints (the image encoder and its heads)
get QuantizeLinear / DequantizeLinear pairs (QDQ format, per-channel INT8 weights, UINT8
activations with percentile calibration: each range clipped at the 99.999th percentile of the
calibration values, not their extremes; on the shipped model MinMax ranges cost 2.3 of eval
error against FP32, percentile ranges 0.3). Everything computed from the keypoints stays FP32: the
memory's encoder, its lookup (ArgMin over distances) and decoder. Quantised too, the memory
path picked another prototype for half the poses of the shipped model (48 % of ids equal); FP32,
it maps the INT8 keypoints exactly as it maps FP32 ones (85 % of ids equal, the rest moved by the
keypoints' own change). Calibration images go through :func:`ppl_edge.preprocess.preprocess` with
the manifest's :class:`~ppl_edge.manifest.InputSpec`, exactly as frames do at run time (the
TensorRT INT8 calibrator does the same).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from ppl_edge.errors import PplEdgeError, require
from ppl_edge.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


class _Reader:
    """``CalibrationDataReader`` over (S, 3, H, W) float32 inputs, in batches of one."""

    def __init__(self, name: str, images: np.ndarray):
        self.name, self.images, self.position = name, images, 0

    def get_next(self):
        if self.position >= len(self.images):
            return None
        self.position += 1
        return {self.name: self.images[self.position - 1 : self.position]}

    def rewind(self) -> None:
        self.position = 0


def quantize_keypoints(
    src: str | Path, dst: str | Path, images: np.ndarray, per_channel: bool = True
) -> Path:
    """Write an INT8 (QDQ) copy of a keypoint graph, calibrated on ``images``.

    Args:
        src: ``keypoints.onnx`` (portable flavour).
        dst: the INT8 graph to write (atomically).
        images: (S, 3, H, W) float32 model inputs as the runtime makes them (S >= 8).
        per_channel: per-output-channel weight scales (better accuracy, same speed).

    Raises:
        MissingDependencyError: onnxruntime (with its quantisation tools) or onnx missing.
        PplEdgeError: too few calibration images, or the graph cannot be quantised.
    """
    require("onnx", "convert", "INT8 quantisation")
    quant = require("onnxruntime.quantization", "convert", "INT8 quantisation")
    import onnx

    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != 4 or len(images) < 8 or not np.isfinite(images).all():
        raise PplEdgeError(
            f"INT8 calibration needs at least 8 finite (S, 3, H, W) images, got {images.shape}"
        )
    name = onnx.load(str(src), load_external_data=False).graph.input[0].name
    with tempfile.TemporaryDirectory(prefix="ppl-int8-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantized = Path(tmp) / "int8.onnx"
        try:
            quant.quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
            after = downstream_nodes(onnx.load(str(prepared)), "keypoints")
            quant.quantize_static(
                str(prepared),
                str(quantized),
                _Reader(name, images),
                quant_format=quant.QuantFormat.QDQ,
                op_types_to_quantize=list(QUANTIZED_OPS),
                per_channel=per_channel,
                activation_type=quant.QuantType.QUInt8,
                weight_type=quant.QuantType.QInt8,
                calibrate_method=quant.CalibrationMethod.Percentile,
                nodes_to_exclude=sorted(after),
            )
        except Exception as err:  # the quantiser raises bare Exceptions and onnx errors
            raise PplEdgeError(f"cannot quantise {src} to INT8: {err}") from None
        atomic_write_bytes(dst, quantized.read_bytes())
    log.info("wrote %s (INT8, %d calibration images)", dst, len(images))
    return Path(dst)


def downstream_nodes(model, tensor: str) -> set[str]:
    """Names of the nodes of ``model`` that read ``tensor`` or anything computed from it.

    Raises:
        PplEdgeError: a node on that path has no name (the quantiser excludes nodes by name).
    """
    reached, names = {tensor}, set()
    for node in model.graph.node:  # ONNX graphs are stored in topological order
        if reached.intersection(node.input):
            if not node.name:
                raise PplEdgeError(f"an unnamed {node.op_type} node reads {tensor}: cannot exclude")
            names.add(node.name)
            reached.update(node.output)
    return names


def calibration_inputs(spec, count: int = 64, category: str = "humanoid", seed: int = 0):
    """``count`` synthetic frames of ``category`` preprocessed by the runtime's own pipeline.

    Returns:
        (count, 3, H, W) float32.
    """
    from ppl_edge.preprocess import preprocess
    from ppl_edge.synth.render import render_images

    frames = render_images(category, spec.height, count, split="train_reg", seed=seed)
    out = [
        preprocess(frame, [(0, 0, frame.shape[1], frame.shape[0])], spec)[0][0] for frame in frames
    ]
    return np.stack(out)
