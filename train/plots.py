"""Pictures: the learned prior and its evolution, prediction overlays, occlusion results.

Matplotlib is used through its object API (``Figure`` + Agg canvas), never ``pyplot``, so drawing
changes no global backend state and works headless. Every PNG is written atomically. Keypoints
arrive as (x, y) in [-1, 1] and are drawn in pixel coordinates (:func:`ppl_edge.coords.norm_to_px`).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ppl_edge.coords import norm_to_px
from ppl_edge.errors import require
from ppl_edge.fileio import atomic_write_bytes
from ppl_edge.skeleton import edges_from_weights

EDGE_COLOR = "#d62728"  # skeleton edges (ppl_edge.skeleton.edges_from_weights: tree + <= N extras)
LINK_COLOR = "#4c72b0"  # every other link, shaded by its weight


def _figure(width: float, height: float):
    require("matplotlib", "train", "drawing pictures")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _save(fig, path: str | Path) -> Path:
    """Render with the Agg canvas and write the PNG atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _colors(n: int) -> np.ndarray:
    """(n, 4) RGBA, one distinct colour per keypoint index."""
    from matplotlib import colormaps

    return colormaps["hsv"](np.linspace(0.0, 1.0, n, endpoint=False))


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """(3, H, W) in [-1, 1] -> (H, W, 3) in [0, 1]."""
    return np.clip(np.transpose(image, (1, 2, 0)) * 0.5 + 0.5, 0.0, 1.0)


def draw_prior(ax, prior: np.ndarray, weights: np.ndarray, edges=None, labels: bool = True) -> None:
    """Draw T with every link shaded by W and the skeleton edges highlighted.

    Args:
        ax: a matplotlib Axes.
        prior: (N, 2) xy in [-1, 1].
        weights: (N, N) symmetric W; line alpha and width grow with w_ij / max W.
        edges: skeleton edges; default ``edges_from_weights(weights)``.
        labels: write each keypoint's index beside it.
    """
    prior, weights = np.asarray(prior, float), np.asarray(weights, float)
    n = len(prior)
    edges = edges_from_weights(weights) if edges is None else edges
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgba

    iu, ju = np.triu_indices(n, 1)
    w = weights[iu, ju] / max(float(weights[iu, ju].max()), 1e-12)  # (L,) relative weight
    rgba = np.tile(to_rgba(LINK_COLOR), (len(w), 1))
    rgba[:, 3] = 0.08 + 0.6 * w
    ax.add_collection(
        LineCollection(
            np.stack([prior[iu], prior[ju]], axis=1),
            colors=rgba,
            linewidths=0.3 + 2.0 * w,
            zorder=1,
        )
    )
    if len(edges):
        segs = np.stack([prior[[i for i, _ in edges]], prior[[j for _, j in edges]]], axis=1)
        ax.add_collection(
            LineCollection(segs, colors=EDGE_COLOR, linewidths=2.5, alpha=0.9, zorder=2)
        )
    ax.scatter(
        prior[:, 0], prior[:, 1], c=_colors(n), s=40, edgecolors="k", linewidths=0.5, zorder=3
    )
    if labels:
        for k, (x, y) in enumerate(prior):
            ax.annotate(str(k), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
    lim = max(1.05, float(np.abs(prior).max()) + 0.1)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(lim, -lim)  # image convention: y grows downwards
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)


def plot_prior(prior: np.ndarray, weights: np.ndarray, path: str | Path, title: str = "") -> Path:
    """One panel: the keypoint prior T with links shaded by W (see :func:`draw_prior`)."""
    fig = _figure(5, 5)
    ax = fig.add_subplot()
    draw_prior(ax, prior, weights)
    ax.set_title(
        title or f"keypoint prior T (N={len(prior)}), links shaded by W; skeleton in red",
        fontsize=9,
    )
    return _save(fig, path)


