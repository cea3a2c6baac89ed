"""The live loop and ``ppl-edge live``: JSONL / video outputs, refinement through the CLI, clean
ends on signals and truncated sources, bad-frame fuzz, latest-frame capture with a fake camera."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ppl_edge.cli import main
from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.live import LiveOptions, default_model_path, run_live, run_loop
from ppl_edge.runtime.sinks import JsonlSink, VideoSink
from ppl_edge.runtime.sources import ArraySource, CaptureSource

CLI = "import sys; from ppl_edge.cli import main; sys.exit(main())"


def _write_video(path: Path, frames: np.ndarray, fps: float = 25.0, codec: str = "mp4v") -> Path:
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*codec), fps, (frames.shape[2], frames.shape[1])
    )
    for f in frames:
        writer.write(f)
    writer.release()
    return path


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    from ppl_edge.synth.render import render_clip

    return render_clip("humanoid", 24, 96, 3)[0]  # (24, 96, 96, 3) uint8 BGR


@pytest.fixture(scope="module")
def video(clip, tmp_path_factory) -> Path:
    return _write_video(tmp_path_factory.mktemp("live") / "clip.mp4", clip)


def _frames_in(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    count = 0
    while cap.read()[0]:
        count += 1
    return count


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_cli_live_on_video_with_image_refinement(tiny_export, video, tmp_path, capsys):
    jsonl, out = tmp_path / "out.jsonl", tmp_path / "out.mp4"
    code = main(
        [
            "live",
            "--model",
            str(tiny_export),
            "--source",
            str(video),
            "--headless",
            "--jsonl",
            str(jsonl),
            "--output",
            str(out),
            "--refine",
            "image",
            "--iterations",
            "3",
            "--threads",
            "1",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "24 frames" in printed and "inference" in printed and "OK |" in printed
    records = _records(jsonl)
    assert [r["frame"] for r in records] == list(range(24))
    first = records[0]
    assert first["width"] == 96 and first["position_ms"] == 0.0
    assert first["capture_time"] <= first["wall_time"] and first["latency_ms"] > 0
    subject = first["subjects"][0]
    assert np.asarray(subject["keypoints"]).shape == (16, 2)
    assert len(subject["iterations"]) == 4  # iteration 0 and 3 refinement iterations
    assert 0.0 < subject["plausibility"] <= 1.0 and len(subject["edges"]) >= 15
    assert {"capture", "preprocess", "inference", "refine", "estimate", "draw"} <= set(
        first["timings_ms"]
    )
    assert first["timings_ms"]["refine"] > 0
    assert _frames_in(out) == 24
    assert sorted(os.listdir(tmp_path)) == ["out.jsonl", "out.mp4"]


def test_live_options_and_camera_errors(tiny_export, capsys):
    with pytest.raises(PplEdgeError, match="refine"):
        LiveOptions(refine="bogus")
    with pytest.raises(PplEdgeError, match="max-frames"):
        LiveOptions(max_frames=0)
    assert (
        main(
            ["live", "--model", str(tiny_export), "--camera", "97", "--headless", "--retries", "0"]
        )
        == 1
    )
    assert "could not open camera 97" in capsys.readouterr().err
    assert main(["live", "--model", str(tiny_export), "--crops", "roi", "--headless"]) == 1
    assert "--roi" in capsys.readouterr().err


def test_window_needs_gui_or_headless(tiny_export, video, capsys):
    if "GUI:                           NONE" not in cv2.getBuildInformation():
        pytest.skip("this OpenCV has a GUI; the missing-GUI message cannot be shown")
    assert main(["live", "--model", str(tiny_export), "--source", str(video)]) == 1
    assert "--headless" in capsys.readouterr().err


def test_default_model_path_names_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("PPL_EDGE_MODEL", str(tmp_path / "missing"))
    monkeypatch.chdir(tmp_path)
    if (Path(__file__).resolve().parents[2] / "models" / "ppl-small-humanoid").exists():
        assert default_model_path().name == "ppl-small-humanoid"
    else:
        with pytest.raises(PplEdgeError, match="--model"):
            default_model_path()
    monkeypatch.setenv("PPL_EDGE_MODEL", str(tmp_path))
    assert default_model_path() == tmp_path


def _run_cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_stream_ends_cleanly_with_valid_outputs(tiny_export, clip, tmp_path, sig):
    long_clip = _write_video(tmp_path / "long.mp4", np.concatenate([clip] * 10))  # 240 frames
    jsonl, out = tmp_path / "o.jsonl", tmp_path / "o.mp4"
    proc = _run_cli(
        [
            "live",
            "--model",
            str(tiny_export),
            "--source",
            str(long_clip),
            "--realtime",
            "--headless",
            "--jsonl",
            str(jsonl),
            "--output",
            str(out),
            "--threads",
            "1",
        ]
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (
        not jsonl.exists() or len(jsonl.read_bytes().splitlines()) < 5
    ):
        time.sleep(0.05)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert f"stopped by {sig.name}" in stdout
    records = _records(jsonl)
    assert 5 <= len(records) < 240
    assert _frames_in(out) >= len(records) - 1  # repeats fill dropped frames of realtime play
    assert sorted(os.listdir(tmp_path)) == ["long.mp4", "o.jsonl", "o.mp4"]


def test_truncated_source_ends_cleanly(tiny_export, clip, tmp_path, capsys):
    full = _write_video(tmp_path / "full.avi", clip, codec="MJPG")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[: int(full.stat().st_size * 0.6)])
    jsonl = tmp_path / "cut.jsonl"
    assert (
        main(
            [
                "live",
                "--model",
                str(tiny_export),
                "--source",
                str(cut),
                "--headless",
                "--jsonl",
                str(jsonl),
                "--output",
                str(tmp_path / "cut.mp4"),
            ]
        )
        == 0
    )
    records = _records(jsonl)
    assert 5 < len(records) < 24 and "end of source" in capsys.readouterr().out
    assert _frames_in(tmp_path / "cut.mp4") == len(records)


class _DropOnceHandler(http.server.BaseHTTPRequestHandler):
    """Sends half of ``server.payload`` then closes (the stream dies mid-way); then 503s."""

    def do_GET(self):  # http.server's name
        self.server.requests += 1
        if self.server.requests > 1:
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.payload)))
        self.end_headers()
        self.wfile.write(self.server.payload[: len(self.server.payload) // 2])

    def log_message(self, *args):
        pass


def test_network_source_killed_mid_stream_ends_cleanly(tiny_export, clip, tmp_path):
    """An HTTP stream that dies mid-stream and does not come back: the retries fail, the run ends
    cleanly and the video and JSONL are complete."""
    payload = _write_video(
        tmp_path / "stream.avi", np.concatenate([clip] * 2), codec="MJPG"
    ).read_bytes()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DropOnceHandler)
    server.payload, server.requests = payload, 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/stream.avi"
    jsonl, out = tmp_path / "net.jsonl", tmp_path / "net.mp4"
    try:
        summary = run_live(
            LiveOptions(
                model=str(tiny_export),
                source=url,
                headless=True,
                retries=2,
                jsonl=str(jsonl),
                output=str(out),
                threads=1,
            )
        )
    finally:
        server.shutdown()
        server.server_close()
    assert summary.stopped_by == "end of source" and server.requests >= 3
    assert 1 <= summary.frames < 48 and summary.reconnects == 0
    assert len(_records(jsonl)) == summary.frames
    assert _frames_in(out) >= summary.frames


def _fuzz_frames(clip: np.ndarray) -> tuple[list, int]:
    good = clip[0]
    frames = [
        None,
        np.zeros((0, 0, 3), np.uint8),
        cv2.cvtColor(good, cv2.COLOR_BGR2GRAY),
        cv2.cvtColor(good, cv2.COLOR_BGR2BGRA),
        good.astype(np.uint16) * 257,
        np.full(good.shape, np.nan, np.float32),
        good.astype(np.float32) / 255.0,
        cv2.resize(good, (6000, 6000), interpolation=cv2.INTER_NEAREST),
        np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (30000, 30000, 3), (0, 0, 0)),
        np.zeros((96, 96, 2), np.uint8),
        "not a frame",
        np.zeros((1, 1, 3), np.uint8),
        good,
    ]
    return frames, 6  # None, empty, NaN, 30000², 2 channels, a string


def test_bad_frame_fuzz_never_crashes_the_loop(tiny_export, clip, tmp_path):
    from ppl_edge.runtime import Estimator

    frames, bad = _fuzz_frames(clip)
    with (
        Estimator(tiny_export, refine="image", iterations=1, threads=1) as est,
        VideoSink(tmp_path / "f.mp4") as video,
        JsonlSink(tmp_path / "f.jsonl") as jsonl,
    ):
        summary = run_loop(est, ArraySource(frames), video=video, jsonl=jsonl)
    assert summary.frames == len(frames) - bad and summary.bad_frames == bad
    assert sum(summary.bad_reasons.values()) == bad
    assert len(_records(tmp_path / "f.jsonl")) == summary.frames
    assert _frames_in(tmp_path / "f.mp4") == summary.frames


def test_estimator_errors_are_skipped_then_abort_when_persistent(tiny_export, clip):
    from ppl_edge.runtime import Estimator

    # A fixed ROI outside small frames makes the estimator fail on those frames only.
    big = cv2.resize(clip[0], (400, 400))
    frames = [big, clip[0], big, clip[1], big]
    with Estimator(tiny_export, crops="roi", roi=(200, 200, 150, 150), threads=1) as est:
        summary = run_loop(est, ArraySource(frames))
        assert summary.frames == 3 and summary.bad_frames == 2
        assert list(summary.bad_reasons) == ["error PplEdgeError"]
        with pytest.raises(PplEdgeError, match="50 frames in a row failed"):
            run_loop(est, ArraySource([clip[0]] * 60))


def test_fake_camera_latest_frame_loop_and_callback_stop(tiny_export, clip, tmp_path):
    """Runs only against a fake camera here: a capture object delivering 200 frames/s."""

    class FakeCamera:
        def __init__(self):
            self.i = 0

        def isOpened(self):
            return True

        def read(self):
            time.sleep(0.005)
            self.i += 1
            return True, clip[self.i % len(clip)]

        def get(self, prop):
            return 200.0 if prop == cv2.CAP_PROP_FPS else 0.0

        def release(self):
            pass

    seen = []

    def callback(frame, results):
        seen.append((frame.index, len(results)))
        time.sleep(0.02)  # a consumer slower than the camera
        return len(seen) < 8

    source = CaptureSource(FakeCamera, "fake camera", live=True)
    options = LiveOptions(
        model=str(tiny_export),
        headless=True,
        threads=1,
        output=str(tmp_path / "cam.mp4"),
        jsonl=str(tmp_path / "cam.jsonl"),
    )
    summary = run_live(options, source=source, callback=callback)
    assert summary.stopped_by == "callback" and summary.frames == 8
    assert summary.dropped > 5 and seen[-1][0] - seen[0][0] > 5
    # the recording repeats frames over the dropped ones, so it plays in real time
    assert _frames_in(tmp_path / "cam.mp4") > 20
    assert len(_records(tmp_path / "cam.jsonl")) == 8


def test_max_frames_and_summary(tiny_export, video):
    summary = run_live(
        LiveOptions(
            model=str(tiny_export), source=str(video), headless=True, max_frames=5, threads=1
        )
    )
    assert summary.frames == 5 and summary.stopped_by == "max frames"
    data = summary.to_dict()
    assert data["stages_ms"]["inference"]["count"] == 5 and data["fps"] > 0
    json.dumps(data)
    assert "5 frames" in summary.format()


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="utf-8") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024.0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc for RSS")
def test_soak_5000_frames_rss_stays_flat(tiny_export, clip, tmp_path):
    """5,000 frames through the loop with JSONL and video sinks: RSS within 5 % (about 30 s)."""
    from ppl_edge.runtime import Estimator

    samples: list[float] = []

    def measure(frame, results):
        if frame.index % 500 == 499:
            samples.append(_rss_mb())

    frames = np.concatenate([clip] * 209)[:5000]  # 5,000 frames, 96x96
    with (
        Estimator(tiny_export, refine="memory", iterations=1, threads=1) as est,
        VideoSink(tmp_path / "soak.mp4") as video,
        JsonlSink(tmp_path / "soak.jsonl") as js,
    ):
        summary = run_loop(est, ArraySource(frames), video=video, jsonl=js, callback=measure)
    assert summary.frames == 5000 and len(samples) == 10
    print(
        f"soak RSS MB at frames 500..5000: {[round(s, 1) for s in samples]}; {summary.fps:.0f} FPS"
    )
    assert samples[-1] <= samples[0] * 1.05, samples


def test_smoothing_runs_on_the_frames_own_time_not_the_processing_time(tiny_export):
    """A file processed faster than real time: the estimator gets each frame's media time."""
    from ppl_edge.runtime.estimator import Estimator

    seen = []

    class Recording(Estimator):
        def __init__(self):  # no model: the loop only calls it
            pass

        def __call__(self, frame, refine=None, iterations=None, timestamp=None, boxes=None):
            seen.append(timestamp)
            return []

    frames = np.zeros((5, 48, 64, 3), np.uint8)
    run_loop(Recording(), ArraySource(frames, fps=10.0), handle_signals=False)
    assert seen == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    plain = []
    run_loop(
        lambda image: plain.append(image.shape) or [], ArraySource(frames), handle_signals=False
    )
    assert len(plain) == 5  # any callable still works (no timestamp passed)
