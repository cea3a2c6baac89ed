"""Run the shipped model on a generated synthetic humanoid clip (or a video you give), headless.

Writes an annotated video (demo.mp4, the learned skeleton drawn on every frame) and demo.jsonl (one
JSON object per frame) into --out, and prints the FPS. Needs only the default install plus
onnxruntime: no torch, camera or download. Refinement is off by default: the shipped model is best
without it.

examples:
  ppl-edge demo
  ppl-edge demo --source my_clip.mp4 --out out/my_demo --refine image --iterations 2
"""

from __future__ import annotations

import argparse

from ppl_edge.cli import flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge demo``."""
    flags.add_runtime_flags(parser, iterations=1)
    parser.add_argument(
        "--source", metavar="VIDEO", help="a video or image folder instead of the synthetic clip"
    )
    parser.add_argument(
        "--out", default="out/demo", metavar="DIR", help="output folder (default out/demo)"
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=120,
        help="synthetic clip length, or most frames read from --source",
    )


def run(args: argparse.Namespace) -> int:
    """Run the demo and print where its outputs are."""
    from ppl_edge.runtime.config import RuntimeConfig
    from ppl_edge.runtime.demo import run_demo

    out = run_demo(
        args.out,
        model=args.model,
        source=args.source,
        frames=args.frames,
        config=RuntimeConfig(**flags.runtime_settings(args)),
    )
    s = out.summary
    print(f"{s.frames} frames at {s.fps:.1f} FPS ({s.subjects} poses, {s.bad_frames} bad frames)")
    print(f"video: {out.video}")
    print(f"jsonl: {out.jsonl}")
    return 0
