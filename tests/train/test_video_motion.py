"""A fixed camera's video: the synthetic scene writer, ``video:PATH`` with ``crops="motion"``
(motion crops, foreground masks, references cut with the same box, flips, ground truth) and
``ppl-edge data scene`` / ``ppl-edge eval`` on it."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ppl_edge.cli import main
from ppl_edge.coords import norm_to_px
from ppl_edge.errors import PplEdgeError
from ppl_edge.motion import crop_square, frame_to_crop
from ppl_edge.synth.scene import (
    labels_path,
    read_scene_labels,
    write_fixed_camera_scene,
)
from ppl_edge.train.data import build_dataset
from ppl_edge.train.data.common import image_to_tensor
from ppl_edge.train.data.video import VideoDataset, pick_gapped_reference
from ppl_edge.train.evaluate import run as eval_run

pytestmark = pytest.mark.usefixtures("one_thread")
SIZE = 32  # item side


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A 120-frame 160x120 recording of one humanoid and its labels."""
    path = write_fixed_camera_scene(
        tmp_path_factory.mktemp("scene") / "scene.mp4", frames=120, size=(160, 120), seed=1
    )
    return path, read_scene_labels(path)


@pytest.fixture(scope="module")
def motion(scene):
    """The train split in motion mode, without flips."""
    return VideoDataset(scene[0], SIZE, split="train", flip=False, crops="motion")


def _gt_mask(labels, frame: int, box) -> np.ndarray:
    """The composited figure mask of ``frame`` cut like the items: (SIZE, SIZE) bool."""
    return crop_square(labels.mask(frame).astype(np.uint8) * 255, box, SIZE) > 127


