"""Fixtures of the sample smoke tests: a tiny random-weight model exported once per session, and a
short synthetic video."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest


@pytest.fixture(scope="session")
def sample_model(tmp_path_factory) -> Path:
    """Export folder of a seeded random ``tiny`` PoseModel (keypoints.onnx, refine.onnx)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from ppl_edge.convert import export_onnx
    from ppl_edge.model.config import preset
    from ppl_edge.model.ppl import PoseModel

    torch.manual_seed(0)
    model = PoseModel(preset("tiny")).eval()
    return export_onnx(model, tmp_path_factory.mktemp("samples") / "tiny").parent


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
