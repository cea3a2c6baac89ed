"""Human3.6M, Tai-Chi and CUB loaders on tiny fixtures written in the releases' on-disk formats."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.train.data import build_dataset


def _dot_image(size: int, xy01=None, radius: int = 1) -> np.ndarray:
    """(size, size, 3) uint8 BGR grey image, with a white square dot at xy01 in [0, 1] if given."""
    img = np.full((size, size, 3), 60, dtype=np.uint8)
    if xy01 is not None:
        x, y = np.round(np.asarray(xy01) * (size - 1)).astype(int)
        img[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1] = 255
    return img


# ---- Human3.6M -----------------------------------------------------------------------------------


@pytest.fixture
def h36m_root(tmp_path):
    savemat = pytest.importorskip("scipy.io").savemat
    root = tmp_path / "h36m"
    rng = np.random.default_rng(0)
    for subject in (1, 5, 11):
        for folder in ("Directions 1.54138969", "Walking.55011271", "Eating 2.58860488"):
            for k in range(2):
                kp = rng.uniform(0.1, 0.9, (32, 2)).astype(np.float32)
                for sub in ("WithBackground", "Landmarks", "BackgroudMask"):
                    (root / f"S{subject}" / sub / folder).mkdir(parents=True, exist_ok=True)
                base = root / f"S{subject}"
                cv2.imwrite(
                    str(base / "WithBackground" / folder / f"{k:04d}.jpg"), _dot_image(64, kp[0])
                )
                savemat(str(base / "Landmarks" / folder / f"{k:04d}.mat"), {"keypoints_2d": kp})
                mask = np.zeros((64, 64), np.uint8)
                mask[:, :32] = 255
                cv2.imwrite(str(base / "BackgroudMask" / folder / f"{k:04d}.png"), mask)
    # one corrupt frame in S5
    (root / "S5" / "WithBackground" / "Walking.55011271" / "0001.jpg").write_bytes(b"\xff\xd8junk")
    return root


def test_h36m_splits_labels_and_masks(h36m_root):
    train = build_dataset(f"h36m:{h36m_root}", 32, split="train_reg")
    test = build_dataset(f"h36m:{h36m_root}", 32, split="test")
    assert len(train) == 8 and len(test) == 4  # S1+S5 vs S11; Eating is not one of the 6 actions
    item = test[0]
    assert item["image"].shape == (3, 32, 32) and item["keypoints"].shape == (32, 2)
    assert item["visible"].all() and item["mask"].shape == (1, 32, 32)
    assert item["mask"][0, :, :14].min() == 1 and item["mask"][0, :, 18:].max() == 0
    from scipy.io import loadmat

    raw = loadmat(str(h36m_root / "S11/Landmarks/Directions 1.54138969/0000.mat"))["keypoints_2d"]
    torch.testing.assert_close(item["keypoints"], torch.from_numpy(raw * 2 - 1).float())
    # joint 0 sits on the white dot: (x, y) order
    x, y = np.round((item["keypoints"][0].numpy() + 1) / 2 * 31).astype(int)
    assert item["image"][:, y, x].mean() > item["image"].mean() + 0.5


def test_h36m_corrupt_frame_is_skipped_and_counted(h36m_root):
    ds = build_dataset(f"h36m:{h36m_root}", 32, split="train_reg")
    items = [ds[i] for i in range(len(ds))]
    assert ds.skipped == 1 and len(items) == len(ds)


def test_h36m_items_share_keys_so_batches_collate(h36m_root):
    import shutil

    shutil.rmtree(h36m_root / "S5" / "BackgroudMask")  # masks now exist for S1 only
    (h36m_root / "S1" / "Landmarks" / "Walking.55011271" / "0000.mat").write_bytes(b"corrupt")
    ds = build_dataset(f"h36m:{h36m_root}", 32, split="train_reg")
    batches = list(torch.utils.data.DataLoader(ds, batch_size=4))
    assert [b["image"].shape[0] for b in batches] == [4, 4]
    assert set(batches[0]) == {"image", "keypoints", "visible"}  # no mask: not every subject has it
    assert ds.skipped == 2  # the corrupt .mat and the corrupt S5 frame


def test_h36m_train_flip_swaps_left_and_right(h36m_root):
    from ppl_edge.train.data.h36m import FLIP_PAIRS

    plain = build_dataset(f"h36m:{h36m_root}", 32, split="train", flip=False)[0]
    flipped = build_dataset(f"h36m:{h36m_root}", 32, split="train", flip=True)
    torch.manual_seed(1)
    seen = set()
    for _ in range(16):
        item = flipped[0]
        is_flipped = not torch.equal(item["image"], plain["image"])
        seen.add(is_flipped)
        if is_flipped:
            torch.testing.assert_close(item["image"], plain["image"].flip(-1))
            a, b = FLIP_PAIRS[0]
            assert torch.isclose(item["keypoints"][a, 0], -plain["keypoints"][b, 0])
            assert torch.isclose(item["keypoints"][a, 1], plain["keypoints"][b, 1])
    assert seen == {True, False}


def test_h36m_wrong_layout_errors(tmp_path, h36m_root):
    with pytest.raises(PplEdgeError, match="WithBackground"):
        build_dataset(f"h36m:{tmp_path}", 32)
    import shutil

    shutil.rmtree(h36m_root / "S11" / "Landmarks")
    with pytest.raises(PplEdgeError, match="Landmarks"):
        build_dataset(f"h36m:{h36m_root}", 32, split="test")


# ---- Tai-Chi -------------------------------------------------------------------------------------


@pytest.fixture
def taichi_root(tmp_path):
    pd = pytest.importorskip("pandas")
    root = tmp_path / "taichi"
    for video in ("vid_a", "vid_b"):
        (root / "train" / video).mkdir(parents=True)
        for k in range(3):
            cv2.imwrite(str(root / "train" / video / f"{k:04d}.png"), _dot_image(48))
    (root / "landmark").mkdir()
    for part in ("train", "test"):
        folder = root / "eval_images" / "taichi-256" / part
        folder.mkdir(parents=True)
        names, values = [], []
        for k in range(3):
            value = np.full((18, 2), 128.0, dtype=np.float32)
            value[0] = (255.0, 0.0) if k == 0 else (40.0, 200.0)  # (x, y) pixels at 256
            value[5] = (-1.0, -1.0)  # missing joint
            names.append(f"{part}_{k}.png")
            values.append(value)
            cv2.imwrite(str(folder / names[-1]), _dot_image(256, value[0] / 255.0, radius=5))
        pd.DataFrame({"file_name": names, "value": values}).to_pickle(
            root / "landmark" / f"taichi_{part}_gt.pkl"
        )
    (folder / "test_2.png").write_bytes(b"broken")
    return root


def test_taichi_labels_visibility_and_coordinates(taichi_root):
    ds = build_dataset(f"taichi:{taichi_root}", 64, split="train_reg")
    assert len(ds) == 3
    item = ds[0]
    assert item["keypoints"].shape == (18, 2) and item["visible"].shape == (18,)
    assert not item["visible"][5] and item["visible"][0]
    torch.testing.assert_close(
        item["keypoints"][0], torch.tensor([1.0, -1.0])
    )  # px (255, 0) at 256
    second = ds[1]
    x, y = np.round((second["keypoints"][0].numpy() + 1) / 2 * 63).astype(int)
    assert second["image"][:, y, x].mean() > second["image"].mean() + 0.5


def test_taichi_train_split_and_skips(taichi_root):
    train = build_dataset(f"taichi:{taichi_root}", 32, split="train", video=True)
    assert len(train) == 6 and train[0]["reference"].shape == (3, 32, 32)
    test = build_dataset(f"taichi:{taichi_root}", 32, split="test")
    items = [test[i] for i in range(len(test))]
    assert test.skipped == 1 and len(items) == 3


def test_taichi_missing_tables_error(taichi_root):
    (taichi_root / "landmark" / "taichi_test_gt.pkl").unlink()
    with pytest.raises(PplEdgeError, match="taichi_test_gt.pkl"):
        build_dataset(f"taichi:{taichi_root}", 32, split="test")
    with pytest.raises(PplEdgeError, match="train"):
        build_dataset(f"taichi:{taichi_root / 'eval_images'}", 32, split="train")


# ---- CUB -----------------------------------------------------------------------------------------


@pytest.fixture
def cub_file(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(0)
    path = tmp_path / "cub.h5"
    with h5py.File(path, "w") as h5:
        for subset, n in (("train", 3), ("test", 2), ("test003", 1)):
            kp = rng.uniform(0.1, 0.9, (n, 15, 2)).astype(np.float32)  # (row, col) in [0, 1]
            imgs = np.full((n, 3, 128, 128), 50, dtype=np.uint8)
            for i in range(n):
                r, c = np.round(kp[i, 0] * 127).astype(int)
                imgs[i, :, r - 1 : r + 2, c - 1 : c + 2] = 255  # a dot under part 0
            vis = np.ones((n, 15), dtype=np.uint8)
            vis[:, 3] = 0
            h5[f"{subset}_img"], h5[f"{subset}_kp"], h5[f"{subset}_vis"] = imgs, kp, vis
    return path


def test_cub_converts_rowcol_to_xy(cub_file):
    ds = build_dataset(f"cub:{cub_file.parent}", 64, split="test")
    assert len(ds) == 2
    import h5py

    with h5py.File(cub_file, "r") as h5:
        rowcol = h5["test_kp"][1]
    item = ds[1]
    torch.testing.assert_close(item["keypoints"][:, 0], torch.from_numpy(rowcol[:, 1] * 2 - 1))
    torch.testing.assert_close(item["keypoints"][:, 1], torch.from_numpy(rowcol[:, 0] * 2 - 1))
    assert not item["visible"][3] and item["visible"][0]
    x, y = np.round((item["keypoints"][0].numpy() + 1) / 2 * 63).astype(int)
    assert item["image"][:, y, x].mean() > item["image"].mean() + 0.5
    assert len(build_dataset(f"cub:{cub_file}", 32, split="test", subset="test003")) == 1
    assert len(build_dataset(f"cub:{cub_file}", 32, split="train_reg")) == 3


def test_cub_errors(tmp_path, cub_file):
    with pytest.raises(PplEdgeError, match="does not exist"):
        build_dataset(f"cub:{tmp_path / 'nowhere'}", 32)
    with pytest.raises(PplEdgeError, match="lacks"):
        build_dataset(f"cub:{cub_file}", 32, split="test", subset="test001")
    (tmp_path / "fake.h5").write_bytes(b"not hdf5")
    with pytest.raises(PplEdgeError, match="HDF5"):
        build_dataset(f"cub:{tmp_path / 'fake.h5'}", 32)
