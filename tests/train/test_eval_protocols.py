"""Evaluation protocols on NumPy arrays with known answers (no model, no torch)."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.train import evaluate as ev

PAIRS = ((0, 1), (2, 3))  # a 5-joint toy layout: two left/right pairs and a centre joint 4


def _linear_data(rng, samples, n_det=6, n_gt=5, noise=0.0):
    """Detections (S, n_det, 2) in [0, 1] and GT = a fixed linear map of them (no bias)."""
    det = rng.uniform(0.1, 0.9, size=(samples, n_det, 2))
    a = rng.normal(size=(2 * n_det, 2 * n_gt)) / n_det
    gt = (det.reshape(samples, -1) @ a).reshape(samples, n_gt, 2)
    return det, gt + noise * rng.normal(size=gt.shape)


def test_regression_recovers_a_known_linear_map_exactly():
    rng = np.random.default_rng(0)
    det, gt = _linear_data(rng, 400)
    err = ev.h36m_regression_error(det[:300], gt[:300], det[300:], gt[300:], swap_pairs=PAIRS)
    assert err < 1e-10
    # and an unrelated target is not recovered: the metric can fail
    wrong = rng.uniform(size=gt.shape)
    assert ev.h36m_regression_error(det[:300], wrong[:300], det[300:], wrong[300:], ()) > 0.1


def test_swap_joints_pairs_read_from_the_original():
    gt = np.arange(32 * 2, dtype=float).reshape(1, 32, 2)
    out = ev.swap_joints(gt, ev.H36M_SWAP_PAIRS)
    assert np.array_equal(out[0, 1], gt[0, 6]) and np.array_equal(out[0, 6], gt[0, 1])
    # the official (20, 28), (21, 28): 20 and 21 both take 28's place, 28 takes 21's, 29 stays
    assert np.array_equal(out[0, 20], gt[0, 28]) and np.array_equal(out[0, 21], gt[0, 28])
    assert np.array_equal(out[0, 28], gt[0, 21]) and np.array_equal(out[0, 29], gt[0, 29])
    assert np.array_equal(out[0, 0], gt[0, 0])


def test_swap_loop_fixes_flipped_ground_truth():
    rng = np.random.default_rng(1)
    det, gt = _linear_data(rng, 600)
    flipped = gt.copy()
    flip = rng.uniform(size=len(gt)) < 0.3  # 30 % of labels have left and right exchanged
    flipped[flip] = ev.swap_joints(gt[flip], PAIRS)
    fit = ev.fit_h36m(det[:400], flipped[:400], PAIRS)
    assert fit.info["swapped"] >= flip[:400].sum() * 0.9
    res = ev.score_h36m(fit, det[400:], flipped[400:], PAIRS)
    assert res.error < 1e-8
    assert res.info["test_swapped"] == flip[400:].sum()
    # without the swap pairs the same data gives a clearly worse fit
    assert ev.h36m_regression_error(
        det[:400], flipped[:400], det[400:], flipped[400:], ()
    ) > 100 * (res.error + 1e-6)


def test_at_most_ten_swaps_are_left_alone():
    rng = np.random.default_rng(2)
    det, gt = _linear_data(rng, 200)
    fit = ev.fit_h36m(det, gt, PAIRS)
    flipped = gt.copy()
    flipped[:10] = ev.swap_joints(gt[:10], PAIRS)  # exactly SWAP_LIMIT flips: not swapped back
    res = ev.score_h36m(fit, det, flipped, PAIRS)
    assert res.info["test_swapped"] == 0 and res.error > 0
    flipped[:11] = ev.swap_joints(gt[:11], PAIRS)
    assert ev.score_h36m(fit, det, flipped, PAIRS).error < 1e-10


def test_outliers_are_dropped_before_the_final_fit():
    rng = np.random.default_rng(3)
    det, gt = _linear_data(rng, 500)
    corrupt = gt.copy()
    corrupt[:5] += 5.0  # five wildly wrong labels
    fit = ev.fit_h36m(det[:400], corrupt[:400], ())
    assert fit.info["kept"] == 395
    assert ev.score_h36m(fit, det[400:], gt[400:], ()).error < 1e-8


def test_taichi_summed_mae_by_hand():
    # one detection whose x equals the label x, the label y = 2 * detection y + 0.1 (a bias term)
    rng = np.random.default_rng(4)
    det = rng.uniform(0.1, 0.9, size=(50, 1, 2))
    gt = np.stack([det[:, 0, 0], 2 * det[:, 0, 1] + 0.1], axis=-1)[:, None]  # (S, 1, 2)
    assert ev.taichi_error(det, gt, det, gt) < 1e-6
    # constant test offsets of 1 px in x and 3 px in y (labels only): summed MAE = 4 px
    shifted = gt + np.array([1.0, 3.0]) / 255.0
    assert ev.taichi_error(det, gt, det, shifted) == pytest.approx(4.0, abs=1e-6)
    # invisible labels are neither fitted nor scored
    vis = np.ones((50, 1), bool)
    vis[:10] = False
    wild = shifted.copy()
    wild[:10] += 10.0
    assert ev.taichi_error(det, gt, det, wild, visible_test=vis) == pytest.approx(4.0, abs=1e-6)
    garbage = gt.copy()
    garbage[:10] += 10.0
    assert ev.taichi_error(det, garbage, det, gt, visible_fit=vis) < 1e-6
    assert ev.taichi_error(det, garbage, det, gt) > 1.0


def test_taichi_and_cub_fall_back_to_ridge_when_singular():
    det = np.full((20, 2, 2), 0.5)  # every sample identical: XᵀX is singular
    gt = np.full((20, 1, 2), 0.25)
    assert np.isfinite(ev.taichi_error(det, gt, det, gt))
    assert np.isfinite(ev.cub_error(det, gt, det, gt))


def test_cub_counts_visible_parts_only():
    rng = np.random.default_rng(5)
    det, gt = _linear_data(rng, 300, n_det=4, n_gt=3)
    vis = np.ones((300, 3), bool)
    vis[::3, 1] = False
    noisy = gt.copy()
    noisy[~vis] = 9.0  # invisible labels are garbage; they must not enter the fit or the score
    assert ev.cub_error(det, noisy, det, noisy, vis, vis) < 1e-10
    # a constant 0.03 offset on part 0 only: error = 0.03 * visible(part 0) / visible(all)
    off = noisy.copy()
    off[:, 0, 0] += 0.03
    expected = 0.03 * vis[:, 0].sum() / vis.sum()
    assert ev.cub_error(det, noisy, det, off, vis, vis) == pytest.approx(expected, rel=1e-8)


def test_pdj_on_constructed_cases():
    gt = np.zeros((2, 3, 2))
    gt[:, 1] = [0.0, 1.0]  # torso pair (0, 1) has length 1
    gt[:, 2] = [1.0, 1.0]
    pred = gt.copy()
    pred[0, 2] += [0.1, 0.0]  # inside 0.2 x torso
    pred[1, 2] += [0.3, 0.0]  # outside
    assert ev.pdj(pred, gt, 0.2, torso=(0, 1)) == pytest.approx(5 / 6)
    assert ev.pdj(pred, gt, 0.5, torso=(0, 1)) == 1.0
    # bounding-box diagonal of the GT (sqrt(2)): 0.3 < 0.25 * 1.414 -> detected
    assert ev.pdj(pred, gt, 0.25) == 1.0
    vis = np.ones((2, 3), bool)
    vis[1, 2] = False
    assert ev.pdj(pred, gt, 0.2, torso=(0, 1), visible=vis) == 1.0


def test_bplp_c_rewards_consistent_proportions():
    rng = np.random.default_rng(6)
    base = np.array([[0, 0], [0, 1], [0, 2], [1, 1]], float)
    limbs = ((0, 1), (1, 2), (1, 3))
    # rigidly rotated, scaled and shifted copies keep proportions: sigma = 0
    poses = []
    for _ in range(20):
        a = rng.uniform(0, 2 * np.pi)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        poses.append(base @ rot.T * rng.uniform(0.5, 2) + rng.uniform(size=2))
    poses = np.stack(poses)
    assert ev.bplp_c(poses, limbs) == float("inf")
    jitter_small = poses + rng.normal(scale=0.01, size=poses.shape)
    jitter_big = poses + rng.normal(scale=0.1, size=poses.shape)
    assert ev.bplp_c(jitter_small, limbs) > ev.bplp_c(jitter_big, limbs) > 0
    # by hand: limb 0 share alternates 0.5 / 0.25 -> sigma 0.125, limb 1 likewise, limb 2 0
    a = np.array([[0, 0], [0, 1], [0, 2], [0, 1]], float)  # lengths 1, 1, 0 -> shares .5 .5 0
    b = np.array([[0, 0], [0, 1], [0, 2], [2, 1]], float)  # lengths 1, 1, 2 -> .25 .25 .5
    sig = np.mean([0.125, 0.125, 0.25])
    assert ev.bplp_c(np.stack([a, b]), limbs) == pytest.approx(1 / sig)


def test_mean_pose_baseline():
    rng = np.random.default_rng(7)
    gt_fit = rng.normal(size=(100, 5, 2)) * 0.01 + 0.5
    gt_test = np.full((30, 5, 2), 0.5)
    gt_test[:, :, 0] += 0.02  # every joint 0.02 right of the mean pose
    mean = gt_fit.mean(axis=0)
    expected = np.linalg.norm(mean[None] - gt_test, axis=-1).mean()
    assert ev.mean_pose_baseline("h36m", gt_fit, gt_test, ()) == pytest.approx(expected, rel=0.05)
    assert ev.mean_pose_baseline("cub", gt_fit, gt_test) == pytest.approx(expected)
    mae = np.abs(mean[None] - gt_test).mean(axis=0).sum() * 255
    assert ev.mean_pose_baseline("taichi", gt_fit, gt_test) == pytest.approx(mae)
    # a regressor on informative detections beats the baseline
    det, gt = _linear_data(rng, 300)
    reg = ev.h36m_regression_error(det[:200], gt[:200], det[200:], gt[200:], PAIRS)
    assert reg < ev.mean_pose_baseline("h36m", gt[:200], gt[200:], PAIRS)


def test_bad_shapes_are_user_errors():
    with pytest.raises(PplEdgeError, match="expected predictions"):
        ev.h36m_regression_error(
            np.zeros((4, 2)), np.zeros((4, 3, 2)), np.zeros((4, 2)), np.zeros((4, 3, 2))
        )
    with pytest.raises(PplEdgeError, match="3 predictions for 4"):
        ev.fit_h36m(np.zeros((3, 2, 2)), np.zeros((4, 3, 2)))
    with pytest.raises(PplEdgeError, match="unknown protocol"):
        ev.fit_protocol("coco", np.zeros((3, 2, 2)), np.zeros((3, 3, 2)))


def test_keypoint_identity_counts_how_often_the_usual_keypoint_is_nearest():
    rng = np.random.default_rng(0)
    gt = rng.random((10, 2, 2))
    kpts = rng.random((10, 3, 2)) + 5.0  # far from everything
    kpts[:, 0] = gt[:, 0]  # keypoint 0 always marks joint 0
    kpts[:5, 1] = gt[:5, 1]  # joint 1: keypoint 1 in half the images, keypoint 2 in the rest
    kpts[5:, 2] = gt[5:, 1]
    np.testing.assert_allclose(ev.keypoint_identity(kpts, gt), [1.0, 0.5])
    visible = np.ones((10, 2), bool)
    visible[5:, 1] = False  # only the images where keypoint 1 marks it
    visible[:, 0] = False
    shares = ev.keypoint_identity(kpts, gt, visible)
    assert np.isnan(shares[0]) and shares[1] == 1.0
    with pytest.raises(PplEdgeError):
        ev.keypoint_identity(kpts[:, 0], gt)
