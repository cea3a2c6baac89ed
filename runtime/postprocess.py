"""Graph outputs to Results (pure NumPy): frame pixels, plausibility, prototypes, skeleton, named
joints."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from ppl_edge.coords import norm_to_px, px_to_norm
from ppl_edge.named_joints import NamedJoints
from ppl_edge.preprocess import Letterbox
from ppl_edge.runtime.manifest import Manifest, ManifestError
from ppl_edge.runtime.result import Result

LN2 = math.log(2.0)


def plausibility(distances: np.ndarray, reference: float) -> list[float]:
    """Pose plausibility from prototype distances (docs/contracts.md).

    Args:
        distances: (B, M) squared distances of each bank's code to its nearest prototype.
        reference: ``memory.distance_reference`` of the manifest (a typical pose's mean distance).

    Returns:
        B floats ``exp(-mean_m d / reference · ln 2)``: 1 at a prototype, 0.5 for a typical pose.
        (M is a handful of banks: plain floats cost a fraction of NumPy's per-call overhead.)
    """
    rows = np.asarray(distances).reshape(len(distances), -1).tolist()
    rate = LN2 / max(reference, 1e-12)
    return [math.exp(-max(math.fsum(r) / max(len(r), 1), 0.0) * rate) for r in rows]


def to_frame_px(kpts_norm: np.ndarray, lb: Letterbox) -> np.ndarray:
    """(..., 2) xy in [-1, 1] of the model image -> (..., 2) frame pixels through the letterbox."""
    width, height = lb.size
    return lb.to_frame(norm_to_px(kpts_norm, width, height))


def frame_affines(maps: list[Letterbox]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`letterbox_affines` of ``maps`` (a stream's boxes repeat: the maps are cached)."""
    return letterbox_affines(tuple(maps))


@functools.lru_cache(maxsize=64)
def letterbox_affines(maps: tuple[Letterbox, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Per subject, the map [-1, 1] model xy -> frame pixels as one ``gain * xy + bias``.

    It is :func:`to_frame_px` folded into one multiply-add (computed in float64): model pixel
    ``p = (n + 1) (size - 1) / 2``, frame pixel ``(p - offset + 0.5) / scale - 0.5 + origin``.

    Returns:
        gain, bias: (1, B, 1, 2) float32 each, to broadcast over (S, B, N, 2) keypoint sets.
    """
    rows = []
    for lb in maps:
        row = [0.0, 0.0, 0.0, 0.0]  # gain x, gain y, bias x, bias y
        for axis in (0, 1):
            half, scale = (lb.size[axis] - 1) / 2.0, lb.scale[axis]
            row[axis] = half / scale
            row[2 + axis] = (half - lb.offset[axis] + 0.5) / scale - 0.5 + lb.origin[axis]
        rows.append(row)
    table = np.array(rows, dtype=np.float32)[None, :, None, :]  # (1, B, 1, 4)
    table.setflags(write=False)  # shared through the cache
    return table[..., :2], table[..., 2:]


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
    gain, bias = frame_affines(maps)
    # Every keypoint set of every subject through its affine map at once (few NumPy calls: on a
    # frame's tiny arrays each costs more than its arithmetic): iterations 0..n, then Mem(T').
    count, batch = len(steps), len(maps)
    sets = np.concatenate(
        [*(s["keypoints"] for s in steps), final["keypoints_refined"]], axis=0, dtype=np.float32
    ).reshape(count + 1, batch, -1, 2)  # (n + 2 sets, B, N, 2)
    sets *= gain
    sets += bias
    # The backend's outputs are the estimator's own (Backend.run hands out new arrays): they
    # become the Results' read-only arrays without copies.
    confidence = np.asarray(final["confidence"], np.float32)
    ids = np.asarray(final["prototype_ids"], np.int64)
    distances = np.asarray(final["prototype_distances"], np.float32)
    for a in (sets, confidence, ids, distances):
        a.setflags(write=False)
    edges, names = manifest.edges, manifest.keypoint_names
    return [
        Result.owned(
            keypoints=sets[count - 1, b],
            keypoints_refined=sets[count, b],
            confidence=confidence[b],
            plausibility=plaus[b],
            prototype_ids=ids[b],
            prototype_distances=distances[b],
            edges=edges,
            box=lb.box,
            iterations=tuple(sets[:count, b]),
            timings=dict(timings or {}),
            keypoint_names=names,
            reconstructions=tuple(r[b] for r in reconstructions or ()),
        )
        for b, lb in enumerate(maps)
    ]


def attach_joints(
    results: list[Result], maps: list[Letterbox], joints: NamedJoints | None
) -> list[Result]:
    """The Results with their named joints: the joint map applied to each final ``keypoints``.

    The keypoints go back through the subject's letterbox to [-1, 1], through the map (float64)
    and out again, so the joints follow whatever produced the final keypoints (any refinement mode,
    smoothing); the graph's own ``joints`` output is not used (it follows iteration 0 only).

    Args:
        results: one per subject, in the order of ``maps``; joints: the manifest's (None: as is).
    """
    if joints is None:
        return results
    out = []
    for res, lb in zip(results, maps):
        width, height = lb.size
        norm = px_to_norm(lb.to_model(res.keypoints), width, height)  # (N, 2)
        px = to_frame_px(joints.apply(norm), lb)  # (J, 2)
        out.append(
            dataclasses.replace(res, joints=px, joint_names=joints.names, joint_edges=joints.edges)
        )
    return out


def check_joint_output(manifest: Manifest, outputs: list, label: str) -> None:
    """Refuse a manifest whose joint count differs from the keypoint graph's ``joints`` output.

    Args:
        outputs: the backend's ``output_spec`` (name, shape); label: the graph, for the message.

    Raises:
        ManifestError: the manifest names joints the graph does not output, or another count.
    """
    if manifest.joints is None:
        return
    spec = next((o for o in outputs if o.name == "joints"), None)
    count = spec.shape[-2] if spec is not None and len(spec.shape) == 3 else None
    if spec is None or (count is not None and count != manifest.joints.count):
        got = "no 'joints' output" if spec is None else f"a 'joints' output of {count} joints"
        raise ManifestError(
            f"{manifest.path}: the manifest names {manifest.joints.count} joints but {label} has "
            f"{got}; re-export the model with 'ppl-edge convert'"
        )
