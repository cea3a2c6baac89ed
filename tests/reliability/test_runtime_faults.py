"""Hostile inputs and faults around the runtime: dropping network streams, manifests that lie about
their files or their graphs, wrong types and sizes, bad boxes. Each case ends in one line (exit 1)
or correct behaviour, never a traceback or a hang (every stream test is bounded in time), and no
frame reaches a sink twice."""

from __future__ import annotations

import copy
import hashlib
import http.server
import json
import math
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from ppl_edge.cli import main
from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import Manifest, ManifestError
from ppl_edge.preprocess import BadFrameError
from ppl_edge.runtime import Estimator
from ppl_edge.runtime.loop import MAX_CONSECUTIVE_ERRORS, run_loop
from ppl_edge.runtime.sinks import VideoSink
from ppl_edge.runtime.sources import ArraySource

CLI = [sys.executable, "-m", "ppl_edge.cli"]


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    for needle in needles:
        assert needle in line, line
    return line


def _export(tiny_export: Path, dst: Path, edit=None) -> Path:
    """A copy of the tiny export whose manifest ``edit(document)`` changed (written as is: the
    point is a manifest the exporter would never write)."""
    shutil.copytree(tiny_export, dst)
    if edit is not None:
        document = json.loads((dst / "manifest.json").read_text())
        edit(document)
        (dst / "manifest.json").write_text(json.dumps(document))
    return dst


def _frame(i: int, h: int = 48, w: int = 64) -> np.ndarray:
    return np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for i in range(6):
        writer.write(_frame(i))
    writer.release()
    return path


def _live(model: Path, source: str, *extra: str) -> list[str]:
    return ["live", "--model", str(model), "--source", source, "--headless", "--threads", "1",
            *extra]  # fmt: skip


# -- row 3: network streams that drop ------------------------------------------------------------
class _FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload`` with HTTP ranges; ``server.cut(start)`` says how many bytes of the
    response starting at ``start`` go out before the connection is dropped (None: all of it)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self):  # http.server's name
        srv = self.server
        srv.requests += 1
        match = re.match(r"bytes=(\d+)-", self.headers.get("Range", ""))
        start = int(match.group(1)) if match else 0
        body = srv.payload[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", srv.kind)
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header(
                "Content-Range", f"bytes {start}-{len(srv.payload) - 1}/{len(srv.payload)}"
            )
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(body[: srv.cut(start)])
        except OSError:
            pass
        self.close_connection = True

    def log_message(self, *args):
        pass


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    """A live MJPEG camera stream (no length) whose connection drops after 5 frames, every time."""

    def do_GET(self):
        self.server.requests += 1
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in range(5):
            jpeg = cv2.imencode(".jpg", _frame(i))[1].tobytes()
            head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
            try:
                self.wfile.write(head + jpeg + b"\r\n")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.01)

    def log_message(self, *args):
        pass


def _serve(handler, **attrs) -> http.server.ThreadingHTTPServer:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.requests = 0
    for key, value in attrs.items():
        setattr(server, key, value)
    server.url = f"http://127.0.0.1:{server.server_address[1]}/clip"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def mp4_bytes(tmp_path_factory) -> bytes:
    """300 frames of noise (238 kB: large enough that FFmpeg fetches the index with a range
    request instead of reading through the frames)."""
    path = tmp_path_factory.mktemp("mp4") / "long.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (64, 48))
    for i in range(300):
        writer.write(_frame(i))
    writer.release()
    return path.read_bytes()


def _run_stream(
    tiny_export, tmp_path, url: str, retries: int
) -> tuple[subprocess.CompletedProcess, list]:
    jsonl = tmp_path / "out.jsonl"
    cmd = [*CLI, *_live(tiny_export, url, "--jsonl", str(jsonl), "--retries", str(retries))]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()] if jsonl.exists() else []
    return proc, lines


def _assert_each_frame_once(lines: list) -> None:
    indices = [r["frame"] for r in lines]
    positions = [r["position_ms"] for r in lines]
    assert indices == sorted(set(indices)), indices
    assert None not in positions and positions == sorted(set(positions)), positions


def _drop_at_half(payload: bytes, times: int | None):
    """``server.cut``: the first ``times`` (None: every) responses that start in the frame data
    stop at half the file, where the connection drops; the index at the file's end always comes."""
    half, left = len(payload) // 2, [times]

    def cut(start: int) -> int | None:
        if not 0 < start < half or left[0] == 0:
            return None
        left[0] = None if left[0] is None else left[0] - 1
        return half - start

    return cut


