"""Taichi protocol: per-coordinate OLS with bias on visible labels, at 256 px; error = sum over
coordinates of the mean absolute error in pixels."""

from __future__ import annotations

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.train.evaluate.common import (
    LinearFit,
    Scored,
    _check,
    _flat,
    _solve_ridge_fallback,
    _visible,
    _with_bias,
)

TAICHI_SIZE = 256  # Taichi labels are pixels of a 256 x 256 image


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
