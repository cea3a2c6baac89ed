"""``--verify`` for TensorRT engines (convert/engine_verify.py): the comparison against ONNX
Runtime (pure NumPy) with its bounds, the one-line skip without a GPU, and the whole check over an
export folder whose engines a stand-in runner executes (a real engine needs a GPU)."""

from __future__ import annotations

import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from ppl_edge.convert import engine_cache as cache
from ppl_edge.convert import engine_verify as ev
from ppl_edge.convert import tensorrt_build as tb
from ppl_edge.convert.config import EngineConfig
from ppl_edge.convert.engine_cache import GpuInfo
from ppl_edge.convert.engine_folder import build_folder
from ppl_edge.convert.verify import ort_session
from ppl_edge.errors import PplEdgeError

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "ppl-small-humanoid"


def outputs(seed: int = 0, images: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "keypoints": rng.uniform(-1, 1, (images, 16, 2)).astype(np.float32),
        "keypoints_refined": rng.uniform(-1, 1, (images, 16, 2)).astype(np.float32),
        "prototype_ids": rng.integers(0, 16, (images, 34)).astype(np.int32),
        "prototype_distances": rng.uniform(0, 100, (images, 34)).astype(np.float32),
        "confidence": rng.uniform(0, 1, (images, 16)).astype(np.float32),
    }


def test_identical_outputs_pass():
    ref = outputs()
    check = ev.compare_outputs("e", ref, {k: v.copy() for k, v in ref.items()}, "fp32")
    assert check.passed and check.metrics["max_keypoint_error"] == 0.0
    assert check.metrics["id_agreement"] == 1.0 and check.metrics["bound"] == 1e-3


@pytest.mark.parametrize(("precision", "passed"), [("fp32", False), ("fp16", True)])
def test_keypoint_bound_follows_the_precision(precision, passed):
    ref = outputs()
    got = {k: v.copy() for k, v in ref.items()}
    got["keypoints"][3, 2, 0] += 5e-3
    check = ev.compare_outputs("e", ref, got, precision)
    assert check.passed is passed
    assert check.metrics["max_keypoint_error"] == pytest.approx(5e-3, rel=1e-3)


def test_ids_below_99_percent_fail_and_refined_counts_only_where_ids_agree():
    ref = outputs(images=100)
    got = {k: v.copy() for k, v in ref.items()}
    got["prototype_ids"][0, 0] += 1  # 1 of 3,400 ids: 99.97 %
    got["keypoints_refined"][0] += 0.5  # another prototype: another pose, not an error
    check = ev.compare_outputs("e", ref, got, "fp16")
    assert check.passed and check.metrics["max_refined_error"] == 0.0
    got["prototype_ids"][1:40, 0] += 1  # 40 of 3,400 differ: 98.8 %
    check = ev.compare_outputs("e", ref, got, "fp16")
    assert not check.passed and check.metrics["id_agreement"] == pytest.approx(1 - 40 / 3400)
    assert check.line().endswith("FAILED")


def test_missing_or_reshaped_output_is_an_error():
    ref = outputs()
    with pytest.raises(PplEdgeError, match="no output 'confidence'"):
        ev.compare_outputs("e", ref, {k: v for k, v in ref.items() if k != "confidence"}, "fp16")
    with pytest.raises(PplEdgeError, match=r"'keypoints' has shape \(20, 32\)"):
        ev.compare_outputs("e", ref, {**ref, "keypoints": ref["keypoints"].reshape(20, 32)}, "fp16")


def test_without_gpu_one_line_skip(monkeypatch, tmp_path):
    def no_gpu(device=0):
        raise PplEdgeError(cache.NO_GPU_MESSAGE.format("libcuda.so.1"))

    monkeypatch.setattr(cache, "probe_gpu", no_gpu)
    lines = []
    assert ev.verify_engines(tmp_path, runner=None, echo=lines.append) == []
    assert lines == ["engine check skipped: " + cache.NO_GPU_MESSAGE.format("libcuda.so.1")]


def test_folder_check_with_a_stand_in_runner(monkeypatch, tmp_path):
    """Engines built by a fake builder, run by ONNX Runtime on their graphs plus FP16-like noise."""
    folder = tmp_path / "small"
    shutil.copytree(SHIPPED, folder)
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(cache, "probe_gpu", lambda device=0: GpuInfo("Orin (fake)", (8, 7), 0))
    monkeypatch.setattr(tb, "build_serialized", lambda *a, **k: b"engine")
    settings = EngineConfig(precision="fp16", nn="native", max_batch=8, cache_root=tmp_path / "c")
    build_folder(folder, settings)
    seen = []

    def runner(engine: Path, batches: list[dict]) -> list[dict]:
        graph = engine.name.split(".")[0] + ".onnx"  # keypoints.fp16.engine -> keypoints.onnx
        session = ort_session(folder / graph, threads=1)
        seen.append((engine.name, [len(next(iter(b.values()))) for b in batches]))
        names = [o.name for o in session.get_outputs()]
        results = [dict(zip(names, session.run(None, feeds))) for feeds in batches]
        for result in results:
            for key in ("keypoints", "reconstruction"):
                if key in result:
                    result[key] = result[key] + np.float32(2e-3)
        return results

    lines = []
    checks = ev.verify_engines(folder, runner, count=20, echo=lines.append)
    assert [c.name for c in checks] == [
        "keypoints.fp16.engine vs onnxruntime",
        "refine.fp16.engine vs onnxruntime",
        "memory.fp16.engine vs onnxruntime",
    ]
    assert all(c.passed for c in checks), lines
    assert checks[0].metrics["max_keypoint_error"] == pytest.approx(2e-3, rel=1e-2)
    assert seen[0] == ("keypoints.fp16.engine", [8, 8, 4])  # chunks of the engine's max batch
    assert len(lines) == 3 and all(line.endswith("OK") for line in lines)
