"""ppl-edge beside MediaPipe BlazePose: latency per frame on the same frames, threads and process.

    .venv-bench/bin/python bench/bench_mediapipe.py --frames 200 --threads 1 --markdown bench.md

Every contender gets the same 256 x 256 BGR frames (a rendered synthetic humanoid clip, or the
first frames of ``--video``, centre-cropped and resized), in one process; the frames are visited
in turn and each contender is timed on each frame before the next frame, so a busy CPU slows all of
them alike. Timed is one call on a BGR frame: ``Estimator(frame)`` for ppl-edge (whole frame as
the crop; preprocessing, inference, refinement, postprocessing) and, for BlazePose, the BGR -> RGB
conversion plus ``Pose.process`` (MediaPipe's legacy solution, tracking mode: its detector runs
only when it has lost the person; ``static`` runs the detector on every frame).

Threads: ``--threads T`` gives ONNX Runtime T intra-op threads and pins the whole process to T
CPU cores (os.sched_setaffinity), which also bounds MediaPipe's TFLite/XNNPACK threads.

MediaPipe 0.10.14's wheel ships BlazePose-full (``model_complexity=1``) only; lite and heavy are
downloaded at run time, which this bench does not do (``--complexity 0 2`` would try).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BLAZEPOSE = {0: "BlazePose-lite", 1: "BlazePose-full", 2: "BlazePose-heavy"}


def cpu_name() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_frames(count: int, size: int, video: str | None) -> np.ndarray:
    """(count, size, size, 3) uint8 BGR: a synthetic humanoid clip, or a video's first frames."""
    if video is None:
        from ppl_edge.synth.render import render_clip

        frames, _, _ = render_clip("humanoid", count, size, 0)
        return np.ascontiguousarray(frames)
    cap, out = cv2.VideoCapture(video), []
    while len(out) < count:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        side = min(h, w)
        y, x = (h - side) // 2, (w - side) // 2
        crop = frame[y : y + side, x : x + side]
        out.append(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))
    if not out:
        raise SystemExit(f"no frame read from {video}")
    return np.stack(out)


def ppl_contenders(model: str, modes: list[str], threads: int) -> dict:
    """name -> (callable(frame) -> detected?, closer) for each ppl-edge mode 'refine:iterations'."""
    from ppl_edge.runtime import Estimator

    out = {}
    for spec in modes:
        refine, _, iters = spec.partition(":")
        est = Estimator(model, refine=refine, iterations=int(iters or 0), threads=threads)
        est.warmup()
        name = "ppl-edge " + (refine if refine == "none" else f"{refine} x{int(iters or 0)}")
        out[name] = (lambda f, e=est: bool(e(f)), est.close)
    return out


def blazepose_contenders(complexities: list[int], static: bool) -> dict:
    """name -> (callable(frame) -> detected?, closer) for BlazePose (tracking, and static)."""
    import mediapipe as mp

    out = {}
    for c in complexities:
        for is_static in (False, True) if static else (False,):
            pose = mp.solutions.pose.Pose(
                static_image_mode=is_static, model_complexity=c, enable_segmentation=False
            )

            def call(frame, p=pose):
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                return p.process(rgb).pose_landmarks is not None

            out[BLAZEPOSE[c] + (" (static)" if is_static else "")] = (call, pose.close)
    return out


def run(contenders: dict, frames: np.ndarray, warmup: int) -> dict:
    """Interleaved timing: for every frame, each contender once. name -> stats."""
    times = {n: [] for n in contenders}
    hits = {n: 0 for n in contenders}
    for i in range(warmup + len(frames)):
        frame = frames[i % len(frames)]
        for name, (call, _) in contenders.items():
            t0 = time.perf_counter()
            found = call(frame)
            dt = (time.perf_counter() - t0) * 1e3
            if i >= warmup:
                times[name].append(dt)
                hits[name] += int(found)
    return {
        n: {
            "p50_ms": float(np.median(t)),
            "p90_ms": float(np.percentile(t, 90)),
            "mean_ms": float(np.mean(t)),
            "detected_pct": 100.0 * hits[n] / len(t),
        }
        for n, t in times.items()
    }


def table(stats: dict, reference: str | None) -> str:
    ref = stats.get(reference, {}).get("p50_ms") if reference else None
    lines = [
        "| contender | p50 ms | p90 ms | mean ms | p50 / " + (reference or "-") + " | pose found |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, s in stats.items():
        ratio = f"{s['p50_ms'] / ref:.2f}×" if ref else "-"
        lines.append(
            f"| {name} | {s['p50_ms']:.2f} | {s['p90_ms']:.2f} | {s['mean_ms']:.2f} | {ratio} | "
            f"{s['detected_pct']:.0f} % |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "models" / "ppl-small-humanoid"))
    ap.add_argument("--modes", nargs="+", default=["none", "image:1", "image:2"])
    ap.add_argument("--complexity", type=int, nargs="+", default=[1], choices=[0, 1, 2])
    ap.add_argument("--static", action="store_true", help="also BlazePose in static-image mode")
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--video", default=None, help="frames from this video instead")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    args = ap.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))[: args.threads]
        os.sched_setaffinity(0, cores)
    cv2.setNumThreads(args.threads)
    try:
        import mediapipe as mp
    except ImportError:
        print("MediaPipe is missing: create the bench venv (README, 'MediaPipe side by side')")
        return 1
    frames = load_frames(args.frames, args.size, args.video)
    contenders = {
        **ppl_contenders(args.model, args.modes, args.threads),
        **blazepose_contenders(args.complexity, args.static),
    }
    try:
        stats = run(contenders, frames, args.warmup)
    finally:
        for _, close in contenders.values():
            close()
    reference = next((n for n in stats if n == "BlazePose-full"), None)
    import onnxruntime

    report = {
        "settings": {
            "frames": len(frames),
            "size": args.size,
            "source": args.video or "synthetic:humanoid",
            "threads": args.threads,
            "cpu": cpu_name(),
            "python": sys.version.split()[0],
            "mediapipe": mp.__version__,
            "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__,
        },
        "results": stats,
    }
    text = table(stats, reference)
    print(json.dumps(report["settings"]))
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
