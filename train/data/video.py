"""Video files (``video:PATH``): frames sampled from clips, ``reference`` = another frame of the clip.

PATH is one video file or a folder searched recursively for videos. Every ``stride``-th frame is an
item; its ``reference`` is a random other frame of the same video at most ``max_gap`` frames away
(PPL's "reference frame" reading of the paper; the official code only ever uses the same frame).
Frames are read with ``cv2.VideoCapture``; one capture per video is kept open in each process.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.train.data.common import (
    SkippingDataset,
    UnreadableItem,
    check_split,
    default_flip,
    image_to_tensor,
    random_flip,
    resize,
)
from ppl_edge.train.data.folder import pick_reference

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def _frame_count(path: Path) -> int:
    """Frames in a video (0 when it cannot be opened)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return 0
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        if count <= 0:  # some containers do not store it: count by decoding
            count = 0
            while cap.grab():
                count += 1
        return count
    finally:
        cap.release()


class VideoDataset(SkippingDataset):
    """Frames of one or more videos, each with a nearby reference frame.

    Args:
        root: a video file or a folder of videos.
        img_size: H = W of the returned images (frames are resized, not cropped).
        split: ``train`` (random flips by default), ``train_reg`` or ``test``.
        seed: unused (reference frames and flips draw from torch's RNG).
        flip: flip image and reference together; default True in the train split.
        max_gap: largest frame distance between ``image`` and ``reference``.
        stride: use every ``stride``-th frame as an item.

    Raises:
        PplEdgeError: PATH does not exist, or no readable video is found.
    """

    def __init__(self, root: str | Path, img_size: int = 128, split: str = "train", seed: int = 0,
                 flip: bool | None = None, max_gap: int = 8, stride: int = 1) -> None:
        super().__init__()
        root = Path(root).expanduser()
        if root.is_file():
            paths = [root]
        elif root.is_dir():
            paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        else:
            raise PplEdgeError(f"video dataset: {root} does not exist (expected a video file or a "
                               f"folder of {', '.join(VIDEO_SUFFIXES)} files)")
        if stride < 1 or max_gap < 1:
            raise PplEdgeError(f"stride and max_gap must be >= 1, got {stride} and {max_gap}")
        self.img_size = int(img_size)
        self.split = check_split(split)
        self.flip = default_flip(split, flip)
        self.max_gap = int(max_gap)
        self.videos: list[Path] = []
        self.frame_counts: list[int] = []
        self.items: list[tuple[int, int]] = []  # (video index, frame index)
        for path in paths:
            count = _frame_count(path)
            if count == 0:
                self.skipped += 1
                log.warning("skipping unreadable video %s", path)
                continue
            self.items += [(len(self.videos), f) for f in range(0, count, stride)]
            self.videos.append(path)
            self.frame_counts.append(count)
        if not self.items:
            raise PplEdgeError(f"video dataset: no readable video under {root} (found {len(paths)} "
                               f"candidate files with suffixes {', '.join(VIDEO_SUFFIXES)})")
        self._captures: dict[int, tuple[cv2.VideoCapture, int]] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_captures"] = {}  # captures do not cross process boundaries
        return state

    def read_frame(self, video: int, frame: int):
        """(img_size, img_size, 3) uint8 BGR of one frame (raises UnreadableItem)."""
        cap, position = self._captures.get(video, (None, -1))
        if cap is None:
            cap = cv2.VideoCapture(str(self.videos[video]))
            position = 0
        if position != frame:  # seek only when not reading sequentially
            cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, img = cap.read()
        self._captures[video] = (cap, frame + 1)
        if not ok or img is None:
            self._captures.pop(video)[0].release()
            raise UnreadableItem(f"cannot decode frame {frame} of {self.videos[video]}")
        return resize(img, self.img_size)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        video, frame = self.items[index]
        ref = pick_reference(frame, self.frame_counts[video], self.max_gap)
        item = {"image": image_to_tensor(self.read_frame(video, frame)),
                "reference": image_to_tensor(self.read_frame(video, ref))}
        return random_flip(item, self.flip)

    def close(self) -> None:
        """Release the open captures."""
        for cap, _ in self._captures.values():
            cap.release()
        self._captures.clear()
