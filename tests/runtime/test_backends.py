"""Backends, parametrised over the registry: the ones that run here run; the others say why not."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from ppl_edge.errors import MissingDependencyError, PplEdgeError
from ppl_edge.runtime.backends import (
    BACKENDS,
    Backend,
    BackendBase,
    backend_class,
    open_backend,
    select_backend,
    unavailable_reason,
)
from ppl_edge.runtime.manifest import resolve_model

ARTIFACT = {
    "onnxruntime": "keypoints.onnx",
    "tensorrt": "keypoints.engine",
    "coreml": "keypoints.mlpackage",
}
OUTPUTS = {
    "keypoints": (16, 2),
    "keypoints_refined": (16, 2),
    "prototype_ids": (8,),
    "prototype_distances": (8,),
    "confidence": (16,),
}


MARKS = {"tensorrt": [pytest.mark.gpu, pytest.mark.tensorrt], "coreml": [pytest.mark.macos]}


@pytest.fixture(params=[pytest.param(name, marks=MARKS.get(name, [])) for name in sorted(BACKENDS)])
def backend_name(request):
    reason = unavailable_reason(request.param)
    if reason:
        pytest.skip(f"backend {request.param}: {reason}")
    return request.param


def test_backend_runs_the_keypoint_graph_batched(backend_name, tiny_export):
    path = tiny_export / ARTIFACT[backend_name]
    if not path.exists():
        pytest.skip(f"the test export has no {path.name} (built on a device with {backend_name})")
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    with open_backend(backend_name, path) as backend:
        assert isinstance(backend, Backend)
        assert [s.name for s in backend.input_spec] == ["image"]
        assert backend.input_spec[0].shape[1:] == (3, 32, 32)
        assert [s.name for s in backend.output_spec] == list(OUTPUTS)
        out = backend.run({"image": x})
        single = backend.run({"image": x[1:2]})
    for name, shape in OUTPUTS.items():
        assert out[name].shape == (3, *shape), name
    assert out["prototype_ids"].dtype in (np.int32, np.int64)
    np.testing.assert_allclose(single["keypoints"][0], out["keypoints"][1], atol=1e-5)
    with pytest.raises(PplEdgeError, match="closed"):
        backend.run({"image": x})


def test_onnxruntime_checks_inputs_and_options(tiny_export):
    with open_backend(
        "auto", tiny_export / "keypoints.onnx", threads=1, optimization="basic"
    ) as backend:
        assert backend.name == "onnxruntime" and backend.providers == ["CPUExecutionProvider"]
        with pytest.raises(PplEdgeError, match=r"expects \('\?', 3, 32, 32\)"):
            backend.run({"image": np.zeros((1, 3, 64, 64), np.float32)})
        with pytest.raises(PplEdgeError, match="input 'image' missing"):
            backend.run({"img": np.zeros((1, 3, 32, 32), np.float32)})
        out = backend.run({"image": np.zeros((1, 3, 32, 32), np.float64)})  # cast to float32
        assert out["keypoints"].dtype == np.float32
    for device in ("npu", "cpu:1", "cuda:x"):
        with pytest.raises(PplEdgeError, match="choose one of cpu, cuda, tensorrt"):
            open_backend("onnxruntime", tiny_export / "keypoints.onnx", device=device)
    # A GPU device this onnxruntime build cannot serve falls back to CPU with a warning.
    with open_backend("onnxruntime", tiny_export / "keypoints.onnx", device="cuda:0") as backend:
        assert backend.providers[-1] == "CPUExecutionProvider"
    with pytest.raises(PplEdgeError, match="cannot load"):
        open_backend("onnxruntime", tiny_export / "manifest.json")


def test_unknown_backend_lists_the_valid_ones(tiny_export):
    with pytest.raises(PplEdgeError, match="choose one of auto, onnxruntime, tensorrt, coreml"):
        open_backend("openvino", tiny_export / "keypoints.onnx")
    with pytest.raises(PplEdgeError, match="cannot pick a backend"):
        open_backend("auto", tiny_export / "manifest.json")


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS")
def test_coreml_off_macos_says_so(tmp_path):
    with pytest.raises(PplEdgeError, match="runs only on macOS"):
        backend_class("coreml")(tmp_path / "keypoints.mlpackage")
    assert "macOS" in unavailable_reason("coreml")


def test_tensorrt_without_a_gpu_names_what_is_missing(tmp_path, monkeypatch):
    from ppl_edge.runtime.backends import cuda_check, tensorrt

    monkeypatch.setattr(tensorrt, "cuda_problem", lambda: "no NVIDIA driver: libcuda.so.1 missing")
    with pytest.raises(PplEdgeError, match="usable NVIDIA GPU: no NVIDIA driver.*onnxruntime"):
        backend_class("tensorrt")(tmp_path / "keypoints.engine")
    # With a GPU but without the Python packages, the message names the pip extra.
    monkeypatch.setattr(tensorrt, "cuda_problem", lambda: None)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail
    (tmp_path / "keypoints.engine").write_bytes(b"\0")
    with pytest.raises(MissingDependencyError, match=r"pip install 'ppl-edge\[trt\]'"):
        backend_class("tensorrt")(tmp_path / "keypoints.engine")
    monkeypatch.setattr(cuda_check, "cuda_problem", lambda: None)
    assert "ppl-edge[trt]" in unavailable_reason("tensorrt")


def test_cuda_check_reports_a_reason_or_none():
    from ppl_edge.runtime.backends.cuda_check import cuda_problem

    problem = cuda_problem()
    assert problem is None or ("driver" in problem or "GPU" in problem or "cu" in problem)


def test_auto_falls_back_to_onnxruntime_when_the_engine_cannot_run(tiny_export, tmp_path):
    folder = tmp_path / "with_engine"
    shutil.copytree(tiny_export, folder)
    (folder / "keypoints.engine").write_bytes(b"not an engine")
    files = resolve_model(folder / "keypoints.engine")
    assert files.engine == folder / "keypoints.engine" and files.onnx == folder / "keypoints.onnx"
    name, path = select_backend(files, "auto")
    if unavailable_reason("tensorrt"):
        assert (name, path) == ("onnxruntime", folder / "keypoints.onnx")
    else:
        assert name == "tensorrt"
    with pytest.raises(PplEdgeError, match="needs a Core ML package"):
        select_backend(files, "coreml")


def test_engine_sidecar_manifest_is_found(tiny_export, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    engine = cache / "ppl-tiny-sm90-trt10-fp16.engine"
    engine.write_bytes(b"x")
    sidecar = {"manifest": str(tiny_export / "manifest.json"), "precision": "fp16"}
    (cache / (engine.name + ".json")).write_text(json.dumps(sidecar))
    files = resolve_model(engine)
    assert files.engine == engine and files.onnx == tiny_export / "keypoints.onnx"
    assert files.refine == tiny_export / "refine.onnx"


def test_coreml_io_specs_and_image_input_mapping():
    """The package's image input is found and the tensor maps back to the pixels it came from."""
    ct = pytest.importorskip("coremltools")
    from coremltools.converters.mil import Builder as mb

    from ppl_edge.preprocess import normalise
    from ppl_edge.runtime.backends.coreml import io_specs, to_pixels
    from ppl_edge.runtime.manifest import InputSpec

    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 32, 32))])
    def program(image):
        return mb.reduce_mean(x=image, axes=[2, 3], name="confidence")

    image = ct.ImageType(
        name="image",
        shape=(1, 3, 32, 32),
        scale=2 / 255,
        bias=[-1, -1, -1],
        color_layout=ct.colorlayout.RGB,
    )
    spec = ct.convert(program, inputs=[image], convert_to="mlprogram").get_spec()
    inputs, outputs, kinds = io_specs(spec)
    assert [(s.name, s.shape) for s in inputs] == [("image", (1, 3, 32, 32))]
    assert kinds == {"image": "image"} and [s.name for s in outputs] == ["confidence"]
    rgb_spec = InputSpec("image", 32, 32, "RGB", 1 / 255, (0.5,) * 3, (0.5,) * 3)
    bgr = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    x = normalise(bgr[None], rgb_spec)[0]
    np.testing.assert_array_equal(to_pixels(x, (0.5,) * 3, (0.5,) * 3, 1 / 255), bgr[..., ::-1])


