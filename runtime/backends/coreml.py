"""Core ML backend (macOS): an ``.mlpackage`` of the keypoint path, run with coremltools.

The estimator always hands backends the normalised NCHW float tensor of the manifest. When the
package declares an *image* input (Core ML ``ImageType``, whose scale and bias do the normalisation
inside the model), the tensor is mapped back to 8-bit RGB pixels with the manifest's mean / std /
scale and passed as a PIL image, one per batch item. Multi-array inputs are passed as they are.
Outputs must keep the ONNX names (keypoints, keypoints_refined, prototype_ids, ...).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ppl_edge.errors import PplEdgeError, check_choice, require
from ppl_edge.runtime.backends.base import BackendBase, TensorSpec

if TYPE_CHECKING:
    from ppl_edge.manifest import Manifest
    from ppl_edge.runtime.config import RuntimeConfig

log = logging.getLogger(__name__)

_COMPUTE_UNITS = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
_ARRAY_DTYPES = {65568: np.float32, 65600: np.float64, 131104: np.int32, 65552: np.float16}


def io_specs(spec) -> tuple[list[TensorSpec], list[TensorSpec], dict[str, str]]:
    """Inputs, outputs and the input kinds ("image" or "array") of a Core ML model spec.

    Args:
        spec: ``coremltools.proto.Model_pb2.Model`` (``MLModel.get_spec()``).

    Returns:
        input specs (image inputs as (1, 3, H, W) float32), output specs, name -> kind.
    """

    def parse(feature) -> tuple[TensorSpec, str]:
        kind = feature.type.WhichOneof("Type")
        if kind == "imageType":
            img = feature.type.imageType
            return TensorSpec(
                feature.name, (1, 3, img.height, img.width), np.dtype(np.float32)
            ), "image"
        arr = feature.type.multiArrayType
        shape = tuple(int(d) for d in arr.shape)
        ranges = arr.shapeRange.sizeRanges if arr.HasField("shapeRange") else []
        if ranges:
            shape = tuple(
                int(r.lowerBound) if r.lowerBound == r.upperBound else None for r in ranges
            )
        dtype = np.dtype(_ARRAY_DTYPES.get(int(arr.dataType), np.float32))
        return TensorSpec(feature.name, shape, dtype), "array"

    inputs, kinds = [], {}
    for feature in spec.description.input:
        tensor, kinds[feature.name] = parse(feature)
        inputs.append(tensor)
    outputs = [parse(f)[0] for f in spec.description.output]
    return inputs, outputs, kinds


def to_pixels(x: np.ndarray, mean, std, scale: float) -> np.ndarray:
    """Undo the manifest normalisation: (3, H, W) float -> (H, W, 3) uint8 in the model's order."""
    std_, mean_ = np.asarray(std, np.float32), np.asarray(mean, np.float32)
    chw = x * std_[:, None, None] + mean_[:, None, None]  # (3, H, W)
    return np.clip(np.rint(chw / scale), 0, 255).astype(np.uint8).transpose(1, 2, 0)


class CoreMLBackend(BackendBase):
    """Run a Core ML package with coremltools (prediction needs macOS).

    Args:
        path: the .mlpackage.
        compute_units: "ALL" (default), "CPU_ONLY", "CPU_AND_GPU" or "CPU_AND_NE".
        normalisation: (mean, std, scale) of the manifest, used to turn the tensor back into pixels
            for an image input; the estimator passes it.
        color: channel order of the tensor ("RGB" or "BGR", the manifest's); PIL images are RGB.

    Raises:
        PplEdgeError: not on macOS, unknown compute units, or a package that does not load.
        MissingDependencyError: coremltools (or Pillow for image inputs) is missing.
    """

    name = "coreml"
    suffixes = (".mlpackage", ".mlmodel")
    artifact_keys = ("keypoints_coreml", "coreml", "mlpackage")
    aux_artifact_keys = {"refine": ("refine_coreml",), "memory": ("memory_coreml",)}
    artifact_kind = "Core ML package"
    find_alone = True
    auto_rank = 1

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """None on macOS with coremltools installed."""
        if sys.platform != "darwin":
            return f"Core ML runs only on macOS (this is {sys.platform})"
        if importlib.util.find_spec("coremltools"):
            return None
        return "coremltools is not installed: pip install 'ppl-edge[coreml]'"

    @classmethod
    def options(cls, config: RuntimeConfig, manifest: Manifest) -> dict[str, Any]:
        """The manifest's normalisation and colour order (to feed image inputs pixels)."""
        spec = manifest.input
        return {"normalisation": (spec.mean, spec.std, spec.scale), "color": spec.color}

    def __init__(
        self,
        path: str | Path,
        compute_units: str = "ALL",
        normalisation: tuple | None = None,
        color: str = "RGB",
    ):
        if sys.platform != "darwin":
            raise PplEdgeError(
                f"the Core ML backend runs only on macOS (this is {sys.platform}); "
                "use backend 'onnxruntime' with keypoints.onnx here"
            )
        check_choice(compute_units, _COMPUTE_UNITS, "compute units")
        ct = require("coremltools", "coreml", "the Core ML backend")
        self.path = Path(path)
        if not self.path.exists():
            raise PplEdgeError(f"Core ML package not found: {self.path}")
        try:
            self._model = ct.models.MLModel(
                str(self.path), compute_units=getattr(ct.ComputeUnit, compute_units)
            )
        except Exception as err:  # coremltools raises bare Exceptions for unloadable packages
            raise PplEdgeError(f"Core ML cannot load {self.path}: {err}") from err
        self._inputs, self._outputs, self._kinds = io_specs(self._model.get_spec())
        self._norm = normalisation or ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 1 / 255)
        self._flip = color.upper() == "BGR"
        if "image" in self._kinds.values():
            self._pil = require("PIL.Image", "coreml", "Core ML image inputs")

    def _predict_one(self, feeds: dict[str, np.ndarray], b: int) -> dict[str, np.ndarray]:
        item = {}
        for name, arr in feeds.items():
            if self._kinds[name] == "image":
                pixels = to_pixels(arr[b], *self._norm)
                item[name] = self._pil.fromarray(pixels[..., ::-1].copy() if self._flip else pixels)
            else:
                item[name] = arr[b : b + 1]
        return self._model.predict(item)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict; image inputs and fixed-batch-1 packages are run one batch item at a time."""
        self._check_open()
        missing = [s.name for s in self._inputs if s.name not in feeds]
        if missing:
            raise PplEdgeError(
                f"inputs {missing} missing; the package takes "
                f"{[s.name for s in self._inputs]}, got {sorted(feeds)}"
            )
        feeds = {s.name: np.ascontiguousarray(feeds[s.name], dtype=s.dtype) for s in self._inputs}
        batch = next(iter(feeds.values())).shape[0]
        one_by_one = "image" in self._kinds.values() or any(
            s.shape and s.shape[0] == 1 for s in self._inputs
        )
        if not one_by_one:
            out = self._model.predict(feeds)
            return {s.name: np.asarray(out[s.name]) for s in self._outputs}
        results = [self._predict_one(feeds, b) for b in range(batch)]
        return {
            s.name: np.concatenate([np.asarray(r[s.name]) for r in results], axis=0)
            for s in self._outputs
        }

    def close(self) -> None:
        """Drop the model."""
        self._model = None
        self._closed = True
