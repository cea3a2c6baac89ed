"""Latency benchmark of the runtime: per backend, refinement mode and iteration count, per stage.

Frames are a rendered synthetic humanoid clip held in memory (no camera). "capture" writes the next
frame into the capture buffer and validates it, as a camera read does (the driver's or decoder's
last step writes the BGR frame the estimator then reads; the frame is in the CPU's caches, not
only in memory). Every case warms up first, then
times ``frames`` calls; stages are the estimator's own (preprocess, inference, refine,
postprocess), plus capture and draw around it. The runtime's overhead is everything the estimator
call spends outside backend inference (the keypoint graph, and the refinement's graph runs,
``refine_inference``), as a percentage of that inference.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.runtime.config import PRECISIONS
from ppl_edge.runtime.refine import REFINE_MODES, check_iterations
from ppl_edge.runtime.sources import sanitize_frame
from ppl_edge.runtime.stats import StageStats

log = logging.getLogger(__name__)

TABLE_STAGES = (
    "capture",
    "preprocess",
    "inference",
    "refine",
    "refine_inference",
    "postprocess",
    "draw",
)


@dataclass(frozen=True)
class BenchCase:
    """One measured configuration."""

    backend: str
    refine: str
    iterations: int


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What ``ppl-edge bench`` measures and where it writes the report (checked when made).

    Attributes:
        model: export folder or file; None is the shipped model.
        backends: backend names or "auto"; ``("all",)`` is every backend usable here.
        refines: refinement modes; iterations: counts (see :func:`bench_cases` for the pairs).
        frames, warmup: timed and untimed calls per case.
        frame_size: (height, width) of the synthetic frames, at least 32 x 32.
        draw: time drawing the skeleton as a stage.
        threads: CPU threads of the ONNX Runtime sessions (None: its default).
        precision: the ONNX Runtime keypoint graph, "fp32", "fp16" or "int8" (RuntimeConfig).
        verify: check the model files against their manifest's sha256 first (RuntimeConfig).
        json, markdown: files for the report and the table (None: not written).
    """

    model: str | None = None
    backends: tuple[str, ...] = ("auto",)
    refines: tuple[str, ...] = ("none",)
    iterations: tuple[int, ...] = (0,)
    frames: int = 200
    warmup: int = 20
    frame_size: tuple[int, int] = (480, 640)
    draw: bool = True
    threads: int | None = None
    precision: str = "fp32"
    verify: bool = True
    json: str | None = None
    markdown: str | None = None

    def __post_init__(self) -> None:
        from ppl_edge.runtime.backends import BACKENDS, backend_choices, unavailable_reason

        if not self.refines or not self.backends or not self.iterations:
            raise PplEdgeError("give at least one backend, refinement mode and iteration count")
        for mode in self.refines:
            check_choice(mode, REFINE_MODES, "refinement mode")
        check_choice(self.precision, PRECISIONS, "precision")
        backends = tuple(self.backends)
        if backends == ("all",):
            backends = tuple(n for n in BACKENDS if unavailable_reason(n) is None)
        for name in backends:
            check_choice(name, backend_choices(), "backend")
        object.__setattr__(self, "backends", backends)
        object.__setattr__(self, "iterations", tuple(check_iterations(i) for i in self.iterations))
        if self.frames < 1 or self.warmup < 0:
            raise PplEdgeError(
                f"frames must be >= 1 and warmup >= 0, got {self.frames} and {self.warmup}"
            )
        if min(self.frame_size) < 32:
            height, width = self.frame_size
            raise PplEdgeError(f"frame size must be at least 32x32, got {width}x{height}")


def run_benchmark(config: BenchConfig) -> tuple[dict[str, Any], str]:
    """Measure every case of ``config``, write the files it names; return (report, table).

    Raises:
        PplEdgeError: a missing model, or a backend that cannot open it.
    """
    from ppl_edge.fileio import atomic_write_bytes
    from ppl_edge.runtime.manifest import default_model_path
    from ppl_edge.runtime.sinks import to_jsonable

    cases = bench_cases(config.backends, config.refines, config.iterations)
    report = run_bench(
        str(config.model or default_model_path()),
        cases,
        frames=config.frames,
        warmup=config.warmup,
        frame_size=config.frame_size,
        draw=config.draw,
        threads=config.threads,
        precision=config.precision,
        verify=config.verify,
    )
    table = markdown_table(report)
    for path, data in (
        (config.json, json.dumps(to_jsonable(report), indent=2, allow_nan=False) + "\n"),
        (config.markdown, table),
    ):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, data.encode())
    return report, table


