"""Occlusion masks of paper §4.3: exact patch counts and positions, pixel mapping, seeding."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.train import occlusion as occ


@pytest.mark.parametrize("ratio, count", [(0.1, 102), (0.2, 205), (0.3, 307), (0.4, 410)])
def test_random_mask_hides_exactly_the_ratio_of_1024_patches(ratio, count):
    mask = occ.random_patch_mask(ratio, np.random.default_rng(0))
    assert mask.shape == (32, 32) and mask.dtype == bool
    assert mask.sum() == count


def test_random_masks_are_seeded():
    a = occ.random_patch_mask(0.3, np.random.default_rng(5))
    b = occ.random_patch_mask(0.3, np.random.default_rng(5))
    c = occ.random_patch_mask(0.3, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize("size", occ.CENTER_SIZES)
def test_center_mask_is_a_centred_block(size):
    mask = occ.center_patch_mask(size)
    rows, cols = np.nonzero(mask)
    assert mask.sum() == size * size
    start = (32 - size) // 2
    assert rows.min() == cols.min() == start and rows.max() == cols.max() == start + size - 1
    # centred: as many free patches on each side
    assert start == 32 - (start + size)


@pytest.mark.parametrize("img, per_patch", [(32, 1), (64, 2), (128, 4)])
def test_patches_map_to_square_pixel_blocks(img, per_patch):
    mask = occ.center_patch_mask(4)
    px = occ.patches_to_pixels(mask, img, img)
    assert px.shape == (img, img)
    assert px.sum() == 16 * per_patch**2
    ys, xs = np.nonzero(px)
    assert ys.min() == 14 * per_patch and ys.max() == 18 * per_patch - 1
    assert xs.min() == 14 * per_patch and xs.max() == 18 * per_patch - 1
    rnd = occ.random_patch_mask(0.2, np.random.default_rng(1))
    assert occ.patches_to_pixels(rnd, img, img).sum() == rnd.sum() * per_patch**2


def test_per_image_masks_do_not_depend_on_batching():
    setting = occ.MaskSetting("random", 0.3)
    whole = occ.pixel_masks(setting, [0, 1, 2, 3], 64, 64, seed=7)
    alone = np.concatenate([occ.pixel_masks(setting, [i], 64, 64, seed=7) for i in range(4)])
    assert np.array_equal(whole, alone)
    assert not np.array_equal(whole[0], whole[1])  # every image gets its own mask
    assert (whole.reshape(4, -1).sum(1) == 307 * 4).all()


def test_occlude_sets_masked_pixels_to_mid_grey():
    torch = pytest.importorskip("torch")
    images = np.random.default_rng(0).uniform(-1, 1, size=(2, 3, 64, 64)).astype(np.float32)
    masks = occ.pixel_masks(occ.MaskSetting("center", 8), [0, 1], 64, 64)
    out = occ.occlude(images, masks)
    assert (out[:, :, masks[0]] == 0).all()
    assert np.array_equal(out[:, :, ~masks[0]], images[:, :, ~masks[0]])
    out_t = occ.occlude(torch.from_numpy(images), masks)
    assert isinstance(out_t, torch.Tensor) and np.array_equal(out_t.numpy(), out)


def test_settings_and_labels():
    settings = occ.default_settings()
    assert [s.label for s in settings] == [
        "none",
        "random 0.1",
        "random 0.2",
        "random 0.3",
        "random 0.4",
        "center 4x4",
        "center 6x6",
        "center 8x8",
        "center 10x10",
        "center 12x12",
    ]
    assert not settings[0].patch_mask(np.random.default_rng(0)).any()


def test_bad_settings_are_user_errors():
    with pytest.raises(PplEdgeError, match="ratio must be in"):
        occ.random_patch_mask(1.5, np.random.default_rng(0))
    with pytest.raises(PplEdgeError, match="centre mask size"):
        occ.center_patch_mask(40)


def test_result_tables():
    res = occ.OcclusionResult(
        ["none", "center 4x4"], np.array([[0.1, 0.09], [0.2, 0.15]]), "image", 8
    )
    md = res.to_markdown().splitlines()
    assert md[0] == "| mask | iter 0 | iter 1 |" and md[3] == "| center 4x4 | 20.00 | 15.00 |"
    csv = res.to_csv().splitlines()
    assert csv[0] == "mask,iter_0,iter_1" and csv[2] == "center 4x4,0.200000,0.150000"
    assert res.to_json()["errors"]["none"] == [0.1, 0.09]
