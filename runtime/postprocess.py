"""Graph outputs to Results (pure NumPy): frame pixels, plausibility, prototypes, skeleton."""

from __future__ import annotations

import math

import numpy as np

from ppl_edge.coords import norm_to_px
from ppl_edge.preprocess import Letterbox
from ppl_edge.runtime.manifest import Manifest
from ppl_edge.runtime.result import Result

LN2 = math.log(2.0)


def plausibility(distances: np.ndarray, reference: float) -> np.ndarray:
    """Pose plausibility from prototype distances (docs/contracts.md).

    Args:
        distances: (B, M) squared distances of each bank's code to its nearest prototype.
        reference: ``memory.distance_reference`` of the manifest (a typical pose's mean distance).

    Returns:
        (B,) float32 ``exp(-mean_m d / reference · ln 2)``: 1 at a prototype, 0.5 for a typical
        pose.
    """
    mean = np.asarray(distances, np.float64).reshape(len(distances), -1).mean(axis=1)
    return np.exp(-np.maximum(mean, 0.0) / max(reference, 1e-12) * LN2).astype(np.float32)


def to_frame_px(kpts_norm: np.ndarray, lb: Letterbox) -> np.ndarray:
    """(..., 2) xy in [-1, 1] of the model image -> (..., 2) frame pixels through the letterbox."""
    width, height = lb.size
    return lb.to_frame(norm_to_px(kpts_norm, width, height))


def postprocess(
    steps: list[dict[str, np.ndarray]],
    maps: list[Letterbox],
    manifest: Manifest,
    timings: dict[str, float] | None = None,
    reconstructions: list[np.ndarray] | None = None,
) -> list[Result]:
    """Build one Result per subject from the refinement steps of a batch.

    Args:
        steps: outputs of iteration 0..n (keypoints.onnx names), each batched over B subjects;
            the last one is the final estimate.
        maps: B letterbox maps, one per subject.
        manifest: for edges, names and the plausibility reference.
        timings: per-stage milliseconds shared by every Result of the frame.
        reconstructions: n arrays (B, H, W, 3) uint8 of image-mode inputs, to attach.

    Returns:
        B Results in the order of ``maps``.
    """
    final = steps[-1]
    plaus = plausibility(final["prototype_distances"], manifest.distance_reference)
    # Every keypoint set of a subject goes through one vectorised map: final, refined, iterations.
    stacked = np.stack(
        [final["keypoints"], final["keypoints_refined"], *(s["keypoints"] for s in steps)], axis=1
    )  # (B, 2 + S, N, 2)
    results = []
    for b, lb in enumerate(maps):
        px = to_frame_px(stacked[b], lb)  # (2 + S, N, 2)
        results.append(
            Result(
                keypoints=px[0],
                keypoints_refined=px[1],
                confidence=final["confidence"][b],
                plausibility=float(plaus[b]),
                prototype_ids=final["prototype_ids"][b],
                prototype_distances=final["prototype_distances"][b],
                edges=manifest.edges,
                box=lb.box,
                iterations=tuple(px[2:]),
                timings=dict(timings or {}),
                keypoint_names=manifest.keypoint_names,
                reconstructions=tuple(r[b] for r in reconstructions or ()),
            )
        )
    return results
