"""TensorRT engine build: prerequisite checks (order, one-line messages, nothing written), graph
preparation for the plugin / native lookup, plugin library search, build progress; and, where a GPU
and TensorRT exist, real builds."""

from __future__ import annotations

import ctypes
import hashlib
import logging
import sys
import time

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper

from ppl_edge.convert import nn_plugin
from ppl_edge.convert import tensorrt_build as tb
from ppl_edge.convert.engine_cache import NO_GPU_MESSAGE
from ppl_edge.convert.trt_builder import BuildProgress, Heartbeat
from ppl_edge.errors import PplEdgeError


def has_libcuda() -> bool:
    try:
        ctypes.CDLL("libcuda.so.1")
        return True
    except OSError:
        return False


def tensorrt_missing() -> str | None:
    """Why TensorRT tests cannot run here, or None."""
    if not has_libcuda():
        return "no NVIDIA driver (libcuda.so.1) on this machine"
    try:
        import tensorrt  # noqa: F401
    except ImportError as err:
        return f"TensorRT is not installed ({err})"
    return None


def keypoint_graph(batch="B", lookup=True, function=True, size=4):
    """image (batch, 3, size, size) -> queries (batch, 3, 16) -> [NearestNeighborLookup] -> out."""
    m, d = 3, size * size
    codebook = np.random.default_rng(0).standard_normal((m, 5, d)).astype(np.float32)
    nodes = [helper.make_node("Reshape", ["image", "shape"], ["queries"])]
    outputs = [helper.make_tensor_value_info("queries", TensorProto.FLOAT, [batch, m, d])]
    if lookup:
        nodes.append(
            helper.make_node(
                nn_plugin.OP_TYPE,
                ["queries", "codebook"],
                list(nn_plugin.OUTPUTS),
                domain=nn_plugin.DOMAIN,
                **nn_plugin.ATTRIBUTES,
            )
        )
        outputs = [
            helper.make_tensor_value_info("selected", TensorProto.FLOAT, [batch, m, d]),
            helper.make_tensor_value_info("indices", TensorProto.INT32, [batch, m]),
            helper.make_tensor_value_info("distances", TensorProto.FLOAT, [batch, m]),
        ]
    graph = helper.make_graph(
        nodes,
        "toy",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, size, size])],
        outputs,
        [
            onnx.numpy_helper.from_array(np.array([0, m, d], np.int64), "shape"),
            onnx.numpy_helper.from_array(codebook, "codebook"),
        ],
    )
    model = helper.make_model(
        graph,
        ir_version=9,
        opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid(nn_plugin.DOMAIN, 1)],
    )
    return nn_plugin.attach_lookup_function(model) if lookup and function else model


def save(model, path):
    onnx.save(model, str(path))
    return path


