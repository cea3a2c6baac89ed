"""One Euro smoothing in the live loop runs on the frames' own time: a video file played through
``run_loop`` much faster than real time (a 1 fps recording, processed in well under its length)
gives exactly the poses of the estimator fed the file's media times, whatever the processing
speed, and not those of processing-time steps."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppl_edge.runtime import Estimator
from ppl_edge.runtime.loop import run_loop
from ppl_edge.runtime.sources import open_source

pytest.importorskip("onnxruntime")
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "ppl-small-humanoid"
FPS, COUNT = 1.0, 12  # 12 s of media time


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    from ppl_edge.synth.render import render_clip

    frames = render_clip("humanoid", COUNT, 96, 3)[0]
    path = tmp_path_factory.mktemp("media_time") / "slow.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (96, 96))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def _played(est: Estimator, video: Path, delay: float = 0.0) -> tuple[np.ndarray, float]:
    """Keypoints of every frame through the live loop, and the wall time it took."""
    poses = []

    def collect(frame, results):
        poses.append(results[0].keypoints.copy())
        time.sleep(delay)

    est.reset()
    start = time.perf_counter()
    with open_source(str(video)) as source:
        run_loop(est, source, callback=collect, handle_signals=False, overlay=False)
    return np.stack(poses), time.perf_counter() - start


def test_a_file_played_faster_than_real_time_is_smoothed_on_its_media_time(video):
    with Estimator(SHIPPED, backend="onnxruntime", threads=1, smooth=True, verify=False) as est:
        fast, seconds = _played(est, video)
        slower, _ = _played(est, video, delay=0.02)
        assert len(fast) == COUNT and seconds < COUNT / FPS  # faster than real time
        capture = cv2.VideoCapture(str(video))
        frames = [capture.read()[1] for _ in range(COUNT)]
        capture.release()
        est.reset()
        media = np.stack([est(f, timestamp=i / FPS)[0].keypoints for i, f in enumerate(frames)])
        est.reset()
        processing = np.stack([est(f)[0].keypoints for f in frames])  # time.monotonic() steps
    np.testing.assert_allclose(fast, media, atol=1e-4)
    np.testing.assert_allclose(slower, fast, atol=1e-4)  # the processing speed does not matter
    assert np.abs(processing - media).max() > 0.5  # processing-time steps would smooth far more
