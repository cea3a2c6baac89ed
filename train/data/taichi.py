"""Tai-Chi-HD in the motion-cosegmentation release layout, as read by AutoLink (``taichi:PATH``).

Layout (ppl_official_code.md §7)::

    PATH/train/<video>/<frame>.png                      # training frames (no labels)
    PATH/eval_images/taichi-256/{train,test}/<file>     # evaluation images, 256 x 256
    PATH/landmark/taichi_{train,test}_gt.pkl            # pandas frame: file_name, value (18, 2)
    PATH/taichi-test-masks/<file>                       # optional foreground masks of the test set

``train`` reads ``train/`` (optionally as clips, ``video=True``); ``train_reg`` and ``test`` read
the evaluation images with their landmarks. ``value`` holds (x, y) pixels at 256 x 256, -1 where
missing.

Security: the landmark tables are Python pickles (the official format). Unpickling runs code, so
only open ``.pkl`` files from a trusted source, e.g. the official release.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ppl_edge.coords import px_to_norm
from ppl_edge.errors import PplEdgeError, require
from ppl_edge.train.data.common import (
    SkippingDataset,
    image_to_tensor,
    random_flip,
    read_image,
    read_mask,
    resize,
)
from ppl_edge.train.data.folder import ImageFolderDataset

NUM_JOINTS = 18
LABEL_SIZE = 256  # landmark pixels refer to the 256 x 256 evaluation images
# Joint order taken to be OpenPose's COCO-18 (nose, neck, right arm, left arm, right leg, left leg,
# eyes, ears); the release does not name its joints. Only drawing and flip-invariant scoring use it.
FLIP_PAIRS = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))
EDGES = (
    (0, 1),
    (1, 2),
    (2, 3),
    (3, 4),
    (1, 5),
    (5, 6),
    (6, 7),
    (1, 8),
    (8, 9),
    (9, 10),
    (1, 11),
    (11, 12),
    (12, 13),
    (0, 14),
    (14, 16),
    (0, 15),
    (15, 17),
)


def read_landmarks(path: Path) -> list[tuple[str, np.ndarray]]:
    """Read a ``taichi_*_gt.pkl`` table: [(file_name, (18, 2) float32 xy pixels at 256)].

    The file is a pickle: open only trusted files (see the module docstring).
    """
    pandas = require("pandas", "train", "reading Tai-Chi landmarks")
    try:
        frame = pandas.read_pickle(path)
        rows = list(zip(frame["file_name"], frame["value"]))
    except Exception as err:  # unpickling raises many types
        raise PplEdgeError(
            f"taichi dataset: cannot read {path} as a pandas frame with columns "
            f"file_name and value: {err}"
        ) from err
    return [
        (str(name), np.asarray(value, dtype=np.float32).reshape(NUM_JOINTS, 2))
        for name, value in rows
    ]


class TaichiDataset(SkippingDataset):
    """Tai-Chi-HD frames; ``train_reg``/``test`` with 18 ground-truth joints.

    Args:
        root: the release folder (see the module docstring).
        img_size: H = W of the returned images.
        split: ``train``, ``train_reg`` or ``test``.
        seed: unused.
        flip: random horizontal flip; default True in the train split (official transform).
        video: in the train split, return ``reference`` from the same video folder.
        max_gap: largest frame distance of the reference in video mode.

    Raises:
        PplEdgeError: the folders or landmark tables of the split are missing.
    """

    def __init__(
        self,
        root: str | Path,
        img_size: int = 128,
        split: str = "train",
        seed: int = 0,
        flip: bool | None = None,
        video: bool = False,
        max_gap: int = 8,
    ) -> None:
        super().__init__()
        self._set_root_and_split(root, "taichi dataset", img_size, split, flip)
        self.flip_pairs, self.edges = FLIP_PAIRS, EDGES
        self.frames = None
        if split == "train":
            if not (self.root / "train").is_dir():
                raise PplEdgeError(
                    f"taichi dataset: {self.root / 'train'} is missing; expected "
                    f"train/<video>/<frames> under {self.root}"
                )
            self.frames = ImageFolderDataset(
                self.root / "train", img_size, split, seed, self.flip, video, max_gap
            )
            return
        part = "train" if split == "train_reg" else "test"
        self.image_dir = self.root / "eval_images" / "taichi-256" / part
        table = self.root / "landmark" / f"taichi_{part}_gt.pkl"
        for needed in (self.image_dir, table):
            if not needed.exists():
                raise PplEdgeError(
                    f"taichi dataset: {needed} is missing; the {split} split needs "
                    f"eval_images/taichi-256/{part}/ and landmark/taichi_{part}_gt.pkl"
                )
        self.labels = read_landmarks(table)
        masks = self.root / "taichi-test-masks"
        self.mask_dir = masks if part == "test" and masks.is_dir() else None  # every item, or none

    @property
    def skipped(self) -> int:
        return self.frames.skipped if self.frames is not None else self._skipped

    @skipped.setter
    def skipped(self, value: int) -> None:
        self._skipped = value

    def __len__(self) -> int:
        return len(self.frames) if self.frames is not None else len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.frames is not None:
            return self.frames[index]
        return super().__getitem__(index)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        name, kp_px = self.labels[index]
        img = read_image(self.image_dir / name)
        missing = np.any(kp_px < 0, axis=1)  # -1 marks a missing coordinate
        kp = px_to_norm(kp_px, LABEL_SIZE, LABEL_SIZE)  # pixels at 256 -> [-1, 1]
        item = {
            "image": image_to_tensor(resize(img, self.img_size)),
            "keypoints": torch.from_numpy(kp.astype(np.float32)),
            "visible": torch.from_numpy(~missing),
        }
        if self.mask_dir is not None:
            item["mask"] = read_mask(self.mask_dir / name, self.img_size)
        return random_flip(item, self.flip, self.flip_pairs)
