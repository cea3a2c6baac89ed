"""Helpers shared by the torch datasets: image conversion, splits, and skip-on-corrupt-file reading.

Every dataset item follows docs/contracts.md: ``image`` (3, H, W) float32 RGB in [-1, 1] (official
0.5/0.5 normalisation), optional ``reference``, ``keypoints`` (J, 2) xy in [-1, 1], ``visible`` (J,)
bool and ``mask`` (1, H, W).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from ppl_edge.coords import px_to_norm
from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.fileio import IMAGE_SUFFIXES, list_images  # noqa: F401  (re-exported)
from ppl_edge.manifest import InputSpec
from ppl_edge.preprocess import normalise

log = logging.getLogger(__name__)

SPLITS = ("train", "train_reg", "test")
MAX_CONSECUTIVE_SKIPS = (
    64  # beyond this many unreadable files in a row, the data set itself is broken
)


class UnreadableItem(Exception):
    """An individual file could not be read (corrupt or vanished); the dataset skips it."""


def check_split(split: str) -> str:
    """Return ``split`` or raise PplEdgeError naming the valid splits."""
    check_choice(split, SPLITS, "split")
    return split


def default_flip(split: str, flip: bool | None) -> bool:
    """Random horizontal flips: ``flip`` when given, else on in the train split only (official
    transform)."""
    return (split == "train") if flip is None else bool(flip)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 BGR, or raise UnreadableItem."""
    data = np.fromfile(str(path), dtype=np.uint8) if Path(path).is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data is not None and data.size else None
    if img is None:
        raise UnreadableItem(f"cannot decode image {path}")
    return img


def resize(img: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W, C) to (size, size, C): INTER_AREA when shrinking, bilinear when enlarging."""
    h, w = img.shape[:2]
    if (h, w) == (size, size):
        return img
    interp = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(img, (size, size), interpolation=interp)


def binary_mask(gray: np.ndarray, size: int) -> torch.Tensor:
    """(H, W) uint8 mask (0/1 or 0/255) -> (1, size, size) float32 in {0, 1}."""
    level = 127 if int(gray.max(initial=0)) > 1 else 0
    small = cv2.resize(gray, (size, size), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy((small > level).astype(np.float32))[None]


def read_mask(path: str | Path, size: int) -> torch.Tensor:
    """Read a foreground mask file as (1, size, size) float32 in {0, 1}, or raise UnreadableItem."""
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise UnreadableItem(f"cannot decode mask {path}")
    return binary_mask(gray, size)


MODEL_INPUT = InputSpec()  # the normalisation every model trains with (and its manifest states)


def image_to_tensor(bgr: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 BGR -> (3, H, W) float32 RGB in [-1, 1]: ``(x / 255 - 0.5) / 0.5``."""
    return torch.from_numpy(normalise(np.ascontiguousarray(bgr)[None], MODEL_INPUT)[0])


def rescale_px(
    kpts_px: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]
) -> np.ndarray:
    """Map (..., 2) xy pixels of a (W, H) image to the same points after resizing it to (W', H').

    Uses the pixel-area convention of cv2.resize: ``x' = (x + 0.5) * W' / W - 0.5``.
    """
    scale = np.array(to_size, dtype=np.float32) / np.array(from_size, dtype=np.float32)
    return (np.asarray(kpts_px, dtype=np.float32) + 0.5) * scale - 0.5


def keypoints_to_tensor(kpts_px: np.ndarray, width: int, height: int) -> torch.Tensor:
    """(J, 2) xy pixels -> (J, 2) float32 xy in [-1, 1] (through ``ppl_edge.coords``)."""
    return torch.from_numpy(px_to_norm(kpts_px, width, height).astype(np.float32))


def flow_to_tensor(flow_px: np.ndarray, width: int, height: int) -> torch.Tensor:
    """(H, W, 2) xy flow in pixels -> (2, H, W) float32 in [-1, 1] image units (a displacement:
    scaled as :func:`keypoints_to_tensor` scales positions, without the shift)."""
    scale = np.array([2.0 / (width - 1), 2.0 / (height - 1)], dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray((flow_px * scale).transpose(2, 0, 1)))


def mirror_flow(flow: torch.Tensor) -> torch.Tensor:
    """The flow of horizontally mirrored frames: (..., 2, H, W) xy flow flipped left to right,
    its x negated."""
    return flow.flip(-1) * torch.tensor([-1.0, 1.0], dtype=flow.dtype, device=flow.device).view(
        2, 1, 1
    )


def flip_item(item: dict, swap_pairs=()) -> dict:
    """Mirror an item horizontally: images, masks, flow, x of keypoints, and left/right joint
    labels."""
    out = dict(item)
    for key in ("image", "reference", "near", "mask"):
        if key in out:
            out[key] = torch.flip(out[key], dims=[-1])
    if "flow" in out:
        out["flow"] = mirror_flow(item["flow"])
    if "keypoints" in out:
        kp = out["keypoints"].clone()
        kp[:, 0] = -kp[:, 0]
        vis = out["visible"].clone()
        for a, b in swap_pairs:
            kp[[a, b]] = kp[[b, a]]
            vis[[a, b]] = vis[[b, a]]
        out["keypoints"], out["visible"] = kp, vis
    return out


def random_flip(item: dict, enabled: bool, swap_pairs=()) -> dict:
    """:func:`flip_item` with probability 0.5 when ``enabled`` (one draw from torch's RNG)."""
    if enabled and bool(torch.rand(()) < 0.5):
        return flip_item(item, swap_pairs)
    return item


class SkippingDataset(torch.utils.data.Dataset):
    """Base class: ``load(index)`` may raise UnreadableItem; the item is then skipped and counted.

    A corrupt file never stops an epoch: the next readable item is returned instead, ``skipped``
    counts the skips (per worker process when a DataLoader uses workers) and each skip is logged.
    """

    def __init__(self) -> None:
        self.skipped = 0

    def _set_root_and_split(
        self, root: str | Path, what: str, img_size: int, split: str, flip: bool | None
    ) -> None:
        """The checks every dataset read from a root folder starts with: sets ``root`` (an existing
        folder, :func:`require_dir`), ``img_size``, ``split`` (:func:`check_split`) and ``flip``
        (:func:`default_flip`)."""
        self.root = require_dir(root, what)
        self.img_size = int(img_size)
        self.split = check_split(split)
        self.flip = default_flip(split, flip)

    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> dict:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} items")
        for attempt in range(MAX_CONSECUTIVE_SKIPS):
            try:
                return self.load((index + attempt) % n)
            except UnreadableItem as err:
                self.skipped += 1
                log.warning(
                    "skipping unreadable item %d (%d skipped so far): %s",
                    (index + attempt) % n,
                    self.skipped,
                    err,
                )
        raise PplEdgeError(
            f"{MAX_CONSECUTIVE_SKIPS} unreadable items in a row from {type(self).__name__} at "
            f"index {index}; expected readable files: check the dataset root"
        )


def require_dir(path: str | Path, what: str) -> Path:
    """Return ``path`` as a Path or raise PplEdgeError saying which layout was expected."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise PplEdgeError(f"{what}: {path} is not a folder (expected the dataset root)")
    return path
