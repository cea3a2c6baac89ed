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
(:func:`evaluate_checkpoint`) lives in :mod:`ppl_edge.train.eval_run` and imports torch lazily.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ppl_edge.errors import PplEdgeError

log = logging.getLogger(__name__)

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
SWAP_LIMIT = 10  # official: swap and refit while more than 10 samples prefer the swapped labels
MAX_SWAP_ROUNDS = 50  # guard: the loop converges in a few rounds in practice
TAICHI_SIZE = 256  # Taichi labels are pixels of a 256 x 256 image


@dataclass(frozen=True)
class LinearFit:
    """A fitted regressor from flattened detections to ground truth.

    beta: (2N [+1], 2J) float64; column 2j is joint j's x, 2j+1 its y.
    info: bookkeeping of the fit (samples kept, labels swapped, refits).
    """

    protocol: str
    beta: np.ndarray
    info: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Scored:
    """Test-split result of a protocol.

    error: the protocol's number (fraction of the image for h36m / cub, pixels for taichi).
    pred: (S, J, 2) regressed predictions in [0, 1]; gt: (S, J, 2) ground truth after the swap loop.
    visible: (S, J) bool or None.
    """

    error: float
    pred: np.ndarray
    gt: np.ndarray
    visible: np.ndarray | None
    info: dict = field(default_factory=dict)


def _check(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray | None = None) -> None:
    if pred.ndim != 3 or pred.shape[-1] != 2 or gt.ndim != 3 or gt.shape[-1] != 2:
        raise PplEdgeError(
            f"expected predictions (S, N, 2) and ground truth (S, J, 2), got {pred.shape} and "
            f"{gt.shape}"
        )
    if pred.shape[0] != gt.shape[0]:
        raise PplEdgeError(f"{pred.shape[0]} predictions for {gt.shape[0]} ground-truth poses")
    if visible is not None and visible.shape != gt.shape[:2]:
        raise PplEdgeError(f"visible must be (S, J) = {gt.shape[:2]}, got {visible.shape}")


def _flat(points: np.ndarray) -> np.ndarray:
    """(S, K, 2) -> (S, 2K) float64, x0 y0 x1 y1 ..."""
    return np.asarray(points, dtype=np.float64).reshape(len(points), -1)


def _visible(gt: np.ndarray, visible: np.ndarray | None) -> np.ndarray:
    """(S, J) bool visibility of the ground truth ``gt`` (S, J, 2): every joint when None."""
    return np.ones(gt.shape[:2], bool) if visible is None else np.asarray(visible, bool)


def _with_bias(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((len(x), 1))], axis=1)  # (S, D + 1)


