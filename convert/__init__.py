"""Export a trained PPL: ONNX graphs with a manifest, Core ML packages, TensorRT engines.

Public API (docs/contracts.md, "Export artifacts"):

- :func:`export_onnx` -> ``keypoints.onnx`` / ``keypoints_trt.onnx`` / ``refine.onnx`` / ``memory.onnx``
  + ``manifest.json``;
- :func:`export_coreml` -> ``keypoints.mlpackage`` + ``manifest.json``;
- :func:`ppl_edge.convert.verify.verify_onnx` -> parity numbers against PyTorch.

Importing this package is cheap: torch, onnx and coremltools are imported inside the functions.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppl_edge.errors import PplEdgeError

log = logging.getLogger(__name__)

__all__ = ["ExportSource", "export_coreml", "export_onnx", "export_onnx_folder", "load_source"]

DEFAULT_DATA = "synthetic:humanoid"
ONNX_ROLES = ("keypoints", "keypoints_trt", "refine", "memory")


@dataclass(frozen=True)
class ExportSource:
    """What an export is made from.

    model: PoseModel in eval mode; name: e.g. "ppl-small-humanoid"; preset: "tiny"/"small"/"base" or
    "custom"; checkpoint_sha256: of the checkpoint file (of the serialised state dict for an in-memory
    model); data: dataset spec of the training category (for ``memory.distance_reference``).
    """

    model: Any
    name: str
    preset: str
    checkpoint_sha256: str
    data: str


def _preset_of(cfg) -> str:
    from ppl_edge.model.config import PRESETS

    return next((name for name, p in PRESETS.items() if p == cfg), "custom")


def _data_of(train_state: dict) -> str | None:
    """The first ``synthetic:...`` dataset spec found in a checkpoint's train state, if any."""
    stack = [train_state]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and item.startswith("synthetic:"):
            return item
    return None


def load_source(
    model_or_checkpoint, name: str | None = None, data: str | None = None
) -> ExportSource:
    """Resolve a PoseModel or a checkpoint path into an :class:`ExportSource`.

    Raises:
        PplEdgeError: the checkpoint is missing or not a ppl-edge checkpoint.
    """
    from ppl_edge.checkpoint import load_model, model_tensors

    if isinstance(model_or_checkpoint, (str, Path)):
        path = Path(model_or_checkpoint)
        model, meta = load_model(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        found = _data_of(meta.get("train_state", {}))
        default_name = path.stem
    elif hasattr(model_or_checkpoint, "keypoint_path"):
        from safetensors.torch import save

        model = model_or_checkpoint.eval()
        tensors = {k: v.detach().contiguous().cpu() for k, v in model_tensors(model).items()}
        digest = hashlib.sha256(save(tensors)).hexdigest()
        found, default_name = None, f"ppl-{_preset_of(model.cfg)}"
    else:
        raise PplEdgeError(
            f"expected a PoseModel or a checkpoint path, got {type(model_or_checkpoint).__name__}"
        )
    return ExportSource(
        model, name or default_name, _preset_of(model.cfg), digest, data or found or DEFAULT_DATA
    )


def tools_used(*extra: str) -> dict[str, str]:
    """Versions of the export tool chain (plus ``extra`` modules)."""
    from ppl_edge.convert.manifest import tool_versions

    return tool_versions("torch", "onnx", "onnxscript", "onnxsim", "onnxruntime", *extra)


def export_onnx_folder(
    source: ExportSource,
    out_dir: str | Path,
    flavour: str = "portable",
    opset: int = 18,
    dynamic_batch: bool = True,
    simplify: bool = True,
    after=None,
) -> tuple[Path, dict[str, dict]]:
    """Export the ONNX graphs of ``source`` into ``out_dir`` atomically (see :func:`export_onnx`).

    Args:
        after: optional ``fn(staging, paths, manifest) -> dict[role, Path]`` run inside the staging
            folder before publication (the TensorRT build); its artifacts join the manifest.

    Returns:
        (manifest path, role -> {"nodes_exported", "nodes_simplified"}).
    """
    from ppl_edge.convert.manifest import (
        MANIFEST_NAME,
        build_manifest,
        check_output_folder,
        distance_reference,
        previous_artifacts,
        sha256_path,
        staged_output,
        write_manifest,
    )
    from ppl_edge.convert.onnx_export import FLAVOURS, MAX_BATCH, check_opset, export_graphs
    from ppl_edge.convert.verify import sample_images

    if flavour not in FLAVOURS:
        raise PplEdgeError(f"unknown flavour {flavour!r}; choose one of {', '.join(FLAVOURS)}")
    check_opset(opset)
    out = check_output_folder(out_dir)
    model = source.model.eval()
    reference = distance_reference(model, sample_images(source.data, model.cfg.img_size, 256))
    with staged_output(out) as staging:
        paths, stats = export_graphs(model, staging, flavour, opset, dynamic_batch, simplify)
        manifest = build_manifest(
            model,
            name=source.name,
            preset=source.preset,
            checkpoint_sha256=source.checkpoint_sha256,
            distance_reference=reference,
            opset=opset,
            dynamic_batch=dynamic_batch,
            max_batch=MAX_BATCH if dynamic_batch else 1,
            precision="fp32",
            artifacts=paths,
            tools=tools_used(),
        )
        if after is not None:  # may also edit manifest (e.g. the engine's precision)
            extra = after(staging, paths, manifest) or {}
            manifest["artifacts"].update(
                {
                    role: {"file": Path(p).name, "sha256": sha256_path(p)}
                    for role, p in extra.items()
                }
            )
        kept = {
            r: e
            for r, e in previous_artifacts(out, source.checkpoint_sha256).items()
            if r not in ONNX_ROLES and r not in manifest["artifacts"]
        }
        manifest["artifacts"] = {**kept, **manifest["artifacts"]}
        write_manifest(staging / MANIFEST_NAME, manifest)
    return out / MANIFEST_NAME, stats


def export_onnx(
    model_or_checkpoint,
    out_dir: str | Path,
    flavour: str = "portable",
    opset: int = 18,
    dynamic_batch: bool = True,
    simplify: bool = True,
) -> Path:
    """Export ``keypoints.onnx`` (and/or ``keypoints_trt.onnx``), ``refine.onnx`` and ``memory.onnx``
    with a manifest.

    Args:
        model_or_checkpoint: a PoseModel or a ``.safetensors`` checkpoint path.
        out_dir: output folder; created if missing, but its parent must exist.
        flavour: "portable" (standard ONNX lookup), "plugin" (one ``NearestNeighborLookup`` node plus
            its model-local function) or "both".
        opset: 17 up to the highest the installed onnx and torch support (18 suits TensorRT 10).
        dynamic_batch: symbolic batch ``B`` in [1, 64] instead of batch 1.
        simplify: run onnxsim.

    Returns:
        Path of ``manifest.json``. Nothing is written unless everything succeeds.

    Raises:
        PplEdgeError: bad checkpoint, output folder, flavour or opset, or a failed export.
    """
    from ppl_edge.convert.manifest import check_output_folder
    from ppl_edge.convert.onnx_export import check_opset

    check_opset(opset)
    check_output_folder(out_dir)
    source = load_source(model_or_checkpoint)
    return export_onnx_folder(source, out_dir, flavour, opset, dynamic_batch, simplify)[0]


def export_coreml(model_or_checkpoint, out_dir: str | Path, **kwargs) -> Path:
    """Core ML package of the keypoint path; see :func:`ppl_edge.convert.coreml.export_coreml`."""
    from ppl_edge.convert.coreml import export_coreml as _export

    return _export(model_or_checkpoint, out_dir, **kwargs)
