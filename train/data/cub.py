"""CUB-200-2011 birds as AutoLink's ``cub.h5`` (``cub:PATH``, PATH = the file or its folder).

Keys ``{train,val,test,test001,test002,test003}_{img,kp,vis}`` (ppl_official_code.md §7): ``img``
uint8 (n, 3, 128, 128) RGB, ``kp`` float32 (n, 15, 2) as (row, col) in [0, 1] of the crop, ``vis``
uint8 (n, 15). Splits: ``train`` and ``train_reg`` read ``train_*``, ``test`` reads ``test_*``;
``subset="test003"`` (CUB-003, etc.) overrides the key prefix. No flips, as in the official code.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from ppl_edge.errors import PplEdgeError, check_choice, require
from ppl_edge.train.data.common import (
    SkippingDataset,
    UnreadableItem,
    check_split,
    image_to_tensor,
)

NUM_JOINTS = 15
SUBSETS = ("train", "val", "test", "test001", "test002", "test003")
DEFAULT_SUBSET = {"train": "train", "train_reg": "train", "test": "test"}
# CUB part order: back, beak, belly, breast, crown, forehead, left eye, left leg, left wing, nape,
# right eye, right leg, right wing, tail, throat. Left/right pairs for anyone flipping the crops:
FLIP_PAIRS = ((6, 10), (7, 11), (8, 12))
EDGES = (
    (1, 5),
    (5, 4),
    (4, 9),
    (9, 0),
    (0, 13),
    (1, 14),
    (14, 3),
    (3, 2),
    (2, 7),
    (2, 11),
    (5, 6),
    (5, 10),
    (0, 8),
    (0, 12),
)


def rowcol01_to_xy_norm(kp: np.ndarray) -> np.ndarray:
    """The one conversion of CUB ground truth: (..., 2) (row, col) in [0, 1] -> (x, y) in [-1, 1].

    Evaluation maps back with ``p * 0.5 + 0.5`` (docs/contracts.md), so [0, 1] units are preserved.
    """
    # DEVIATION(official): the official code keeps CUB labels as (row, col); we use (x, y)
    # everywhere.
    return np.ascontiguousarray(kp[..., ::-1], dtype=np.float32) * 2.0 - 1.0


class CUBDataset(SkippingDataset):
    """Bird crops with 15 ground-truth parts and their visibility.

    Args:
        root: ``cub.h5`` or the folder holding it.
        img_size: H = W of the returned images (stored crops are 128 x 128).
        split: ``train``, ``train_reg`` or ``test``.
        seed: unused.
        subset: h5 key prefix overriding the split's default (one of :data:`SUBSETS`).

    Raises:
        PplEdgeError: the file is missing, is not HDF5, or lacks the subset's keys.
    """

    def __init__(
        self,
        root: str | Path,
        img_size: int = 128,
        split: str = "train",
        seed: int = 0,
        subset: str | None = None,
    ) -> None:
        super().__init__()
        self.h5py = require("h5py", "train", "reading CUB")
        path = Path(root).expanduser()
        self.path = path / "cub.h5" if path.is_dir() else path
        self.img_size = int(img_size)
        self.split = check_split(split)
        self.subset = subset or DEFAULT_SUBSET[split]
        check_choice(self.subset, SUBSETS, "CUB subset")
        self.edges = EDGES
        if not self.path.is_file():
            raise PplEdgeError(
                f"cub dataset: {self.path} does not exist (expected AutoLink's cub.h5 "
                "or the folder holding it)"
            )
        keys = [f"{self.subset}_{k}" for k in ("img", "kp", "vis")]
        try:
            with self.h5py.File(self.path, "r") as h5:
                missing = [k for k in keys if k not in h5]
                shapes = {k: h5[k].shape for k in keys if k in h5}
        except OSError as err:
            raise PplEdgeError(f"cub dataset: cannot open {self.path} as HDF5: {err}") from err
        if missing:
            raise PplEdgeError(
                f"cub dataset: {self.path} lacks {missing}; expected keys "
                f"{{{','.join(SUBSETS)}}}_{{img,kp,vis}}"
            )
        n = shapes[keys[0]][0]
        if shapes[keys[0]][1:2] != (3,) or shapes[keys[1]] != (n, NUM_JOINTS, 2):
            raise PplEdgeError(
                f"cub dataset: unexpected shapes {shapes} in {self.path}; expected "
                f"img (n, 3, H, W), kp (n, 15, 2), vis (n, 15)"
            )
        self.length = int(n)
        self._h5 = None

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_h5"] = None  # HDF5 handles do not cross process boundaries; reopened per worker
        state["h5py"] = None
        return state

    def _file(self):
        if self._h5 is None:
            self.h5py = self.h5py or require("h5py", "train", "reading CUB")
            self._h5 = self.h5py.File(self.path, "r")
        return self._h5

    def load(self, index: int) -> dict[str, torch.Tensor]:
        h5 = self._file()
        try:
            img = np.asarray(h5[f"{self.subset}_img"][index], dtype=np.uint8)  # (3, H, W) RGB
            kp = np.asarray(h5[f"{self.subset}_kp"][index], dtype=np.float32)  # (15, 2) row, col
            vis = np.asarray(h5[f"{self.subset}_vis"][index])
        except (OSError, KeyError) as err:
            raise UnreadableItem(f"cannot read item {index} of {self.path}: {err}") from err
        rgb = img.transpose(1, 2, 0)
        if rgb.shape[0] != self.img_size:
            rgb = cv2.resize(
                rgb,
                (self.img_size, self.img_size),
                interpolation=cv2.INTER_AREA if rgb.shape[0] > self.img_size else cv2.INTER_LINEAR,
            )
        image = image_to_tensor(np.ascontiguousarray(rgb[..., ::-1]))  # RGB -> BGR -> model
        return {
            "image": image,
            "keypoints": torch.from_numpy(rowcol01_to_xy_norm(kp)),
            "visible": torch.from_numpy(vis.astype(bool)),
        }

    def close(self) -> None:
        """Close the HDF5 file."""
        if self._h5 is not None:
            self._h5.close()
            self._h5 = None
