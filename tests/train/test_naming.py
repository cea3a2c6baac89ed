"""Naming a model's joints: the COCO keypoints reader (a fixture written in the real format), the
swap-aware ridge map, and ``ppl-edge name`` end to end on a tiny model."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ppl_edge.cli import main
from ppl_edge.errors import PplEdgeError
from ppl_edge.named_joints import swap_pairs_from_names
from ppl_edge.synth.render import render_sample
from ppl_edge.train import naming
from ppl_edge.train.data.coco import read_coco_keypoints, read_labels

NAMES = ["nose", "left_eye", "right_eye", "left_wrist", "right_wrist", "pelvis"]


def _coco(tmp_path, count=12, edit=None):
    """A COCO keypoints file of synthetic figures pasted into larger frames (the real layout:
    images/ beside annotations/, 1-based skeleton, [x, y, v] triplets, [x, y, w, h] boxes)."""
    (tmp_path / "images").mkdir(exist_ok=True)
    doc = {"images": [], "annotations": [], "categories": [
        {"id": 3, "name": "cat", "keypoints": ["a", "b"], "skeleton": []},
        {"id": 1, "name": "person", "keypoints": NAMES, "skeleton": [[1, 2], [1, 3], [6, 4]]},
    ]}  # fmt: skip
    for i in range(count):
        s = render_sample("humanoid", 64, [i])
        frame = np.full((120, 160, 3), 90, np.uint8)
        x0, y0 = 20 + 3 * i, 30
        frame[y0 : y0 + 64, x0 : x0 + 64] = s.image
        cv2.imwrite(str(tmp_path / "images" / f"{i:03d}.png"), frame)
        kp = s.keypoints[[4, 5, 12, 7, 14, 0]] + [x0, y0]  # head, shoulders, wrists, pelvis
        values = [v for (x, y) in kp for v in (float(x), float(y), 2)]
        values[2] = 0 if i == 0 else 2  # one unlabelled joint
        doc["images"].append({"id": 100 + i, "file_name": f"{i:03d}.png", "width": 160,
                              "height": 120})  # fmt: skip
        doc["annotations"].append({"id": i, "image_id": 100 + i, "category_id": 1,
                                   "bbox": [x0, y0, 64, 64], "keypoints": values,
                                   "num_keypoints": 6})  # fmt: skip
    if edit:
        edit(doc)
    (tmp_path / "annotations").mkdir(exist_ok=True)
    path = tmp_path / "annotations" / "person_keypoints.json"
    path.write_text(json.dumps(doc))
    return path


def test_coco_keypoints_read_as_the_format_says(tmp_path):
    path = _coco(tmp_path)
    labels = read_coco_keypoints(path, images_root=tmp_path / "images")
    assert labels.names == tuple(NAMES)
    assert labels.edges == ((0, 1), (0, 2), (3, 5))  # 1-based in the file
    assert labels.swap_pairs == ((1, 2), (3, 4))
    assert len(labels.items) == 12
    first = labels.items[0]
    assert first.box == (20, 30, 84, 94) and not first.labelled[0] and first.labelled[1:].all()
    assert first.image == tmp_path / "images" / "000.png"


def _set_first_x(d):
    d["annotations"][2]["keypoints"][0] = "x"


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["annotations"][3].update(keypoints=[1, 2, 2]),
     "annotations[3]: 'keypoints' must hold 18"),
    (_set_first_x, "annotations[2]: 'keypoints' must be numbers"),
    (lambda d: d["annotations"][1].update(image_id=7),
     "annotations[1]: image_id 7 is not in 'images'"),
    (lambda d: d["annotations"][4].update(bbox=[0, 0, -1, 5]),
     "annotations[4]: 'bbox' has no area"),
    (lambda d: d["categories"][1].update(skeleton=[[0, 9]]),
     "skeleton[0]: expected [i, j] in 1..6"),
    (lambda d: d.update(categories=[]), "categories: missing or empty"),
    (lambda d: d["images"].__setitem__(0, {"id": 1}), "images[0]: expected"),
])  # fmt: skip
def test_bad_coco_entries_are_one_line_naming_file_and_entry(tmp_path, edit, message):
    path = _coco(tmp_path, count=6, edit=edit)
    with pytest.raises(PplEdgeError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        read_coco_keypoints(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_unreadable_label_files(tmp_path):
    with pytest.raises(PplEdgeError, match="labels not found"):
        read_labels(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(PplEdgeError, match="not valid JSON"):
        read_labels(tmp_path / "bad.json")
    with pytest.raises(PplEdgeError, match="expected a COCO keypoints .json file"):
        read_labels(tmp_path / "labels.csv")


def test_left_right_pairs_come_from_the_names():
    assert swap_pairs_from_names(["l_knee", "r_knee", "head"]) == ((0, 1),)
    assert swap_pairs_from_names(["leftHand", "rightHand", "Left_Foot", "right_foot"]) == (
        (0, 1), (2, 3))  # fmt: skip
    assert swap_pairs_from_names(["head", "tail"]) == ()


def test_the_map_is_recovered_exactly_even_with_mirrored_labels():
    rng = np.random.default_rng(0)
    S, N, J = 200, 5, 4
    kp = rng.uniform(-1, 1, (S, N, 2))
    true = rng.normal(size=(2 * N + 1, 2 * J))
    x = np.concatenate([kp.reshape(S, -1), np.ones((S, 1))], 1)
    joints = (x @ true).reshape(S, J, 2)
    labels = naming.LabelSet(("l_a", "r_a", "b", "c"), (), ((0, 1),), [])
    mirrored = joints.copy()
    mirrored[::3, [0, 1]] = joints[::3, [1, 0]]  # a third of the labellers swapped the sides
    labelled = np.ones((S, J), bool)
    jmap = naming.fit_joint_map(kp, mirrored, labelled, labels, ridge=0.0)
    np.testing.assert_allclose(jmap.apply(kp), joints, atol=1e-8)
    report = naming.score(jmap, kp, mirrored, labelled)
    assert report["error"] < 1e-6 and report["pck"] == 1.0
    plain = naming.fit_joint_map(kp, mirrored, labelled, naming.LabelSet(labels.names, (), (), []),
                                 ridge=0.0)  # fmt: skip
    assert naming.score(plain, kp, joints, labelled)["error"] > 1.0  # without the swap loop


def test_unlabelled_joints_do_not_count(tmp_path):
    rng = np.random.default_rng(1)
    kp = rng.uniform(-1, 1, (50, 3, 2))
    joints = kp[:, :2] * 0.5
    labelled = np.ones((50, 2), bool)
    joints[:10, 1] = 99.0  # garbage where the label says "not labelled"
    labelled[:10, 1] = False
    labels = naming.LabelSet(("a", "b"), (), (), [])
    jmap = naming.fit_joint_map(kp, joints, labelled, labels, ridge=0.0)
    assert naming.score(jmap, kp, joints, labelled)["error"] < 1e-6


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, tiny_model):
    from ppl_edge.checkpoint import model_tensors, save_checkpoint
    from ppl_edge.config_utils import to_dict

    path = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    save_checkpoint(path, model_tensors(tiny_model), to_dict(tiny_model.cfg), {"step": 1})
    return path


def test_name_end_to_end_on_coco_labels(tmp_path, tiny_ckpt, capsys):
    from ppl_edge.checkpoint import load_model, read_metadata

    labels = _coco(tmp_path, count=12)
    out = tmp_path / "named.safetensors"
    args = ["name", "--checkpoint", str(tiny_ckpt), "--labels", str(labels), "--images",
            str(tmp_path / "images"), "--out", str(out),
            "--json", str(tmp_path / "r.json")]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "6 named joints from 10 labelled subjects" in text and "left_wrist" in text
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["samples"] == 2 and set(report["per_joint"]) == set(NAMES)
    meta = read_metadata(out)
    assert meta["joints"]["names"] == NAMES and meta["joints"]["swap_pairs"] == [[1, 2], [3, 4]]
    jmap = naming.load_joint_map(out)
    assert jmap.matrix.shape == (2 * 16 + 1, 2 * 6)
    model, _ = load_model(out)  # still an ordinary checkpoint
    assert model.cfg.num_keypoints == 16
    assert naming.load_joint_map(tiny_ckpt) is None


def test_synthdir_labels_map_to_crop_coordinates(tmp_path, tiny_model):
    from ppl_edge.coords import px_to_norm
    from ppl_edge.synth.folder import write_synthetic

    folder = write_synthetic(tmp_path / "lab", count=3, size=32, split="train_reg")
    labels = read_labels(folder)
    images, joints, labelled = naming.crops(labels, 32)
    assert images.shape == (3, 3, 32, 32) and labelled.all()
    np.testing.assert_allclose(joints[1], px_to_norm(labels.items[1].keypoints, 32, 32), atol=1e-5)


def test_name_refuses_bad_arguments_in_one_line(tmp_path, tiny_ckpt, capsys):
    labels = _coco(tmp_path, count=4)
    base = ["name", "--checkpoint", str(tiny_ckpt), "--labels", str(labels), "--images",
            str(tmp_path / "images"), "--out", str(tmp_path / "o.safetensors")]  # fmt: skip
    assert main([*base, "--holdout", "1.5"]) == 1
    assert "--holdout must be in (0, 1)" in capsys.readouterr().err
    assert main([*base[:-1], str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err
    (tmp_path / "images" / "002.png").write_bytes(b"not a png")
    assert main(base) == 1
    err = capsys.readouterr().err
    assert "cannot read the image" in err and "002.png" in err and "Traceback" not in err
