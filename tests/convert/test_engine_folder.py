"""Engines from an export folder with TensorRT alone (``ppl-edge convert --from DIR --target trt``,
convert/engine_folder.py): the command imports no torch / onnxscript / onnxsim, says in one line
when the GPU or TensorRT is missing and writes nothing then; with a stand-in TensorRT (a fake
module and a fake builder: real engines need a GPU) it builds the keypoint, refine and memory
engines and republishes the folder with them in the manifest, in one step."""

from __future__ import annotations

import ctypes
import json
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")

from ppl_edge.cli import main
from ppl_edge.convert import engine_cache as cache
from ppl_edge.convert import tensorrt_build as tb
from ppl_edge.convert.config import EngineConfig
from ppl_edge.convert.engine_cache import GpuInfo
from ppl_edge.convert.engine_folder import build_folder, engine_name, role_settings
from ppl_edge.convert.fp16 import FLOAT16
from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import Manifest

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "ppl-small-humanoid"
DRIVER = """
import json, sys
from ppl_edge.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, **{m: m in sys.modules for m in ("torch", "onnxscript", "onnxsim")}}))
"""


BLOCKED_DRIVER = """
import importlib.abc, json, sys, types


class Blocker(importlib.abc.MetaPathFinder):  # as if torch, onnxscript, onnxsim were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnxscript", "onnxsim"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, Blocker())
from ppl_edge.convert import engine_cache, tensorrt_build

sys.modules["tensorrt"] = types.SimpleNamespace(__version__="11.0.0")  # a stand-in TensorRT
engine_cache.probe_gpu = lambda device=0: engine_cache.GpuInfo("Orin (fake)", (8, 7), 0)
tensorrt_build.build_serialized = lambda trt, graph, key, *a, **k: graph.model_bytes[:64]
from ppl_edge.cli import main

print(json.dumps({"rc": main(sys.argv[1:])}))
"""


def has_libcuda() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


