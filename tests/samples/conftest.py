"""Fixtures of the sample smoke tests: the runtime tests' tiny random-weight export (shared, with
its on-disk cache) and a short synthetic video."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import pytest


def _runtime_fixtures():
    """tests/runtime/conftest.py as a module, so its export fixtures (and cache) are reused here."""
    path = Path(__file__).resolve().parents[1] / "runtime" / "conftest.py"
    spec = importlib.util.spec_from_file_location("ppl_edge_tests_runtime_fixtures", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_runtime = _runtime_fixtures()
tiny_model = _runtime.tiny_model
tiny_export = _runtime.tiny_export


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory) -> Path:
    """40 frames of a rendered humanoid, 96 x 96, 25 fps."""
    from ppl_edge.train.data.synthetic import render_clip

    frames = render_clip("humanoid", 40, 96, 5)[0]
    path = tmp_path_factory.mktemp("samples") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 96))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
