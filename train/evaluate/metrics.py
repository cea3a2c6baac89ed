"""Protocol-independent numbers: PDJ (DeepPose), BPLP-C and the mean-pose baseline of each
protocol."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.train.evaluate.common import LinearFit, _check, _visible
from ppl_edge.train.evaluate.h36m import _fit_ols_with_swaps, score_h36m
from ppl_edge.train.evaluate.taichi import TAICHI_SIZE


def pdj(
    pred: np.ndarray,
    gt: np.ndarray,
    fraction: float = 0.2,
    torso: tuple[int, int] | None = None,
    visible: np.ndarray | None = None,
) -> float:
    """Percentage of Detected Joints (DeepPose): distance < fraction x reference length.

    Args:
        pred, gt: (S, J, 2) regressed predictions and ground truth, same units.
        fraction: threshold relative to the reference length.
        torso: joint pair whose GT distance is the reference (torso diameter); None uses the
            diagonal of the bounding box of the visible GT joints.
        visible: (S, J) bool; only visible joints count.

    Returns:
        Fraction of detected joints in [0, 1].
    """
    _check(pred, gt, visible)
    vis = _visible(gt, visible)
    if torso is not None:
        ref = np.linalg.norm(gt[:, torso[0]] - gt[:, torso[1]], axis=-1)  # (S,)
    else:
        lo = np.where(vis[..., None], gt, np.inf).min(axis=1)
        hi = np.where(vis[..., None], gt, -np.inf).max(axis=1)
        ref = np.linalg.norm(np.where(np.isfinite(hi - lo), hi - lo, 0.0), axis=-1)
    hit = np.linalg.norm(pred - gt, axis=-1) < fraction * ref[:, None]  # (S, J)
    return float(hit[vis].mean()) if vis.any() else 0.0


def limb_proportions(kpts: np.ndarray, limbs: Sequence[tuple[int, int]]) -> np.ndarray:
    """(S, L) length of each limb divided by the sample's total limb length (scale-free)."""
    ends = np.asarray(limbs, dtype=int)
    lengths = np.linalg.norm(kpts[:, ends[:, 0]] - kpts[:, ends[:, 1]], axis=-1)  # (S, L)
    return lengths / np.maximum(lengths.sum(axis=1, keepdims=True), 1e-12)


def bplp_c(kpts: np.ndarray, limbs: Sequence[tuple[int, int]]) -> float:
    """BPLP-C, body-part-length-proportion consistency (Yoo & Russakovsky 2023): higher is better.

    The metric scores σ of the body part length proportions over a set of poses; here a pose's
    proportions are its limb lengths divided by their sum, σ is each limb's standard deviation over
    the poses, and BPLP-C = 1 / mean σ. A rigid, uniformly scaled skeleton has σ = 0 (BPLP-C = inf).
    The seed paper leaves the exact formula open; this reading is scale- and rotation-invariant.

    Args:
        kpts: (S, J, 2) poses (regressed predictions or ground truth); any units.
        limbs: (L, 2) joint index pairs.
    """
    if kpts.ndim != 3 or len(kpts) < 2:
        raise PplEdgeError(f"BPLP-C needs at least 2 poses (S, J, 2), got {kpts.shape}")
    sigma = float(limb_proportions(kpts, limbs).std(axis=0).mean())
    return float("inf") if sigma < 1e-12 else 1.0 / sigma  # below 1e-12 is rounding noise


def keypoint_identity(
    kpts: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None
) -> np.ndarray:
    """How consistently one keypoint marks each joint: per joint, the share of images in which the
    keypoint nearest the joint is the keypoint most often nearest it (1: always the same one).

    A linear regressor can only use a keypoint that keeps its meaning from image to image: a
    keypoint that lies on the hand in one image and on the elbow in the next helps neither.

    Args:
        kpts: (S, N, 2) the model's own keypoints; gt: (S, J, 2) ground truth, same units.
        visible: optional (S, J) bool; joints not visible in an image are left out.

    Returns:
        (J,) shares in [1/N, 1], NaN for a joint visible in no image.
    """
    if kpts.ndim != 3 or gt.ndim != 3 or len(kpts) != len(gt):
        raise PplEdgeError(f"need (S, N, 2) keypoints and (S, J, 2) joints, got {kpts.shape} "
                           f"and {gt.shape}")  # fmt: skip
    vis = np.ones(gt.shape[:2], bool) if visible is None else np.asarray(visible, bool)
    nearest = np.linalg.norm(gt[:, :, None] - kpts[:, None], axis=-1).argmin(-1)  # (S, J)
    shares = np.full(gt.shape[1], np.nan)
    for j in range(gt.shape[1]):
        if vis[:, j].any():
            counts = np.bincount(nearest[vis[:, j], j], minlength=kpts.shape[1])
            shares[j] = counts.max() / counts.sum()
    return shares


def mean_pose_baseline(
    protocol: str,
    gt_fit: np.ndarray,
    gt_test: np.ndarray,
    swap_pairs: Sequence[tuple[int, int]] = (),
    visible_fit: np.ndarray | None = None,
    visible_test: np.ndarray | None = None,
) -> float:
    """The protocol's error when every test image gets the mean training pose.

    For h36m this is the same swap-aware fit with a constant design matrix (a column of ones), so
    the mean pose is left/right-aligned exactly like the regression targets.
    """
    S = len(gt_fit)
    if protocol == "h36m":
        fit = _fit_ols_with_swaps(np.ones((S, 1)), gt_fit, tuple(swap_pairs))
        fit = LinearFit("h36m", fit.beta, {**fit.info, "constant": True})
        return score_h36m(fit, np.zeros((len(gt_test), 1, 2)), gt_test, swap_pairs).error
    vis_f = _visible(gt_fit, visible_fit)
    vis_t = _visible(gt_test, visible_test)
    mean = np.stack([gt_fit[vis_f[:, j], j].mean(axis=0) for j in range(gt_fit.shape[1])])  # (J, 2)
    if protocol == "taichi":
        err = np.abs(mean[None] - gt_test) * (TAICHI_SIZE - 1)  # (S, J, 2)
        return float(
            sum(
                err[vis_t[:, j], j, c].mean()
                for j in range(err.shape[1])
                for c in (0, 1)
                if vis_t[:, j].any()
            )
        )
    if protocol == "cub":
        dist = np.linalg.norm(mean[None] - gt_test, axis=-1)
        return float(dist[vis_t].sum() / max(int(vis_t.sum()), 1))
    raise PplEdgeError(f"unknown protocol {protocol!r}; expected h36m, taichi or cub")