def test_an_http_video_file_that_drops_once_is_resumed_not_replayed(
    tiny_export, tmp_path, mp4_bytes
):
    """The connection of the frame data drops halfway once; the source reconnects and reads on
    from the frame after the last one delivered, so the JSONL has every frame exactly once."""
    server = _serve(
        _FlakyHandler, payload=mp4_bytes, kind="video/mp4", cut=_drop_at_half(mp4_bytes, 1)
    )
    try:
        t0 = time.perf_counter()
        proc, lines = _run_stream(tiny_export, tmp_path, server.url, retries=3)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "attempt 1/3" in proc.stderr and "attempt 2/3" not in proc.stderr
    _assert_each_frame_once(lines)
    assert len(lines) == 300  # treated as a file: in order, no drops, nothing twice
    assert lines[-1]["position_ms"] == pytest.approx(299 * 40.0, abs=1.0)
    assert time.perf_counter() - t0 < 60


def test_an_http_video_file_that_keeps_dropping_ends_within_its_budget(
    tiny_export, tmp_path, mp4_bytes
):
    """The connection drops at half the file every time: each reconnection replays frames that
    were delivered, which are skipped, and the total budget ends the stream ("attempt 1/2", "2/2",
    the end; never "attempt 1/2" forever)."""
    server = _serve(
        _FlakyHandler, payload=mp4_bytes, kind="video/mp4", cut=_drop_at_half(mp4_bytes, None)
    )
    try:
        proc, lines = _run_stream(tiny_export, tmp_path, server.url, retries=2)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("attempt 1/2") == 1 and proc.stderr.count("attempt 2/2") == 1
    assert "giving up after 2 reconnection attempts" in proc.stderr
    _assert_each_frame_once(lines)
    assert 0 < len(lines) < 300


def test_a_live_stream_that_keeps_dropping_ends_within_its_budget(tiny_export, tmp_path):
    """A camera stream (no length) that drops after 5 frames on every connection: reading frames
    in between does not reset the budget; 1 + 3 connections, then the run ends."""
    server = _serve(_MjpegHandler)
    try:
        t0 = time.perf_counter()
        proc, lines = _run_stream(tiny_export, tmp_path, server.url + ".mjpg", retries=3)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "giving up after 3 reconnection attempts" in proc.stderr
    assert 4 <= server.requests <= 8 and 0 < len(lines) <= 20
    indices = [r["frame"] for r in lines]
    assert indices == sorted(set(indices))
    assert time.perf_counter() - t0 < 60  # back-off 0.5 + 1 + 2 s


# -- rows 4 and 5: artifacts outside the folder, wrong digests, verification ----------------------
def _outside_path(folder: Path, form: str) -> str:
    """A keypoints.onnx outside the export: "../", absolute, or through a link inside it."""
    outside = folder.parent / "outside.onnx"
    shutil.copy(folder / "keypoints.onnx", outside)
    if form == "dotdot":
        return "../outside.onnx"
    if form == "absolute":
        return str(outside)
    (folder / "linked.onnx").symlink_to(outside)
    return "linked.onnx"


@pytest.mark.parametrize("form", ["dotdot", "absolute", "symlink"])
def test_an_artifact_outside_the_export_folder_is_refused(
    tiny_export, tmp_path, capsys, clip, form
):
    folder = _export(tiny_export, tmp_path / "export")
    outside = _outside_path(folder, form)
    secret = hashlib.sha256((folder / "keypoints.onnx").read_bytes()).hexdigest()
    document = json.loads((folder / "manifest.json").read_text())
    document["artifacts"]["keypoints"] = {"file": outside, "sha256": secret}  # the sha matches
    (folder / "manifest.json").write_text(json.dumps(document))
    (folder / "keypoints.onnx").unlink()
    for verify in (True, False):
        with pytest.raises(ManifestError, match="export folder") as caught:
            Estimator(folder, backend="onnxruntime", verify=verify)
        assert secret not in str(caught.value) and "\n" not in str(caught.value)
    assert main(_live(folder, str(clip))) == 1
    line = _one_line_error(capsys, "export folder")
    assert secret not in line


def _wrong_sha(document: dict) -> None:
    document["artifacts"]["keypoints"]["sha256"] = "0" * 64


def test_a_wrong_sha256_is_refused_by_default_everywhere(tiny_export, tmp_path, capsys, clip):
    folder = _export(tiny_export, tmp_path / "export", _wrong_sha)
    with pytest.raises(ManifestError, match="does not match the sha256"):
        Estimator(folder, backend="onnxruntime")
    verbs = {
        "live": _live(folder, str(clip)),
        "demo": ["demo", "--model", str(folder), "--frames", "2", "--out", str(tmp_path / "demo")],
        "bench": ["bench", "--model", str(folder), "--frames", "2", "--warmup", "0", "--threads",
                  "1", "--size", "64x64"],
    }  # fmt: skip
    for verb, args in verbs.items():
        assert main(args) == 1, verb
        _one_line_error(capsys, "does not match the sha256")
        assert main([*args, "--no-verify"]) == 0, verb  # the explicit opt-out, for speed
        capsys.readouterr()
    with Estimator(folder, backend="onnxruntime", verify=False, threads=1) as est:
        assert len(est(_frame(0))) == 1


