"""Fixtures shared by the test folders: one torch thread, and a tiny random-weight PPL with its ONNX
export (built once per session, kept in pytest's cache).

Nothing here imports torch at module level: the runtime tests (which check in a subprocess that the
runtime never imports torch) and the torch-free test files load this file too. The fixtures may use
torch to build models and references; the runtime under test never does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def bench_script():
    """A loader of the scripts in bench/ (a folder of scripts, not a package): name -> module."""

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op torch thread for a test module: bitwise-reproducible runs, and fair to a shared
    machine. Use as ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _export_key(torch) -> str:
    """Changes whenever the model, the exporter or the data used for the manifest change."""
    digest = hashlib.sha256(torch.__version__.encode())
    sources = [
        *ROOT.glob("ppl_edge/*.py"),
        *ROOT.glob("ppl_edge/model/*.py"),
        *ROOT.glob("convert/*.py"),
        *ROOT.glob("train/data/*.py"),
    ]
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
def tiny_export_memory(tiny_model, tmp_path_factory, request) -> Path:
    """The full ``export_onnx`` folder of ``tiny_model``: keypoints.onnx, refine.onnx, memory.onnx
    and manifest.json (portable flavour).

    The export (about 15 s) is kept in pytest's cache, keyed by the model / exporter / data
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
    out = tmp_path_factory.mktemp("export") / "tiny_memory"
    shutil.copytree(cache, out)
    return out


@pytest.fixture(scope="session")
def tiny_export(tiny_export_memory, tmp_path_factory) -> Path:
    """``tiny_export_memory`` without memory.onnx: keypoints.onnx, refine.onnx, manifest.json.

    An export whose manifest lists no memory graph, as the runtime must also accept: memory-mode
    refinement then stops after the snap the keypoint graph already gives.
    """
    from ppl_edge.convert.manifest import read_manifest, write_manifest

    out = tmp_path_factory.mktemp("export") / "tiny"
    shutil.copytree(tiny_export_memory, out)
    manifest = read_manifest(out)
    (out / manifest["artifacts"].pop("memory")["file"]).unlink()
    write_manifest(out / "manifest.json", manifest)
    return out
