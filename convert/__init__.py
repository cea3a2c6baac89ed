"""Export a trained PPL: ONNX graphs with a manifest, Core ML packages, TensorRT engines.

Public API (docs/contracts.md, "Export artifacts"):

- :func:`export_onnx` -> ``keypoints.onnx`` / ``keypoints_trt.onnx`` / ``refine.onnx`` /
  ``memory.onnx`` + ``manifest.json``;
- :func:`export_coreml` -> ``keypoints.mlpackage`` + ``manifest.json``;
- :func:`export` -> any target of :data:`TARGETS` ("onnx", "trt", "coreml") as an
  :class:`ExportConfig` says, with the parity checks (what ``ppl-edge convert`` runs);
- :func:`ppl_edge.convert.verify.verify_onnx` -> parity numbers against PyTorch;
- :func:`ppl_edge.convert.engine_folder.build_folder` -> TensorRT engines of an existing export
  folder with TensorRT alone (no torch), :mod:`.trt_versions` saying what each release builds;
- :func:`ppl_edge.convert.fp16.to_float16` -> the float16 version of an exported graph.

The settings of an export are one :class:`ExportConfig` (TensorRT's in its :class:`EngineConfig`),
validated when it is made; the targets are a registry of exporters in :mod:`.targets`.

Importing this package is cheap: torch, onnx and coremltools are imported inside the functions.
"""

from __future__ import annotations

from pathlib import Path

from ppl_edge.convert.config import DEFAULT_OPSET, EngineConfig, ExportConfig
from ppl_edge.convert.onnx_target import export_onnx_folder, tools_used
from ppl_edge.convert.source import DEFAULT_DATA, ExportSource, load_source
from ppl_edge.convert.targets import EXPORTERS, TARGETS, ExportReport, export

__all__ = [
    "DEFAULT_DATA",
    "EXPORTERS",
    "TARGETS",
    "EngineConfig",
    "ExportConfig",
    "ExportReport",
    "ExportSource",
    "export",
    "export_coreml",
    "export_onnx",
    "export_onnx_folder",
    "load_source",
    "tools_used",
]


def export_onnx(
    model_or_checkpoint,
    out_dir: str | Path,
    flavour: str = "portable",
    opset: int = DEFAULT_OPSET,
    dynamic_batch: bool = True,
    simplify: bool = True,
) -> Path:
    """Export ``keypoints.onnx`` (and/or ``keypoints_trt.onnx``), ``refine.onnx`` and
    ``memory.onnx`` with a manifest.

    Args:
        model_or_checkpoint: a PoseModel or a ``.safetensors`` checkpoint path.
        out_dir: output folder; created if missing, but its parent must exist.
        flavour: "portable" (standard ONNX lookup), "plugin" (one ``NearestNeighborLookup`` node
            plus its model-local function) or "both".
        opset: 17 up to the highest the installed onnx and torch support (18 suits TensorRT 10).
        dynamic_batch: symbolic batch ``B`` in [1, 64] instead of batch 1.
        simplify: run onnxsim.

    Returns:
        Path of ``manifest.json``. Nothing is written unless everything succeeds.

    Raises:
        PplEdgeError: bad checkpoint, output folder, flavour or opset, or a failed export.
    """
    config = ExportConfig(
        out=out_dir,
        target="onnx",
        flavour=flavour,
        opset=opset,
        dynamic_batch=dynamic_batch,
        simplify=simplify,
    )
    return export_onnx_folder(load_source(model_or_checkpoint), config)[0]


def export_coreml(model_or_checkpoint, out_dir: str | Path, **kwargs) -> Path:
    """Core ML package of the keypoint path; see :func:`ppl_edge.convert.coreml.export_coreml`."""
    from ppl_edge.convert.coreml import export_coreml as _export

    return _export(model_or_checkpoint, out_dir, **kwargs)
