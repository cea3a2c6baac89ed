"""Benchmark the runtime: latency p50/p90/p99 and FPS per backend, refinement mode and iteration
count, with per-stage times (capture, preprocess, inference, refine, postprocess, draw).

Runs on a rendered synthetic clip (no camera needed), warms up before timing, and reports the
runtime's own overhead (estimator time outside backend inference) as a share of inference. Prints a
Markdown table; --json and --markdown save the report.

examples:
  ppl-edge bench
  ppl-edge bench --refine none,memory,image --iterations 0-4 --json bench.json --markdown bench.md
  ppl-edge bench --model models/ppl-small-humanoid/keypoints.engine --backend tensorrt
"""

from __future__ import annotations

import argparse

from ppl_edge.errors import PplEdgeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge bench``."""
    parser.add_argument("--model", help="export folder or file (default: the shipped model)")
    parser.add_argument(
        "--backend",
        default="auto",
        help="comma-separated backends: auto, "
        "onnxruntime, tensorrt, coreml, or 'all' for every usable one",
    )
    parser.add_argument(
        "--refine", default="none", help="comma-separated modes: none, memory, image (default none)"
    )
    parser.add_argument("--iterations", default="0", help="iteration counts, e.g. 0-4 or 0,2")
    parser.add_argument("--frames", type=int, default=200, help="timed frames per case")
    parser.add_argument("--warmup", type=int, default=20, help="untimed frames first")
    parser.add_argument("--size", default="640x480", help="synthetic frame size WxH")
    parser.add_argument("--threads", type=int, help="ONNX Runtime CPU threads (default: its own)")
    parser.add_argument("--no-draw", action="store_true", help="leave drawing out")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write the Markdown table")


def _backends(text: str) -> list[str]:
    from ppl_edge.runtime.backends import BACKENDS, unavailable_reason

    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["all"]:
        names = [n for n in BACKENDS if unavailable_reason(n) is None]
    for name in names:
        if name != "auto" and name not in BACKENDS:
            raise PplEdgeError(
                f"unknown backend '{name}'; choose from auto, all, {', '.join(BACKENDS)}"
            )
    return names


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table."""
    import json
    from pathlib import Path

    from ppl_edge.fileio import atomic_write_bytes
    from ppl_edge.runtime.bench import bench_cases, markdown_table, parse_iterations, run_bench
    from ppl_edge.runtime.live import default_model_path

    refines = [r.strip() for r in args.refine.split(",") if r.strip()]
    bad = [r for r in refines if r not in ("none", "memory", "image")]
    if bad or not refines:
        raise PplEdgeError(
            f"--refine takes none, memory, image (comma-separated), got '{args.refine}'"
        )
    if args.frames < 1 or args.warmup < 0:
        raise PplEdgeError(
            f"--frames must be >= 1 and --warmup >= 0, got {args.frames} and {args.warmup}"
        )
    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError as err:
        raise PplEdgeError(f"--size must be WxH, e.g. 640x480, got '{args.size}'") from err
    if min(width, height) < 32:
        raise PplEdgeError(f"--size must be at least 32x32, got '{args.size}'")
    model = str(args.model or default_model_path())
    cases = bench_cases(_backends(args.backend), refines, parse_iterations(args.iterations))
    report = run_bench(
        model,
        cases,
        frames=args.frames,
        warmup=args.warmup,
        frame_size=(height, width),
        draw=not args.no_draw,
        threads=args.threads,
    )
    table = markdown_table(report)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.json, (json.dumps(report, indent=2) + "\n").encode())
    if args.markdown:
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.markdown, table.encode())
    print(table, end="")
    return 0
