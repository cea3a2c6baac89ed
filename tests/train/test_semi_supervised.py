"""Semi-supervised training: which items are labelled, label mirroring under flips, the supervised
term, and a short run with a template prior."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ppl_edge.errors import PplEdgeError
from ppl_edge.templates import load_template
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.data import build_dataset
from ppl_edge.train.supervision import (
    LabelledShare,
    labelled_indices,
    mirror_labels,
    supervised_loss,
)


def test_the_labelled_share_is_fixed_by_the_seed():
    a = labelled_indices(1000, 0.01, seed=0)
    assert len(a) == 10 and list(a) == list(labelled_indices(1000, 0.01, seed=0))
    assert list(a) != list(labelled_indices(1000, 0.01, seed=1))
    assert len(labelled_indices(50, 0.001, 0)) == 1  # at least one


def test_labelled_items_carry_the_template_joints_by_name():
    data = build_dataset("synthetic:humanoid", 32, split="train", seed=0, length=40)
    share = LabelledShare(data, load_template("humanoid"), 0.1, seed=0)
    names = data.joint_names
    labelled = sorted(share.labelled)
    assert len(labelled) == 4
    item = share[labelled[0]]
    wrist = load_template("humanoid").names.index("l_wrist")
    assert torch.equal(item["sup_joints"][wrist], item["keypoints"][names.index("l_wrist")])
    assert item["sup_weight"].sum() == 16
    other = next(i for i in range(40) if i not in share.labelled)
    assert share[other]["sup_weight"].sum() == 0
    bird = build_dataset("synthetic:bird", 32, split="train", seed=0, length=4)
    with pytest.raises(PplEdgeError, match="names joints the dataset does not label"):
        LabelledShare(bird, load_template("humanoid"), 0.5, seed=0)


def test_flipped_labels_are_mirrored_and_swapped():
    template = load_template("humanoid")
    order = template.swap_permutation()
    joints = torch.tensor(template.points).unsqueeze(0).repeat(2, 1, 1)
    out = mirror_labels(joints, torch.tensor([True, False]), order)
    # the template is left/right symmetric: mirroring and swapping gives it back
    assert torch.allclose(out[0], joints[0], atol=1e-6)
    shifted = joints + torch.tensor([0.1, 0.0])
    moved = mirror_labels(shifted, torch.tensor([True, True]), order)
    assert torch.allclose(moved, joints - torch.tensor([0.1, 0.0]), atol=1e-6)


def test_the_supervised_term_counts_labelled_joints_only():
    kpts = torch.zeros(2, 3, 2)
    joints = torch.ones(2, 3, 2)
    weight = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    assert float(supervised_loss(kpts, joints, weight)) == pytest.approx(2.0)
    assert float(supervised_loss(kpts, joints, torch.zeros(2, 3))) == 0.0


def test_matched_sides_score_each_image_against_its_labels_or_their_mirror():
    # joints 0 and 1 are a left / right pair, joint 2 is on the midline
    joints = torch.tensor([[[-0.5, 0.0], [0.5, 0.0], [0.0, 0.5]]]).repeat(2, 1, 1)
    kpts = joints.clone()
    kpts[1] = joints[1, [1, 0, 2]]  # the second image's keypoints have the sides the other way
    kpts = kpts + 0.1
    weight = torch.ones(2, 3)
    by_name = float(supervised_loss(kpts, joints, weight))
    matched = float(supervised_loss(kpts, joints, weight, swap_order=[1, 0, 2]))
    assert matched == pytest.approx(0.02, abs=1e-6)  # only the 0.1 shift, in x and y
    assert by_name == pytest.approx((4 * 0.02 + (1.1**2 + 0.1**2) + (0.9**2 + 0.1**2)) / 6)
    # unlabelled joints do not decide the sides
    half = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 1.0]])
    assert float(supervised_loss(kpts, joints, half, [1, 0, 2])) == pytest.approx(0.02, abs=1e-6)


def test_label_fraction_needs_a_template_prior():
    with pytest.raises(PplEdgeError, match="model.prior=template"):
        TrainConfig(label_fraction=0.1)


@pytest.mark.parametrize("sides", ["named", "matched"])
def test_a_semi_supervised_run_pulls_the_keypoints_to_the_labels(tmp_path, sides):
    from ppl_edge.train.loop import train
    from ppl_edge.train.run_files import MetricsLog

    cfg = TrainConfig(preset="tiny", data_length=32, batch_size=8, max_steps=12, num_workers=0,
                      log_interval=1, prior_interval=0, out=str(tmp_path / "run"), device="cpu",
                      model_overrides={"prior": "template:humanoid"}, label_fraction=0.5,
                      w_supervised=10.0, eq_flip=True, w_equivariance=1.0,
                      lr=1e-3, supervised_sides=sides)  # fmt: skip
    summary = train(cfg)
    rows = MetricsLog(tmp_path / "run", resume_step=summary["step"]).rows
    sup = [r["supervised"] for r in rows]
    assert len(sup) == 12 and all(v >= 0 for v in sup)
    assert sum(sup[-3:]) < sum(sup[:3])  # the labelled keypoints move towards their labels


def test_eval_scores_a_template_models_named_joints_without_regression(tmp_path, capsys):
    from ppl_edge.checkpoint import model_tensors, save_checkpoint
    from ppl_edge.cli import main
    from ppl_edge.config_utils import to_dict
    from ppl_edge.model.ppl import PoseModel

    cfg = TrainConfig(preset="tiny", model_overrides={"prior": "template:humanoid"})
    model = PoseModel(cfg.model_config())
    ckpt = tmp_path / "template.safetensors"
    save_checkpoint(ckpt, model_tensors(model), to_dict(model.cfg), {})
    args = ["eval", "--checkpoint", str(ckpt), "--n-fit", "40", "--n-test", "20",
            "--iterations", "0", "--out", str(tmp_path / "eval")]  # fmt: skip
    assert main(args) == 0
    assert "named joints (16, no regression)" in capsys.readouterr().out
    import json

    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["named_error_per_joint"]) == set(load_template("humanoid").names)
    assert metrics["named_error_swap_aligned"] <= metrics["named_error"]
    # the alignment changes the error exactly when some images have left and right swapped
    assert 0 <= metrics["named_swap_rate"] <= 1
    swapped_any = metrics["named_swap_rate"] > 0
    assert swapped_any == (metrics["named_error_swap_aligned"] < metrics["named_error"])
