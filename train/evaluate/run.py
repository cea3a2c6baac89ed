"""Run a checkpoint through the evaluation protocols of :mod:`ppl_edge.train.evaluate`.

``predict_split`` runs a PoseModel over a dataset split (optionally with iterative inference and an
image transform such as an occlusion mask) and returns NumPy keypoints in [0, 1];
``evaluate_checkpoint`` fits the protocol's regressor on ``train_reg`` and scores ``test``, and,
when the test items carry a foreground ``mask``, how much of the predicted pose lies on the figure
(:mod:`ppl_edge.train.on_figure`).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.train import evaluate as ev
from ppl_edge.train import on_figure
from ppl_edge.train.evaluate.layout import Layout, layout_for, video_labelled  # noqa: F401

log = logging.getLogger(__name__)


@dataclass
class Predictions:
    """Model outputs over one split, NumPy.

    keypoints: (I + 1, S, N, 2) estimate of each iteration, xy in [0, 1].
    refined: (I + 1, S, N, 2) memory-refined keypoints (``keypoints_refined``) in [0, 1].
    gt: (S, J, 2) ground truth in [0, 1], or None; visible: (S, J) bool, or None.
    images: (I + 1, k, 3, H, W) the input of each iteration for the first k samples, in [-1, 1].
    masks: (S, H, W) bool foreground masks (``mask`` > 0.5), or None: kept only when asked for
        and every item carries a ``mask``.
    """

    keypoints: np.ndarray
    refined: np.ndarray
    gt: np.ndarray | None
    visible: np.ndarray | None
    images: np.ndarray
    masks: np.ndarray | None = None

    @property
    def count(self) -> int:
        return self.keypoints.shape[1]


Transform = Callable  # (images (B, 3, H, W) tensor, indices (B,) ndarray) -> images


def _to01(parts: list, axis: int) -> np.ndarray:
    """Concatenated [-1, 1] keypoints -> [0, 1], float64 for the regressions."""
    return np.concatenate(parts, axis=axis).astype(np.float64) * 0.5 + 0.5


def _visible_of(item: dict) -> np.ndarray:
    """(J,) bool visibility of a labelled item (every joint when it carries none)."""
    if "visible" in item:
        return item["visible"].numpy()
    return np.ones(len(item["keypoints"]), bool)


def _mask_of(item: dict) -> np.ndarray:
    """(H, W) bool foreground of an item's (1, H, W) mask in [0, 1]."""
    return item["mask"].numpy().reshape(item["mask"].shape[-2:]) > 0.5


def predict_split(
    model,
    dataset,
    count: int,
    batch: int = 64,
    iterations: int = 0,
    mode: str = "image",
    keep: int = 0,
    transform: Transform | None = None,
    num_workers: int = 0,
    masks: bool = False,
) -> Predictions:
    """Run ``model.iterative_inference`` over the first ``count`` items of ``dataset``.

    Args:
        model: PoseModel (put in eval mode here).
        dataset: map-style dataset of dicts with ``image`` (3, H, W) in [-1, 1] and, optionally,
            ``keypoints`` (J, 2) in [-1, 1], ``visible`` (J,) and ``mask`` (1, H, W) in [0, 1].
        count: number of samples (capped at ``len(dataset)``).
        batch: batch size.
        iterations: refinement iterations after iteration 0.
        mode: ``none`` / ``memory`` / ``image``.
        keep: inputs of the first ``keep`` samples to keep for pictures.
        transform: applied to each image batch before inference (e.g. an occlusion mask).
        num_workers: DataLoader processes that read / render items (order is kept).
        masks: keep the items' foreground masks, binarised, in ``Predictions.masks``.

    Returns:
        The :class:`Predictions` of the first ``count`` items.
    """
    import torch

    count = min(int(count), len(dataset))
    if count <= 0:
        raise PplEdgeError("no samples to evaluate: the split is empty or count is 0")
    model.eval()
    device = next(model.parameters()).device
    kpts, refined, gts, vis, kept, fg = [], [], [], [], [], []
    keep_masks = masks
    loader = torch.utils.data.DataLoader(
        torch.utils.data.Subset(dataset, range(count)),
        batch_size=batch,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=list,  # items stay dicts; stacked below
    )
    last_log = time.perf_counter()
    for start, items in zip(range(0, count, batch), loader):
        if time.perf_counter() - last_log > 15.0:  # long CPU runs show progress
            log.info("predicted %d/%d images (%d iterations, %s)", start, count, iterations, mode)
            last_log = time.perf_counter()
        idx = np.arange(start, start + len(items))
        images = torch.stack([it["image"] for it in items]).to(device)
        if transform is not None:
            images = transform(images, idx)
        steps = model.iterative_inference(images, iterations, mode)
        steps = steps + [steps[-1]] * (iterations + 1 - len(steps))  # mode "none": repeat iter 0
        kpts.append(np.stack([s["keypoints"].cpu().numpy() for s in steps]))
        refined.append(np.stack([s["keypoints_refined"].cpu().numpy() for s in steps]))
        if "keypoints" in items[0]:
            gts.append(np.stack([it["keypoints"].numpy() for it in items]))
            vis.append(np.stack([_visible_of(it) for it in items]))
        if keep_masks and all("mask" in it for it in items):
            fg.append(np.stack([_mask_of(it) for it in items]))
        else:
            keep_masks = False
        if start < keep:
            kept.append(np.stack([s["input"][: keep - start].cpu().numpy() for s in steps]))

    H, W = dataset[0]["image"].shape[-2:]
    return Predictions(
        keypoints=_to01(kpts, 1),
        refined=_to01(refined, 1),
        gt=_to01(gts, 0) if gts else None,
        visible=np.concatenate(vis).astype(bool) if vis else None,
        images=np.concatenate(kept, axis=1) if kept else np.zeros((iterations + 1, 0, 3, H, W)),
        masks=np.concatenate(fg) if keep_masks and fg else None,
    )


