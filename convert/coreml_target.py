"""Target "coreml": ``keypoints.mlpackage`` and ``memory.mlpackage`` (mlprogram, iOS 16+) with
their manifest (:mod:`ppl_edge.convert.coreml`, :mod:`ppl_edge.convert.coreml_memory`). No ONNX is
written, so the opset is not checked."""

from __future__ import annotations

from pathlib import Path

from ppl_edge.convert.config import ExportConfig
from ppl_edge.convert.source import ExportSource
from ppl_edge.convert.targets import Exporter


class CoreMLExporter(Exporter):
    """The Core ML package; prediction parity is checked on macOS only."""

    def prepare(self, config: ExportConfig) -> None:
        from ppl_edge.convert.coreml import import_coremltools

        import_coremltools()

    def write(self, source: ExportSource, config: ExportConfig) -> tuple[Path, dict[str, dict]]:
        from ppl_edge.convert.coreml import write_package

        return write_package(source, config), {}

    def verify(self, source: ExportSource, folder: Path, images) -> list:
        from ppl_edge.convert.coreml import verify_coreml
        from ppl_edge.convert.coreml_memory import MEMORY_KEY, check_memory_package
        from ppl_edge.convert.manifest import read_manifest

        checks = verify_coreml(source.model, folder, images, joints=source.joints)
        manifest = read_manifest(folder)
        memory = manifest["artifacts"].get(MEMORY_KEY)
        if memory is not None:
            checks.append(check_memory_package(folder / memory["file"], manifest, source.model))
        return checks
