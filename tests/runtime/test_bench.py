"""``ppl-edge bench``: cases, JSON report and Markdown table on a tiny model."""

from __future__ import annotations

import json

import pytest

from ppl_edge.cli import main
from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.bench import (
    TABLE_STAGES,
    BenchCase,
    bench_cases,
    markdown_table,
    parse_iterations,
    run_bench,
    synthetic_frames,
)


def test_parse_iterations_and_cases():
    assert parse_iterations("0-4") == [0, 1, 2, 3, 4]
    assert parse_iterations("2,0,2") == [0, 2]
    for bad in ("a", "-1", "3-1", ""):
        with pytest.raises(PplEdgeError):
            parse_iterations(bad)
    cases = bench_cases(["onnxruntime"], ["none", "memory", "image"], [0, 1, 2])
    assert [(c.refine, c.iterations) for c in cases] == [
        ("none", 0),
        ("memory", 1),
        ("memory", 2),
        ("image", 1),
        ("image", 2),
    ]
    assert bench_cases(["auto"], ["image"], [0]) == [BenchCase("auto", "image", 0)]
    with pytest.raises(PplEdgeError, match="no case"):
        bench_cases(["auto"], ["none"], [3])


def test_synthetic_frames_are_camera_like():
    frames = synthetic_frames(count=3, height=60, width=80)
    assert frames.shape == (3, 60, 80, 3) and frames.dtype.name == "uint8"
    assert frames.std() > 10  # a rendered scene, not a blank


def test_run_bench_report(tiny_export):
    cases = bench_cases(["onnxruntime"], ["none", "image"], [0, 2])
    report = run_bench(str(tiny_export), cases, frames=4, warmup=1, frame_size=(72, 96), threads=1)
    s = report["settings"]
    assert s["input_size"] == [32, 32] and s["providers"] == ["CPUExecutionProvider"]
    assert s["threads"] == 1 and s["cpu"] and s["preset"] == "tiny"
    assert [(r["refine"], r["iterations"]) for r in report["results"]] == [
        ("none", 0),
        ("image", 2),
    ]
    for row in report["results"]:
        lat = row["latency_ms"]
        assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] and row["fps"] > 0
        assert {"capture", "preprocess", "inference", "refine", "postprocess", "draw"} <= set(
            row["stages_ms"]
        )
        assert row["stages_ms"]["inference"]["count"] == 4
        assert row["overhead_ms"] >= 0 and row["overhead_pct"] is not None
    none, image = report["results"]
    assert image["stages_ms"]["refine"]["mean"] > none["stages_ms"]["refine"]["mean"]
    # the refinement's graph runs count as inference: a part of the refine stage, none without it
    assert none["stages_ms"]["refine_inference"]["mean"] == 0.0
    img = image["stages_ms"]
    assert 0 < img["refine_inference"]["mean"] <= img["refine"]["mean"]
    estimate = img["estimate"]["mean"]
    backend = img["inference"]["mean"] + img["refine_inference"]["mean"]
    assert image["overhead_ms"] == pytest.approx(estimate - backend, abs=1e-3)
    table = markdown_table(report)
    rows = [ln for ln in table.splitlines() if ln.startswith("| onnxruntime")]
    assert len(rows) == 2 and all(ln.count("|") == 9 + len(TABLE_STAGES) for ln in rows)


def test_cli_bench_writes_json_and_markdown(tiny_export, tmp_path, capsys):
    js, md = tmp_path / "b.json", tmp_path / "b.md"
    assert (
        main(
            [
                "bench",
                "--model",
                str(tiny_export),
                "--refine",
                "none,memory",
                "--iterations",
                "0-1",
                "--frames",
                "3",
                "--warmup",
                "0",
                "--size",
                "64x48",
                "--threads",
                "1",
                "--no-draw",
                "--json",
                str(js),
                "--markdown",
                str(md),
            ]
        )
        == 0
    )
    report = json.loads(js.read_text())
    assert [(r["refine"], r["iterations"]) for r in report["results"]] == [
        ("none", 0),
        ("memory", 1),
    ]
    assert "draw" not in report["results"][0]["stages_ms"]
    assert md.read_text() in capsys.readouterr().out
    assert main(["bench", "--model", str(tiny_export), "--refine", "fast"]) == 1
    assert main(["bench", "--model", str(tiny_export), "--backend", "gpu"]) == 1
    assert "unknown backend 'gpu'" in capsys.readouterr().err
