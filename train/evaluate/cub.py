"""CUB protocol: per-part OLS without bias on visible samples; error = summed visible distances /
visible count (fraction of the crop; papers print x100)."""

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
)


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
