"""Sinks: JSONL lines are valid JSON, videos are readable after close, temporary names are
cleaned."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.sinks import JsonlSink, VideoSink, WindowSink, to_jsonable


def test_to_jsonable_converts_numpy_and_non_finite():
    out = to_jsonable(
        {
            "a": np.arange(3, dtype=np.int32),
            "b": np.float32(1.5),
            3: (np.nan, 1.0),
            "c": [np.inf, {"d": np.bool_(True)}],
        }
    )
    assert out == {"a": [0, 1, 2], "b": 1.5, "3": [None, 1.0], "c": [None, {"d": True}]}
    json.dumps(out, allow_nan=False)


def test_jsonl_every_line_is_a_json_object(tmp_path):
    path = tmp_path / "sub" / "out.jsonl"
    with JsonlSink(path) as sink:
        for i in range(5):
            sink.write({"frame": i, "kp": np.random.rand(4, 2).astype(np.float32), "x": np.nan})
        assert sink.lines == 5
        # readable while still open: lines are flushed as they are written
        assert len(path.read_text().splitlines()) == 5
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(5))
    assert records[0]["x"] is None and len(records[0]["kp"]) == 4
    with pytest.raises(PplEdgeError, match="closed"):
        sink.write({})


def test_jsonl_stays_valid_when_the_writer_is_killed(tmp_path):
    path = tmp_path / "killed.jsonl"
    code = textwrap.dedent(f"""
        import os, numpy as np
        from ppl_edge.runtime.sinks import JsonlSink
        sink = JsonlSink({str(path)!r})
        for i in range(200):
            sink.write({{"frame": i, "data": np.zeros((50, 2)).tolist()}})
        os.kill(os.getpid(), 9)
    """)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, check=False
    )
    assert proc.returncode == -9
    lines = path.read_text().splitlines()
    assert len(lines) == 200 and all(json.loads(line)["frame"] == i for i, line in enumerate(lines))


def test_video_is_written_under_temp_name_and_renamed_on_close(tmp_path):
    path = tmp_path / "out.mp4"
    sink = VideoSink(path, fps=12)
    for i in range(6):
        frame = np.full((40, 56, 3), i * 40, np.uint8)
        if i == 5:
            frame = np.zeros((80, 112, 3), np.uint8)  # another size: resized to the first
        sink.write(frame)
    assert sink.tmp_path.exists() and not path.exists()
    sink.close()
    sink.close()
    assert path.exists() and not sink.tmp_path.exists()
    assert sink.codec in ("mp4v", "avc1") and sink.frames == 6
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 6 and cap.get(cv2.CAP_PROP_FRAME_WIDTH) == 56
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(12)
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]


def test_video_with_no_frames_leaves_nothing_and_bad_suffix_fails(tmp_path):
    VideoSink(tmp_path / "empty.mp4").close()
    assert os.listdir(tmp_path) == []
    with pytest.raises(PplEdgeError, match="video output must end in"):
        VideoSink(tmp_path / "out.gif")


def test_avi_container(tmp_path):
    with VideoSink(tmp_path / "out.avi", fps=5) as sink:
        for _ in range(3):
            sink.write(np.zeros((32, 32, 3), np.uint8))
    assert cv2.VideoCapture(str(tmp_path / "out.avi")).read()[0]


def test_window_on_headless_opencv_is_a_clear_error():
    if "GUI:                           NONE" not in cv2.getBuildInformation():
        pytest.skip("this OpenCV has GUI support; the headless error path cannot be shown")
    with pytest.raises(PplEdgeError, match="--headless"):
        WindowSink("test")
