"""Image-folder and video loaders on tiny fixtures in their real on-disk formats."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.train.data import build_dataset


def _solid(value: int, size=(40, 30), channel: int = 2) -> np.ndarray:
    """(H, W, 3) uint8 BGR image, one channel at ``value``, with a marker in the left column."""
    img = np.zeros((*size, 3), dtype=np.uint8)
    img[:, :, channel] = value
    img[:, :3, 1] = 255  # green stripe on the left: shows horizontal flips
    return img


@pytest.fixture
def image_folder(tmp_path):
    root = tmp_path / "images"
    (root / "clip_a").mkdir(parents=True)
    (root / "clip_b" / "deeper").mkdir(parents=True)
    for k in range(4):
        cv2.imwrite(str(root / "clip_a" / f"{k:03d}.png"), _solid(10 * k))
    cv2.imwrite(str(root / "clip_b" / "deeper" / "x.jpg"), _solid(200))
    cv2.imwrite(str(root / "clip_b" / "y.bmp"), _solid(210))
    (root / "clip_b" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "notes.txt").write_text("not an image")
    return root


def test_folder_reads_nested_images_and_skips_corrupt_ones(image_folder):
    ds = build_dataset(f"folder:{image_folder}", 32, split="test")
    assert len(ds) == 7  # 6 images + the corrupt one; the .txt is ignored
    items = [ds[i] for i in range(len(ds))]
    assert ds.skipped == 1
    for item in items:
        assert set(item) == {"image"}
        assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
        assert -1.0 <= item["image"].min() and item["image"].max() <= 1.0
    # first file: red channel 0 -> -1 in RGB channel 0; green stripe on the left (no flip in test)
    first = items[0]["image"]
    assert torch.allclose(first[0], torch.full_like(first[0], -1.0))
    assert first[1, :, 0].mean() > 0.9 and first[1, :, -1].mean() < -0.9


def test_folder_masks_beside_the_images_are_read_flipped_and_required(image_folder, tmp_path):
    masks = tmp_path / "masks"
    for image in sorted(image_folder.rglob("*.*")):
        if image.suffix in (".png", ".jpg", ".bmp") and image.name != "broken.png":
            target = (masks / image.relative_to(image_folder)).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            mask = np.zeros((40, 30), np.uint8)
            mask[:, :10] = 255  # the left third is foreground
            cv2.imwrite(str(target), mask)
    (masks / "clip_a" / "003.png").unlink()  # one image without its mask
    ds = build_dataset(f"folder:{image_folder}", 30, split="test", masks=str(masks))
    items = [ds[i] for i in range(len(ds))]
    # index 3 (no mask) falls through to 4 (corrupt) and on to 5; index 4 falls through to 5
    assert ds.skipped == 3
    for item in items:
        assert item["mask"].shape == (1, 30, 30)
        assert set(torch.unique(item["mask"]).tolist()) == {0.0, 1.0}
        assert item["mask"][0, :, :9].min() == 1 and item["mask"][0, :, 11:].max() == 0
    torch.manual_seed(0)
    train = build_dataset(f"folder:{image_folder}", 30, split="train", masks=str(masks))
    for _ in range(10):
        item = train[0]
        left_green = bool(item["image"][1, :, 0].mean() > 0)
        assert bool(item["mask"][0, :, 0].min() == 1) == left_green  # flipped together
    with pytest.raises(PplEdgeError, match="masks"):
        build_dataset(f"folder:{image_folder}", 30, masks=str(tmp_path / "nowhere"))


def test_folder_train_split_flips_and_video_pairs_stay_in_their_folder(image_folder):
    torch.manual_seed(0)
    ds = build_dataset(f"folder:{image_folder}", 16, split="train", video=True, max_gap=1)
    lefts = set()
    for _ in range(20):
        item = ds[1]  # clip_a frame 1 (value 10)
        lefts.add(bool(item["image"][1, :, 0].mean() > 0))
        ref_value = (item["reference"][0, 8, 8] + 1) * 127.5
        assert round(float(ref_value)) in (0, 20)  # frame 0 or 2 of clip_a, never itself
        # image and reference are flipped together
        assert bool(item["image"][1, :, 0].mean() > 0) == bool(
            item["reference"][1, :, 0].mean() > 0
        )
    assert lefts == {True, False}


def test_folder_errors(tmp_path):
    with pytest.raises(PplEdgeError, match="not a folder"):
        build_dataset(f"folder:{tmp_path / 'missing'}", 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PplEdgeError, match="no images"):
        build_dataset(f"folder:{tmp_path / 'empty'}", 32)


def _write_video(path, values, channel):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (32, 24))
    assert writer.isOpened()
    for v in values:
        writer.write(_solid(v, (24, 32), channel))
    writer.release()


@pytest.fixture
def video_folder(tmp_path):
    root = tmp_path / "videos"
    (root / "sub").mkdir(parents=True)
    _write_video(root / "a.avi", [20 * k for k in range(10)], channel=2)  # red ramps up
    _write_video(root / "sub" / "b.avi", [100] * 5, channel=0)  # blue, constant
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage")
    return root


def test_video_pairs_come_from_the_same_clip_within_the_gap(video_folder):
    torch.manual_seed(0)
    ds = build_dataset(f"video:{video_folder}", 16, split="test", max_gap=2)
    assert len(ds) == 15 and ds.skipped == 1  # the corrupt file is skipped and counted
    for index in (0, 4, 9):
        for _ in range(5):
            item = ds[index]
            red = (item["image"][0, 8, 8] + 1) * 127.5 / 20
            red_ref = (item["reference"][0, 8, 8] + 1) * 127.5 / 20
            assert abs(float(red) - index) < 0.5  # MJPG is lossy: compare frame numbers
            assert 0.5 < abs(float(red_ref - red)) < 2.5
    item = ds[12]  # a frame of b.avi: blue, constant
    assert float(item["image"][2].mean()) > -0.5 and float(item["reference"][0].mean()) < -0.9
    strided = build_dataset(f"video:{video_folder / 'a.avi'}", 16, stride=3)
    assert len(strided) == 4


def test_video_errors(tmp_path):
    with pytest.raises(PplEdgeError, match="does not exist"):
        build_dataset(f"video:{tmp_path / 'nope.mp4'}", 16)
    (tmp_path / "bad.avi").write_bytes(b"garbage")
    with pytest.raises(PplEdgeError, match="no readable video"):
        build_dataset(f"video:{tmp_path}", 16)