def parse_iterations(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2"`` -> [0, 2].

    Raises:
        PplEdgeError: not a range or list of non-negative integers.
    """
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-"))
            values = list(range(lo, hi + 1))
        else:
            values = [int(v) for v in text.split(",")]
    except ValueError as err:
        raise PplEdgeError(f"iterations must look like 0-4 or 0,2,4, got '{text}'") from err
    if not values or min(values) < 0:
        raise PplEdgeError(f"iterations must be non-negative, got '{text}'")
    return sorted(set(values))


def bench_cases(
    backends: Sequence[str], refines: Sequence[str], iterations: Sequence[int]
) -> list[BenchCase]:
    """Every (backend, refine, iterations) worth measuring: "none" only at 0 iterations, the other
    modes at >= 1 when "none" is measured too (their 0-iteration case is the same computation)."""
    cases = []
    for backend in backends:
        for refine in refines:
            for it in iterations:
                if refine == "none" and it > 0:
                    continue
                if refine != "none" and it == 0 and "none" in refines:
                    continue
                cases.append(BenchCase(backend, refine, it))
    if not cases:
        raise PplEdgeError("no case to measure; give --refine none or --iterations >= 1")
    return cases


def synthetic_frames(
    count: int = 48, height: int = 480, width: int = 640, seed: int = 0
) -> np.ndarray:
    """A rendered humanoid clip as camera-like frames: (count, height, width, 3) uint8 BGR."""
    from ppl_edge.synth.render import render_clip

    side = min(height, width)
    clip, _, _ = render_clip("humanoid", count, side, seed)
    left, top = (width - side) // 2, (height - side) // 2
    return np.stack(
        [
            cv2.copyMakeBorder(
                f, top, height - side - top, left, width - side - left, cv2.BORDER_REPLICATE
            )
            for f in clip
        ]
    )


def measure(
    estimator: Callable[[np.ndarray], list],
    frames: np.ndarray,
    count: int,
    warmup: int,
    draw: Callable[[np.ndarray, list], Any] | None = None,
) -> dict[str, Any]:
    """Time ``count`` estimator calls (after ``warmup``) on ``frames``, cycling.

    Returns:
        ``{"frames", "latency_ms": {mean, p50, p90, p99}, "fps", "stages_ms": {stage: {...}},
        "overhead_ms", "overhead_pct"}``; latency is capture + estimate + draw.
    """
    stats = StageStats(keep=max(count, 1))
    buffer = np.empty_like(frames[0])
    for i in range(warmup + count):
        t0 = time.perf_counter()
        np.copyto(buffer, frames[i % len(frames)])  # the camera read: a frame written, in cache
        image, _ = sanitize_frame(buffer)
        t1 = time.perf_counter()
        results = estimator(image)
        t2 = time.perf_counter()
        if draw is not None:
            draw(image.copy(), results)
        t3 = time.perf_counter()
        if i < warmup:
            continue
        timings = dict(results[0].timings) if results else {}
        timings.pop("total", None)
        stats.add("capture", (t1 - t0) * 1e3)
        for stage, ms in timings.items():
            stats.add(stage, ms)
        stats.add("estimate", (t2 - t1) * 1e3)
        if draw is not None:
            stats.add("draw", (t3 - t2) * 1e3)
        stats.add("latency", (t3 - t0) * 1e3)
    stages = stats.summary()
    latency = stages.pop("latency")
    # backend inference: the keypoint graph, plus the graph runs inside the refinement
    inference = stats.mean("inference") + stats.mean("refine_inference")
    overhead = stats.mean("estimate") - inference
    return {
        "frames": count,
        "latency_ms": {k: latency[k] for k in ("mean", "p50", "p90", "p99")},
        "fps": round(1e3 / latency["mean"], 2) if latency["mean"] else 0.0,
        "stages_ms": stages,
        "overhead_ms": round(overhead, 4),
        "overhead_pct": round(100.0 * overhead / inference, 2) if inference else None,
    }


def settings(model: str, estimator: Any = None) -> dict[str, Any]:
    """The machine, library and model facts a benchmark number depends on."""
    from ppl_edge import __version__
    from ppl_edge.runtime.manifest import resolve_model

    manifest = resolve_model(model).manifest
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu
            )
    except OSError:
        pass
    backend = getattr(estimator, "backend", None)
    config = getattr(estimator, "config", None)
    threads = getattr(config, "threads", None)
    out = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "model": str(model),
        "model_name": manifest.raw.get("model", {}).get("name"),
        "preset": manifest.raw.get("model", {}).get("preset"),
        "input_size": [manifest.input.height, manifest.input.width],
        "keypoints": manifest.num_keypoints,
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "threads": threads or "library default",
        "precision": getattr(config, "precision", "fp32"),
        "providers": getattr(backend, "providers", None),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "ppl_edge": __version__,
        "platform": platform.platform(),
    }
    try:
        import onnxruntime

        out["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return out


def markdown_table(report: dict[str, Any]) -> str:
    """The report as Markdown: a settings list and one row per case (stage columns are means)."""
    s = report["settings"]
    intro = (
        f"Model `{s['model_name']}` ({s['preset']}, {s['input_size'][0]}x"
        f"{s['input_size'][1]}, N={s['keypoints']}); CPU {s['cpu']} ({s['cpu_count']} cores, "
        f"threads: {s['threads']}); precision {s.get('precision', 'fp32')}; providers "
        f"{s.get('providers')}; onnxruntime "
        f"{s.get('onnxruntime', '-')}, OpenCV {s['opencv']}; frames "
        f"{report['frame_size'][1]}x{report['frame_size'][0]}; {s['date']}."
    )
    header = (
        "| backend | refine | iters | p50 ms | p90 ms | p99 ms | FPS | "
        + " | ".join(TABLE_STAGES)
        + " | overhead |"
    )
    lines = [intro, "", header, "|" + "---|" * (8 + len(TABLE_STAGES))]
    for r in report["results"]:
        lat, st = r["latency_ms"], r["stages_ms"]
        cells = [f"{st[k]['mean']:.2f}" if k in st else "-" for k in TABLE_STAGES]
        pct = "-" if r["overhead_pct"] is None else f"{r['overhead_pct']:.1f} %"
        lines.append(
            f"| {r['backend']} | {r['refine']} | {r['iterations']} | {lat['p50']:.2f} | "
            f"{lat['p90']:.2f} | {lat['p99']:.2f} | {r['fps']:.1f} | "
            + " | ".join(cells)
            + f" | {pct} |"
        )
    lines += [
        "",
        (
            "Stage columns are means in ms; capture writes an in-memory synthetic frame "
            "into the capture buffer (no camera); refine is the whole refinement stage, "
            "refine_inference its graph runs; "
            "overhead is the estimator's time outside backend inference (inference + "
            "refine_inference), as a share of that inference."
        ),
    ]
    return "\n".join(lines) + "\n"


def run_bench(
    model: str,
    cases: Sequence[BenchCase],
    *,
    frames: int = 200,
    warmup: int = 20,
    frame_size: tuple[int, int] = (480, 640),
    draw: bool = True,
    threads: int | None = None,
    precision: str = "fp32",
    verify: bool = True,
) -> dict[str, Any]:
    """Measure every case; return ``{"settings", "frame_size", "results": [...]}``.

    Args:
        model: export folder or file.
        cases: from :func:`bench_cases`.
        frames, warmup: timed and untimed calls per case.
        frame_size: (height, width) of the synthetic frames.
        draw: include drawing the skeleton (runtime/draw.py) as a stage.
        threads: CPU threads of the ONNX Runtime sessions and of OpenCV (None: their defaults).
        precision: the ONNX Runtime keypoint graph ("fp32", "fp16", "int8").
        verify: check the model files against their manifest's sha256 first.
    """
    from ppl_edge.resize import opencv_threads
    from ppl_edge.runtime import Estimator
    from ppl_edge.runtime.draw import draw_results

    clip = synthetic_frames(height=frame_size[0], width=frame_size[1])
    results, first = [], None
    for case in cases:
        with (
            Estimator(
                model,
                backend=case.backend,
                refine=case.refine,
                iterations=case.iterations,
                threads=threads,
                precision=precision,
                verify=verify,
            ) as est,
            opencv_threads(threads),
        ):
            row = measure(est, clip, frames, warmup, draw_results if draw else None)
            if first is None:
                first = settings(model, est)
        row = {
            "backend": est.backend_name,
            "refine": case.refine,
            "iterations": case.iterations,
            **row,
        }
        log.info(
            "%s %s x%d: p50 %.2f ms, %.1f FPS",
            row["backend"],
            case.refine,
            case.iterations,
            row["latency_ms"]["p50"],
            row["fps"],
        )
        results.append(row)
    return {"settings": first, "frame_size": list(frame_size), "results": results}