def test_scene_writer_writes_a_readable_video_and_its_labels(tmp_path):
    path = write_fixed_camera_scene(tmp_path / "s.mp4", frames=24, size=(96, 64), seed=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.mp4", "s.mp4.labels.npz"]
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    assert len(frames) == 24 and frames[0].shape == (64, 96, 3)
    labels = read_scene_labels(labels_path(path))
    assert labels.count == 24 and labels.size == (96, 64) and labels.category == "humanoid"
    assert labels.keypoints.shape == (24, 19, 2) and labels.visible.shape == (24, 19)
    assert labels.swap_pairs[0] == (5, 12) and len(labels.edges) == 18
    assert labels.visible.mean() > 0.6
    for t in (0, 23):
        ys, xs = np.nonzero(labels.mask(t))
        assert tuple(labels.boxes[t]) == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        vis = labels.keypoints[t][labels.visible[t]]
        x0, y0, x1, y1 = labels.boxes[t]
        assert ((vis >= [x0 - 2, y0 - 2]) & (vis <= [x1 + 1, y1 + 1])).all()
    # the figure moves and the background stays: frame differences lie on the figures
    diff = np.abs(frames[20].astype(int) - frames[4].astype(int)).max(axis=2) > 40
    near = cv2.dilate((labels.mask(20) | labels.mask(4)).astype(np.uint8), np.ones((5, 5))) > 0
    assert diff.sum() > 50 and not (diff & ~near).any()
    again = write_fixed_camera_scene(tmp_path / "t.mp4", frames=24, size=(96, 64), seed=3)
    np.testing.assert_array_equal(read_scene_labels(again).keypoints, labels.keypoints)


def test_scene_writer_needs_no_torch(tmp_path):
    code = (
        "import sys; sys.modules['torch'] = None; "
        "from ppl_edge.synth.scene import write_fixed_camera_scene as w; "
        f"w({str(tmp_path / 'a.mp4')!r}, frames=3, size=(48, 32))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert labels_path(tmp_path / "a.mp4").is_file()


def test_scene_writer_refuses_bad_arguments(tmp_path):
    with pytest.raises(PplEdgeError, match="frames >= 2"):
        write_fixed_camera_scene(tmp_path / "s.mp4", frames=1)
    with pytest.raises(PplEdgeError, match="figure"):
        write_fixed_camera_scene(tmp_path / "s.mp4", frames=4, figure=1.5)
    with pytest.raises(PplEdgeError, match="cannot read scene labels"):
        read_scene_labels(tmp_path / "none.mp4")


def test_motion_items_are_square_crops_whose_masks_cover_the_figure(scene, motion):
    labels = scene[1]
    assert len(motion) > 60 and all(f >= 30 for _, f in motion.items)  # warm-up frames skipped
    ious = []
    for i in range(0, len(motion), 3):
        item = motion[i]
        assert set(item) == {"image", "reference", "mask"}  # the train split: no labels
        assert item["image"].shape == item["reference"].shape == (3, SIZE, SIZE)
        assert item["mask"].shape == (1, SIZE, SIZE) and item["mask"].dtype == torch.float32
        assert set(item["mask"].unique().tolist()) <= {0.0, 1.0}
        x0, y0, x1, y1 = box = motion.boxes[i]
        assert x1 - x0 == y1 - y0
        gt = _gt_mask(labels, motion.items[i][1], box)
        fg = item["mask"][0].numpy() > 0.5
        ious.append((gt & fg).sum() / max(1, (gt | fg).sum()))
    assert np.mean(np.array(ious) > 0.5) > 0.9, np.round(ious, 2)


def test_the_reference_is_another_frame_cut_with_the_same_box(scene, motion):
    labels = scene[1]
    for i in (0, len(motion) // 2, len(motion) - 1):
        video, frame = motion.items[i]
        torch.manual_seed(i)
        item = motion[i]
        torch.manual_seed(i)
        ref = motion._reference(video, frame)  # the same draw as the item's
        assert 4 <= abs(ref - frame) <= 8
        box = motion.boxes[i]
        expected = image_to_tensor(crop_square(motion.read_raw(video, ref), box, SIZE))
        assert torch.equal(item["reference"], expected)
        # the static background matches pixel for pixel (up to compression) around the figures
        still = ~(_gt_mask(labels, frame, box) | _gt_mask(labels, ref, box))
        still = cv2.erode(still.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        diff = (item["image"] - item["reference"]).abs().amax(0).numpy()
        assert still.mean() > 0.3 and np.median(diff[still]) < 0.05


def test_the_near_frame_is_cut_with_the_same_box_and_the_flow_follows_the_figure(scene):
    labels = scene[1]
    data = VideoDataset(scene[0], SIZE, split="test", flip=False, crops="motion", flow_gap=2)
    residual, motion = [], []
    for i in range(0, len(data), 3):
        video, frame = data.items[i]
        item = data[i]
        near = frame + 2 if frame + 2 < data.frame_counts[video] else frame - 2
        box = data.boxes[i]
        expected = image_to_tensor(crop_square(data.read_raw(video, near), box, SIZE))
        assert torch.equal(item["near"], expected)
        assert item["flow"].shape == (2, SIZE, SIZE)
        # the joints' motion in crop pixels against the flow sampled under them
        pa = frame_to_crop(labels.keypoints[frame], box, SIZE)
        pb = frame_to_crop(labels.keypoints[near], box, SIZE)
        flow_px = item["flow"].numpy().transpose(1, 2, 0) * (SIZE - 1) / 2
        inside = np.all((pa >= 0) & (pa <= SIZE - 1), axis=1) & labels.visible[frame]
        x, y = np.round(pa[inside]).astype(int).T
        residual.append(np.linalg.norm(pb[inside] - pa[inside] - flow_px[y, x], axis=1))
        motion.append(np.linalg.norm(pb[inside] - pa[inside], axis=1))
    residual, motion = np.concatenate(residual), np.concatenate(motion)
    assert np.median(residual) < 0.6 * np.median(motion)
    with pytest.raises(PplEdgeError, match="flow_gap >= 0"):
        VideoDataset(scene[0], SIZE, split="test", crops="motion", flow_gap=-1)


def test_gapped_reference_stays_in_the_band():
    torch.manual_seed(0)
    for frame, count in ((0, 50), (25, 50), (49, 50), (3, 10)):
        for _ in range(30):
            ref = pick_gapped_reference(frame, count, 4, 8)
            assert 0 <= ref < count and 4 <= abs(ref - frame) <= 8
    assert pick_gapped_reference(0, 3, 4, 8) == 2  # no frame that far: the farthest one
    assert pick_gapped_reference(2, 3, 4, 8) == 0
    assert pick_gapped_reference(0, 1, 4, 8) == 0


def test_flips_mirror_mask_image_reference_and_keypoints(scene):
    path, _ = scene
    plain = VideoDataset(path, SIZE, split="test", flip=False, crops="motion")
    flipping = VideoDataset(path, SIZE, split="test", flip=True, crops="motion")
    assert flipping.items == plain.items and flipping.boxes == plain.boxes
    i, seen = 3, set()
    for seed in range(12):
        torch.manual_seed(seed)
        a = plain[i]
        torch.manual_seed(seed)
        b = flipping[i]
        flipped = not torch.equal(a["mask"], b["mask"])
        seen.add(flipped)
        if flipped:
            for key in ("image", "reference", "mask"):
                assert torch.equal(b[key], torch.flip(a[key], dims=[-1])), key
            kp = a["keypoints"].clone()
            kp[:, 0] = -kp[:, 0]
            for p, q in flipping.swap_pairs:
                kp[[p, q]] = kp[[q, p]]
            torch.testing.assert_close(b["keypoints"], kp)
        else:
            assert torch.equal(a["image"], b["image"])
    assert seen == {True, False}


def test_eval_splits_carry_the_ground_truth_in_crop_coordinates(scene, motion):
    path, labels = scene
    fit = VideoDataset(path, SIZE, split="train_reg", crops="motion")
    test = VideoDataset(path, SIZE, split="test", crops="motion")
    assert fit.has_labels and test.has_labels and not motion.has_labels
    assert sorted(fit.items + test.items) == sorted(motion.items)  # disjoint, together all
    assert max(f for _, f in fit.items) < min(f for _, f in test.items)
    assert test.joint_names == labels.joint_names and test.swap_pairs == labels.swap_pairs
    for i in (0, len(test) - 1):
        item, (_, frame), (x0, y0, x1, _) = test[i], test.items[i], test.boxes[i]
        crop_px = norm_to_px(item["keypoints"].numpy(), SIZE, SIZE)
        frame_px = (crop_px + 0.5) * (x1 - x0) / SIZE - 0.5 + np.array([x0, y0])
        np.testing.assert_allclose(frame_px, labels.keypoints[frame], atol=1e-3)
        vis = item["visible"].numpy()
        assert item["visible"].dtype == torch.bool and vis.mean() > 0.5
        assert not (vis & ~labels.visible[frame]).any()


def test_bad_options_fail_in_one_line(scene):
    path, _ = scene
    cases = [
        ({"crops": "roi"}, r"crops must be one of \['full', 'motion'\], got 'roi'"),
        ({"crops": "motion", "motion_method": "vibe"}, "motion_method must be one of"),
        ({"crops": "motion", "min_gap": 9}, "min_gap=9, max_gap=8"),
        ({"crops": "motion", "warmup": -1}, "warmup=-1"),
        ({"crops": "motion", "test_fraction": 1.0}, "test_fraction=1.0"),
        ({"crops": "motion", "warmup": 500}, "no frame of .* after the first 500"),
    ]
    for options, message in cases:
        with pytest.raises(PplEdgeError, match=message) as err:
            build_dataset(f"video:{path}", SIZE, **options)
        assert "\n" not in str(err.value)


def test_full_mode_keeps_whole_frames_and_no_mask(scene):
    item = build_dataset(f"video:{scene[0]}", SIZE, split="test")
    assert len(item) == 120 and set(item[0]) == {"image", "reference"}


def test_evaluation_reads_a_labelled_video_in_motion_mode(scene, tmp_path):
    path, labels = scene
    layout = eval_run.layout_for(f"video:{path}")
    assert layout.protocol == "h36m" and layout.swap_pairs == labels.swap_pairs
    assert layout.torso == (5, 15)  # l_shoulder, r_hip
    fit, test = eval_run.build_splits(f"video:{path}", SIZE, 100, 100)
    assert fit.crops == test.crops == "motion" and fit.split == "train_reg"
    assert eval_run.layout_for(f"video:{path}", dataset=test).swap_pairs == labels.swap_pairs
    bare = tmp_path / "bare.mp4"
    bare.write_bytes(path.read_bytes())
    with pytest.raises(PplEdgeError, match="labels.npz beside each video"):
        eval_run.layout_for(f"video:{bare}")


def test_cli_scene_then_eval(tmp_path, tiny_model, capsys):
    from ppl_edge.checkpoint import model_tensors, save_checkpoint
    from ppl_edge.config_utils import to_dict

    video = tmp_path / "scene.mp4"
    assert (
        main(["-q", "data", "scene", "--out", str(video), "--frames", "90", "--size", "128x96"])
        == 0
    )
    assert labels_path(video).is_file() and "video:" in capsys.readouterr().out
    assert main(["-q", "data", "scene", "--out", str(video), "--frames", "90"]) == 1
    assert "--overwrite" in capsys.readouterr().err
    ckpt = tmp_path / "tiny.safetensors"
    save_checkpoint(ckpt, model_tensors(tiny_model), to_dict(tiny_model.cfg))
    out = tmp_path / "eval"
    code = main(
        [
            "-q",
            "eval",
            "--checkpoint",
            str(ckpt),
            "--data",
            f"video:{video}",
            "--data-opt",
            "warmup=20",
            "--iterations",
            "0",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_fit"] == 52 and metrics["n_test"] == 18  # frames 20-71 | 72-89
    assert metrics["protocol"] == "h36m" and np.isfinite(metrics["error"])
    assert 0.0 <= metrics["keypoints_on_figure"] <= 1.0


def test_forked_loader_workers_open_their_own_captures(tmp_path):
    """The parent reads an item first (as the training loop's data check does); forked workers
    must not reuse its open capture (that hangs inside the decoder)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("needs the fork start method")
    video = tmp_path / "clip.mp4"
    write_fixed_camera_scene(video, frames=60, size=(96, 72), seed=2)
    ds = build_dataset(f"video:{video}", 32, split="train", crops="motion", warmup=10)
    ds[0]
    loader = torch.utils.data.DataLoader(
        ds, batch_size=4, num_workers=2, multiprocessing_context="fork", timeout=60
    )
    batch = next(iter(loader))
    assert batch["image"].shape == (4, 3, 32, 32) and batch["mask"].shape == (4, 1, 32, 32)


def test_cached_frames_serve_the_same_items_as_seeking(tmp_path):
    video = tmp_path / "clip.mp4"
    write_fixed_camera_scene(video, frames=50, size=(96, 72), seed=4)
    cached = build_dataset(f"video:{video}", 32, split="test", crops="motion", warmup=10)
    seeking = build_dataset(
        f"video:{video}", 32, split="test", crops="motion", warmup=10, cache_frames=False
    )
    assert cached.cache_frames and not seeking.cache_frames and len(cached) == len(seeking)
    torch.manual_seed(0)
    a = cached[2]
    torch.manual_seed(0)
    b = seeking[2]
    assert torch.equal(a["mask"], b["mask"])
    # JPEG at quality 95 of an mp4 frame: within about 4 grey levels (0.03) of the decoded frame
    assert (a["image"] - b["image"]).abs().mean() < 0.03
    assert (a["reference"] - b["reference"]).abs().mean() < 0.03
