"""Make, check and look at datasets: synthetic figures to disk, dataset checks, sample grids.

Examples:
  ppl-edge data synth --category humanoid --count 1000 --size 128 --out data/humanoid
  ppl-edge data synth --category quadruped --count 640 --size 64 --video --out data/dogs-video
  ppl-edge data check synthdir:data/humanoid
  ppl-edge data check h36m:/data/h36m --split test --size 128
  ppl-edge data show synthetic:bird --count 16 --out bird.png
  ppl-edge data show folder:data/humanoid/images --opt flip=false --out grid.png
  ppl-edge data scene --out scene.mp4 --frames 600 --size 256x192
  ppl-edge data check video:scene.mp4 --opt crops=motion --split test

`synth` writes PNG images, masks, labels.jsonl (keypoints in pixels, visibility) and meta.json
(joint names, skeleton edges, left/right pairs) into a new folder, atomically; read it back with
`synthdir:DIR` (with labels) or `folder:DIR/images`. Dataset specs: synthetic:<category>,
synthdir:PATH, folder:PATH, video:PATH, h36m:PATH, taichi:PATH, cub:PATH. `--opt KEY=VALUE` passes
loader options such as video=true, length=500, max_gap=4, subset=test003, crops=motion.
`scene` writes a fixed camera's recording: one synthetic figure moving across a static background
(mp4), and its ground truth beside it (`<video>.labels.npz`: keypoints in frame pixels, visibility,
figure boxes and masks); `video:PATH` with crops=motion trains on it, `ppl-edge eval --data
video:PATH` scores on it.
"""

from __future__ import annotations

import argparse

from ppl_edge.cli import flags

