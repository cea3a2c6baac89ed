"""Keypoint evaluation protocols: linear regression from discovered keypoints to ground truth.

Unsupervised keypoints carry no semantic labels, so every protocol fits a linear map from the N
detected keypoints to the J annotated joints on the ``train_reg`` split and scores it on ``test``
(AutoLink's per-dataset ``test_epoch_end``, ppl_official_code.md §5.2). All arrays here are NumPy,
(x, y) in [0, 1] image units: a model's [-1, 1] keypoints map to ``p * 0.5 + 0.5``.

- Human3.6M: OLS without bias or ridge, flip-invariant through a left/right swap loop, fit
  outliers dropped (mean + 3 std); error = mean over samples of the mean joint distance
  (fraction of the image size).
- Taichi: per-coordinate OLS with bias on visible labels, at 256 px; error = sum over coordinates of
  the mean absolute error in pixels.
- CUB: per-part OLS without bias on visible samples; error = summed visible distances / visible
  count.

Plus PDJ, BPLP-C and a mean-pose baseline. NumPy only; running a checkpoint through these protocols
(:func:`evaluate_checkpoint`) lives in :mod:`ppl_edge.train.evaluate.run` and imports torch lazily.

One module per protocol (:mod:`.h36m`, :mod:`.taichi`, :mod:`.cub`); a new protocol is one module
and one line in :data:`PROTOCOL_FUNCTIONS`.
"""

from __future__ import annotations

from ppl_edge.errors import check_choice
from ppl_edge.train.evaluate.common import (
    MAX_SWAP_ROUNDS,
    SWAP_LIMIT,
    LinearFit,
    Scored,
    per_sample_error,
    swap_joints,
)
from ppl_edge.train.evaluate.cub import cub_error, fit_cub, score_cub
from ppl_edge.train.evaluate.h36m import (
    H36M_LIMBS,
    H36M_SWAP_PAIRS,
    H36M_TORSO,
    fit_h36m,
    h36m_regression_error,
    score_h36m,
)
from ppl_edge.train.evaluate.metrics import (
    bplp_c,
    keypoint_identity,
    limb_proportions,
    mean_pose_baseline,
    pdj,
)
from ppl_edge.train.evaluate.taichi import TAICHI_SIZE, fit_taichi, score_taichi, taichi_error

# protocol -> (fit(pred, gt, visible, swap_pairs), score(fit, pred, gt, visible, swap_pairs))
PROTOCOL_FUNCTIONS = {
    "h36m": (lambda p, g, v, s: fit_h36m(p, g, s), lambda f, p, g, v, s: score_h36m(f, p, g, s)),
    "taichi": (
        lambda p, g, v, s: fit_taichi(p, g, v),
        lambda f, p, g, v, s: score_taichi(f, p, g, v),
    ),
    "cub": (lambda p, g, v, s: fit_cub(p, g, v), lambda f, p, g, v, s: score_cub(f, p, g, v)),
}
PROTOCOLS = tuple(PROTOCOL_FUNCTIONS)


def _functions(protocol: str):
    check_choice(protocol, PROTOCOLS, "protocol")
    return PROTOCOL_FUNCTIONS[protocol]


def fit_protocol(protocol: str, pred_fit, gt_fit, visible_fit=None, swap_pairs=()) -> LinearFit:
    """Fit the regressor of ``protocol`` (h36m / taichi / cub)."""
    return _functions(protocol)[0](pred_fit, gt_fit, visible_fit, swap_pairs)


def score_protocol(fit: LinearFit, pred_test, gt_test, visible_test=None, swap_pairs=()) -> Scored:
    """Score a fitted regressor on the test split with its own protocol."""
    return _functions(fit.protocol)[1](fit, pred_test, gt_test, visible_test, swap_pairs)


__all__ = [
    "H36M_LIMBS",
    "H36M_SWAP_PAIRS",
    "H36M_TORSO",
    "MAX_SWAP_ROUNDS",
    "PROTOCOLS",
    "SWAP_LIMIT",
    "TAICHI_SIZE",
    "LinearFit",
    "Scored",
    "bplp_c",
    "keypoint_identity",
    "cub_error",
    "fit_cub",
    "fit_h36m",
    "fit_protocol",
    "fit_taichi",
    "h36m_regression_error",
    "limb_proportions",
    "mean_pose_baseline",
    "pdj",
    "per_sample_error",
    "score_cub",
    "score_h36m",
    "score_protocol",
    "score_taichi",
    "swap_joints",
    "taichi_error",
]
