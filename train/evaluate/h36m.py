"""Human3.6M protocol: OLS without bias or ridge from the N keypoints to the J joints,
flip-invariant through a left/right swap loop, fit outliers dropped (mean + 3 std); error = mean
over samples of the mean joint distance (fraction of the image size; papers print x100)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.train.evaluate.common import (
    MAX_SWAP_ROUNDS,
    SWAP_LIMIT,
    LinearFit,
    Scored,
    _check,
    _flat,
    _swap_better,
    log,
    per_sample_error,
)

# Human3.6M 32-joint left/right pairs of AutoLink's h36m.py, verbatim. (21, 28) is probably a typo
# for (21, 29) in the official list; it is kept so that numbers stay comparable (see swap_joints).
H36M_SWAP_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 6),
    (2, 7),
    (3, 8),
    (4, 9),
    (5, 10),
    (17, 25),
    (18, 26),
    (19, 27),
    (20, 28),
    (21, 28),
    (22, 30),
    (23, 31),
)
# Limbs of the H36M 32-joint skeleton (parents of the standard layout): hips, thighs, shins, spine,
# neck, upper arms, forearms. Used by BPLP-C.
H36M_LIMBS: tuple[tuple[int, int], ...] = (
    (0, 1),
    (1, 2),
    (2, 3),
    (0, 6),
    (6, 7),
    (7, 8),
    (0, 12),
    (12, 13),
    (17, 18),
    (18, 19),
    (25, 26),
    (26, 27),
)
H36M_TORSO: tuple[int, int] = (17, 1)  # left shoulder - right hip: PDJ's torso diameter (DeepPose)


def _fit_ols_with_swaps(x: np.ndarray, gt: np.ndarray, pairs) -> LinearFit:
    """Official h36m fit on design matrix x (S, D): swap loop, outlier drop, refit."""
    gt = np.array(gt, dtype=np.float64, copy=True)
    S, J, _ = gt.shape
    beta = np.linalg.lstsq(x, gt.reshape(S, -1), rcond=None)[0]
    swapped_total, rounds = 0, 0
    while pairs and rounds < MAX_SWAP_ROUNDS:
        better, swapped = _swap_better((x @ beta).reshape(S, J, 2), gt, pairs)
        if better.sum() <= SWAP_LIMIT:
            break
        gt[better] = swapped[better]
        swapped_total += int(better.sum())
        rounds += 1
        beta = np.linalg.lstsq(x, gt.reshape(S, -1), rcond=None)[0]
    if rounds == MAX_SWAP_ROUNDS:
        log.warning("left/right swap loop stopped after %d rounds without converging", rounds)
    d = per_sample_error((x @ beta).reshape(S, J, 2), gt)
    keep = d <= d.mean() + 3 * d.std()
    beta = np.linalg.lstsq(x[keep], gt[keep].reshape(int(keep.sum()), -1), rcond=None)[0]
    info = {
        "fit_samples": S,
        "kept": int(keep.sum()),
        "swapped": swapped_total,
        "swap_rounds": rounds,
    }
    return LinearFit("h36m", beta, info)


def _test_swap_loop(pred: np.ndarray, gt: np.ndarray, pairs) -> tuple[np.ndarray, int]:
    """Test side of the swap loop (the regressor is fixed): returns aligned gt and swap count."""
    gt = np.array(gt, dtype=np.float64, copy=True)
    total = 0
    for _ in range(MAX_SWAP_ROUNDS if pairs else 0):
        better, swapped = _swap_better(pred, gt, pairs)
        if better.sum() <= SWAP_LIMIT:
            break
        gt[better] = swapped[better]
        total += int(better.sum())
    return gt, total


def fit_h36m(pred_fit: np.ndarray, gt_fit: np.ndarray, swap_pairs=H36M_SWAP_PAIRS) -> LinearFit:
    """Fit the Human3.6M regressor: (S, N, 2) detections -> (S, J, 2) joints, no bias, no ridge."""
    _check(pred_fit, gt_fit)
    return _fit_ols_with_swaps(_flat(pred_fit), gt_fit, tuple(swap_pairs))


def score_h36m(
    fit: LinearFit, pred_test: np.ndarray, gt_test: np.ndarray, swap_pairs=H36M_SWAP_PAIRS
) -> Scored:
    """Apply a Human3.6M regressor; error = mean per-sample joint distance after the swap loop."""
    _check(pred_test, gt_test)
    x = np.ones((len(pred_test), 1)) if fit.info.get("constant") else _flat(pred_test)
    if x.shape[1] != fit.beta.shape[0]:
        raise PplEdgeError(
            f"regressor was fitted on {fit.beta.shape[0] // 2} keypoints, got {x.shape[1] // 2}"
        )
    pred = (x @ fit.beta).reshape(gt_test.shape)
    gt, swapped = _test_swap_loop(pred, gt_test, tuple(swap_pairs))
    err = float(per_sample_error(pred, gt).mean())
    return Scored(err, pred, gt, None, {"test_samples": len(pred), "test_swapped": swapped})


def h36m_regression_error(
    pred_fit: np.ndarray,
    gt_fit: np.ndarray,
    pred_test: np.ndarray,
    gt_test: np.ndarray,
    swap_pairs: Sequence[tuple[int, int]] = H36M_SWAP_PAIRS,
) -> float:
    """Human3.6M protocol error (fraction of the image size; papers print x100).

    Args:
        pred_fit: (S_fit, N, 2) detections in [0, 1] on the regression-fit split.
        gt_fit: (S_fit, J, 2) ground truth in [0, 1].
        pred_test: (S_test, N, 2); gt_test: (S_test, J, 2).
        swap_pairs: left/right joint pairs of the ground-truth layout (() disables the swap loop).
    """
    return score_h36m(fit_h36m(pred_fit, gt_fit, swap_pairs), pred_test, gt_test, swap_pairs).error