def plot_prior_evolution(
    history: dict | None,
    final: tuple[np.ndarray, np.ndarray],
    path: str | Path,
    max_panels: int = 6,
) -> Path:
    """The prior's evolution over training, evenly spaced snapshots ending with the latest.

    Args:
        history: :func:`ppl_edge.train.prior_io.load_prior_history` output, or None.
        final: (prior (N, 2), weights (N, N)) of the checkpoint, drawn last.
        max_panels: at most this many panels.
    """
    panels = []
    if history is not None and len(history["steps"]):
        s = len(history["steps"])
        picks = np.unique(np.linspace(0, s - 1, min(max_panels - 1, s)).round().astype(int))
        panels = [
            (f"step {int(history['steps'][k])}", history["priors"][k], history["weights"][k])
            for k in picks
        ]
    panels.append(("checkpoint", *final))
    fig = _figure(3.2 * len(panels), 3.6)
    for k, (title, prior, weights) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        draw_prior(ax, prior, weights, labels=len(panels) <= 3)
        ax.set_title(title, fontsize=9)
    if history is None:
        fig.suptitle("final prior only: the run folder has no prior_history.npz", fontsize=9)
    return _save(fig, path)


def draw_pose(ax, image: np.ndarray, kpts: np.ndarray, edges: Sequence[tuple[int, int]]) -> None:
    """An image (3, H, W) in [-1, 1] with keypoints (N, 2) in [-1, 1] and skeleton edges."""
    _, H, W = image.shape
    px = norm_to_px(kpts, W, H)
    ax.imshow(_to_rgb(image), extent=(-0.5, W - 0.5, H - 0.5, -0.5), interpolation="nearest")
    for i, j in edges:
        ax.plot(*px[[i, j]].T, color="w", lw=1.2, alpha=0.9)
    ax.scatter(px[:, 0], px[:, 1], c=_colors(len(px)), s=10, edgecolors="k", linewidths=0.3)
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_axis_off()


def plot_overlays(
    images: np.ndarray,
    kpts: np.ndarray,
    edges: Sequence[tuple[int, int]],
    path: str | Path,
    cols: int = 8,
    title: str = "",
) -> Path:
    """A grid of images (B, 3, H, W) with predicted keypoints (B, N, 2) and the learned skeleton."""
    b = len(images)
    cols = max(1, min(cols, b))
    rows = (b + cols - 1) // cols
    fig = _figure(1.6 * cols, 1.6 * rows + 0.3)
    for k in range(b):
        draw_pose(fig.add_subplot(rows, cols, k + 1), images[k], kpts[k], edges)
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def plot_occlusion_iterations(
    examples: dict, edges: Sequence[tuple[int, int]], path: str | Path, sample: int = 0
) -> Path:
    """Rows: mask settings; columns: iterations; each cell the input of that iteration + its pose.

    Args:
        examples: label -> (inputs (I + 1, k, 3, H, W), keypoints (I + 1, k, N, 2)), in [-1, 1].
        sample: which of the k kept images to show.
    """
    labels = [lab for lab, (inp, _) in examples.items() if inp.shape[1] > sample]
    iters = examples[labels[0]][0].shape[0]
    fig = _figure(1.6 * iters + 0.8, 1.6 * len(labels))
    for r, lab in enumerate(labels):
        inputs, kpts = examples[lab]
        for i in range(iters):
            ax = fig.add_subplot(len(labels), iters, r * iters + i + 1)
            draw_pose(ax, inputs[i, sample], kpts[i, sample], edges)
            if r == 0:
                ax.set_title(f"iteration {i}", fontsize=8)
            if i == 0:
                ax.text(
                    -0.08,
                    0.5,
                    lab,
                    transform=ax.transAxes,
                    rotation=90,
                    ha="right",
                    va="center",
                    fontsize=8,
                )
    return _save(fig, path)


def plot_occlusion_curves(
    labels: Sequence[str], errors: np.ndarray, path: str | Path, mode: str = "image"
) -> Path:
    """Error (x100) against iteration, one line per mask setting (paper figures A1 / A2)."""
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    iters = np.arange(errors.shape[1])
    for lab, row in zip(labels, errors):
        style = "-" if lab.startswith("random") else "--" if lab.startswith("center") else ":"
        ax.plot(
            iters,
            100 * row,
            style,
            marker="o",
            ms=3,
            label=lab,
            color="k" if lab == "none" else None,
        )
    ax.set_xlabel(f"iteration ({mode} refinement)")
    ax.set_ylabel("regression error (% of image size)")
    ax.set_xticks(iters)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)
