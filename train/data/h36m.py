"""Human3.6M in the processed layout of Zhang et al. 2018, as read by AutoLink and PPL
(``h36m:PATH``).

Layout (ppl_official_code.md §7)::

    PATH/S{1,5,6,7,8,9,11}/WithBackground/<Action k.camera>/<frame>.jpg
    PATH/S*/Landmarks/<Action k.camera>/<frame>.mat       # keypoints_2d: (32, 2) in [0, 1]
    PATH/S*/BackgroudMask/<Action k.camera>/<frame>.png   # optional (sic)

Splits (AutoLink protocol, §5.2): ``train`` and ``train_reg`` read subjects S1, S5, S6, S7, S8, S9,
``test`` reads S11; only the six actions in :data:`ACTIONS`. ``keypoints_2d`` is taken as (x, y) in
[0, 1] of the image; the regression protocol does not depend on the order.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ppl_edge.errors import PplEdgeError, require
from ppl_edge.train.data.common import (
    SkippingDataset,
    UnreadableItem,
    image_to_tensor,
    random_flip,
    read_image,
    read_mask,
    resize,
)

log = logging.getLogger(__name__)

SUBJECTS = {"train": (1, 5, 6, 7, 8, 9), "train_reg": (1, 5, 6, 7, 8, 9), "test": (11,)}
ACTIONS = ("Directions", "Discussion", "Posing", "Waiting", "Greeting", "Walking")
NUM_JOINTS = 32
# Parent of each of the 32 joints in the H36M skeleton (-1: root), for drawing ground truth.
PARENTS = (
    -1,
    0,
    1,
    2,
    3,
    4,
    0,
    6,
    7,
    8,
    9,
    0,
    11,
    12,
    13,
    14,
    12,
    16,
    17,
    18,
    19,
    20,
    19,
    22,
    12,
    24,
    25,
    26,
    27,
    28,
    27,
    30,
)
EDGES = tuple((p, i) for i, p in enumerate(PARENTS) if p >= 0)
# Left/right joint pairs for flipping labels. DEVIATION(official): AutoLink's h36m.py lists (21,
# 28), an evident typo for (21, 29); a flip needs a true permutation. The evaluation keeps the
# verbatim list for comparable numbers (train/evaluate.py), so this dataset exposes ``flip_pairs``
# only.
FLIP_PAIRS = (
    (1, 6),
    (2, 7),
    (3, 8),
    (4, 9),
    (5, 10),
    (17, 25),
    (18, 26),
    (19, 27),
    (20, 28),
    (21, 29),
    (22, 30),
    (23, 31),
)


class H36MDataset(SkippingDataset):
    """Human3.6M frames with 32 ground-truth joints (and foreground masks when present).

    Args:
        root: the folder holding ``S1`` ... ``S11``.
        img_size: H = W of the returned images.
        split: ``train`` (random flips by default), ``train_reg`` or ``test``.
        seed: unused.
        flip: random horizontal flip (left/right joints swapped); default True in the train split.
        use_masks: return ``mask`` from ``BackgroudMask`` (when the folders exist).

    Every item has the same keys: labels when every subject has ``Landmarks`` (required for
    ``train_reg``/``test``), masks when every subject has ``BackgroudMask``; an item whose label or
    mask file is missing or corrupt is skipped and counted.

    Raises:
        PplEdgeError: the root lacks the subjects of the split, or (``train_reg``/``test``) the
            ``Landmarks`` folders.
    """

    def __init__(
        self,
        root: str | Path,
        img_size: int = 128,
        split: str = "train",
        seed: int = 0,
        flip: bool | None = None,
        use_masks: bool = True,
    ) -> None:
        super().__init__()
        self._set_root_and_split(root, "h36m dataset", img_size, split, flip)
        self.flip_pairs, self.edges = FLIP_PAIRS, EDGES
        self.samples: list[tuple[Path, str, str]] = []  # (subject dir, action folder, frame stem)
        present = [s for s in SUBJECTS[split] if (self.root / f"S{s}" / "WithBackground").is_dir()]
        if not present:
            raise PplEdgeError(
                f"h36m dataset: no S<n>/WithBackground folder for subjects "
                f"{list(SUBJECTS[split])} of the {split} split under {self.root}; expected the "
                "processed Human3.6M layout "
                "S<n>/WithBackground/<Action k.cam>/<frame>.jpg"
            )
        missing = sorted(set(SUBJECTS[split]) - set(present))
        if missing:
            log.warning(
                "h36m %s split: subjects %s are missing under %s", split, missing, self.root
            )
        for subject in present:
            subject_dir = self.root / f"S{subject}"
            images = subject_dir / "WithBackground"
            if split != "train" and not (subject_dir / "Landmarks").is_dir():
                raise PplEdgeError(
                    f"h36m dataset: {subject_dir / 'Landmarks'} is missing; the "
                    f"{split} split needs the landmark .mat files"
                )
            for folder in sorted(p.name for p in images.iterdir() if p.is_dir()):
                if folder.startswith(ACTIONS):
                    frames = sorted(f.stem for f in (images / folder).glob("*.jpg"))
                    self.samples += [(subject_dir, folder, f) for f in frames]
        if not self.samples:
            raise PplEdgeError(
                f"h36m dataset: no frames of the actions {list(ACTIONS)} under "
                f"{self.root} for the {split} split"
            )
        subject_dirs = [self.root / f"S{s}" for s in present]
        self.has_labels = all((d / "Landmarks").is_dir() for d in subject_dirs)
        self.has_masks = use_masks and all((d / "BackgroudMask").is_dir() for d in subject_dirs)
        self._loadmat = require("scipy.io", "train", "reading Human3.6M landmarks").loadmat

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> dict[str, torch.Tensor]:
        subject_dir, folder, frame = self.samples[index]
        img = read_image(subject_dir / "WithBackground" / folder / f"{frame}.jpg")
        item = {"image": image_to_tensor(resize(img, self.img_size))}
        mat = subject_dir / "Landmarks" / folder / f"{frame}.mat"
        if self.has_labels:
            try:
                kp = np.asarray(self._loadmat(str(mat))["keypoints_2d"], dtype=np.float32)
            except Exception as err:  # scipy raises OSError, ValueError, MatReadError, ...
                raise UnreadableItem(f"cannot read keypoints_2d from {mat}: {err}") from err
            if kp.shape != (NUM_JOINTS, 2):
                raise UnreadableItem(f"{mat}: keypoints_2d has shape {kp.shape}, expected (32, 2)")
            item["keypoints"] = torch.from_numpy(kp * 2.0 - 1.0)  # [0, 1] image units -> [-1, 1]
            item["visible"] = torch.ones(NUM_JOINTS, dtype=torch.bool)
        mask_path = subject_dir / "BackgroudMask" / folder / f"{frame}.png"
        if self.has_masks:
            item["mask"] = read_mask(mask_path, self.img_size)
        return random_flip(item, self.flip, self.flip_pairs)
