"""``ppl-edge data``: synth round trip, check and show, through ``ppl_edge.cli.main``."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch

from ppl_edge.cli import main
from ppl_edge.errors import PplEdgeError
from ppl_edge.train.data import build_dataset


def test_synth_round_trip_matches_the_synthetic_dataset(tmp_path):
    out = tmp_path / "humanoid"
    code = main(
        [
            "-q",
            "data",
            "synth",
            "--category",
            "humanoid",
            "--count",
            "6",
            "--size",
            "32",
            "--seed",
            "4",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["humanoid"]  # no temp folder left
    meta = json.loads((out / "meta.json").read_text())
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert meta["count"] == 6 and len(meta["joint_names"]) == 19 and len(labels) == 6
    assert len(list((out / "images").glob("*.png"))) == 6
    assert len(list((out / "masks").glob("*.png"))) == 6

    written = build_dataset(f"synthdir:{out}", 32)
    rendered = build_dataset("synthetic:humanoid", 32, seed=4, length=6)
    assert written.joint_names == rendered.joint_names and written.edges == rendered.edges
    for i in (0, 5):
        a, b = written[i], rendered[i]
        assert torch.equal(a["image"], b["image"])  # PNG is lossless
        torch.testing.assert_close(a["keypoints"], b["keypoints"], atol=1e-4, rtol=0)
        assert torch.equal(a["visible"], b["visible"])
        torch.testing.assert_close(a["mask"], b["mask"], atol=1 / 255, rtol=0)
    # keypoints are stored in pixels of the written size
    kp = np.array(labels[0]["keypoints"])
    np.testing.assert_allclose((kp / 31 * 2 - 1), written[0]["keypoints"].numpy(), atol=1e-4)
    # the images folder alone is a plain image-folder dataset
    assert len(build_dataset(f"folder:{out / 'images'}", 32)) == 6
    assert len(build_dataset(f"folder:{out}", 32)) == 6  # the masks are not read as images
    # a second run does not clobber the folder
    assert main(["-q", "data", "synth", "--count", "2", "--size", "32", "--out", str(out)]) == 1
    assert (
        main(
            [
                "-q",
                "data",
                "synth",
                "--count",
                "2",
                "--size",
                "32",
                "--out",
                str(out),
                "--overwrite",
            ]
        )
        == 0
    )
    assert len(build_dataset(f"synthdir:{out}", 32)) == 2


def test_synth_video_clips_read_back_as_pairs(tmp_path):
    out = tmp_path / "clips"
    assert (
        main(
            [
                "-q",
                "data",
                "synth",
                "--category",
                "bird",
                "--count",
                "10",
                "--size",
                "32",
                "--video",
                "--clip-length",
                "5",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert [lab["clip"] for lab in labels] == [0] * 5 + [1] * 5
    ds = build_dataset(f"synthdir:{out}", 32, video=True, max_gap=2)
    item = ds[7]
    assert item["reference"].shape == (3, 32, 32)
    assert not torch.equal(item["reference"], item["image"])
    # background corner pixels are shared within a clip
    assert (item["reference"][:, :3, :3] - item["image"][:, :3, :3]).abs().max() < 0.05
    with pytest.raises(PplEdgeError, match="still images"):
        build_dataset(f"synthdir:{_still(tmp_path)}", 32, video=True)


def _still(tmp_path):
    out = tmp_path / "still"
    main(["-q", "data", "synth", "--count", "2", "--size", "16", "--out", str(out)])
    return out


def test_check_counts_items_and_skips(tmp_path, capsys):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for k in range(3):
        cv2.imwrite(str(folder / f"{k}.png"), np.full((20, 20, 3), 40 * k, np.uint8))
    (folder / "3.png").write_bytes(b"corrupt")
    assert main(["-q", "data", "check", f"folder:{folder}", "--size", "16"]) == 0
    out = capsys.readouterr().out
    assert "4 items" in out and "skipped 1 unreadable" in out and "no labels" in out
    assert (
        main(["-q", "data", "check", "synthetic:bird", "--opt", "length=5", "--opt", "video=true"])
        == 0
    )
    out = capsys.readouterr().out
    assert "5 items" in out and "reference 3x64x64" in out and "joints visible" in out
    assert main(["-q", "data", "check", "folder:" + str(tmp_path / "nothing")]) == 1
    assert main(["-q", "data", "check", "synthetic:humanoid", "--opt", "lenght=5"]) == 1


def test_show_draws_a_grid_with_skeletons(tmp_path):
    out = tmp_path / "grid.png"
    assert (
        main(
            [
                "-q",
                "data",
                "show",
                "synthetic:quadruped",
                "--size",
                "32",
                "--count",
                "6",
                "--cols",
                "3",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    sheet = cv2.imread(str(out))
    assert sheet.shape == (2 * (128 + 4) + 4, 3 * (128 + 4) + 4, 3)  # 32 px tiles shown at 128
    # skeleton lines are drawn in white on top of the images
    assert (sheet.min(axis=-1) == 255).sum() > 50


def test_data_verb_imports_without_torch():
    code = (
        "import sys, argparse; import ppl_edge.cli.data as verb, ppl_edge.train.data; "
        "verb.add_arguments(argparse.ArgumentParser()); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
