"""What every protocol shares: the fitted regressor, the scored result, input checks, the swap of
left/right joints and the per-sample error. NumPy only; (x, y) in [0, 1] image units."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ppl_edge.errors import PplEdgeError

log = logging.getLogger(__name__)

SWAP_LIMIT = 10  # official: swap and refit while more than 10 samples prefer the swapped labels
MAX_SWAP_ROUNDS = 50  # guard: the loop converges in a few rounds in practice


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
