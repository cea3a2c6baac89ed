"""Target "onnx": the ONNX graphs of the keypoint path, refinement and memory with their manifest
(:func:`export_onnx_folder`, which the TensorRT target also builds on)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ppl_edge.convert.config import ExportConfig, check_opset
from ppl_edge.convert.source import ExportSource
from ppl_edge.convert.targets import Exporter

ONNX_ROLES = ("keypoints", "keypoints_trt", "refine", "memory")
FP16_ROLES = tuple(f"{role}_fp16" for role in ONNX_ROLES)  # written with fp16_graphs
# fn(staging folder, role -> path, manifest) -> extra role -> path
AfterStep = Callable[[Path, dict, dict], dict | None]


def tools_used(*extra: str) -> dict[str, str]:
    """Versions of the export tool chain (plus ``extra`` modules)."""
    from ppl_edge.convert.manifest import tool_versions

    return tool_versions("torch", "onnx", "onnxscript", "onnxsim", "onnxruntime", *extra)


def write_fp16_graphs(paths: dict[str, Path]) -> dict[str, Path]:
    """``<graph>.fp16.onnx`` beside each ONNX graph of ``paths`` (role -> file), as
    ``<role>_fp16`` -> file (convert/fp16.py: the lookup and normalisations stay FP32)."""
    import onnx

    from ppl_edge.convert.fp16 import fp16_name, to_float16
    from ppl_edge.fileio import atomic_write_bytes

    written = {}
    for role, path in paths.items():
        target = Path(path).with_name(fp16_name(Path(path).name))
        atomic_write_bytes(target, to_float16(onnx.load(str(path))).SerializeToString())
        written[f"{role}_fp16"] = target
    return written


def export_onnx_folder(
    source: ExportSource, config: ExportConfig, after: AfterStep | None = None
) -> tuple[Path, dict[str, dict]]:
    """Export the ONNX graphs of ``source`` into ``config.out``, atomically: what
    :func:`ppl_edge.convert.export_onnx` writes.

    Args:
        after: optional ``fn(staging, paths, manifest) -> dict[role, Path]`` run inside the staging
            folder before publication (the TensorRT build); its artifacts join the manifest.

    Returns:
        (manifest path, role -> {"nodes_exported", "nodes_simplified"}).
    """
    from ppl_edge.convert.manifest import (
        MANIFEST_NAME,
        build_manifest,
        distance_reference,
        previous_artifacts,
        sha256_path,
        staged_output,
        write_manifest,
    )
    from ppl_edge.convert.onnx_export import MAX_BATCH, export_graphs
    from ppl_edge.convert.verify import sample_images

    out = config.out
    model = source.model.eval()
    reference = distance_reference(model, sample_images(source.data, model.cfg.img_size, 256))
    with staged_output(out) as staging:
        joints = source.joints
        joint_map = joints.matrix if joints is not None else None
        paths, stats = export_graphs(model, staging, config, joint_map)
        if config.fp16_graphs:
            paths.update(write_fp16_graphs(paths))
        manifest = build_manifest(
            model,
            name=source.name,
            preset=source.preset,
            checkpoint_sha256=source.checkpoint_sha256,
            distance_reference=reference,
            opset=config.opset,
            dynamic_batch=config.dynamic_batch,
            max_batch=MAX_BATCH if config.dynamic_batch else 1,
            precision="fp32",
            artifacts=paths,
            tools=tools_used(),
            joints=joints,
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
            if r not in ONNX_ROLES + FP16_ROLES and r not in manifest["artifacts"]
        }
        manifest["artifacts"] = {**kept, **manifest["artifacts"]}
        write_manifest(staging / MANIFEST_NAME, manifest)
    return out / MANIFEST_NAME, stats


class OnnxExporter(Exporter):
    """``keypoints.onnx`` and/or ``keypoints_trt.onnx``, ``refine.onnx``, ``memory.onnx``."""

    def check(self, config: ExportConfig) -> None:
        check_opset(config.opset)

    def write(self, source: ExportSource, config: ExportConfig) -> tuple[Path, dict[str, dict]]:
        return export_onnx_folder(source, config)

    def verify(self, source: ExportSource, folder: Path, images) -> list:
        from ppl_edge.convert.verify import verify_onnx

        return verify_onnx(source.model, folder, images, joints=source.joints)
