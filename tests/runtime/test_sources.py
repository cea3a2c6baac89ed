"""Frame sources: files, folders, globs, failing cameras, flaky streams, latest-frame capture."""

from __future__ import annotations

import http.server
import threading
import time

import cv2
import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.sources import (
    ArraySource,
    CaptureSource,
    ImageSequenceSource,
    csi_pipeline,
    open_source,
    sanitize_frame,
)


def _frame(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, : (i * 7) % w] = 200  # a bar whose width encodes the index
    return img


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for i in range(12):
        writer.write(_frame(i))
    writer.release()
    return path


class FakeCapture:
    """A cv2.VideoCapture stand-in: ``good`` frames, then failing reads; ``delay`` per read."""

    def __init__(self, good: int, delay: float = 0.0, opened: bool = True):
        self.good, self.delay, self.opened, self.reads, self.released = (
            good,
            delay,
            opened,
            0,
            False,
        )

    def isOpened(self):
        return self.opened

    def read(self):
        if self.delay:
            time.sleep(self.delay)
        if not self.opened or self.reads >= self.good:
            return False, None
        self.reads += 1
        return True, _frame(self.reads)

    def release(self):
        self.released = True


def test_video_file_reads_every_frame_in_order(video):
    with open_source(str(video)) as src:
        frames = list(src)
    assert not src.is_live and src.fps == pytest.approx(25.0)
    assert [f.index for f in frames] == list(range(12))
    assert frames[0].image.shape == (48, 64, 3) and frames[0].image.dtype == np.uint8
    assert frames[3].position_ms == pytest.approx(3 * 40.0, abs=1.0)
    assert src.stats.dropped == 0 and src.stats.delivered == 12
    assert frames[0].capture_time <= frames[-1].capture_time


def test_file_uri_and_realtime_paced_video(video):
    t0 = time.perf_counter()
    with open_source(f"file://{video}", realtime=True) as src:
        frames = list(src)
    elapsed = time.perf_counter() - t0
    assert len(frames) + src.stats.dropped == 12
    assert elapsed >= 11 / 25 * 0.8  # paced at the file's 25 fps, not as fast as possible