def test_an_unlisted_graph_is_not_loaded_without_the_opt_out(tiny_export, tmp_path):
    folder = _export(tiny_export, tmp_path / "export")
    shutil.copy(folder / "keypoints.onnx", folder / "other.onnx")
    with pytest.raises(ManifestError, match="not an artifact of its manifest"):
        Estimator(folder / "other.onnx", backend="onnxruntime")
    with Estimator(folder / "other.onnx", backend="onnxruntime", verify=False, threads=1) as est:
        assert est.backend_name == "onnxruntime"


# -- rows 6 and 7: a manifest that contradicts its graph ------------------------------------------
def _keypoints(n: int):
    def edit(document):
        document["keypoints"].update(count=n, names=[f"k{i}" for i in range(n)])
        skeleton = document["skeleton"]
        kept = [k for k, (i, j) in enumerate(skeleton["edges"]) if j < n]
        skeleton["edges"] = [skeleton["edges"][k] for k in kept]
        skeleton["weights"] = [skeleton["weights"][k] for k in kept]

    return edit


def _input_size(size: int):
    return lambda d: d["input"].update(height=size, width=size)


@pytest.mark.parametrize(
    "edit, needle",
    [
        (_keypoints(20), "output 'keypoints' has shape (?, 16, 2), the manifest says (?, 20, 2)"),
        (_keypoints(10), "keypoints.count 10"),
        (_input_size(128), "input 'image' has shape (?, 3, 32, 32), the manifest says (?, 3, 128"),
        (lambda d: d["memory"].update(banks=3), "memory.banks 3"),
    ],
)
def test_a_manifest_that_contradicts_its_graph_fails_at_open(
    tiny_export, tmp_path, capsys, clip, edit, needle
):
    folder = _export(tiny_export, tmp_path / "export", edit)
    with pytest.raises(ManifestError) as caught:
        Estimator(folder, backend="onnxruntime")
    assert needle in str(caught.value) and "\n" not in str(caught.value)
    video = tmp_path / "out.mp4"
    assert main(_live(folder, str(clip), "--output", str(video))) == 1
    _one_line_error(capsys, needle)
    assert not video.exists()


def test_a_refine_graph_that_contradicts_the_manifest_fails_at_open(tiny_export, tmp_path):
    folder = _export(tiny_export, tmp_path / "export")
    document = json.loads((folder / "manifest.json").read_text())
    document["artifacts"]["refine"] = dict(document["artifacts"]["keypoints"])  # the wrong graph
    (folder / "manifest.json").write_text(json.dumps(document))
    with pytest.raises(ManifestError, match="refine.onnx|keypoints.onnx"):
        Estimator(folder, backend="onnxruntime", refine="image", iterations=1)


@pytest.mark.parametrize("size", [0, -64, 10**12, True, 64.0])
def test_an_input_size_out_of_bounds_is_refused_by_the_manifest(tiny_export, tmp_path, size):
    folder = _export(tiny_export, tmp_path / "export", _input_size(size))
    with pytest.raises(ManifestError, match="input.height") as caught:
        Estimator(folder, backend="onnxruntime")
    assert "\n" not in str(caught.value)


class _BadDrawing:
    """An estimator whose results make drawing fail for the first ``bad`` frames (edges past N)."""

    def __init__(self, est, bad: int):
        self.est, self.bad, self.calls = est, bad, 0

    def __call__(self, image):
        import dataclasses

        self.calls += 1
        results = self.est(image)
        if self.calls > self.bad:
            return results
        return [dataclasses.replace(r, edges=((0, 99),)) for r in results]


def test_drawing_is_inside_the_per_frame_guard(tiny_export, tmp_path):
    frames = np.stack([_frame(i, 64, 64) for i in range(8)])
    with Estimator(tiny_export, backend="onnxruntime", threads=1) as est:
        with VideoSink(tmp_path / "a.mp4", fps=25) as video:
            summary = run_loop(_BadDrawing(est, 3), ArraySource(frames), video=video)
        assert summary.frames == 5 and summary.bad_frames == 3
        assert summary.bad_reasons == {"error IndexError": 3}
        many = np.repeat(frames[:1], MAX_CONSECUTIVE_ERRORS + 5, axis=0)
        with VideoSink(tmp_path / "b.mp4", fps=25) as video:
            with pytest.raises(PplEdgeError, match="frames in a row failed") as caught:
                run_loop(_BadDrawing(est, 10**6), ArraySource(many), video=video)
    assert "\n" not in str(caught.value)


