"""Torch dataset over the synthetic renderer: images generated on the fly, deterministic by
index."""

from __future__ import annotations

import numpy as np
import torch

from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.flow import dense_flow
from ppl_edge.synth.render import (
    SCENES,
    SUBJECTS,
    get_category,
    item_seed,
    render_pair,
    render_pair_near,
    render_sample,
)
from ppl_edge.train.data.common import (
    check_split,
    flow_to_tensor,
    image_to_tensor,
    keypoints_to_tensor,
)

DEFAULT_LENGTH = {"train": 20000, "train_reg": 2000, "test": 1000}


class SyntheticDataset(torch.utils.data.Dataset):
    """Rendered figures with ground truth (``synthetic:<category>``).

    Item ``i`` of a dataset with a given (seed, split) is always the same image; the three splits
    use disjoint random streams (the split is part of the seed), so no image is shared between them.

    Args:
        category: ``humanoid``, ``quadruped`` or ``bird``.
        img_size: H = W in pixels.
        split: ``train``, ``train_reg`` or ``test``.
        seed: base seed.
        length: items per epoch (default 20000 / 2000 / 1000 for the three splits).
        video: also return ``reference``, another frame of the same clip (same background).
        clip_length: frames per clip in video mode.
        max_gap: largest frame distance between ``image`` and ``reference``.
        min_gap: smallest frame distance between them (a reference 1 frame away shows nearly the
            same pose, so the decoder could copy it instead of reading the keypoints).
        subjects, scenes: size of the cast and of the set of backgrounds (0: new for every item);
            see :mod:`ppl_edge.synth.render`.
        fit: in video mode, what is placed to fill the crop: the whole clip (``clip``, so each
            frame's figure is smaller than a still's) or the two frames (``pair``, figures the
            size of the stills the evaluation scores); see :func:`render_pair`.
        flow_gap: in video mode, > 0 also gives ``near``, the frame ``flow_gap`` frames from
            ``image``, and ``flow``, the optical flow from ``image`` to it (for ``w_flow``).

    Items:
        image (3, H, W) float32 RGB in [-1, 1]; keypoints (J, 2) float32 xy in [-1, 1] (beyond
        it for joints outside the frame); visible (J,) bool, False when out of frame or occluded;
        mask (1, H, W) float32; reference (3, H, W) in video mode; near (3, H, W) and flow
        (2, H, W) float32 xy in [-1, 1] units (:func:`ppl_edge.flow.dense_flow`) with ``flow_gap``.
    """

    def __init__(
        self,
        category: str = "humanoid",
        img_size: int = 64,
        split: str = "train",
        seed: int = 0,
        length: int | None = None,
        video: bool = False,
        clip_length: int = 32,
        max_gap: int = 16,
        min_gap: int = 4,
        subjects: int = SUBJECTS,
        scenes: int = SCENES,
        fit: str = "clip",
        flow_gap: float = 0.0,
    ) -> None:
        self.category = get_category(category)
        self.img_size = int(img_size)
        self.split = check_split(split)
        self.seed = int(seed)
        self.length = int(DEFAULT_LENGTH[split] if length is None else length)
        self.video = bool(video)
        self.clip_length = int(clip_length)
        self.max_gap = int(max_gap)
        self.min_gap = int(min_gap)
        self.fit = check_choice(fit, ("clip", "pair"), "fit")
        self.flow_gap = float(flow_gap)
        if self.flow_gap < 0 or (self.flow_gap > 0 and not self.video):
            raise PplEdgeError(
                f"flow_gap needs video=true and a gap > 0 frames, got flow_gap={flow_gap} "
                f"with video={self.video}"
            )
        self.world = {"subjects": int(subjects), "scenes": int(scenes)}
        self.skipped = 0  # never skips; kept for the common dataset interface
        self.joint_names = self.category.joint_names
        self.edges = self.category.edges
        self.swap_pairs = self.category.swap_pairs

    def __len__(self) -> int:
        return self.length

    def item_seed(self, index: int) -> list[int]:
        """The seed entropy of item ``index``: (seed, split, category, index)."""
        return item_seed(self.category.name, self.split, self.seed, index)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        index %= self.length
        size = self.img_size
        near = None
        if self.video:
            args = (self.clip_length, self.max_gap, self.min_gap, self.fit)
            seed = self.item_seed(index)
            if self.flow_gap > 0:
                sample, ref, near = render_pair_near(
                    self.category.name, size, seed, *args, near_gap=self.flow_gap, **self.world
                )
            else:
                sample, ref = render_pair(self.category.name, size, seed, *args, **self.world)
        else:
            sample = render_sample(self.category.name, size, self.item_seed(index), **self.world)
            ref = None
        item = {
            "image": image_to_tensor(sample.image),
            "keypoints": keypoints_to_tensor(sample.keypoints, size, size),
            "visible": torch.from_numpy(sample.visible.copy()),
            "mask": torch.from_numpy(np.ascontiguousarray(sample.mask))[None],
        }
        if ref is not None:
            item["reference"] = image_to_tensor(ref.image)
        if near is not None:
            item["near"] = image_to_tensor(near.image)
            item["flow"] = flow_to_tensor(dense_flow(sample.image, near.image), size, size)
        return item