class _Registry:
    """TensorRT's plugin registry as far as the loader uses it (TensorRT is not installed here)."""

    def __init__(self, provides: bool):
        self.provides, self.loaded = provides, []

    def get_creator(self, name, version, namespace):
        return object() if self.loaded and self.provides else None

    def load_library(self, path):
        self.loaded.append(path)


class _FakeTrt:
    def __init__(self, provides: bool):
        self.registry = _Registry(provides)

    def init_libnvinfer_plugins(self, logger, namespace):
        pass

    def get_plugin_registry(self):
        return self.registry


def test_plugin_library_search_order_and_registration(tmp_path, monkeypatch):
    from pathlib import Path

    from numpy._core import _multiarray_umath

    from ppl_edge.runtime.backends import tensorrt

    libm = Path(_multiarray_umath.__file__)  # any loadable shared library stands in for the plugin
    engine = tmp_path / "keypoints.engine"
    recorded = tmp_path / "recorded" / tensorrt.PLUGIN_LIBRARY
    (engine.parent / (engine.name + ".json")).write_text(
        json.dumps({"build": {"plugin_library": str(recorded)}})
    )
    monkeypatch.setenv(tensorrt.PLUGIN_ENV, str(tmp_path / "env.so"))
    paths = tensorrt.plugin_search_path(engine)
    assert paths[:3] == [tmp_path / "env.so", recorded, tmp_path / tensorrt.PLUGIN_LIBRARY]
    trt = _FakeTrt(provides=True)
    assert tensorrt.load_plugin_library(trt, None, engine, libm) == libm
    assert trt.registry.loaded == [str(libm)]
    with pytest.raises(PplEdgeError, match="does not provide the NearestNeighborLookup"):
        tensorrt.load_plugin_library(_FakeTrt(provides=False), None, engine, libm)
    with pytest.raises(PplEdgeError, match="plugin library not found"):
        tensorrt.load_plugin_library(_FakeTrt(True), None, engine, tmp_path / "missing.so")
    monkeypatch.delenv(tensorrt.PLUGIN_ENV)
    monkeypatch.chdir(tmp_path)
    assert tensorrt.load_plugin_library(_FakeTrt(True), None, engine, None) is None


