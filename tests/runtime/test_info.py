"""``ppl-edge info``: what the shipped export, an engine with its sidecar and a lone ONNX graph
are; changed artifacts; bad input in one line; no torch import."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ppl_edge.cli import main
from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import ManifestError, sha256_path
from ppl_edge.runtime.info import describe, problems

pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "ppl-small-humanoid"


@pytest.fixture
def export(tmp_path) -> Path:
    folder = tmp_path / "export"
    shutil.copytree(SHIPPED, folder)
    return folder


def _info(capsys, *args) -> tuple[int, str, list[str]]:
    code = main(["info", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, [line for line in err.splitlines() if line.startswith("error:")]


def test_shipped_export_is_described(capsys):
    report = describe(SHIPPED)
    m = report["manifest"]
    assert report["kind"] == "export folder"
    assert (m["keypoints"], m["memory"]) == (16, {"banks": 34, "entries": 16, "dim": 128})
    assert (m["input"]["height"], m["input"]["width"], m["input"]["color"]) == (64, 64, "RGB")
    assert m["joint_names"] is None and m["batch"] == {"dynamic": True, "max": 64}
    assert {a["key"]: a["sha256"] for a in report["artifacts"]} == {
        "keypoints": "ok",
        "keypoints_trt": "ok",
        "refine": "ok",
        "memory": "ok",
        "keypoints_int8": "ok",
    }
    graphs = {Path(g["file"]).name: g for g in report["graphs"]}
    assert set(graphs) == {
        "keypoints.onnx",
        "keypoints_trt.onnx",
        "refine.onnx",
        "memory.onnx",
        "keypoints.int8.onnx",
    }
    outputs = {t["name"]: t for t in graphs["keypoints.onnx"]["outputs"]}
    assert outputs["prototype_ids"] == {
        "name": "prototype_ids",
        "shape": [None, 34],
        "dtype": "int32",
    }
    assert [t["name"] for t in graphs["refine.onnx"]["inputs"]] == ["image", "keypoints"]
    runs = report["runs_here"]
    assert runs["backends"]["onnxruntime"]["unavailable"] is None
    assert runs["auto"]["backend"] in ("onnxruntime", "tensorrt", "coreml")
    assert problems(report) == []
    code, out, errors = _info(capsys, SHIPPED)
    assert code == 0 and not errors
    assert "M=34 banks x K=16 entries x D=128" in out and "sha256 ok" in out
    assert "(B, 3, 64, 64)" in out and "runs here" in out


def test_json_report_parses(tmp_path, capsys):
    code, _, _ = _info(capsys, SHIPPED / "manifest.json", "--json", tmp_path / "info.json")
    report = json.loads((tmp_path / "info.json").read_text())
    assert code == 0 and report["kind"] == "manifest" and report["problems"] == []


def _engine(folder: Path, manifest="manifest.json") -> Path:
    engine = folder / "keypoints_trt.fp16.engine"
    engine.write_bytes(b"not a real engine: TensorRT is not installed here")
    sidecar = {
        "format": "ppl-edge-engine",
        "format_version": 1,
        "key": {
            "model_stem": "keypoints_trt",
            "onnx_sha256": sha256_path(folder / "keypoints_trt.onnx"),
            "precision": "fp16",
            "nn": "plugin",
            "plugin_version": "1",
            "min_batch": 1,
            "opt_batch": 4,
            "max_batch": 8,
            "height": 64,
            "width": 64,
            "gpu_name": "Orin",
            "sm": "sm87",
            "trt_version": "10.3.0",
        },
        "engine_sha256": sha256_path(engine),
        "build": {"plugin_library": "/opt/ppl/libppl_edge_plugins.so"},
        "manifest": manifest,
    }
    (folder / (engine.name + ".json")).write_text(json.dumps(sidecar))
    return engine


def test_engine_is_described_from_its_sidecar(export, capsys, monkeypatch):
    engine = _engine(export)
    report = describe(engine)
    graph = report["graphs"][0]
    assert report["kind"] == "TensorRT engine" and report["manifest"]["keypoints"] == 16
    assert graph["precision"] == "fp16" and graph["batch_profile"] == [1, 4, 8]
    assert (graph["tensorrt"], graph["plugin_version"], graph["sm"]) == ("10.3.0", "1", "sm87")
    assert graph["engine_sha256"] == "ok"
    assert graph["plugin_library"] == "/opt/ppl/libppl_edge_plugins.so"
    assert graph["plugin_library_here"] is not None  # a path, or "not found"
    if report["runs_here"]["backends"]["tensorrt"]["unavailable"]:
        assert graph["error"].startswith("not read here:")
    on_trt = report["runs_here"]["refinement"]["tensorrt"]
    assert on_trt["refine"]["backend"] == "onnxruntime"  # the export lists no refine engine
    code, out, errors = _info(capsys, engine)
    assert code == 0 and "TensorRT 10.3.0, fp16, plugin v1, on Orin (sm87)" in out
    assert "batch 1..8 (opt 4)" in out and "plugin lib  here: " in out
    library = export / "libppl_edge_plugins.so"  # beside the engine: on its search path
    library.write_bytes(b"")
    monkeypatch.delenv("PPL_EDGE_PLUGIN_LIB", raising=False)
    assert describe(engine)["graphs"][0]["plugin_library_here"] == str(library)
    library.unlink()
    refine_engine = export / "refine.fp16.engine"
    refine_engine.write_bytes(b"refine engine")
    document = json.loads((export / "manifest.json").read_text())
    for key, file in (("engine", engine), ("refine_engine", refine_engine)):
        document["artifacts"][key] = {"file": file.name, "sha256": sha256_path(file)}
    (export / "manifest.json").write_text(json.dumps(document))
    refinement = describe(export)["runs_here"]["refinement"]["tensorrt"]
    assert refinement["refine"] == {"backend": "tensorrt", "file": str(refine_engine)}
    code, out, _ = _info(capsys, export)
    assert "refinement  with tensorrt: refine refine.fp16.engine on tensorrt" in out
    engine.write_bytes(b"changed")
    code, _, errors = _info(capsys, engine)
    assert code == 1 and len(errors) == 1 and "changed since its sidecar" in errors[0]


def test_changed_and_missing_artifacts_fail_in_one_line(export, capsys):
    (export / "refine.onnx").write_bytes(b"garbage")
    (export / "memory.onnx").unlink()
    code, out, errors = _info(capsys, export)
    assert code == 1 and len(errors) == 1
    assert (
        "refine (refine.onnx): changed" in errors[0]
        and "memory (memory.onnx): missing" in errors[0]
    )
    assert "not read:" in out  # the garbage graph's I/O


def test_a_lone_onnx_graph_is_described_without_a_manifest(tmp_path, capsys):
    lone = tmp_path / "graph.onnx"
    shutil.copy(SHIPPED / "memory.onnx", lone)
    report = describe(lone)
    assert "manifest" not in report and "manifest not found" in report["manifest_problem"]
    assert [t["name"] for t in report["graphs"][0]["inputs"]] == ["keypoints"]
    code, out, errors = _info(capsys, lone)
    assert code == 1 and "keypoints_refined" in out and len(errors) == 1


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "nowhere", "model not found"),
        (lambda p: (p / "notes.txt").write_text("hi") and p / "notes.txt", "is not a model"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "manifest not found"),
        (lambda p: (p / "manifest.json").write_text("{oops") and p / "manifest.json", "not valid"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, make, message):
    target = make(tmp_path)
    with pytest.raises((PplEdgeError, ManifestError), match=message):
        describe(target)
    code, out, errors = _info(capsys, target)
    assert code == 1 and out == "" and len(errors) == 1 and message in errors[0]


def test_info_imports_no_torch():
    code = (
        "import sys; from ppl_edge.cli import main; "
        f"rc = main(['info', {str(SHIPPED)!r}]); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_an_unreadable_core_ml_package_is_reported_not_raised(export, capsys):
    package = export / "keypoints.mlpackage"
    package.mkdir()
    (package / "Manifest.json").write_text("not a package")
    report = describe(package)
    assert report["kind"] == "Core ML package" and report["manifest"]["keypoints"] == 16
    assert report["graphs"][0]["error"].startswith("not read")
    assert "\n" not in report["graphs"][0]["error"]
    code, out, _ = _info(capsys, package)
    assert code == 0 and "I/O         not read" in out
