"""Refinement on the keypoint graph's device: a backend's own builds of the refine and memory graphs
(TensorRT engines, Core ML packages) are opened when the export lists them, with the keypoint
graph's backend; without them the ONNX graphs run on ONNX Runtime and the log says so once. A
stand-in backend (ONNX Runtime underneath) plays the device: no GPU here."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from ppl_edge.manifest import Manifest, sha256_path, write_manifest
from ppl_edge.runtime import Estimator
from ppl_edge.runtime.aux_graphs import plan
from ppl_edge.runtime.backends import BACKENDS, backend_class, open_backend
from ppl_edge.runtime.backends.base import BackendBase
from ppl_edge.runtime.manifest import resolve_model

pytest.importorskip("onnxruntime")
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "ppl-small-humanoid"


class DeviceBackend(BackendBase):
    """A device backend declared like TensorRT: its own builds of refine and memory."""

    name = "device"
    suffixes = (".dev",)
    artifact_keys = ("keypoints_dev",)
    artifact_kind = "device graph"
    auto_rank = -1
    aux_artifact_keys = {"refine": ("refine_dev",), "memory": ("memory_dev",)}
    opened: list = []

    @classmethod
    def options(cls, config, manifest):
        return {"threads": config.threads}

    def __init__(self, path, threads=None):
        DeviceBackend.opened.append(path.name)
        onnx = path.with_suffix(".onnx")
        self._ort = open_backend("onnxruntime", onnx, threads=threads)
        self._inputs, self._outputs = self._ort.input_spec, self._ort.output_spec

    def run(self, feeds):
        return self._ort.run(feeds)

    def close(self):
        self._ort.close()
        self._closed = True


@pytest.fixture
def device(monkeypatch):
    monkeypatch.setitem(BACKENDS, "device", f"{__name__}:DeviceBackend")
    monkeypatch.setattr(DeviceBackend, "opened", [])
    return DeviceBackend


def _export(tmp_path: Path, roles: tuple[str, ...]) -> Path:
    """The shipped export with a device build of the keypoint graph and of ``roles`` listed."""
    folder = tmp_path / "export"
    shutil.copytree(SHIPPED, folder)
    document = Manifest.load(folder).to_dict()
    for role in ("keypoints", *roles):
        file = folder / f"{role}.dev"
        file.write_bytes(role.encode())
        document["artifacts"][f"{role}_dev"] = {"file": file.name, "sha256": sha256_path(file)}
    write_manifest(folder / "manifest.json", document)
    return folder


def _frame(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_listed_device_builds_run_refinement_on_the_device(device, tmp_path, caplog):
    folder = _export(tmp_path, ("refine", "memory"))
    caplog.set_level(logging.INFO, logger="ppl_edge.runtime")
    with Estimator(folder, backend="device", refine="image", iterations=1, threads=1) as est:
        assert device.opened == ["keypoints.dev", "refine.dev"]  # opened at construction
        image = est(_frame())[0]
        memory = est(_frame(), refine="memory", iterations=3)[0]
        assert device.opened == ["keypoints.dev", "refine.dev", "memory.dev"]
        assert plan(est.files, "device") == {
            "refine": ("device", folder / "refine.dev"),
            "memory": ("device", folder / "memory.dev"),
        }
    assert "runs on ONNX Runtime CPU" not in caplog.text
    assert "refine runs on device (refine.dev)" in caplog.text
    with Estimator(folder, backend="onnxruntime", refine="image", iterations=1, threads=1) as ort:
        np.testing.assert_allclose(ort(_frame())[0].keypoints, image.keypoints, atol=1e-4)
        same = ort(_frame(), refine="memory", iterations=3)[0]
        np.testing.assert_allclose(same.keypoints, memory.keypoints, atol=1e-4)


def test_without_device_builds_refinement_falls_back_to_onnx_runtime_once(device, tmp_path, caplog):
    folder = _export(tmp_path, ())
    caplog.set_level(logging.INFO, logger="ppl_edge.runtime")
    with Estimator(folder, backend="device", refine="image", iterations=2, threads=1) as est:
        for seed in range(3):
            assert est(_frame(seed))
        est(_frame(), refine="memory", iterations=2)
        assert plan(est.files, "device")["refine"] == ("onnxruntime", folder / "refine.onnx")
    assert device.opened == ["keypoints.dev"]
    warnings = [r.getMessage() for r in caplog.records if "ONNX Runtime CPU" in r.getMessage()]
    assert len(warnings) == 2  # once for refine.onnx, once for memory.onnx
    assert "refine.onnx runs on ONNX Runtime CPU, not on device" in warnings[0]
    assert "refine_dev" in warnings[0] and "memory_dev" in warnings[1]


def test_onnx_runtime_keypoints_never_warn(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="ppl_edge.runtime")
    with Estimator(SHIPPED, backend="onnxruntime", refine="image", iterations=1, threads=1) as est:
        est(_frame())
    assert "ONNX Runtime CPU" not in caplog.text
    files = resolve_model(SHIPPED)
    assert plan(files, "tensorrt") == {
        "refine": ("onnxruntime", SHIPPED / "refine.onnx"),
        "memory": ("onnxruntime", SHIPPED / "memory.onnx"),
    }


def test_device_backends_declare_the_exporters_keys():
    assert backend_class("tensorrt").aux_artifact_keys == {
        "refine": ("refine_engine",),
        "memory": ("memory_engine",),
    }
    assert backend_class("coreml").aux_artifact_keys["memory"] == ("memory_coreml",)
    engine_folder = pytest.importorskip("ppl_edge.convert.engine_folder")
    built = set(engine_folder.ENGINE_KEYS)
    for keys in backend_class("tensorrt").aux_artifact_keys.values():
        assert set(keys) <= built