@pytest.fixture
def export(tmp_path) -> Path:
    folder = tmp_path / "small"
    shutil.copytree(SHIPPED, folder)
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def run_cli(driver: str, args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``driver`` (a ``python -c`` script ending in the CLI) with ``args`` in a bare
    environment: no PYTHONPATH, a private cache folder."""
    env = {"PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "xdg"), "PYTHONPATH": ""}
    return subprocess.run(
        [sys.executable, "-c", driver, *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_cli_from_folder_imports_no_torch_and_fails_in_one_line(export, tmp_path):
    before = snapshot(export)
    result = run_cli(
        DRIVER, ["convert", "--from", str(export), "--target", "trt", "--fp16"], tmp_path
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"rc": report["rc"], "torch": False, "onnxscript": False, "onnxsim": False}
    if has_libcuda():
        pytest.skip("a driver is present: the no-GPU message cannot be checked here")
    assert report["rc"] == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: " + cache.NO_GPU_MESSAGE.format("libcuda.so.1")]
    assert snapshot(export) == before  # nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small"]  # no staging left
    assert not (tmp_path / "xdg").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "onnx"], "use --target trt, not --target onnx"),
        (["--target", "trt", "--out", "x"], "drop --out"),
    ],
)
def test_from_refuses_other_targets_and_out(export, capsys, extra, message):
    assert main(["convert", "--from", str(export), *extra]) == 1
    assert message in capsys.readouterr().err


def test_from_a_folder_without_manifest(tmp_path, capsys):
    assert main(["convert", "--from", str(tmp_path), "--target", "trt"]) == 1
    assert "no manifest.json there; expected an export folder" in capsys.readouterr().err


# ------------------------------------------------------------------ with a stand-in TensorRT
@pytest.fixture
def fake_trt(monkeypatch):
    """GPU probe, ``tensorrt`` module and builder replaced; returns the list of built graphs."""
    built = []

    def fake_build(trt, graph, key, library, **kwargs):
        built.append((graph, key, kwargs["plan"]))
        return b"engine of " + graph.path.name.encode()

    def install(version: str):
        monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__=version))
        return built

    monkeypatch.setattr(cache, "probe_gpu", lambda device=0: GpuInfo("Orin (fake)", (8, 7), 0))
    monkeypatch.setattr(tb, "build_serialized", fake_build)
    return install


def test_builds_three_engines_and_republishes_the_manifest(export, tmp_path, fake_trt):
    built = fake_trt("10.3.0")
    settings = EngineConfig(precision="fp16", nn="native", cache_root=tmp_path / "cache")
    (export / "notes.txt").write_text("kept")
    lines = []
    build_folder(export, settings, echo=lines.append)
    manifest = Manifest.load(export)
    manifest.verify_all()
    files = {k: v["file"] for k, v in manifest.artifacts.items() if k.endswith("engine")}
    assert files == {
        "engine": "keypoints.fp16.engine",
        "refine_engine": "refine.fp16.engine",
        "memory_engine": "memory.fp16.engine",
    }
    assert manifest.raw["precision"] == "fp16" and manifest.raw["tools"]["tensorrt"] == "10.3.0"
    for name in files.values():
        sidecar = json.loads((export / f"{name}.json").read_text())
        assert sidecar["key"]["onnx_sha256"] in {a["sha256"] for a in manifest.artifacts.values()}
        assert sidecar["build"]["builder_flags"] == ["FP16"]
    assert (export / "notes.txt").read_text() == "kept"
    assert [g.inputs for g, _, _ in built] == [
        (("image", (3, 64, 64)),),
        (("image", (3, 64, 64)), ("keypoints", (16, 2))),
        (("keypoints", (16, 2)),),
    ]
    assert lines[-1] == f"wrote {export / 'manifest.json'}"


def test_tensorrt_11_builds_strongly_typed_from_the_fp16_graph(export, tmp_path, fake_trt):
    built = fake_trt("11.0.0")
    lib = tmp_path / "libppl_edge_plugins.so"
    lib.write_bytes(b"\x7fELF")
    settings = EngineConfig(precision="fp16", plugin_lib=lib, cache_root=tmp_path / "cache")
    build_folder(export, settings)
    graph, key, plan = built[0]
    assert graph.path.name == "keypoints_trt.onnx" and key.strongly_typed
    assert plan.network_flags == ("STRONGLY_TYPED",) and plan.builder_flags == ()
    model = onnx.ModelProto.FromString(graph.model_bytes)
    assert not model.functions  # stripped: the parser calls the plugin
    assert any(t.data_type == FLOAT16 for t in model.graph.initializer)
    lookup = next(n for n in model.graph.node if n.op_type == "NearestNeighborLookup")
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    assert producers[lookup.input[0]] == "Cast"  # the lookup runs in FP32
    assert Manifest.load(export).artifacts["engine"]["file"] == "keypoints_trt.fp16.engine"


def test_an_exported_fp16_graph_is_preferred(export, tmp_path, fake_trt):
    from ppl_edge.convert.onnx_target import write_fp16_graphs

    written = write_fp16_graphs({"keypoints": export / "keypoints.onnx"})
    assert written == {"keypoints_fp16": export / "keypoints.fp16.onnx"}
    graph = tb.prepare_graph(export / "keypoints.onnx", "native", float16=True)
    assert graph.path.name == "keypoints.fp16.onnx"
    assert graph.sha256 == tb.sha256_path(export / "keypoints.fp16.onnx")


def test_tensorrt_8_6_refuses_the_plugin_in_one_line_and_writes_nothing(export, tmp_path, fake_trt):
    fake_trt("8.6.2")
    before = snapshot(export)
    with pytest.raises(PplEdgeError, match=r"TensorRT 8\.6\.2 cannot load .*--nn native"):
        build_folder(export, EngineConfig(precision="fp16", cache_root=tmp_path / "c"))
    with pytest.raises(PplEdgeError, match=r"opsets up to 17, keypoints\.onnx has opset 18"):
        build_folder(export, EngineConfig(nn="native", cache_root=tmp_path / "c"))
    assert snapshot(export) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small"]


def test_a_changed_graph_is_refused_before_building(export, tmp_path, fake_trt):
    built = fake_trt("10.3.0")
    with (export / "refine.onnx").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(PplEdgeError, match="refine"):
        build_folder(export, EngineConfig(nn="native", cache_root=tmp_path / "c"))
    assert not built


def test_role_settings_and_names():
    int8 = EngineConfig(precision="fp16", nn="plugin")
    assert role_settings(int8, "engine") is int8
    refine = role_settings(int8, "refine_engine")
    assert (refine.nn, refine.precision) == ("native", "fp16")
    assert engine_name(Path("keypoints_trt.fp16.onnx"), "fp16") == "keypoints_trt.fp16.engine"
    assert engine_name(Path("memory.onnx"), "fp32") == "memory.fp32.engine"


def test_plugin_library_beside_the_export_is_found_and_kept(
    export, tmp_path, fake_trt, monkeypatch
):
    built = fake_trt("10.3.0")
    monkeypatch.delenv(tb.PLUGIN_ENV, raising=False)
    monkeypatch.setattr(tb, "_REPO", tmp_path / "no-checkout")
    library = export / tb.PLUGIN_LIBRARY
    library.write_bytes(b"\x7fELF plugin")
    build_folder(export, EngineConfig(precision="fp32", cache_root=tmp_path / "cache"))
    _, key, plan = built[0]
    assert key.nn == "plugin" and key.plugin_sha256 == tb.sha256_path(library)
    assert plan.builder_flags == () and not plan.strongly_typed
    sidecar = json.loads((export / "keypoints_trt.fp32.engine.json").read_text())
    assert sidecar["build"]["plugin_library"] == str(library.resolve())
    assert library.read_bytes() == b"\x7fELF plugin"  # carried into the republished folder


def test_cli_from_folder_runs_where_torch_is_not_installed(export, tmp_path):
    """The whole command (FP16 graphs made on the device, engines, manifest) with torch,
    onnxscript and onnxsim unimportable and a stand-in TensorRT 11 / GPU."""
    lib = tmp_path / "libppl_edge_plugins.so"
    lib.write_bytes(b"\x7fELF")
    command = ["convert", "--from", str(export), "--target", "trt", "--fp16", "--plugins", str(lib)]
    result = run_cli(BLOCKED_DRIVER, command, tmp_path)
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"rc": 0}, result.stderr
    manifest = Manifest.load(export)
    manifest.verify_all()
    assert manifest.artifacts["engine"]["file"] == "keypoints_trt.fp16.engine"
    assert {"refine_engine", "memory_engine"} <= set(manifest.artifacts)
    sidecar = json.loads((export / "keypoints_trt.fp16.engine.json").read_text())
    assert sidecar["key"]["strongly_typed"] and sidecar["build"]["network_flags"] == [
        "STRONGLY_TYPED"
    ]
