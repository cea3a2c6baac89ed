"""Rigid bones across frames (``w_rigid``): the term, its gradients, and the synthetic world it
relies on (bones keep their length between frames of a clip, other joint pairs do not). Its wiring
into a training step is tested with the appearance term's (``test_appearance.py``)."""

import itertools

import numpy as np
import pytest
import torch

from ppl_edge.synth.render import get_category, item_seed, render_pair
from ppl_edge.train.losses import rigidity_loss

PAIRS = torch.tensor([[0, 1], [0, 2], [1, 2]])


def test_a_rigid_motion_costs_nothing_a_stretched_link_costs_its_change_of_length():
    a = torch.tensor([[[0.0, 0.0], [0.5, 0.0], [0.0, 0.3]]])
    turn = torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # 90 degrees, then a shift
    moved = a @ turn.T + torch.tensor([0.2, -0.1])
    weights = torch.tensor([1.0, 1.0, 1.0])
    assert rigidity_loss(a, moved, weights, PAIRS).item() == pytest.approx(0.0, abs=2e-3)
    stretched = a.clone()
    stretched[0, 1, 0] = 0.8  # link 0-1 from 0.5 to 0.8, link 1-2 from 0.583 to 0.854
    change = [0.3, 0.0, (0.8**2 + 0.09) ** 0.5 - (0.25 + 0.09) ** 0.5]
    # weighted by the links' weights: only link 0-1 counts, then only link 0-2
    assert rigidity_loss(a, stretched, torch.tensor([1.0, 0.0, 0.0]), PAIRS).item() == (
        pytest.approx(change[0], abs=2e-3)
    )
    assert rigidity_loss(a, stretched, torch.tensor([0.0, 1.0, 0.0]), PAIRS).item() == (
        pytest.approx(0.0, abs=2e-3)
    )
    both = rigidity_loss(a, stretched, weights, PAIRS).item()
    assert both == pytest.approx(sum(change) / 3, abs=2e-3)


def test_the_gradients_shorten_the_stretched_link_and_move_the_weight_to_the_rigid_ones():
    a = torch.tensor([[[0.0, 0.0], [0.5, 0.0], [0.0, 0.3]]])
    b = a.clone()
    b[0, 1, 0] = 0.8
    b.requires_grad_(True)
    weights = torch.ones(3, requires_grad=True)
    rigidity_loss(a, b, weights, PAIRS).backward()
    assert b.grad[0, 1, 0].item() > 0  # descending moves keypoint 1 back towards x = 0.5
    assert weights.grad[0].item() > 0 and weights.grad[2].item() > 0  # the stretched links
    assert weights.grad[1].item() < 0  # the one that kept its length


def test_bones_of_the_synthetic_humanoid_keep_their_length_between_frames_of_a_clip():
    cat = get_category("humanoid")
    names = [j.name for j in cat.joints]
    bones = {tuple(sorted((names.index(j.name), names.index(j.parent)))) for j in cat.joints[1:]}
    pairs = list(itertools.combinations(range(len(names)), 2))
    first, second = np.array(pairs).T

    def lengths(sample) -> np.ndarray:
        return np.linalg.norm(sample.keypoints[first] - sample.keypoints[second], axis=1)

    change = np.zeros(len(pairs))
    for i in range(40):
        a, b = render_pair("humanoid", 64, item_seed("humanoid", "train", 0, i), min_gap=4)
        change += np.abs(lengths(a) - lengths(b)) / (lengths(a) + lengths(b) + 1e-6) / 40
    is_bone = np.array([p in bones for p in pairs])
    assert change[is_bone].mean() < 0.03  # foreshortening only
    assert change[~is_bone].mean() > 3 * change[is_bone].mean()
