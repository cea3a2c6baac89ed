"""Export targets by name, and the one function that runs an export: :func:`export`.

:data:`EXPORTERS` maps a target name to the :class:`Exporter` that writes it, as
``"module:Class"`` so that naming the targets (flag choices, ``ExportConfig`` validation) imports
none of them. Adding a target is one module with an :class:`Exporter` subclass and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ppl_edge.convert.config import ExportConfig
    from ppl_edge.convert.source import ExportSource
    from ppl_edge.convert.verify import Check

EXPORTERS: dict[str, str] = {
    "onnx": "ppl_edge.convert.onnx_target:OnnxExporter",
    "trt": "ppl_edge.convert.trt_target:TensorRTExporter",
    "coreml": "ppl_edge.convert.coreml_target:CoreMLExporter",
}
TARGETS = tuple(EXPORTERS)


class Exporter:
    """One export target. Subclasses implement :meth:`write` and :meth:`verify`; the other steps
    default to nothing.

    An exporter is stateless: every method takes the (validated) :class:`ExportConfig`.
    """

    def check(self, config: ExportConfig) -> None:
        """The target's part of the config's validation (called by ``ExportConfig``)."""

    def prepare(self, config: ExportConfig) -> None:
        """Fail fast on a missing tool or device, before the model is loaded or anything written."""

    def write(self, source: ExportSource, config: ExportConfig) -> tuple[Path, dict[str, dict]]:
        """Write the target's files and manifest into ``config.out``, atomically.

        Returns:
            (manifest path, role -> {"nodes_exported", "nodes_simplified"} of ONNX graphs).
        """
        raise NotImplementedError

    def verify(self, source: ExportSource, folder: Path, images) -> list[Check]:
        """Parity checks of the written files against PyTorch on ``images`` (S, 3, H, W)."""
        raise NotImplementedError


def exporter(target: str) -> Exporter:
    """The exporter of ``target`` (a name of :data:`TARGETS`)."""
    module, name = EXPORTERS[target].split(":")
    return getattr(importlib.import_module(module), name)()


@dataclass
class ExportReport:
    """What :func:`export` wrote and, with ``config.verify``, what it checked."""

    manifest: Path
    stats: dict[str, dict] = field(default_factory=dict)
    checks: list[Any] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """Every check passed (True without checks)."""
        return all(c.passed for c in self.checks)

    def lines(self) -> list[str]:
        """The summary ``ppl-edge convert`` prints: graph sizes and the manifest written."""
        lines = [
            f"{role}: {counts['nodes_exported']} nodes exported, {counts['nodes_simplified']} "
            f"after onnxsim"
            for role, counts in self.stats.items()
        ]
        return [*lines, f"wrote {self.manifest}"]


def export(
    model_or_checkpoint, config: ExportConfig, echo: Callable[[str], None] | None = None
) -> ExportReport:
    """Export ``model_or_checkpoint`` as ``config`` says, then verify it if ``config.verify``.

    Args:
        model_or_checkpoint: a PoseModel, a ``.safetensors`` checkpoint path or an
            :class:`~ppl_edge.convert.source.ExportSource`.
        config: the export's settings.
        echo: called with each summary line (:meth:`ExportReport.lines`) once the files are
            written, then with each check's line (``print`` for the CLI).

    Returns:
        The report; nothing is written unless the whole export succeeds.

    Raises:
        PplEdgeError: a missing tool or device, a bad checkpoint, or a failed export.
    """
    from ppl_edge.convert.source import ExportSource, load_source

    say = echo or (lambda line: None)
    target = exporter(config.target)
    target.prepare(config)
    source = (
        model_or_checkpoint
        if isinstance(model_or_checkpoint, ExportSource)
        else load_source(model_or_checkpoint, name=config.name, data=config.data)
    )
    manifest, stats = target.write(source, config)
    report = ExportReport(manifest, stats)
    for line in report.lines():
        say(line)
    if config.verify:
        from ppl_edge.convert.verify import sample_images

        images = sample_images(source.data, source.model.cfg.img_size, config.verify_images)
        report.checks = target.verify(source, config.out, images)
        for check in report.checks:
            say(check.line())
    return report