# -- row 13: wrong types in the manifest -----------------------------------------------------------
NAN = float("nan")
BAD_FIELDS = {
    "strings in mean": (lambda d: d["input"].update(mean=["0.5", "0.5", "0.5"]), "input.mean"),
    "two means": (lambda d: d["input"].update(mean=[0.5, 0.5]), "input.mean"),
    "NaN std": (lambda d: d["input"].update(std=[NAN, 0.5, 0.5]), "input.std"),
    "zero scale": (lambda d: d["input"].update(scale=0), "input.scale"),
    "batch a string": (lambda d: d.update(batch="dynamic"), "'batch'"),
    "batch.max a string": (lambda d: d.update(batch={"dynamic": True, "max": "8"}), "batch.max"),
    "batch.dynamic a string": (lambda d: d.update(batch={"dynamic": "yes"}), "batch.dynamic"),
    "names an int": (lambda d: d["keypoints"].update(names=16), "keypoints.names"),
    "names of ints": (lambda d: d["keypoints"].update(names=list(range(16))), "keypoints.names"),
    "keypoints a list": (lambda d: d.update(keypoints=[16]), "keypoints.count"),
    "count a float": (lambda d: d["keypoints"].update(count=16.0), "keypoints.count"),
    "NaN reference": (lambda d: d["memory"].update(distance_reference=NAN),
                      "memory.distance_reference"),
    "negative reference": (lambda d: d["memory"].update(distance_reference=-1.0),
                           "memory.distance_reference"),
    "banks negative": (lambda d: d["memory"].update(banks=-1), "memory.banks"),
    "edge of strings": (lambda d: d["skeleton"].update(edges=[["0", "1"]]), "skeleton.edges"),
    "weights of strings": (lambda d: d["skeleton"].update(weights=["a"] * 3), "skeleton.weights"),
    "sha256 not hex": (lambda d: d["artifacts"]["keypoints"].update(sha256="xyz"),
                       "artifacts.keypoints.sha256"),
    "file a number": (lambda d: d["artifacts"]["keypoints"].update(file=7), "artifacts.keypoints"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_FIELDS))
def test_wrong_types_in_the_manifest_name_the_field(tiny_export, case):
    edit, field = BAD_FIELDS[case]
    document = json.loads((tiny_export / "manifest.json").read_text())
    broken = copy.deepcopy(document)
    edit(broken)
    with pytest.raises(ManifestError) as caught:
        Manifest.from_dict(broken, tiny_export / "manifest.json")
    message = str(caught.value)
    assert field in message and "\n" not in message, message


def test_a_nan_literal_in_manifest_json_is_one_line(tiny_export, tmp_path, capsys, clip):
    folder = _export(tiny_export, tmp_path / "export")
    text = (folder / "manifest.json").read_text()
    text = re.sub(r'"distance_reference": [0-9.e+-]+', '"distance_reference": NaN', text)
    (folder / "manifest.json").write_text(text)
    assert math.isnan(json.loads(text)["memory"]["distance_reference"])
    assert main(_live(folder, str(clip))) == 1
    _one_line_error(capsys, "memory.distance_reference")


# -- row 14: bad boxes ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "boxes",
    [
        [(0, 0, NAN, 32)],
        [(0, 0, math.inf, 32)],
        [(0, 0, 32)],
        [None],
        [(None, 0, 32, 32)],
        [("0", "0", "32", "32")],
        [(0, 0, 32, 32, 1)],
        [(10, 0, 5, 32)],
        [(True, 0, 32, 32)],
        [(0, 0, 10**30, 32)],
        5,
        "0,0,32,32",
        {"box": (0, 0, 32, 32)},
        [(0, 0, 32, 32)] * 5000,
    ],
    ids=lambda b: repr(b)[:30],
)
def test_bad_boxes_are_the_runtimes_one_line_bad_input_error(tiny_export, boxes):
    with Estimator(tiny_export, backend="onnxruntime", threads=1) as est:
        with pytest.raises(BadFrameError) as caught:
            est(_frame(0), boxes=boxes)
        assert "\n" not in str(caught.value) and len(str(caught.value)) < 300
        good = est(_frame(0), boxes=np.array([[0, 0, 32, 32], [8, 8, 40.5, 40.5]]))
        assert len(good) == 2 and est(_frame(0), boxes=[]) == []
