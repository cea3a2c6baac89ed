"""Occlusion robustness (paper §4.3): patch masks, iterative inference, error per iteration.

The image is divided into a 32 x 32 grid of patches (1024 patches; at 64 px a patch is 2 x 2 px).
RandomMasking hides a ratio (0.1-0.4) of the patches, drawn per image from a seeded generator;
CenterMasking hides a centred block of 4 x 4 to 12 x 12 patches. Masked pixels become 0 in the
[-1, 1] image space (mid grey, like the official training mask). For each setting the model runs
``iterative_inference`` for 0..I iterations and every iteration's keypoints are scored with one
Human3.6M-style regressor, fitted once on unoccluded ``train_reg`` predictions at iteration 0.

# DEVIATION(official): the released code has no occlusion protocol (ppl_official_code.md §4); this
# follows the paper's text and its appendix A4 figures.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

GRID = 32  # paper §4.3: 32 x 32 patches
RANDOM_RATIOS = (0.1, 0.2, 0.3, 0.4)  # paper §4.3 / figure A1
CENTER_SIZES = (4, 6, 8, 10, 12)  # paper §4.3 / figure A2, in patches


def random_patch_mask(ratio: float, rng: np.random.Generator, grid: int = GRID) -> np.ndarray:
    """(grid, grid) bool with exactly round(ratio * grid²) patches set, without replacement."""
    if not 0.0 <= ratio <= 1.0:
        raise PplEdgeError(f"mask ratio must be in [0, 1], got {ratio}")
    count = int(round(ratio * grid * grid))
    mask = np.zeros(grid * grid, dtype=bool)
    mask[rng.choice(grid * grid, size=count, replace=False)] = True
    return mask.reshape(grid, grid)


def center_patch_mask(size: int, grid: int = GRID) -> np.ndarray:
    """(grid, grid) bool with a centred size x size block set (start (grid - size) // 2)."""
    if not 0 <= size <= grid:
        raise PplEdgeError(f"centre mask size must be in [0, {grid}] patches, got {size}")
    mask = np.zeros((grid, grid), dtype=bool)
    start = (grid - size) // 2
    mask[start : start + size, start : start + size] = True
    return mask


def patches_to_pixels(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest upsampling of a (g, g) patch mask to (height, width) pixels.

    Pixel (y, x) belongs to patch (y * g // height, x * g // width), so for sizes divisible by g
    every patch covers exactly (height / g) x (width / g) pixels.
    """
    g_rows, g_cols = mask.shape
    rows = np.arange(height) * g_rows // height
    cols = np.arange(width) * g_cols // width
    return mask[rows][:, cols]


@dataclass(frozen=True)
class MaskSetting:
    """One occlusion setting: ``none``, ``random`` (value = ratio) or ``center`` (value = size)."""

    kind: Literal["none", "random", "center"]
    value: float = 0.0

    @property
    def label(self) -> str:
        if self.kind == "random":
            return f"random {self.value:g}"
        if self.kind == "center":
            return f"center {int(self.value)}x{int(self.value)}"
        return "none"

    def patch_mask(self, rng: np.random.Generator, grid: int = GRID) -> np.ndarray:
        """(grid, grid) bool mask of this setting; ``rng`` is used by ``random`` only."""
        if self.kind == "random":
            return random_patch_mask(self.value, rng, grid)
        if self.kind == "center":
            return center_patch_mask(int(self.value), grid)
        return np.zeros((grid, grid), dtype=bool)


def default_settings() -> tuple[MaskSetting, ...]:
    """No occlusion, the four RandomMasking ratios and the five CenterMasking sizes."""
    return (
        (MaskSetting("none"),)
        + tuple(MaskSetting("random", r) for r in RANDOM_RATIOS)
        + tuple(MaskSetting("center", s) for s in CENTER_SIZES)
    )


def pixel_masks(
    setting: MaskSetting, indices: Sequence[int], height: int, width: int, seed: int = 0
) -> np.ndarray:
    """(B, H, W) bool masks for dataset samples ``indices``; sample i's random mask depends only on
    (seed, ratio, i), so results do not depend on the batch size."""
    out = np.empty((len(indices), height, width), dtype=bool)
    for b, index in enumerate(indices):
        rng = np.random.default_rng([seed, int(round(setting.value * 1000)), int(index)])
        out[b] = patches_to_pixels(setting.patch_mask(rng), height, width)
    return out


def occlude(images, masks: np.ndarray):
    """Set masked pixels to 0 (mid grey in [-1, 1]).

    Args:
        images: (B, 3, H, W) torch tensor or NumPy array in [-1, 1].
        masks: (B, H, W) bool.

    Returns:
        A masked copy of the same type.
    """
    keep = (~masks)[:, None].astype(np.float32)  # (B, 1, H, W)
    if isinstance(images, np.ndarray):
        return images * keep
    import torch

    return images * torch.from_numpy(keep).to(images.device, images.dtype)


@dataclass
class OcclusionResult:
    """Error per setting and iteration.

    errors: (settings, I + 1) mean regression error (fraction of the image size).
    examples: label -> (inputs (I + 1, k, 3, H, W), keypoints (I + 1, k, N, 2)), both in [-1, 1],
        of the first k test images, for pictures.
    """

    labels: list[str]
    errors: np.ndarray
    mode: str
    n_test: int
    examples: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """JSON-ready dict: errors per setting as a list over iterations."""
        return {
            "mode": self.mode,
            "n_test": self.n_test,
            "iterations": self.errors.shape[1] - 1,
            "units": "fraction of image size",
            "errors": {lab: [float(e) for e in row] for lab, row in zip(self.labels, self.errors)},
        }

    def to_markdown(self) -> str:
        """Table of errors x100, one row per setting, one column per iteration."""
        iters = range(self.errors.shape[1])
        head = "| mask | " + " | ".join(f"iter {i}" for i in iters) + " |"
        rule = "|---|" + "---:|" * self.errors.shape[1]
        rows = [
            f"| {lab} | " + " | ".join(f"{100 * e:.2f}" for e in row) + " |"
            for lab, row in zip(self.labels, self.errors)
        ]
        return "\n".join([head, rule, *rows]) + "\n"

    def to_csv(self) -> str:
        """CSV with one row per setting: mask, then the error (fraction) at each iteration."""
        head = "mask," + ",".join(f"iter_{i}" for i in range(self.errors.shape[1]))
        rows = [
            f"{lab}," + ",".join(f"{e:.6f}" for e in row)
            for lab, row in zip(self.labels, self.errors)
        ]
        return "\n".join([head, *rows]) + "\n"

    def write(self, out_dir: str | Path) -> list[Path]:
        """Write occlusion.md / .csv / .json atomically into ``out_dir``."""
        out = Path(out_dir)
        files = {
            "occlusion.md": self.to_markdown(),
            "occlusion.csv": self.to_csv(),
            "occlusion.json": json.dumps(self.to_json(), indent=2) + "\n",
        }
        for name, text in files.items():
            atomic_write_bytes(out / name, text.encode())
        return [out / name for name in files]


def run_occlusion(
    model,
    fit,
    dataset,
    swap_pairs: Sequence[tuple[int, int]],
    n_test: int,
    batch: int = 64,
    iterations: int = 4,
    mode: str = "image",
    seed: int = 0,
    settings: Sequence[MaskSetting] | None = None,
    keep: int = 0,
    num_workers: int = 0,
) -> OcclusionResult:
    """Score iterative inference on occluded test images with a fixed regressor.

    Args:
        model: a PoseModel in eval mode.
        fit: the Human3.6M-style LinearFit from unoccluded train_reg predictions at iteration 0.
        dataset: the test split (items with ``image`` and ``keypoints``).
        swap_pairs: left/right pairs of the ground-truth layout.
        n_test: test images per setting.
        iterations: refinement iterations after iteration 0 (paper: 4).
        mode: ``image`` (paper §3.4) or ``memory``.
        settings: mask settings; defaults to :func:`default_settings`.
        keep: how many images per setting to keep for pictures.
        num_workers: DataLoader processes reading / rendering the images.
    """
    from ppl_edge.train.evaluate import score_h36m
    from ppl_edge.train.evaluate.run import predict_split

    if fit.protocol != "h36m":
        raise PplEdgeError(
            f"occlusion is scored with the h36m-style regressor, got a {fit.protocol} fit"
        )
    settings = tuple(settings or default_settings())
    errors = np.zeros((len(settings), iterations + 1))
    examples = {}
    for k, setting in enumerate(settings):

        def transform(images, indices, setting=setting):
            H, W = images.shape[-2:]
            return occlude(images, pixel_masks(setting, indices, H, W, seed))

        preds = predict_split(
            model, dataset, n_test, batch, iterations, mode, keep, transform, num_workers
        )
        if preds.gt is None:
            raise PplEdgeError("the test split has no ground-truth keypoints to score occlusion")
        for i in range(iterations + 1):
            errors[k, i] = score_h36m(fit, preds.keypoints[i], preds.gt, swap_pairs).error
        examples[setting.label] = (preds.images, preds.keypoints[:, :keep] * 2 - 1)
        log.info("occlusion %-12s %s", setting.label, " ".join(f"{100 * e:.2f}" for e in errors[k]))
    return OcclusionResult([s.label for s in settings], errors, mode, preds.count, examples)
