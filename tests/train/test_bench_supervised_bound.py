"""bench/bench_supervised_bound.py: the ground-truth reference of the README's keypoint errors."""

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_side_matching_takes_the_nearer_of_the_two_sides(bench_script):
    bench = bench_script("bench_supervised_bound")
    gt = torch.tensor([[[0.0, 0.0], [-0.5, 0.0], [0.5, 0.0]]]).repeat(2, 1, 1)
    perm = [0, 2, 1]  # joints 1 and 2 are a left / right pair
    pred = gt.clone()
    pred[1] = gt[1, perm]  # image 1 faces the other way
    matched = bench.side_matched(pred, gt, perm)
    assert torch.equal(matched[0], gt[0]) and torch.equal(matched[1], gt[1, perm])


def test_the_swap_permutation_pairs_the_humanoids_left_and_right_joints():
    from ppl_edge.named_joints import swap_permutation
    from ppl_edge.train.data.synthetic import SyntheticDataset

    data = SyntheticDataset(length=1)
    names = data.joint_names
    perm = swap_permutation(len(names), data.swap_pairs)
    assert sorted(perm) == list(range(len(names)))
    for i, j in enumerate(perm):
        assert names[j] == names[i].replace("l_", "#").replace("r_", "l_").replace("#", "r_")


def test_a_few_steps_train_the_encoder_and_score_every_joint(bench_script):
    bench = bench_script("bench_supervised_bound")
    result = bench.train_bound("tiny", {"enc_skips": "true"}, steps=3, batch_size=4, n_test=8)
    assert result["overrides"] == {"enc_skips": "true"} and result["steps"] == 3
    assert set(result["per_joint"]) >= {"head", "l_wrist", "r_foot"}
    assert 0 < result["error"] < 100
    assert result["error"] == pytest.approx(sum(result["per_joint"].values()) / 19, rel=1e-5)


def test_the_mask_input_shows_the_encoder_only_the_silhouette(bench_script):
    bench = bench_script("bench_supervised_bound")
    image = torch.rand(2, 3, 8, 8) * 2 - 1
    mask = (torch.rand(2, 1, 8, 8) > 0.5).float()
    batch = {"image": image, "mask": mask}
    assert torch.equal(bench.encoder_input(batch, "image"), image)
    seen = bench.encoder_input(batch, "mask")
    assert seen.shape == image.shape and torch.equal(seen[:, 1], mask[:, 0] * 2 - 1)
    result = bench.train_bound("tiny", steps=2, batch_size=4, n_test=4, kind="mask")
    assert result["input"] == "mask" and 0 < result["error"] < 100
