"""Unlabelled image folders (``folder:PATH``): any nested folder of jpg / png / bmp / webp files.

This is the official code's ``ImageFolder`` datasets (flowers, hands, horses, Taichi train), with
the same transform: resize to ``img_size`` x ``img_size``, random horizontal flip in the train
split, 0.5/0.5 normalisation. With ``video=True`` each sub-folder is treated as one clip of frames
sorted by name, and ``reference`` is another frame of the same folder at most ``max_gap`` frames
away.
With ``masks=MASK_ROOT`` every image ``ROOT/a/b.jpg`` gets the foreground mask ``MASK_ROOT/a/b.png``
(0/1 or 0/255 grey; the weak supervision of mask-supervised training).
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import IMAGE_SUFFIXES
from ppl_edge.train.data.common import (
    SkippingDataset,
    image_to_tensor,
    list_images,
    random_flip,
    read_image,
    read_mask,
    require_dir,
    resize,
)

log = logging.getLogger(__name__)


def pick_reference(position: int, count: int, max_gap: int, generator=None) -> int:
    """A random other position in ``[0, count)`` within ``max_gap`` of ``position`` (itself if
    alone)."""
    lo, hi = max(0, position - max_gap), min(count - 1, position + max_gap)
    if hi == lo:
        return position
    choice = int(
        torch.randint(lo, hi, (), generator=generator)
    )  # hi - lo candidates besides itself
    return choice if choice < position else choice + 1


class ImageFolderDataset(SkippingDataset):
    """Images under a folder, recursively (``folder:PATH``).

    Args:
        root: the folder.
        img_size: H = W of the returned images.
        split: ``train`` (random flips by default), ``train_reg`` or ``test``; every split reads all
            images, since the folder has no labels.
        seed: unused (augmentation draws from torch's RNG, which DataLoader seeds per worker).
        flip: random horizontal flip; default True in the train split only (official transform).
        video: return ``reference`` from the same sub-folder (frames sorted by file name).
        max_gap: largest distance, in frames, between ``image`` and ``reference``.
        masks: a folder of foreground masks mirroring ``root``: ``<masks>/<relative path>.png``
            per image, returned as ``mask`` (1, H, W) in {0, 1}; an image whose mask is missing or
            unreadable is skipped and counted, like an unreadable image.

    Raises:
        PplEdgeError: the folder (or the mask folder) does not exist, or holds no images.
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
        masks: str | Path | None = None,
    ) -> None:
        super().__init__()
        self._set_root_and_split(root, "folder dataset", img_size, split, flip)
        if (self.root / "meta.json").is_file() and (self.root / "images").is_dir():
            # a folder written by `ppl-edge data synth`: read its images, not its masks
            log.info("%s holds synthetic data: reading %s only", self.root, self.root / "images")
            self.root = self.root / "images"
        self.video = bool(video)
        self.max_gap = int(max_gap)
        self.mask_root = require_dir(masks, "folder dataset masks") if masks is not None else None
        self.files = list_images(self.root)
        if not self.files:
            raise PplEdgeError(
                f"no images under {self.root}; expected files ending in {', '.join(IMAGE_SUFFIXES)}"
            )
        # clip structure: the first index and the length of each file's folder run
        self._clip_start: list[int] = []
        self._clip_len: list[int] = []
        first = 0
        for _, group in itertools.groupby(self.files, key=lambda p: p.parent):
            count = len(list(group))
            self._clip_start += [first] * count
            self._clip_len += [count] * count
            first += count

    def __len__(self) -> int:
        return len(self.files)

    def read(self, index: int):
        """(img_size, img_size, 3) uint8 BGR of file ``index`` (raises UnreadableItem)."""
        return resize(read_image(self.files[index]), self.img_size)

    def mask_path(self, index: int) -> Path:
        """The mask file of image ``index``: same relative path under ``masks``, suffix .png."""
        return (self.mask_root / self.files[index].relative_to(self.root)).with_suffix(".png")

    def load(self, index: int) -> dict[str, torch.Tensor]:
        item = {"image": image_to_tensor(self.read(index))}
        if self.mask_root is not None:
            item["mask"] = read_mask(self.mask_path(index), self.img_size)
        if self.video:
            start, count = self._clip_start[index], self._clip_len[index]
            ref = start + pick_reference(index - start, count, self.max_gap)
            item["reference"] = image_to_tensor(self.read(ref))
        return random_flip(item, self.flip)
