"""Semi-supervised training (seed 004, MirrorNet §3): a supervised keypoint term on a small
labelled share of the training items, beside the unchanged unsupervised objective.

The keypoints need names to be supervised, so this needs a template prior
(``model.prior=template:<name>``): keypoint k is the template's joint k, matched by name to the
dataset's ground-truth joints (``synthetic:<category>``, ``synthdir:PATH`` and labelled videos
name theirs). Which items are labelled is a pure function of (seed, item index), so a run and its
resume see the same labels; the rest of the items are used without their labels. A flipped image
gets its labels mirrored with the template's left / right swap.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ppl_edge.errors import PplEdgeError
from ppl_edge.templates import Template


def labelled_indices(length: int, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of the labelled items: round(fraction · length) of them (at least one)."""
    count = min(length, max(1, int(round(fraction * length))))
    rng = np.random.default_rng([seed, 0x5E31])
    return np.sort(rng.choice(length, size=count, replace=False))


def joint_index(template: Template, dataset_names) -> list[int]:
    """For each template joint, the index of the dataset joint of the same name.

    Raises:
        PplEdgeError: a template joint the dataset does not label.
    """
    names = list(dataset_names or ())
    missing = [n for n in template.names if n not in names]
    if missing:
        raise PplEdgeError(
            f"the template {template.name!r} names joints the dataset does not label "
            f"({', '.join(missing[:4])}); its joints are {names[:6]}..."
        )
    return [names.index(n) for n in template.names]


class LabelledShare(torch.utils.data.Dataset):
    """A dataset whose items carry ``sup_joints`` (N, 2) in [-1, 1] (template order) and
    ``sup_weight`` (N,) (1 on labelled joints of a labelled item, else 0)."""

    def __init__(self, dataset, template: Template, fraction: float, seed: int):
        if not 0 < fraction <= 1:
            raise PplEdgeError(f"label_fraction must be in (0, 1], got {fraction}")
        self.dataset = dataset
        self.index = joint_index(template, getattr(dataset, "joint_names", None))
        self.labelled = set(labelled_indices(len(dataset), fraction, seed).tolist())
        self.count = len(template.names)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name):  # the wrapped dataset's attributes (joint_names, skipped, ...)
        if name in ("dataset", "index", "labelled", "count"):
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        joints = torch.zeros(self.count, 2)
        weight = torch.zeros(self.count)
        if i % len(self) in self.labelled and "keypoints" in item:
            joints = item["keypoints"][self.index].float()
            weight = torch.ones(self.count)  # rendered / annotated positions, occluded or not
        item["sup_joints"], item["sup_weight"] = joints, weight
        return item


def mirror_labels(joints: torch.Tensor, flipped: torch.Tensor, order: list[int]) -> torch.Tensor:
    """Labels of horizontally flipped images: x -> -x and left / right swapped.

    Args:
        joints: (B, N, 2) in [-1, 1]; flipped: (B,) bool; order: the template's swap permutation.
    """
    mirrored = joints[:, order] * torch.tensor([-1.0, 1.0], device=joints.device)
    return torch.where(flipped.view(-1, 1, 1), mirrored, joints)


def supervised_loss(
    kpts: torch.Tensor, joints: torch.Tensor, weight: torch.Tensor, swap_order=None
) -> torch.Tensor:
    """Mean squared error over the labelled joints (0 when the batch has none).

    Args:
        kpts: (B, N, 2) T'; joints: (B, N, 2) labels in template order; weight: (B, N).
        swap_order: the template's left / right permutation: each image is then scored against
            its labels or the labels with left and right swapped, whichever is nearer (sides
            matched per image, as the evaluation's swap loop matches them), not by name.
    """
    err = F.mse_loss(kpts.float(), joints.float(), reduction="none").sum(-1)  # (B, N)
    if swap_order is not None:
        swapped = F.mse_loss(kpts.float(), joints[:, swap_order].float(), reduction="none").sum(-1)
        nearer = (swapped * weight).sum(-1) < (err * weight).sum(-1)  # (B,)
        err = torch.where(nearer[:, None], swapped, err)
    return (err * weight).sum() / weight.sum().clamp_min(1.0)