@pytest.fixture
def export_dir(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    save(keypoint_graph(), folder / "keypoints_trt.onnx")
    save(keypoint_graph(lookup=False), folder / "keypoints.onnx")
    return folder


# ------------------------------------------------------------------------------ no GPU, no TensorRT
@pytest.mark.skipif(
    has_libcuda(), reason="libcuda.so.1 is present: the no-GPU path cannot be checked"
)
@pytest.mark.parametrize("nn, precision", [("plugin", "fp16"), ("native", "fp32")])
def test_without_gpu_one_line_error_and_nothing_written(
    export_dir, tmp_path, monkeypatch, nn, precision
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delitem(sys.modules, "tensorrt", raising=False)
    out = tmp_path / "engines"
    before = sorted(p.name for p in export_dir.iterdir())
    with pytest.raises(PplEdgeError) as err:
        tb.build_engine(
            export_dir, out, precision=precision, nn=nn, plugin_lib=tmp_path / "missing.so"
        )
    assert str(err.value) == NO_GPU_MESSAGE.format("libcuda.so.1")
    assert "\n" not in str(err.value)
    assert "tensorrt" not in sys.modules  # the driver is checked before TensorRT is imported
    assert not out.exists() and not (tmp_path / "xdg").exists()
    assert sorted(p.name for p in export_dir.iterdir()) == before


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"precision": "fp8"}, "unknown precision 'fp8'; choose one of fp32, fp16, int8"),
        ({"nn": "cuda"}, "unknown nn 'cuda'; choose one of plugin, native"),
        ({"min_batch": 4, "opt_batch": 2}, "min_batch <= opt_batch"),
        ({"workspace_mb": 0}, "workspace must be at least 1 MiB"),
        ({"precision": "int8"}, "INT8 needs calibration images"),
    ],
)
def test_bad_arguments_are_refused_before_anything_else(export_dir, tmp_path, kwargs, message):
    with pytest.raises(PplEdgeError, match=message):
        tb.build_engine(export_dir, tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


def test_calibration_folder_without_images_is_refused(export_dir, tmp_path):
    empty = tmp_path / "calib"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(PplEdgeError, match="holds no images"):
        tb.build_engine(export_dir, tmp_path / "out", precision="int8", calib_data=empty)


def test_missing_onnx_is_refused(tmp_path):
    with pytest.raises(PplEdgeError, match="keypoints_trt.onnx not found"):
        tb.build_engine(tmp_path, tmp_path / "out")


# ------------------------------------------------------------------------------------ graph prep
def test_plugin_graph_is_stripped_and_keeps_the_node(export_dir):
    path = tb.resolve_onnx(export_dir, "plugin")
    assert path.name == "keypoints_trt.onnx"
    graph = tb.prepare_graph(path, "plugin")
    parsed = onnx.ModelProto.FromString(graph.model_bytes)
    assert len(parsed.functions) == 0 and len(nn_plugin.lookup_nodes(parsed)) == 1
    assert (graph.input_name, graph.height, graph.width, graph.batch) == ("image", 4, 4, None)
    assert len(onnx.load(str(path)).functions) == 1  # the file on disk is untouched
    assert graph.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_native_graph_rules(tmp_path, export_dir):
    native = tb.prepare_graph(tb.resolve_onnx(export_dir, "native"), "native")
    assert native.batch is None and native.height == 4
    with pytest.raises(PplEdgeError, match="no NearestNeighborLookup node"):
        tb.prepare_graph(export_dir / "keypoints.onnx", "plugin")
    bare = save(keypoint_graph(function=False), tmp_path / "bare.onnx")
    with pytest.raises(PplEdgeError, match="without their ONNX function"):
        tb.prepare_graph(bare, "native")
    # With its function, the custom node is standard ONNX to the parser: native builds accept it.
    assert tb.prepare_graph(export_dir / "keypoints_trt.onnx", "native").model_bytes


def test_input_shapes(tmp_path):
    static = tb.prepare_graph(save(keypoint_graph(batch=2), tmp_path / "s.onnx"), "plugin")
    assert static.batch == 2
    model = keypoint_graph()
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "H"
    with pytest.raises(PplEdgeError, match="static H and W"):
        tb.prepare_graph(save(model, tmp_path / "d.onnx"), "plugin")


def test_manifest_document_sources(tmp_path, export_dir):
    onnx_path = export_dir / "keypoints_trt.onnx"
    assert tb.load_manifest_document(None, onnx_path) is None
    assert tb.load_manifest_document({"format": "x"}, onnx_path) == {"format": "x"}
    (export_dir / "manifest.json").write_text('{"format": "ppl-edge-export"}')
    assert tb.load_manifest_document(None, onnx_path) == {"format": "ppl-edge-export"}
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(PplEdgeError, match="cannot read the export manifest"):
        tb.load_manifest_document(bad, onnx_path)


# ------------------------------------------------------------------------------- plugin library
def test_plugin_library_search(tmp_path, monkeypatch):
    monkeypatch.setattr(tb, "_REPO", tmp_path / "repo")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(tb.PLUGIN_ENV, raising=False)
    with pytest.raises(PplEdgeError, match="cmake -S . -B build"):
        tb.find_plugin_library(None, tmp_path / "export" / "keypoints_trt.onnx")
    with pytest.raises(PplEdgeError, match="does not exist"):
        tb.find_plugin_library(tmp_path / "nope.so")
    beside = tmp_path / "export" / tb.PLUGIN_LIBRARY
    beside.parent.mkdir()
    beside.write_bytes(b"\x7fELF")
    assert tb.find_plugin_library(None, beside.parent / "keypoints_trt.onnx") == beside.resolve()
    chosen = tmp_path / "custom.so"
    chosen.write_bytes(b"\x7fELF")
    monkeypatch.setenv(tb.PLUGIN_ENV, str(chosen))
    assert tb.find_plugin_library(None, beside.parent / "keypoints_trt.onnx") == chosen.resolve()


# ------------------------------------------------------------------------------------- progress
def test_build_progress_reports_phases(caplog):
    now = [100.0]
    progress = BuildProgress("building toy.onnx (fp16)", clock=lambda: now[0])
    with caplog.at_level(logging.DEBUG, logger="ppl_edge.convert.trt_builder"):
        progress.phase_start("Building engine", None, 3)
        progress.phase_start("Tactic selection", "Building engine", 40)
        assert progress.step_complete("Tactic selection", 11) is True
        now[0] = 145.0
        assert progress.status() == "building toy.onnx (fp16): 45 s, Tactic selection 12/40"
        progress.phase_finish("Tactic selection")
        assert progress.status() == "building toy.onnx (fp16): 45 s, Building engine 0/3"
        progress.phase_finish("Building engine")
    assert progress.status() == "building toy.onnx (fp16): 45 s"
    assert "Building engine done (45 s)" in caplog.text


def test_heartbeat_logs_until_stopped(caplog):
    progress = BuildProgress("building toy.onnx (fp32)")
    with caplog.at_level(logging.INFO, logger="ppl_edge.convert.trt_builder"):
        heartbeat = Heartbeat(progress, interval=0.01)
        with heartbeat:
            time.sleep(0.1)
    assert not heartbeat._thread.is_alive()
    lines = [r.message for r in caplog.records if r.message.startswith("building toy.onnx (fp32):")]
    assert len(lines) >= 2


# ------------------------------------------------------------------------- with GPU and TensorRT
@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(tensorrt_missing() is not None, reason=str(tensorrt_missing()))
def test_native_engine_builds_and_is_cached(export_dir, tmp_path):
    first = tb.build_engine(
        export_dir,
        tmp_path / "out",
        precision="fp32",
        nn="native",
        max_batch=4,
        cache_root=tmp_path / "cache",
    )
    assert first.name == "keypoints.fp32.engine" and first.stat().st_size > 0
    cached = list((tmp_path / "cache").rglob("*.engine"))
    assert len(cached) == 1 and list((tmp_path / "cache").rglob("timing.cache"))
    stamp = cached[0].stat().st_mtime_ns
    tb.build_engine(
        export_dir,
        tmp_path / "out2",
        precision="fp32",
        nn="native",
        max_batch=4,
        cache_root=tmp_path / "cache",
    )
    assert cached[0].stat().st_mtime_ns == stamp  # reused, not rebuilt


@pytest.mark.gpu
@pytest.mark.tensorrt
@pytest.mark.skipif(tensorrt_missing() is not None, reason=str(tensorrt_missing()))
def test_plugin_engine_builds_with_the_library(export_dir, tmp_path):
    try:
        library = tb.find_plugin_library(None, export_dir / "keypoints_trt.onnx")
    except PplEdgeError as err:
        pytest.skip(f"plugin library not built: {err}")
    engine = tb.build_engine(
        export_dir,
        tmp_path / "out",
        precision="fp16",
        nn="plugin",
        plugin_lib=library,
        cache_root=tmp_path / "cache",
    )
    assert engine.name == "keypoints_trt.fp16.engine" and engine.stat().st_size > 0