def test_folder_and_glob_sorted_with_bad_file_as_none(tmp_path):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), _frame(i + 1))
    (tmp_path / "f3.png").write_bytes(b"not a png")
    (tmp_path / "notes.txt").write_text("ignored")
    frames = list(open_source(str(tmp_path)))
    assert len(frames) == 4 and frames[3].image is None
    assert [int((f.image[0] > 0).sum() // 3) for f in frames[:3]] == [7, 14, 21]
    globbed = list(open_source(str(tmp_path / "f[01].png")))
    assert len(globbed) == 2
    single = list(open_source(str(tmp_path / "f2.png")))
    assert len(single) == 1 and single[0].image.shape == (48, 64, 3)


def test_missing_sources_are_clear_errors(tmp_path):
    with pytest.raises(PplEdgeError, match="source not found"):
        open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(PplEdgeError, match="matches no image"):
        open_source(str(tmp_path / "*.png"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(PplEdgeError, match="holds no images"):
        open_source(str(tmp_path / "empty"))
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(PplEdgeError, match="could not open .*broken.mp4"):
        open_source(str(bad))


def test_camera_that_fails_to_open_names_index_and_what_to_check():
    with pytest.raises(PplEdgeError, match=r"could not open camera 97: check that camera 97"):
        open_source(97, retries=0)
    with pytest.raises(PplEdgeError, match="camera 96"):
        open_source("96", retries=0)


def test_gstreamer_without_support_or_bad_csi_is_a_clear_error():
    pipeline = csi_pipeline(1, 640, 480, 30)
    assert pipeline.startswith("nvarguscamerasrc sensor-id=1") and "appsink" in pipeline
    if "GStreamer:                   NO" in cv2.getBuildInformation():
        with pytest.raises(PplEdgeError, match="GStreamer"):
            open_source("csi://0")
    with pytest.raises(PplEdgeError):
        open_source("videotestsrc ! nosuchelement ! appsink")


def test_flaky_stream_reconnects_with_backoff_then_ends_cleanly():
    caps = [FakeCapture(3), FakeCapture(2), FakeCapture(0, opened=False), FakeCapture(0)]
    opened = iter(caps)
    src = CaptureSource(lambda: next(opened), "rtsp://fake", live=True, retries=3, backoff_s=0.01)
    frames = []
    for frame in src:
        frames.append(frame)
        time.sleep(0.02)  # a consumer slower than nothing, so the reader runs ahead
    src.close()
    # 3 frames, a failed read, reopen (ok, attempt 1) -> 2 frames, a failed read, reopen fails
    # (attempt 2), reopen works but its read fails (attempt 3 of 3: the budget is per stream, not
    # per read) -> the stream ends.
    assert src.stats.read == 5
    assert src.stats.reconnects == 2 and src.stats.failed_reads == 4
    assert len(frames) + src.stats.dropped == 5
    assert caps[0].released and caps[1].released
    assert [f.index for f in frames] == sorted({f.index for f in frames})


def test_stream_that_never_recovers_ends_after_retries():
    calls = []

    def opener():
        calls.append(1)
        return FakeCapture(1 if len(calls) == 1 else 0)

    t0 = time.perf_counter()
    src = CaptureSource(opener, "camera 0", live=True, retries=3, backoff_s=0.01)
    assert len(list(src)) == 1
    src.close()
    assert len(calls) == 4  # the first open, then one reopen per retry
    assert time.perf_counter() - t0 < 2.0  # back-off 0.01 + 0.02 + 0.04 s


def test_latest_frame_capture_drops_frames_when_consumer_is_slow():
    cam = FakeCapture(10_000, delay=0.002)
    src = CaptureSource(lambda: cam, "camera 0", live=True)
    got = []
    for frame in src:
        lag = time.perf_counter() - frame.capture_mono
        got.append((frame.index, lag))
        time.sleep(0.03)  # inference 15x slower than the camera
        if len(got) == 6:
            break
    src.close()
    assert src.stats.dropped > 10
    assert got[-1][0] - got[0][0] > 10  # indices jump over dropped frames
    # A queue would add ~28 ms of lag per frame (140 ms by the 6th); latest-frame capture keeps
    # it near one camera period, whatever the consumer's speed.
    assert got[-1][1] < 0.1
    assert cam.released


def test_stop_from_another_thread_ends_a_blocked_live_iteration():
    cam = FakeCapture(10**9, delay=0.5)  # a stream that stalls
    src = CaptureSource(lambda: cam, "rtsp://slow", live=True)
    threading.Timer(0.1, src.stop).start()
    t0 = time.perf_counter()
    frames = list(src)
    assert len(frames) <= 1
    assert time.perf_counter() - t0 < 1.0
    src.close()


def test_array_source_and_image_sequence_stop():
    src = ArraySource(np.zeros((5, 8, 8, 3), np.uint8), fps=10)
    out = []
    for f in src:
        out.append(f)
        src.stop()
    assert len(out) == 1 and out[0].position_ms == 0.0
    assert len(list(ImageSequenceSource([]))) == 0


@pytest.mark.parametrize(
    ("image", "shape", "reason"),
    [
        (None, None, "None"),
        (np.zeros((0, 0, 3), np.uint8), None, "shape"),
        (np.zeros((10, 12), np.uint8), (10, 12, 3), ""),
        (np.zeros((10, 12, 1), np.uint8), (10, 12, 3), ""),
        (np.zeros((10, 12, 4), np.uint8), (10, 12, 3), ""),
        (np.full((10, 12, 3), 65535, np.uint16), (10, 12, 3), ""),
        (np.full((10, 12, 3), np.nan, np.float32), None, "NaN"),
        (np.full((10, 12, 3), 0.5, np.float64), (10, 12, 3), ""),
        (np.zeros((10, 12, 2), np.uint8), None, "2 channels"),
        (np.zeros((10, 12, 3), np.complex64), None, "dtype"),
        ("frame", None, "str"),
        (np.zeros((9000, 300, 3), np.uint8), (4096, 137, 3), ""),
        (
            np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), (20000, 20000, 3), (0, 0, 0)),
            None,
            "too large",
        ),
    ],
)
def test_sanitize_frame(image, shape, reason):
    out, why = sanitize_frame(image)
    assert reason in why and (why == "") == (reason == "")
    if shape is None:
        assert out is None
    else:
        assert out.shape == shape and out.dtype == np.uint8 and out.flags.c_contiguous


def test_sanitize_frame_values():
    assert sanitize_frame(np.full((4, 4, 3), 65535, np.uint16))[0].max() == 255
    assert sanitize_frame(np.full((4, 4, 3), 0.5, np.float32))[0].max() in (127, 128)
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 2] = 9
    assert sanitize_frame(bgra)[0][0, 0].tolist() == [0, 0, 9]


class _DroppingHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload``; the first response stops halfway (a dropped connection), later
    ones send it all, or answer 503 when ``server.dead``."""

    def do_GET(self):  # http.server's name
        srv = self.server
        srv.requests += 1
        if srv.dead and srv.requests > 1:
            self.send_error(503)
            return
        self.send_response(200)
        self.send_header("Content-Type", "video/x-msvideo")
        self.send_header("Content-Length", str(len(srv.payload)))
        self.end_headers()
        self.wfile.write(srv.payload[: len(srv.payload) // 2 if srv.requests == 1 else None])

    def log_message(self, *args):
        pass


def dropping_server(payload: bytes, dead: bool) -> http.server.ThreadingHTTPServer:
    """A running local server for ``payload`` (see _DroppingHandler); ``.url`` is its address."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DroppingHandler)
    server.payload, server.dead, server.requests = payload, dead, 0
    server.url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def avi_bytes(tmp_path) -> bytes:
    writer = cv2.VideoWriter(
        str(tmp_path / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25, (64, 48)
    )
    for i in range(40):
        writer.write(_frame(i))
    writer.release()
    return (tmp_path / "clip.avi").read_bytes()


@pytest.mark.parametrize("dead", [False, True])
def test_http_stream_that_drops_is_reconnected_or_ends(avi_bytes, dead):
    """A real network stream through OpenCV's FFmpeg: the connection drops halfway through the
    file; the source reconnects and reads the file to its end, resuming after the last frame it
    delivered (no frame twice, no reconnection at a finite stream's end), or, when the server then
    refuses, gives up after its retries. A file over HTTP is read like a file: in order."""
    server = dropping_server(avi_bytes, dead)
    src = open_source(server.url, retries=2, backoff_s=0.05)
    t0 = time.perf_counter()
    frames = []
    for frame in src:
        frames.append(frame)
        time.sleep(0.001)
    src.close()
    server.shutdown()
    server.server_close()
    assert not src.is_live and 5 < src.stats.read
    assert all(f.image.shape == (48, 64, 3) for f in frames)
    positions = [f.position_ms for f in frames]
    assert positions == sorted(set(positions))  # no frame twice
    assert [f.index for f in frames] == list(range(len(frames)))
    if dead:  # the first request, then one per retry, all refused
        assert src.stats.read < 40 and src.stats.reconnects == 0 and server.requests >= 3
    else:
        assert src.stats.reconnects >= 1 and server.requests >= 2
        # half the file, then the rest: the reopened stream seeks past the frames delivered, or
        # reads them again and skips them
        assert src.stats.read - src.stats.replayed == 40 == len(frames)
        assert positions[-1] == pytest.approx(39 * 40.0, abs=1.0)
    assert time.perf_counter() - t0 < 5.0
