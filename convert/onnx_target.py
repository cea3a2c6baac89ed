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
INT8_ROLES = ("keypoints_int8",)  # written with int8_graphs
INT8_CALIBRATION_IMAGES = 128
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


def write_int8_graph(
    folder: Path, keypoints: Path, manifest: dict, data: str, calib_data: Path | None
) -> dict[str, Path]:
    """``keypoints.int8.onnx`` in ``folder`` from the FP32 keypoint graph, as ``keypoints_int8``.

    Calibration images go through the runtime's preprocessing with the manifest's input contract:
    the files of ``calib_data`` (full frames, letterboxed), else frames rendered from ``data`` when
    it is ``synthetic:<category>``.

    Raises:
        PplEdgeError: no calibration source (``data`` is not synthetic and no ``calib_data``),
            or the quantiser fails.
    """
    import numpy as np

    from ppl_edge.convert.calibrator import find_calibration_images, input_spec, load_image
    from ppl_edge.convert.ort_int8 import calibration_inputs, quantize_keypoints
    from ppl_edge.errors import PplEdgeError

    spec = input_spec(manifest)
    if calib_data is not None:
        files = find_calibration_images(calib_data, limit=INT8_CALIBRATION_IMAGES)
        images = np.stack([load_image(path, spec) for path in files])
    else:
        kind, _, category = data.partition(":")
        if kind != "synthetic":
            raise PplEdgeError(
                f"--int8 needs --calib-data DIR (images like the camera's): the export's data "
                f"{data!r} is not synthetic:<category>, so no calibration frames can be rendered"
            )
        images = calibration_inputs(
            spec, INT8_CALIBRATION_IMAGES, category.split(",")[0] or "humanoid"
        )
    target = folder / "keypoints.int8.onnx"
    quantize_keypoints(keypoints, target, images)
    return {"keypoints_int8": target}


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
        extra = {}
        if config.int8_graphs:
            extra.update(
                write_int8_graph(
                    staging, paths["keypoints"], manifest, source.data, config.engine.calib_data
                )
            )
        if after is not None:  # may also edit manifest (e.g. the engine's precision)
            extra.update(after(staging, paths, manifest) or {})
        if extra:
            manifest["artifacts"].update(
                {
                    role: {"file": Path(p).name, "sha256": sha256_path(p)}
                    for role, p in extra.items()
                }
            )
        kept = {
            r: e
            for r, e in previous_artifacts(out, source.checkpoint_sha256).items()
            if r not in ONNX_ROLES + FP16_ROLES + INT8_ROLES and r not in manifest["artifacts"]
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
