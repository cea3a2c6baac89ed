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

from ppl_edge.cli import flags
from ppl_edge.errors import PplEdgeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge bench``."""
    flags.add_runtime_flags(parser, lists=True)
    flags.add_threads(parser)
    parser.add_argument("--frames", type=int, default=200, help="timed frames per case")
    parser.add_argument("--warmup", type=int, default=20, help="untimed frames first")
    parser.add_argument("--size", default="640x480", help="synthetic frame size WxH")
    parser.add_argument("--no-draw", action="store_true", help="leave drawing out")
    parser.add_argument("--json", metavar="FILE", help="write the report as JSON")
    parser.add_argument("--markdown", metavar="FILE", help="write the Markdown table")


def _names(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _frame_size(text: str) -> tuple[int, int]:
    """``"WxH"`` -> (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as err:
        raise PplEdgeError(f"--size must be WxH, e.g. 640x480, got '{text}'") from err
    return height, width


def config(args: argparse.Namespace):
    """The :class:`~ppl_edge.runtime.bench.BenchConfig` of the flags (checked there)."""
    from ppl_edge.runtime.bench import BenchConfig, parse_iterations

    return BenchConfig(
        model=args.model,
        backends=_names(args.backend),
        refines=_names(args.refine),
        iterations=tuple(parse_iterations(args.iterations)),
        frames=args.frames,
        warmup=args.warmup,
        frame_size=_frame_size(args.size),
        draw=not args.no_draw,
        threads=args.threads,
        precision=args.precision,
        verify=not args.no_verify,
        json=args.json,
        markdown=args.markdown,
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark and print the table."""
    from ppl_edge.runtime.bench import run_benchmark

    _, table = run_benchmark(config(args))
    print(table, end="")
    return 0
