"""Read back a folder written by ``ppl-edge data synth`` (``synthdir:PATH``), with its ground truth.

PATH is the written folder, or a folder whose ``train`` / ``train_reg`` / ``test`` sub-folders were
each written by ``ppl-edge data synth`` (then ``split`` picks the sub-folder). Layout and label
format: :mod:`ppl_edge.synth.folder`.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.synth.folder import FORMAT, FORMAT_VERSION
from ppl_edge.train.data.common import (
    SkippingDataset,
    UnreadableItem,
    check_split,
    image_to_tensor,
    keypoints_to_tensor,
    random_flip,
    read_image,
    require_dir,
    rescale_px,
    resize,
)
from ppl_edge.train.data.folder import pick_reference


def _read_meta(folder: Path) -> dict:
    meta_path = folder / "meta.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PplEdgeError(f"synthdir dataset: cannot read {meta_path}: {err}") from err
    if meta.get("format") != FORMAT or int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise PplEdgeError(
            f"synthdir dataset: {meta_path} has format {meta.get('format')!r} "
            f"version {meta.get('format_version')}; expected {FORMAT!r} <= {FORMAT_VERSION}"
        )
    return meta


class SynthDirDataset(SkippingDataset):
    """Images, masks and keypoints written by ``ppl-edge data synth``.

    Args:
        root: the written folder, or a parent with per-split sub-folders.
        img_size: H = W of the returned images (keypoints are rescaled to match).
        split: ``train``, ``train_reg`` or ``test``.
        seed: unused.
        video: return ``reference``, another frame of the same clip (folders written with --video).
        max_gap: largest frame distance of the reference.
        flip: random horizontal flip with left/right labels swapped (default off: the renderer
            already draws both facings).

    Raises:
        PplEdgeError: no ``meta.json`` / ``labels.jsonl``, a foreign format, or video mode on a
            folder of stills.
    """

    def __init__(
        self,
        root: str | Path,
        img_size: int = 128,
        split: str = "train",
        seed: int = 0,
        video: bool = False,
        max_gap: int = 8,
        flip: bool = False,
    ) -> None:
        super().__init__()
        root = require_dir(root, "synthdir dataset")
        self.split = check_split(split)
        self.root = root / split if (root / split / "meta.json").is_file() else root
        if not (self.root / "meta.json").is_file():
            raise PplEdgeError(
                f"synthdir dataset: no meta.json in {root} or {root / split}; expected "
                "a folder written by 'ppl-edge data synth'"
            )
        self.meta = _read_meta(self.root)
        self.img_size = int(img_size)
        self.video, self.max_gap, self.flip = bool(video), int(max_gap), bool(flip)
        if self.video and not self.meta.get("video"):
            raise PplEdgeError(
                f"synthdir dataset: {self.root} holds still images; video=True needs a "
                "folder written with --video"
            )
        try:
            lines = (self.root / "labels.jsonl").read_text(encoding="utf-8").splitlines()
            self.labels = [json.loads(line) for line in lines if line.strip()]
        except (OSError, ValueError) as err:
            raise PplEdgeError(
                f"synthdir dataset: cannot read {self.root / 'labels.jsonl'}: {err}"
            ) from err
        if not self.labels:
            raise PplEdgeError(f"synthdir dataset: {self.root / 'labels.jsonl'} is empty")
        self.joint_names = tuple(self.meta["joint_names"])
        self.edges = tuple(tuple(e) for e in self.meta["edges"])
        self.swap_pairs = tuple(tuple(p) for p in self.meta["swap_pairs"])
        self.stored_size = int(self.meta["size"])
        # frames of each clip, in order: clip -> list of label indices
        self._clips: dict[int, list[int]] = {}
        for i, label in enumerate(self.labels):
            self._clips.setdefault(int(label.get("clip", i)), []).append(i)

    def __len__(self) -> int:
        return len(self.labels)

    def _read(self, index: int) -> dict[str, torch.Tensor]:
        label = self.labels[index]
        image = read_image(self.root / label["image"])
        S, N = self.stored_size, self.img_size
        kp = rescale_px(np.asarray(label["keypoints"], dtype=np.float32), (S, S), (N, N))
        item = {
            "image": image_to_tensor(resize(image, N)),
            "keypoints": keypoints_to_tensor(kp, N, N),
            "visible": torch.tensor(label["visible"], dtype=torch.bool),
        }
        if label.get("mask"):
            mask = cv2.imread(str(self.root / label["mask"]), cv2.IMREAD_GRAYSCALE)
            if mask is None:
                raise UnreadableItem(f"cannot decode mask {self.root / label['mask']}")
            mask = resize(mask, N).astype(np.float32) / 255.0
            item["mask"] = torch.from_numpy(mask.reshape(N, N))[None]
        return item

    def load(self, index: int) -> dict[str, torch.Tensor]:
        item = self._read(index)
        if self.video:
            frames = self._clips[int(self.labels[index].get("clip", index))]
            position = frames.index(index)
            ref = frames[pick_reference(position, len(frames), self.max_gap)]
            item["reference"] = image_to_tensor(
                resize(read_image(self.root / self.labels[ref]["image"]), self.img_size)
            )
        return random_flip(item, self.flip, self.swap_pairs)
