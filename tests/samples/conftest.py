"""Fixtures of the sample smoke tests: a short synthetic video (the tiny random-weight export comes
from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest


@pytest.fixture(scope="session")
def sample_video(tmp_path_factory) -> Path:
    """40 frames of a rendered humanoid, 96 x 96, 25 fps."""
    from ppl_edge.synth.render import render_clip

    frames = render_clip("humanoid", 40, 96, 5)[0]
    path = tmp_path_factory.mktemp("samples") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 96))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path
