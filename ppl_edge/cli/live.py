"""Run pose estimation live on a camera, a video, images or a stream.

Sources: --camera N (default 0), or --source with a video file, an image folder or quoted glob, an
rtsp:// / http:// URL, /dev/videoN, csi://N (Jetson CSI camera) or a GStreamer pipeline ending in
appsink. Live sources use latest-frame capture, so latency never grows when inference is slower than
the camera; a stream that drops is reconnected with back-off (--retries in all), and a video file
over HTTP resumes after its last frame, never repeating one. Outputs: a window (unless --headless)
with the learned skeleton and FPS, --output VIDEO, --jsonl FILE (one JSON object per frame). Ctrl-C
ends cleanly; a summary with per-stage times is printed on exit.

examples:
  ppl-edge live --camera 0
  ppl-edge live --source clip.mp4 --headless --jsonl out.jsonl --refine image --iterations 3
  ppl-edge live --model models/ppl-small-humanoid --source csi://0 --output run.mp4 --smooth
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ppl_edge.cli import flags
from ppl_edge.errors import PplEdgeError


def parse_roi(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` in frame pixels -> a tuple of 4 ints."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h integers, got '{text}'") from err
    if len(values) != 4 or values[2] <= 0 or values[3] <= 0:
        raise argparse.ArgumentTypeError(f"expected x,y,w,h with w, h > 0, got '{text}'")
    return values  # type: ignore[return-value]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge live``."""
    from ppl_edge.runtime.config import CROP_MODES

    flags.add_runtime_flags(parser)
    flags.add_threads(parser)
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--camera", type=int, metavar="N", help="camera index (default 0)")
    src.add_argument(
        "--source",
        metavar="URI",
        help="video, image folder/glob, URL, /dev/videoN, csi://N or GStreamer pipeline",
    )
    parser.add_argument(
        "--crops",
        default="full",
        choices=CROP_MODES,
        help="where the subject is: full frame, --roi, or moving regions",
    )
    parser.add_argument("--roi", type=parse_roi, metavar="X,Y,W,H", help="fixed crop in pixels")
    parser.add_argument("--smooth", action="store_true", help="One Euro filter on keypoints")
    parser.add_argument(
        "--min-cutoff", type=float, default=1.0, help="One Euro cutoff at rest, Hz (default 1)"
    )
    parser.add_argument(
        "--beta",
        type=float,
        default=0.05,
        help="One Euro speed coefficient, per px/s (default 0.05)",
    )
    parser.add_argument("--output", metavar="VIDEO", help="write the annotated video (.mp4, .avi)")
    parser.add_argument("--jsonl", metavar="FILE", help="write one JSON object per frame")
    parser.add_argument("--headless", action="store_true", help="no window")
    parser.add_argument("--no-overlay", action="store_true", help="no FPS / timing text")
    parser.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    parser.add_argument(
        "--fps-every",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between FPS log lines and overlay updates (default 5)",
    )
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="play video files at their frame rate, dropping frames when slower",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=5,
        help="reconnection attempts of a live or network stream, in total over the run, with "
        "doubling back-off (default 5)",
    )


def options(args: argparse.Namespace):
    """The :class:`~ppl_edge.runtime.live.LiveOptions` of the flags (checked there).

    Raises:
        PplEdgeError: ``--crops roi`` without ``--roi``, or a setting the options refuse.
    """
    from ppl_edge.runtime.live import LiveOptions

    if args.crops == "roi" and args.roi is None:
        raise PplEdgeError("--crops roi needs --roi X,Y,W,H")
    return LiveOptions(
        **flags.runtime_settings(args),
        source=args.source if args.source is not None else (args.camera or 0),
        model=args.model,
        crops=args.crops,
        roi=args.roi,
        smooth=args.smooth,
        min_cutoff=args.min_cutoff,
        beta=args.beta,
        output=args.output,
        jsonl=args.jsonl,
        headless=args.headless,
        max_frames=args.max_frames,
        fps_every=args.fps_every,
        realtime=args.realtime,
        retries=args.retries,
        overlay=not args.no_overlay,
    )


def run(args: argparse.Namespace) -> int:
    """Run the live loop and print its summary."""
    from ppl_edge.resize import opencv_threads
    from ppl_edge.runtime.live import run_live

    with opencv_threads(args.threads):
        summary = run_live(options(args))
    print(summary.format())
    for label, path in (("video", args.output), ("jsonl", args.jsonl)):
        if path and Path(path).exists():  # a video with no frame is not created
            print(f"{label}: {path}")
    return 0
