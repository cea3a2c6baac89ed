"""Fixtures of the runtime tests: a tiny random-weight PPL and its ONNX export (once per session).

The tests may use torch to build fixtures and references; the runtime under test never does.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _export_key(torch) -> str:
    """Changes whenever the model, the exporter or the data used for the manifest change."""
    digest = hashlib.sha256(torch.__version__.encode())
    sources = [*ROOT.glob("ppl_edge/model/*.py"), *ROOT.glob("convert/*.py"),
               *ROOT.glob("train/data/*.py"), ROOT / "ppl_edge" / "skeleton.py"]
    for path in sorted(sources):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def tiny_model():
    """A seeded random PoseModel of the ``tiny`` preset (32 px, N = 16, M = 8), in eval mode."""
    torch = pytest.importorskip("torch")
    from ppl_edge.model.config import preset
    from ppl_edge.model.ppl import PoseModel

    torch.manual_seed(0)
    return PoseModel(preset("tiny")).eval()


@pytest.fixture(scope="session")
def tiny_export(tiny_model, tmp_path_factory, request) -> Path:
    """Export folder of ``tiny_model``: keypoints.onnx, refine.onnx, manifest.json.

    The export (about 10 s) is kept in pytest's cache, keyed by the model / exporter / data
    sources, and copied into a fresh temporary folder for each session.
    """
    pytest.importorskip("onnxruntime")
    import torch

    from ppl_edge.convert import export_onnx

    cache = request.config.cache.mkdir("ppl-edge-tiny-export") / _export_key(torch)
    if not (cache / "manifest.json").is_file():
        staging = tmp_path_factory.mktemp("staging") / "tiny"
        export_onnx(tiny_model, staging, flavour="portable")
        for stale in cache.parent.iterdir():  # exports of older sources
            shutil.rmtree(stale, ignore_errors=True)
        shutil.copytree(staging, cache.with_suffix(".tmp"), dirs_exist_ok=True)
        cache.with_suffix(".tmp").rename(cache)
    out = tmp_path_factory.mktemp("export") / "tiny"
    shutil.copytree(cache, out)
    return out


@pytest.fixture(scope="session")
def tiny_export_memory(tiny_model, tiny_export, tmp_path_factory) -> Path:
    """``tiny_export`` plus ``memory.onnx`` (keypoints -> Mem(keypoints)), listed in the manifest.

    The memory graph lets memory-mode refinement run more than one iteration without torch.
    """
    import torch
    from torch import nn

    from ppl_edge.runtime.manifest import sha256_file

    class MemoryGraph(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.memory = model.memory

        def forward(self, keypoints):
            z_q, ids, dist = self.memory.quantize(self.memory.encode(keypoints))
            return self.memory.decode(z_q), ids.to(torch.int32), dist

    out = tmp_path_factory.mktemp("export") / "tiny_memory"
    shutil.copytree(tiny_export, out)
    n = tiny_model.cfg.num_keypoints
    # The legacy exporter: 0.3 s against several seconds for dynamo, for a graph this small.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            MemoryGraph(tiny_model).eval(), (torch.zeros(2, n, 2),), str(out / "memory.onnx"),
            dynamo=False, input_names=["keypoints"],
            output_names=["keypoints_refined", "prototype_ids", "prototype_distances"],
            dynamic_axes={"keypoints": {0: "B"}}, opset_version=18)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["artifacts"]["memory"] = {"file": "memory.onnx",
                                       "sha256": sha256_file(out / "memory.onnx")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return out