def build_splits(
    spec: str, img_size: int, n_fit: int, n_test: int, seed: int = 0, options: dict | None = None
):
    """(train_reg dataset, test dataset) of ``spec`` at ``img_size``.

    Synthetic datasets are generated on demand and are asked for exactly ``n_fit`` / ``n_test``
    samples; file-backed datasets have their own length. Videos are read as a fixed camera's
    recordings (``crops="motion"``, the mode their ground truth is given in) unless ``options``
    say otherwise.

    Args:
        spec: dataset spec.
        img_size: H = W of the items.
        n_fit, n_test: samples of generated splits.
        seed: dataset seed.
        options: loader options passed to both splits (``build_dataset`` keywords).
    """
    from ppl_edge.train.data import build_dataset

    kw = {"crops": "motion"} if spec.startswith("video:") else {}
    kw.update(options or {})
    length = (lambda n: {"length": int(n)}) if spec.startswith("synthetic") else (lambda n: {})
    fit = build_dataset(spec, img_size, split="train_reg", seed=seed, **length(n_fit), **kw)
    test = build_dataset(spec, img_size, split="test", seed=seed, **length(n_test), **kw)
    return fit, test


def _finite(value):
    """JSON-safe number: inf / nan become None."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def run_evaluation(
    model,
    fit_data,
    test_data,
    layout: Layout,
    n_fit: int,
    n_test: int,
    batch: int = 64,
    iterations: int = 0,
    mode: str = "image",
    keep: int = 0,
    num_workers: int = 0,
) -> tuple[dict, ev.LinearFit, Predictions]:
    """Fit on ``fit_data`` at iteration 0, score every iteration on ``test_data``.

    The metrics hold :func:`identity_metrics` of iteration 0. When every test item carries a
    ``mask``, they also hold ``keypoints_on_figure`` and ``skeleton_on_figure``
    (:mod:`ppl_edge.train.on_figure`) of the model's own iteration-0 keypoints and its skeleton
    (:func:`ppl_edge.skeleton.edges_from_weights` of W).

    Returns:
        (metrics, the fitted regressor, the test predictions).
    """
    t0 = time.perf_counter()
    fit_pred = predict_split(model, fit_data, n_fit, batch, 0, mode, num_workers=num_workers)
    t1 = time.perf_counter()
    test_pred = predict_split(
        model,
        test_data,
        n_test,
        batch,
        iterations,
        mode,
        keep,
        num_workers=num_workers,
        masks=True,
    )
    t2 = time.perf_counter()
    if fit_pred.gt is None or test_pred.gt is None:
        raise PplEdgeError("the dataset items carry no 'keypoints'; nothing to evaluate against")
    p, sp = layout.protocol, layout.swap_pairs
    fit = ev.fit_protocol(p, fit_pred.keypoints[0], fit_pred.gt, fit_pred.visible, sp)
    scores = [
        ev.score_protocol(fit, test_pred.keypoints[i], test_pred.gt, test_pred.visible, sp)
        for i in range(iterations + 1)
    ]
    fit_ref = ev.fit_protocol(p, fit_pred.refined[0], fit_pred.gt, fit_pred.visible, sp)
    refined = ev.score_protocol(fit_ref, test_pred.refined[0], test_pred.gt, test_pred.visible, sp)
    s0 = scores[0]
    metrics = {
        "protocol": p,
        "units": "pixels at 256 (summed MAE)" if p == "taichi" else "fraction of image",
        "n_fit": fit_pred.count,
        "n_test": test_pred.count,
        "iterations": iterations,
        "mode": mode,
        "error": s0.error,
        "error_per_iteration": [s.error for s in scores],
        "error_memory_refined": refined.error,
        "baseline_mean_pose": ev.mean_pose_baseline(
            p, fit_pred.gt, test_pred.gt, sp, fit_pred.visible, test_pred.visible
        ),
        "pdj": ev.pdj(s0.pred, s0.gt, 0.2, layout.torso, s0.visible),
        "pdj_fraction": 0.2,
        "pdj_reference": "torso" if layout.torso else "bbox diagonal",
        "fit": fit.info,
        "test": s0.info,
        "seconds": {
            "predict_fit": t1 - t0,
            "predict_test": t2 - t1,
            "regression": time.perf_counter() - t2,
        },
    }
    metrics.update(identity_metrics(test_pred), **joint_errors(p, s0, test_data))
    if test_pred.masks is not None:
        metrics.update(figure_metrics(model, test_pred))
    if layout.limbs:
        metrics["bplp_c"] = _finite(ev.bplp_c(s0.pred, layout.limbs))
        metrics["bplp_c_gt"] = _finite(ev.bplp_c(s0.gt, layout.limbs))
    return metrics, fit, test_pred


def joint_errors(protocol: str, scored, data) -> dict:
    """``error_per_joint``: the mean distance per joint (fraction of the image) of a scored
    protocol, over the test images where the joint is visible (all when the data has no
    visibility; None for a joint never visible), and the data's ``joint_names``. Empty for taichi,
    whose number is a summed MAE in pixels, not a mean distance."""
    if protocol == "taichi":
        return {}
    d = np.linalg.norm(scored.pred - scored.gt, axis=-1)  # (S, J)
    if scored.visible is not None:
        d = np.where(scored.visible, d, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a joint never visible: nan -> None
        per_joint = [_finite(float(v)) for v in np.nanmean(d, axis=0)]
    return {
        "error_per_joint": per_joint,
        "joint_names": list(getattr(data, "joint_names", ()) or ()),
    }


def identity_metrics(pred: Predictions) -> dict:
    """``keypoint_identity`` (mean over joints) and ``keypoint_identity_per_joint`` of iteration 0
    of ``pred`` (:func:`~ppl_edge.train.evaluate.metrics.keypoint_identity`)."""
    identity = ev.keypoint_identity(pred.keypoints[0], pred.gt, pred.visible)
    return {
        "keypoint_identity": _finite(float(np.nanmean(identity))),
        "keypoint_identity_per_joint": [_finite(float(v)) for v in identity],
    }


def figure_metrics(model, pred: Predictions) -> dict:
    """``keypoints_on_figure`` and ``skeleton_on_figure`` of iteration 0 of ``pred``.

    Args:
        model: the PoseModel; its skeleton is ``edges_from_weights(connectivity.matrix())``.
        pred: predictions with ``masks``.

    Returns:
        {"keypoints_on_figure": float, "skeleton_on_figure": float} (None where undefined).
    """
    from ppl_edge.skeleton import edges_from_weights

    if pred.masks is None:
        raise PplEdgeError("the predictions hold no foreground masks")
    edges = edges_from_weights(model.connectivity.matrix().detach().cpu().double().numpy())
    kpts = pred.keypoints[0] * 2.0 - 1.0  # [0, 1] -> [-1, 1]
    return {
        "keypoints_on_figure": _finite(on_figure.keypoints_on_figure(kpts, pred.masks)),
        "skeleton_on_figure": _finite(on_figure.skeleton_on_figure(kpts, edges, pred.masks)),
    }


def evaluate_checkpoint(
    ckpt: str | Path,
    data_spec: str = "synthetic:humanoid",
    protocol: str = "auto",
    n_fit: int = 2000,
    n_test: int = 1000,
    batch: int = 64,
    iterations: int = 0,
    mode: str = "image",
    seed: int = 0,
    num_workers: int = 0,
    data_options: dict | None = None,
) -> dict:
    """Evaluate a checkpoint: fit on ``train_reg``, score on ``test``; returns a dict of numbers.

    Args:
        ckpt: a ``.safetensors`` checkpoint.
        data_spec: dataset spec with ground truth (``synthetic:humanoid``, ``h36m:PATH``, ...).
        protocol: ``auto`` (from the spec), ``h36m``, ``taichi`` or ``cub``.
        n_fit, n_test: samples of the fit and test splits.
        iterations: iterative-inference iterations scored after iteration 0.
        mode: ``image`` or ``memory`` refinement.
        seed: dataset seed.
        num_workers: DataLoader processes reading / rendering the images.
        data_options: loader options of both splits (see :func:`build_splits`).
    """
    import torch

    from ppl_edge.checkpoint import load_model

    layout_for(data_spec, protocol)  # refuse unlabelled data before loading anything
    model, _ = load_model(ckpt)
    fit_data, test_data = build_splits(
        data_spec, model.cfg.img_size, n_fit, n_test, seed, data_options
    )
    layout = layout_for(data_spec, protocol, test_data)
    with torch.inference_mode():
        metrics, _, _ = run_evaluation(
            model,
            fit_data,
            test_data,
            layout,
            n_fit,
            n_test,
            batch,
            iterations,
            mode,
            0,
            num_workers,
        )
    return {"checkpoint": str(ckpt), "data": data_spec, **metrics}