CATEGORIES = ("humanoid", "quadruped", "bird")  # checked again by the renderer
SPLITS = ("train", "train_reg", "test")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of ``ppl-edge data``."""
    sub = parser.add_subparsers(dest="data_command", metavar="COMMAND", required=True)

    synth = sub.add_parser("synth", help="render synthetic figures with ground truth to a folder")
    synth.add_argument("--category", default="humanoid", choices=CATEGORIES)
    synth.add_argument("--count", type=int, default=1000, help="images to write (default 1000)")
    synth.add_argument("--size", type=int, default=128, help="image side in pixels (default 128)")
    synth.add_argument("--out", required=True, metavar="DIR", help="new output folder")
    synth.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    synth.add_argument(
        "--split",
        default="train",
        choices=SPLITS,
        help="random stream; matches synthetic:<category> items of this split",
    )
    synth.add_argument(
        "--video", action="store_true", help="write clips: fixed background, smoothly moving pose"
    )
    synth.add_argument("--clip-length", type=int, default=32, help="frames per clip with --video")
    synth.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")

    scene = sub.add_parser(
        "scene", help="write a fixed camera's video of a moving synthetic figure, with ground truth"
    )
    scene.add_argument("--out", required=True, metavar="VIDEO", help="video file to write (.mp4)")
    scene.add_argument("--frames", type=int, default=600, help="frames (default 600)")
    scene.add_argument(
        "--size", default="256x192", metavar="WxH", help="frame size (default 256x192)"
    )
    scene.add_argument("--category", default="humanoid", choices=CATEGORIES)
    scene.add_argument("--seed", type=int, default=0, help="scene, figure and path (default 0)")
    scene.add_argument("--fps", type=float, default=25.0, help="frame rate (default 25)")
    scene.add_argument("--overwrite", action="store_true", help="replace an existing --out video")

    for name, text in (
        ("check", "open a dataset, read every item, count skips, summarise"),
        ("show", "draw a grid of samples with their ground-truth skeletons"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("spec", help="dataset spec, e.g. synthetic:humanoid or h36m:/data/h36m")
        p.add_argument("--size", type=int, default=64, help="image side to load at (default 64)")
        p.add_argument("--split", default="train", choices=SPLITS)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument(
            "--opt",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="loader option (repeatable), e.g. video=true",
        )
        if name == "check":
            p.add_argument("--limit", type=int, default=0, help="read at most N items (0: all)")
        else:
            p.add_argument("--out", required=True, metavar="PNG", help="output image")
            p.add_argument("--count", type=int, default=16, help="samples to draw (default 16)")
            p.add_argument("--cols", type=int, default=4, help="grid columns (default 4)")


def _synth(args: argparse.Namespace) -> int:
    import logging

    from ppl_edge.synth.folder import write_synthetic

    log = logging.getLogger(__name__)
    step = max(1, args.count // 10)

    def progress(done: int) -> None:
        if done % step == 0 or done == args.count:
            log.info("%d / %d images", done, args.count)

    out = write_synthetic(
        args.out,
        args.category,
        args.count,
        args.size,
        args.seed,
        args.split,
        args.video,
        args.clip_length,
        args.overwrite,
        progress,
    )
    kind = f"{args.clip_length}-frame clips of " if args.video else ""
    print(
        f"wrote {args.count} {kind}{args.category} images ({args.size}x{args.size}) to {out}; "
        f"read back with synthdir:{out}"
    )
    return 0


def _frame_size(text: str) -> tuple[int, int]:
    """``WxH`` -> (W, H)."""
    from ppl_edge.errors import PplEdgeError

    w, sep, h = text.lower().partition("x")
    if not sep or not w.strip().isdigit() or not h.strip().isdigit():
        raise PplEdgeError(f"--size expects WxH, e.g. 256x192, got {text!r}")
    return int(w), int(h)


def _scene(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ppl_edge.errors import PplEdgeError
    from ppl_edge.synth.scene import labels_path, write_fixed_camera_scene

    size = _frame_size(args.size)
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise PplEdgeError(f"--out {out} exists; pass --overwrite to replace it")
    video = write_fixed_camera_scene(out, args.frames, size, args.category, args.seed, args.fps)
    print(
        f"wrote {args.frames} frames ({size[0]}x{size[1]}) of a {args.category} moving past a "
        f"fixed camera to {video}, ground truth to {labels_path(video)}; train with "
        f"video:{video} and crops=motion, score with ppl-edge eval --data video:{video}"
    )
    return 0


def _check(args: argparse.Namespace, dataset) -> int:
    import logging
    import time

    import numpy as np

    log = logging.getLogger(__name__)
    total = len(dataset)
    n = total if args.limit <= 0 else min(args.limit, total)
    keys: dict[str, tuple] = {}
    lo, hi, visible, joints = np.inf, -np.inf, 0, 0
    start = time.perf_counter()
    for i in range(n):
        item = dataset[i]
        for key, value in item.items():
            keys.setdefault(key, tuple(value.shape))
        lo, hi = min(lo, float(item["image"].min())), max(hi, float(item["image"].max()))
        if "visible" in item:
            visible += int(item["visible"].sum())
            joints += int(item["visible"].numel())
        if (i + 1) % 1000 == 0:
            log.info("%d / %d items", i + 1, n)
    rate = n / max(time.perf_counter() - start, 1e-9)
    shapes = ", ".join(f"{k} {'x'.join(map(str, s)) or 'scalar'}" for k, s in keys.items())
    labels = f"; {100.0 * visible / joints:.1f}% of joints visible" if joints else "; no labels"
    print(
        f"{args.spec} [{args.split}]: {total} items, read {n}, skipped {dataset.skipped} "
        "unreadable "
        f"({rate:.0f} items/s); {shapes}; image range [{lo:.2f}, {hi:.2f}]{labels}"
    )
    return 0


def _show(args: argparse.Namespace, dataset) -> int:
    from pathlib import Path

    import cv2

    from ppl_edge.errors import PplEdgeError
    from ppl_edge.fileio import atomic_write_bytes
    from ppl_edge.train.data.preview import contact_sheet, item_tile

    if args.count < 1 or args.cols < 1:
        raise PplEdgeError(f"--count and --cols must be >= 1, got {args.count} and {args.cols}")
    n = min(args.count, len(dataset))
    edges = tuple(getattr(dataset, "edges", ()))
    sheet = contact_sheet([item_tile(dataset[i], edges) for i in range(n)], min(args.cols, n))
    out = Path(args.out)
    ok, data = cv2.imencode(out.suffix or ".png", sheet)
    if not ok:
        raise PplEdgeError(f"cannot encode {out} (use a .png or .jpg name)")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data.tobytes())
    print(
        f"drew {n} samples of {args.spec} [{args.split}] with {len(edges)} skeleton edges -> {out}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Dispatch to synth / scene / check / show."""
    from ppl_edge.errors import PplEdgeError

    if args.data_command == "synth":
        return _synth(args)
    if args.data_command == "scene":
        return _scene(args)
    from ppl_edge.train.data import build_dataset

    if args.size < 8:
        raise PplEdgeError(f"--size must be >= 8, got {args.size}")
    dataset = build_dataset(
        args.spec, args.size, split=args.split, seed=args.seed, **flags.parse_options(args.opt)
    )
    return _check(args, dataset) if args.data_command == "check" else _show(args, dataset)
