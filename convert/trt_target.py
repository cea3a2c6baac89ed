"""Target "trt": the ONNX export plus TensorRT engines built inside the staging folder: the keypoint
graph's (``keypoints_trt.onnx`` with the plugin lookup, ``keypoints.onnx`` with the native one),
and the refine and memory graphs' (engine_folder.py). It needs an NVIDIA GPU and TensorRT, which
:meth:`TensorRTExporter.prepare` checks before anything is loaded. An export folder that already
exists gets its engines without torch: ``ppl-edge convert --from DIR --target trt``."""

from __future__ import annotations

import re
from pathlib import Path

from ppl_edge.convert.config import EngineConfig, ExportConfig, check_opset
from ppl_edge.convert.onnx_target import OnnxExporter, export_onnx_folder
from ppl_edge.convert.source import ExportSource
from ppl_edge.errors import PplEdgeError

# The keypoint graph an engine is built from, and the ONNX flavours that write it.
ENGINE_GRAPHS = {"plugin": "keypoints_trt", "native": "keypoints"}
FLAVOURS_FOR = {"plugin": ("plugin", "both"), "native": ("portable", "both")}


def parse_shapes(text: str, channels: int, size: int) -> int:
    """Batch of ``--shapes image:BxCxHxW``, checked against the model's input."""
    match = re.fullmatch(r"image:(\d+)x(\d+)x(\d+)x(\d+)", text.strip())
    if not match:
        raise PplEdgeError(
            f"--shapes {text!r} is not of the form image:BxCxHxW (e.g. image:1x3x{size}x{size})"
        )
    b, c, h, w = (int(v) for v in match.groups())
    if (c, h, w) != (channels, size, size):
        raise PplEdgeError(f"--shapes gives {c}x{h}x{w}, the model takes {channels}x{size}x{size}")
    return b


def engine_for(engine: EngineConfig, size: int) -> EngineConfig:
    """``engine`` with its ``shapes`` resolved into a fixed batch for a model of input ``size``."""
    if engine.shapes is None:
        return engine
    return engine.with_batch(parse_shapes(engine.shapes, 3, size))


class TensorRTExporter(OnnxExporter):
    """The ONNX files, ``<graph>.<precision>.engine`` of the keypoint, refine and memory graphs
    with their sidecars, in one manifest."""

    def check(self, config: ExportConfig) -> None:
        check_opset(config.opset)
        nn = config.engine.nn
        if config.flavour not in FLAVOURS_FOR[nn]:
            raise PplEdgeError(
                f"an engine with the {nn} lookup is built from {ENGINE_GRAPHS[nn]}.onnx, which "
                f"flavour {config.flavour!r} does not write; choose {' or '.join(FLAVOURS_FOR[nn])}"
            )
        plugin_lib = config.engine.plugin_lib
        if plugin_lib is not None and not plugin_lib.is_file():
            raise PplEdgeError(f"plugin library {plugin_lib} does not exist")

    def prepare(self, config: ExportConfig) -> None:
        try:
            from ppl_edge.convert.tensorrt_build import check_prerequisites
        except ImportError as err:
            raise PplEdgeError(
                f"--target trt needs ppl_edge.convert.tensorrt_build, which failed to import: {err}"
            ) from err
        check_prerequisites(nn=config.engine.nn, plugin_lib=config.engine.plugin_lib)

    def write(self, source: ExportSource, config: ExportConfig) -> tuple[Path, dict[str, dict]]:
        from ppl_edge.convert.engine_folder import build_role_engines

        engine = engine_for(config.engine, source.model.cfg.img_size)

        def build(staging: Path, paths: dict, manifest: dict) -> dict:
            built = build_role_engines(staging, paths, engine, manifest)
            manifest["precision"] = engine.precision
            return built

        return export_onnx_folder(source, config, after=build)
