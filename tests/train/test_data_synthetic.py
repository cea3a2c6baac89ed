"""The synthetic renderer and its torch dataset: determinism, shapes, ranges, visibility, video
pairs."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.synth import render as synthetic
from ppl_edge.synth.skeletons import CATEGORIES


@pytest.mark.parametrize("category", sorted(CATEGORIES))
def test_render_sample_is_deterministic_and_well_formed(category):
    a = synthetic.render_sample(category, 48, seed=7)
    b = synthetic.render_sample(category, 48, seed=7)
    c = synthetic.render_sample(category, 48, seed=8)
    J = len(CATEGORIES[category].joints)
    assert a.image.shape == (48, 48, 3) and a.image.dtype == np.uint8
    assert a.keypoints.shape == (J, 2) and a.keypoints.dtype == np.float32
    assert a.visible.shape == (J,) and a.visible.dtype == bool
    assert a.mask.shape == (48, 48) and 0.0 <= a.mask.min() and a.mask.max() <= 1.0
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert np.abs(a.image.astype(int) - c.image.astype(int)).mean() > 5


def test_category_constants():
    assert len(synthetic.HUMANOID_JOINTS) >= 16
    for cat in CATEGORIES.values():
        names = cat.joint_names
        assert len(cat.edges) == len(names) - 1  # a tree
        for left, right in cat.swap_pairs:
            assert names[left].startswith("l_") and names[right] == "r_" + names[left][2:]
    assert (
        synthetic.HUMANOID_JOINTS.index("l_wrist"),
        synthetic.HUMANOID_JOINTS.index("r_wrist"),
    ) in synthetic.HUMANOID_SWAP_PAIRS


def test_figure_fills_the_crop_and_keypoints_lie_on_the_figure():
    fills, on_figure = [], []
    for seed in range(40):
        s = synthetic.render_sample("humanoid", 64, seed)
        ys, xs = np.nonzero(s.mask > 0.5)
        fills.append(max(np.ptp(ys), np.ptp(xs)) / 64)
        px = np.round(s.keypoints[s.visible]).astype(int)
        on_figure.append(s.mask[px[:, 1], px[:, 0]].mean())
    assert 0.4 < np.median(fills) < 0.95
    assert min(fills) > 0.3
    assert np.mean(on_figure) > 0.9  # visible joints are drawn where the figure is


def test_visibility_marks_out_of_frame_and_occluded_joints():
    out_of_frame = occluded = 0
    for seed in range(150):
        s = synthetic.render_sample("quadruped", 32, seed)
        inside = np.all((s.keypoints >= -0.5) & (s.keypoints <= 31.5), axis=1)
        assert not np.any(s.visible & ~inside)
        out_of_frame += int(np.sum(~inside))
        occluded += int(np.sum(inside & ~s.visible))
    assert out_of_frame > 0 and occluded > 0


def test_render_clip_shares_background_and_moves_smoothly():
    frames, kpts, vis = synthetic.render_clip("humanoid", 6, 48, seed=3)
    assert frames.shape == (6, 48, 48, 3) and kpts.shape[:2] == (6, 19) and vis.shape == (6, 19)
    step = np.linalg.norm(np.diff(kpts, axis=0), axis=-1)  # (5, J) pixels per frame
    assert step.mean() > 0.05 and step.max() < 48 * 0.25
    corner = frames[:, :4, :4].astype(int)  # background corners change little between frames
    again, _, _ = synthetic.render_clip("humanoid", 6, 48, seed=3)
    np.testing.assert_array_equal(frames, again)
    assert np.abs(corner - corner[0]).mean() < 12


def test_render_pair_same_background_different_pose():
    a, b = synthetic.render_pair("bird", 64, seed=11)
    background = (a.mask < 0.01) & (b.mask < 0.01)
    assert background.mean() > 0.2
    diff = np.abs(a.image.astype(int) - b.image.astype(int)).mean(axis=-1)
    assert diff[background].mean() < 1.0  # the background is fixed within a clip
    assert np.abs(a.keypoints - b.keypoints).max() > 0.5


def test_a_pair_fitted_like_a_still_shows_the_same_motion_larger():
    areas = {"clip": [], "pair": []}
    for seed in range(12):
        clip = synthetic.render_pair("humanoid", 64, seed=seed, min_gap=4, fit="clip")
        pair = synthetic.render_pair("humanoid", 64, seed=seed, min_gap=4, fit="pair")
        for fit, frames in (("clip", clip), ("pair", pair)):
            areas[fit].append(sum(f.mask.mean() for f in frames) / 2)
        # the same two poses, seen by another fixed camera: one scale and offset map the joints
        src = np.concatenate([clip[0].keypoints, clip[1].keypoints])
        dst = np.concatenate([pair[0].keypoints, pair[1].keypoints])
        design = np.concatenate([src, np.ones((len(src), 1))], 1)
        coef, *_ = np.linalg.lstsq(design, dst, rcond=None)
        assert np.abs(design @ coef - dst).max() < 1e-3
        assert coef[0, 0] >= 1 - 1e-6 and abs(coef[0, 1]) < 1e-6  # enlarged, not rotated
        # the two frames fill the crop as a still's pose does (FILL of its side, plus the radii)
        joints = np.concatenate([f.keypoints for f in pair])
        assert (joints.max(0) - joints.min(0)).max() <= 0.95 * 64
    assert np.mean(areas["pair"]) > 1.1 * np.mean(areas["clip"])
    with pytest.raises(PplEdgeError, match="fit"):
        synthetic.render_pair("humanoid", 64, seed=0, fit="still")


def test_dataset_items_follow_the_contract():
    from ppl_edge.train.data import build_dataset

    ds = build_dataset("synthetic:humanoid", 32, split="train", seed=1, length=5, video=True)
    item = ds[2]
    assert item["image"].shape == (3, 32, 32) and item["reference"].shape == (3, 32, 32)
    assert item["image"].min() >= -1.0 and item["image"].max() <= 1.0
    assert item["keypoints"].shape == (19, 2) and item["visible"].dtype.is_floating_point is False
    assert item["mask"].shape == (1, 32, 32)
    assert (ds[2]["image"] == item["image"]).all()
    test = build_dataset("synthetic:humanoid", 32, split="test", seed=1, length=5, video=True)
    assert (test[2]["image"] - item["image"]).abs().mean() > 0.05
    assert len(build_dataset("synthetic:quadruped", 32, split="train_reg")) == 2000
    with pytest.raises(IndexError):
        ds[5]


def test_bad_specs_raise_user_errors():
    from ppl_edge.train.data import build_dataset

    with pytest.raises(PplEdgeError, match="unknown synthetic category"):
        build_dataset("synthetic:dragon", 32)
    with pytest.raises(PplEdgeError, match="KIND:ARGUMENT"):
        build_dataset("humanoid", 32)
    with pytest.raises(PplEdgeError, match="unknown option"):
        build_dataset("synthetic:humanoid", 32, lenght=3)
    with pytest.raises(PplEdgeError, match="split"):
        build_dataset("synthetic:humanoid", 32, split="val")


def test_renderer_core_does_not_import_torch():
    import subprocess

    code = (
        "import sys; from ppl_edge.synth.render import render_clip; "
        "render_clip('bird', 2, 16, 0); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
