"""Write synthetic data to disk (``ppl-edge data synth``) in the ``synthdir`` layout, atomically.

Layout of OUT::

    OUT/meta.json         format, category, size, seed, split, joint names, edges, swap pairs
    OUT/labels.jsonl      one line per image: image, mask, keypoints (xy pixels), visible,
                          clip, frame
    OUT/images/NNNNNN.png
    OUT/masks/NNNNNN.png  foreground coverage, 0-255

Everything is written into a temporary sibling folder that is renamed to OUT at the end, so an
interrupted run never leaves a half-written dataset. Still images are exactly the items of
``synthetic:<category>`` with the same seed and split; video mode writes clips of ``clip_length``
consecutive frames. Read it back with ``synthdir:OUT`` (with labels) or ``folder:OUT/images``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.synth.render import (
    SPLIT_CODES,
    ClipRenderer,
    Sample,
    get_category,
    item_seed,
    render_sample,
)

log = logging.getLogger(__name__)

FORMAT = "ppl-edge-synthetic"
FORMAT_VERSION = 1


def _samples(
    category: str, count: int, size: int, seed: int, split: str, video: bool, clip_length: int
):
    """Yield (clip, frame, Sample) for ``count`` images."""
    if not video:
        for i in range(count):
            yield i, 0, render_sample(category, size, item_seed(category, split, seed, i))
        return
    for start in range(0, count, clip_length):
        clip = start // clip_length
        frames = min(clip_length, count - start)
        renderer = ClipRenderer(
            category, size, item_seed(category, split, seed, clip) + [1], num_frames=frames
        )
        for t in range(frames):
            yield clip, t, renderer.render(float(t))


def _write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise PplEdgeError(f"could not encode {path.name} as PNG")
    path.write_bytes(data.tobytes())


def _label(index: int, clip: int, frame: int, sample: Sample) -> dict:
    return {
        "image": f"images/{index:06d}.png",
        "mask": f"masks/{index:06d}.png",
        "keypoints": np.round(sample.keypoints.astype(np.float64), 3).tolist(),
        "visible": sample.visible.astype(bool).tolist(),
        "clip": clip,
        "frame": frame,
    }


def write_synthetic(
    out: str | Path,
    category: str = "humanoid",
    count: int = 1000,
    size: int = 128,
    seed: int = 0,
    split: str = "train",
    video: bool = False,
    clip_length: int = 32,
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Render ``count`` images with ground truth into the folder ``out``.

    Args:
        out: destination folder; must not exist unless ``overwrite``.
        category: ``humanoid``, ``quadruped`` or ``bird``.
        count: number of images (frames in video mode).
        size: H = W in pixels.
        seed, split: as for ``synthetic:<category>`` datasets.
        video: write clips of ``clip_length`` frames (fixed background, moving pose).
        overwrite: replace an existing ``out``.
        progress: called with the number of images written so far.

    Returns:
        The path of ``out``.

    Raises:
        PplEdgeError: bad arguments, or ``out`` exists and ``overwrite`` is False.
    """
    cat = get_category(category)
    out = Path(out).expanduser()
    if count < 1 or size < 8 or clip_length < 2:
        raise PplEdgeError(
            f"need count >= 1, size >= 8 and clip_length >= 2; got {count}, {size}, {clip_length}"
        )
    check_choice(split, SPLIT_CODES, "split")
    if out.exists() and not overwrite:
        raise PplEdgeError(f"{out} already exists; choose another --out or pass --overwrite")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        with open(tmp / "labels.jsonl", "w", encoding="utf-8") as labels:
            stream = _samples(category, count, size, seed, split, video, clip_length)
            for index, (clip, frame, sample) in enumerate(stream):
                _write_png(tmp / "images" / f"{index:06d}.png", sample.image)
                _write_png(
                    tmp / "masks" / f"{index:06d}.png", np.round(sample.mask * 255).astype(np.uint8)
                )
                labels.write(json.dumps(_label(index, clip, frame, sample)) + "\n")
                if progress is not None:
                    progress(index + 1)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "category": category,
            "count": count,
            "size": size,
            "seed": seed,
            "split": split,
            "video": video,
            "clip_length": clip_length if video else 1,
            "coords": "xy_px",
            "joint_names": list(cat.joint_names),
            "edges": [list(e) for e in cat.edges],
            "swap_pairs": [list(p) for p in cat.swap_pairs],
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %d %s images to %s", count, category, out)
    return out


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` is moved aside first and then removed."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        os.replace(dst, old)
    os.replace(src, dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