def _solve_ridge_fallback(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """β = (XᵀX)⁻¹XᵀY, with XᵀX + I when XᵀX is singular (official fallback)."""
    gram = x.T @ x
    if np.linalg.matrix_rank(gram) < gram.shape[0]:
        gram = gram + np.eye(gram.shape[0])
    return np.linalg.solve(gram, x.T @ y)


def swap_joints(gt: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Left/right-swapped copy of ground truth (..., J, 2).

    Every pair reads from the original array, in list order; with the official (20, 28), (21, 28)
    joint 28 takes joint 21's place, 20 and 21 both take 28's, and 29 never moves.
    """
    out = np.array(gt, copy=True)
    for i, j in pairs:
        out[..., i, :] = gt[..., j, :]
        out[..., j, :] = gt[..., i, :]
    return out


def per_sample_error(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(S,) mean over joints of the Euclidean distance between (S, J, 2) arrays."""
    return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1)


def _swap_better(pred: np.ndarray, gt: np.ndarray, pairs) -> tuple[np.ndarray, np.ndarray]:
    """Mask (S,) of samples whose swapped ground truth is closer, and the swapped copy."""
    swapped = swap_joints(gt, pairs)
    return per_sample_error(pred, swapped) < per_sample_error(pred, gt), swapped


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


def fit_taichi(
    pred_fit: np.ndarray,
    gt_fit: np.ndarray,
    visible_fit: np.ndarray | None = None,
    size: int = TAICHI_SIZE,
) -> LinearFit:
    """Per-coordinate OLS with bias on visible labels; detections and labels in pixels."""
    _check(pred_fit, gt_fit, visible_fit)
    x = _with_bias(_flat(pred_fit) * (size - 1))
    y = _flat(gt_fit) * (size - 1)
    vis = _visible(gt_fit, visible_fit)
    vis = np.repeat(vis, 2, axis=1)  # (S, 2J) one flag per coordinate
    beta = np.zeros((x.shape[1], y.shape[1]))
    for c in range(y.shape[1]):
        if not vis[:, c].any():
            raise PplEdgeError(f"taichi: coordinate {c} has no visible label in the fit split")
        beta[:, c] = _solve_ridge_fallback(x[vis[:, c]], y[vis[:, c], c])
    return LinearFit("taichi", beta, {"fit_samples": len(x), "size": size})


def score_taichi(
    fit: LinearFit,
    pred_test: np.ndarray,
    gt_test: np.ndarray,
    visible_test: np.ndarray | None = None,
) -> Scored:
    """Sum over the 2J coordinates of the mean absolute error (pixels at ``size``), visible labels.

    A coordinate with no visible test label contributes nothing.
    """
    _check(pred_test, gt_test, visible_test)
    scale = fit.info["size"] - 1
    pred_px = _with_bias(_flat(pred_test) * scale) @ fit.beta  # (S, 2J)
    y = _flat(gt_test) * scale
    vis = _visible(gt_test, visible_test)
    vis2 = np.repeat(vis, 2, axis=1)
    total = sum(
        float(np.abs(pred_px[vis2[:, c], c] - y[vis2[:, c], c]).mean())
        for c in range(y.shape[1])
        if vis2[:, c].any()
    )
    return Scored(total, (pred_px / scale).reshape(gt_test.shape), np.asarray(gt_test), vis)


def taichi_error(
    pred_fit: np.ndarray,
    gt_fit: np.ndarray,
    pred_test: np.ndarray,
    gt_test: np.ndarray,
    visible_fit: np.ndarray | None = None,
    visible_test: np.ndarray | None = None,
    size: int = TAICHI_SIZE,
) -> float:
    """Taichi protocol: summed MAE in pixels at 256 (inputs in [0, 1], visibility (S, J) bool)."""
    fit = fit_taichi(pred_fit, gt_fit, visible_fit, size)
    return score_taichi(fit, pred_test, gt_test, visible_test).error


def fit_cub(
    pred_fit: np.ndarray, gt_fit: np.ndarray, visible_fit: np.ndarray | None = None
) -> LinearFit:
    """Per GT part OLS without bias from all 2N detections, on samples where the part is visible."""
    _check(pred_fit, gt_fit, visible_fit)
    x = _flat(pred_fit)
    vis = _visible(gt_fit, visible_fit)
    beta = np.zeros((x.shape[1], 2 * gt_fit.shape[1]))
    for j in range(gt_fit.shape[1]):
        if not vis[:, j].any():
            raise PplEdgeError(f"cub: part {j} is never visible in the fit split")
        beta[:, 2 * j : 2 * j + 2] = _solve_ridge_fallback(x[vis[:, j]], gt_fit[vis[:, j], j])
    return LinearFit("cub", beta, {"fit_samples": len(x)})


def score_cub(
    fit: LinearFit,
    pred_test: np.ndarray,
    gt_test: np.ndarray,
    visible_test: np.ndarray | None = None,
) -> Scored:
    """Sum of visible test distances / visible count (fraction of the crop; papers print x100)."""
    _check(pred_test, gt_test, visible_test)
    pred = (_flat(pred_test) @ fit.beta).reshape(gt_test.shape)
    vis = _visible(gt_test, visible_test)
    dist = np.linalg.norm(pred - gt_test, axis=-1)  # (S, J)
    err = float(dist[vis].sum() / max(int(vis.sum()), 1))
    return Scored(err, pred, np.asarray(gt_test), vis, {"visible": int(vis.sum())})


def cub_error(
    pred_fit: np.ndarray,
    gt_fit: np.ndarray,
    pred_test: np.ndarray,
    gt_test: np.ndarray,
    visible_fit: np.ndarray | None = None,
    visible_test: np.ndarray | None = None,
) -> float:
    """CUB protocol: mean visible part distance in [0, 1] crop units."""
    return score_cub(fit_cub(pred_fit, gt_fit, visible_fit), pred_test, gt_test, visible_test).error


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


PROTOCOLS = ("h36m", "taichi", "cub")


def fit_protocol(protocol: str, pred_fit, gt_fit, visible_fit=None, swap_pairs=()) -> LinearFit:
    """Dispatch to fit_h36m / fit_taichi / fit_cub."""
    if protocol == "h36m":
        return fit_h36m(pred_fit, gt_fit, swap_pairs)
    if protocol == "taichi":
        return fit_taichi(pred_fit, gt_fit, visible_fit)
    if protocol == "cub":
        return fit_cub(pred_fit, gt_fit, visible_fit)
    raise PplEdgeError(f"unknown protocol {protocol!r}; expected one of {', '.join(PROTOCOLS)}")


def score_protocol(fit: LinearFit, pred_test, gt_test, visible_test=None, swap_pairs=()) -> Scored:
    """Dispatch to score_h36m / score_taichi / score_cub."""
    if fit.protocol == "h36m":
        return score_h36m(fit, pred_test, gt_test, swap_pairs)
    if fit.protocol == "taichi":
        return score_taichi(fit, pred_test, gt_test, visible_test)
    return score_cub(fit, pred_test, gt_test, visible_test)


def __getattr__(name: str):
    """``evaluate_checkpoint`` is :func:`ppl_edge.train.eval_run.evaluate_checkpoint`, imported on
    first use (``eval_run`` imports this module, and running a checkpoint needs torch)."""
    if name == "evaluate_checkpoint":
        from ppl_edge.train.eval_run import evaluate_checkpoint

        return evaluate_checkpoint
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
