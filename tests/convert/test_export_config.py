"""ExportConfig / EngineConfig validate once, with the standard one-line messages; the registry of
exporters dispatches ``export`` (a fake target stands in for the real ones)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from ppl_edge.convert import EngineConfig, ExportConfig, ExportSource, export, targets
from ppl_edge.convert.targets import TARGETS, Exporter, exporter
from ppl_edge.errors import PplEdgeError


def test_every_target_has_an_exporter():
    assert TARGETS == ("onnx", "trt", "coreml")
    for target in TARGETS:
        assert isinstance(exporter(target), Exporter)


def test_unknown_target_and_flavour_use_the_standard_message(tmp_path):
    with pytest.raises(
        PplEdgeError, match="unknown target 'tflite'; choose one of onnx, trt, coreml"
    ):
        ExportConfig(out=tmp_path / "out", target="tflite")
    with pytest.raises(
        PplEdgeError, match="unknown flavour 'x'; choose one of portable, plugin, both"
    ):
        ExportConfig(out=tmp_path / "out", target="coreml", flavour="x")


def test_config_is_frozen_and_keeps_the_output_folder_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = ExportConfig(out="out", target="coreml", opset=5)  # coreml writes no ONNX: no opset
    assert config.out == tmp_path / "out" and config.out.is_absolute()
    assert not config.out.exists()  # checked, not created
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.opset = 18
    with pytest.raises(PplEdgeError, match="parent of the output folder does not exist"):
        ExportConfig(out=tmp_path / "missing" / "out", target="coreml")
    with pytest.raises(PplEdgeError, match="--verify-images must be >= 1"):
        ExportConfig(out="out", target="coreml", verify_images=0)


def test_engine_settings_are_checked_when_made(tmp_path):
    with pytest.raises(PplEdgeError, match="--min-batch <= --opt-batch <= --max-batch"):
        EngineConfig(min_batch=4, opt_batch=2)
    with pytest.raises(PplEdgeError, match="INT8 needs calibration images"):
        EngineConfig(precision="int8")
    with pytest.raises(PplEdgeError, match="calibration folder .* does not exist"):
        EngineConfig(precision="int8", calib_data=tmp_path / "none")
    cache = tmp_path / "table.calib"
    cache.write_bytes(b"x")
    engine = EngineConfig(precision="int8", calib_cache=str(cache), shapes="image:2x3x32x32")
    assert engine.calib_cache == cache and engine.has_calib_cache
    fixed = engine.with_batch(2)
    assert fixed.batches == (2, 2, 2) and fixed.shapes is None and fixed.precision == "int8"


def test_trt_engine_needs_the_graph_its_lookup_is_built_from(tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("torch")
    with pytest.raises(PplEdgeError, match="plugin lookup is built from keypoints_trt.onnx"):
        ExportConfig(out=tmp_path / "o", target="trt", flavour="portable")
    with pytest.raises(PplEdgeError, match="plugin library .* does not exist"):
        ExportConfig(
            out=tmp_path / "o", target="trt", flavour="both", engine=EngineConfig(plugin_lib="x.so")
        )
    native = ExportConfig(
        out=tmp_path / "o", target="trt", flavour="portable", engine=EngineConfig(nn="native")
    )
    assert native.engine.nn == "native"


class FakeExporter(Exporter):
    """Writes a manifest only; one passing check."""

    calls: list[str] = []

    def prepare(self, config):
        self.calls.append("prepare")

    def write(self, source, config):
        self.calls.append("write")
        path = config.out / "manifest.json"
        config.out.mkdir(exist_ok=True)
        path.write_text(json.dumps({"name": source.name}))
        return path, {"keypoints": {"nodes_exported": 3, "nodes_simplified": 2}}


def test_a_registered_target_is_one_line_and_export_runs_it(tmp_path, monkeypatch):
    monkeypatch.setitem(targets.EXPORTERS, "fake", f"{__name__}:FakeExporter")
    monkeypatch.setattr(FakeExporter, "calls", [])
    source = ExportSource(model=None, name="toy", preset="tiny", checkpoint_sha256="0", data="x")
    lines: list[str] = []
    report = export(source, ExportConfig(out=tmp_path / "out", target="fake"), echo=lines.append)
    assert FakeExporter.calls == ["prepare", "write"]
    assert report.passed and report.checks == []
    assert report.manifest == tmp_path / "out" / "manifest.json"
    assert lines == [
        "keypoints: 3 nodes exported, 2 after onnxsim",
        f"wrote {tmp_path / 'out' / 'manifest.json'}",
    ]
