"""``ppl-edge demo`` end to end on a tiny model: annotated video + JSONL, without importing
torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import cv2

from ppl_edge.cli import main
from ppl_edge.runtime.demo import run_demo


def _count(path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    return n


def test_demo_on_synthetic_clip(tiny_export, tmp_path):
    out = run_demo(
        tmp_path / "demo", model=str(tiny_export), frames=10, refine="image", iterations=1
    )
    assert out.summary.frames == 10 and out.summary.subjects == 10
    assert out.video.name == "demo.mp4" and _count(out.video) == 10
    records = [json.loads(ln) for ln in out.jsonl.read_text().splitlines()]
    assert len(records) == 10 and len(records[0]["subjects"][0]["iterations"]) == 2
    assert sorted(os.listdir(tmp_path / "demo")) == ["demo.jsonl", "demo.mp4"]


def test_demo_cli_without_torch_and_on_a_given_video(tiny_export, tmp_path):
    # The runtime path must not need torch: block its import in a fresh interpreter.
    code = (
        "import sys; sys.modules['torch'] = None; from ppl_edge.cli import main; "
        "sys.exit(main(sys.argv[1:]))"
    )
    out = tmp_path / "d1"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "demo",
            "--model",
            str(tiny_export),
            "--out",
            str(out),
            "--frames",
            "6",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "6 frames at" in proc.stdout and "FPS" in proc.stdout
    assert _count(out / "demo.mp4") == 6
    # any video instead of the synthetic clip, capped by --frames
    assert (
        main(
            [
                "demo",
                "--model",
                str(tiny_export),
                "--source",
                str(out / "demo.mp4"),
                "--out",
                str(tmp_path / "d2"),
                "--frames",
                "4",
                "--refine",
                "none",
            ]
        )
        == 0
    )
    assert len((tmp_path / "d2" / "demo.jsonl").read_text().splitlines()) == 4


def test_demo_errors(tiny_export, tmp_path, capsys):
    assert main(["demo", "--model", str(tiny_export), "--frames", "0", "--out", str(tmp_path)]) == 1
    assert main(["demo", "--model", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 1
    assert "model not found" in capsys.readouterr().err