class FakeBackend(BackendBase):
    """A backend added the way a new one is: one class, one line in ``BACKENDS``. It runs the
    keypoint graph with ONNX Runtime and records the options the estimator opened it with."""

    name = "fake"
    suffixes = (".fake",)
    artifact_keys = ("keypoints_fake",)
    artifact_kind = "fake graph"
    find_alone = True
    auto_rank = -1  # preferred over every other backend
    opened: list = []

    @classmethod
    def options(cls, config, manifest):
        return {"threads": config.threads, "keypoints": manifest.num_keypoints}

    def __init__(self, path, threads=None, keypoints=0):
        FakeBackend.opened.append((path.name, threads, keypoints))
        self._ort = open_backend("onnxruntime", path.with_name("keypoints.onnx"), threads=threads)
        self._inputs, self._outputs = self._ort.input_spec, self._ort.output_spec

    def run(self, feeds):
        return self._ort.run(feeds)

    def close(self):
        self._ort.close()
        self._closed = True


def test_a_backend_is_one_class_and_one_registry_line(tiny_export, tmp_path, monkeypatch):
    from ppl_edge.runtime import Estimator, RuntimeConfig

    monkeypatch.setitem(BACKENDS, "fake", f"{__name__}:FakeBackend")
    monkeypatch.setattr(FakeBackend, "opened", [])
    folder = tmp_path / "with_fake"
    shutil.copytree(tiny_export, folder)
    (folder / "keypoints.fake").write_bytes(b"")
    # found by its manifest key: a file the manifest does not list is never paired with it
    from ppl_edge.manifest import Manifest, sha256_path, write_manifest

    document = Manifest.load(folder).to_dict()
    document["artifacts"]["keypoints_fake"] = {
        "file": "keypoints.fake",
        "sha256": sha256_path(folder / "keypoints.fake"),
    }
    write_manifest(folder / "manifest.json", document)
    files = resolve_model(folder)
    assert files.graphs["fake"] == folder / "keypoints.fake"
    assert files.onnx == folder / "keypoints.onnx"
    assert select_backend(files) == ("fake", folder / "keypoints.fake")  # by auto_rank
    assert resolve_model(folder / "keypoints.fake").graphs["fake"] == folder / "keypoints.fake"
    assert RuntimeConfig(backend="fake").backend == "fake"
    with Estimator(folder, threads=1) as est:
        assert est.backend_name == "fake" and len(est(np.zeros((32, 32, 3), np.uint8))) == 1
    assert FakeBackend.opened == [("keypoints.fake", 1, 16)]
    with open_backend("auto", folder / "keypoints.fake") as backend:
        assert isinstance(backend, FakeBackend)
    with pytest.raises(PplEdgeError, match="needs a fake graph"):
        select_backend(resolve_model(tiny_export), "fake")
