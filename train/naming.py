"""Names for a model's joints from a few labelled images (``ppl-edge name``).

An unsupervised model's keypoints carry no names. From K labelled images this fits the linear map
of the Human3.6M protocol, used as a product: ``joints = [T'_flat, 1] · B`` from the N keypoints
(2N coordinates and a bias) to the J named joints, in the model's [-1, 1] crop coordinates, by
ridge regression on the labelled joints, with the protocol's left/right swap loop (a keypoint
model sees a mirrored pose as the same pose, so each labelled pose is matched to the regressor in
whichever of its two mirror labellings fits it better). A held-out share of the labels scores the
map (mean error per joint in % of the crop side, and PCK@0.1); the map fitted on every label is
stored in the checkpoint (``joints.map`` and the ``joints`` metadata: names, edges, swap pairs,
the report), from where the export bakes it into every graph.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.train.data.coco import LabelSet, read_labels
from ppl_edge.train.evaluate.common import swap_joints

log = logging.getLogger(__name__)

CROP_MARGIN = 1.25  # a COCO box is widened to a square 1.25 times its longer side
MAX_SWAP_ROUNDS = 50
PCK_THRESHOLD = 0.1  # of the crop side


@dataclass(frozen=True)
class JointMap:
    """``joints = [keypoints_flat, 1] @ matrix``: (2N + 1, 2J), columns x0 y0 x1 y1 ..."""

    matrix: np.ndarray
    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    swap_pairs: tuple[tuple[int, int], ...]

    def apply(self, keypoints: np.ndarray) -> np.ndarray:
        """(S, N, 2) keypoints in [-1, 1] -> (S, J, 2) named joints in [-1, 1]."""
        x = np.asarray(keypoints, np.float64).reshape(len(keypoints), -1)
        x = np.concatenate([x, np.ones((len(x), 1))], axis=1)
        return (x @ self.matrix).reshape(len(keypoints), -1, 2)


def _square(box, width: int, height: int) -> tuple[int, int, int, int]:
    if box is None:
        return 0, 0, width, height
    x0, y0, x1, y1 = box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * CROP_MARGIN
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(cx + side / 2)),
            int(round(cy + side / 2)))  # fmt: skip


def crops(labels: LabelSet, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every labelled subject as the runtime would crop it (square box, letterboxed, normalised).

    Returns:
        images (S, 3, size, size) float32 in [-1, 1], joints (S, J, 2) in [-1, 1] of the crop,
        labelled (S, J) bool.

    Raises:
        PplEdgeError: an image cannot be read (named).
    """
    import cv2

    from ppl_edge.coords import px_to_norm
    from ppl_edge.manifest import InputSpec
    from ppl_edge.preprocess import letterbox, normalise

    spec = InputSpec.square(size)
    images, joints = [], []
    for item in labels.items:
        frame = cv2.imread(str(item.image), cv2.IMREAD_COLOR)
        if frame is None:
            raise PplEdgeError(f"{labels.source}: cannot read the image {item.image}")
        img, lb = letterbox(frame, _square(item.box, frame.shape[1], frame.shape[0]), size, size)
        images.append(normalise(img[None], spec)[0])
        joints.append(px_to_norm(lb.to_model(item.keypoints), size, size))
    labelled = np.stack([item.labelled for item in labels.items])
    return np.stack(images), np.stack(joints).astype(np.float64), labelled


def predict(model, images: np.ndarray, batch: int = 64) -> np.ndarray:
    """(S, N, 2) keypoints in [-1, 1] of the model on (S, 3, H, W) images."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch):
            chunk = torch.from_numpy(images[start : start + batch])
            out.append(model.keypoint_path(chunk)["keypoints"].numpy())
    return np.concatenate(out).astype(np.float64)


def _solve(x: np.ndarray, y: np.ndarray, labelled: np.ndarray, ridge: float) -> np.ndarray:
    """Per-joint ridge regression on the samples that label the joint: (D, 2J)."""
    D, J = x.shape[1], y.shape[1]
    beta = np.zeros((D, 2 * J))
    eye = np.eye(D)
    eye[-1, -1] = 0.0  # the bias is not shrunk
    for j in range(J):
        rows = labelled[:, j]
        if not rows.any():
            continue  # never labelled: predicts the origin; the report shows it
        xs = x[rows]
        beta[:, 2 * j : 2 * j + 2] = np.linalg.solve(xs.T @ xs + ridge * len(xs) * eye,
                                                     xs.T @ y[rows, j])  # fmt: skip
    return beta


def _errors(pred: np.ndarray, y: np.ndarray, labelled: np.ndarray) -> np.ndarray:
    """(S,) mean distance over the labelled joints."""
    d = np.linalg.norm(pred - y, axis=-1)
    return (d * labelled).sum(1) / np.maximum(labelled.sum(1), 1)


def _align(pred, y, labelled, pairs):
    """Per sample, the labelling (as given or mirrored) closer to ``pred``."""
    if not pairs:
        return y, labelled, 0
    ys, ls = swap_joints(y, pairs), swap_joints(labelled[..., None], pairs)[..., 0]
    better = _errors(pred, ys, ls) < _errors(pred, y, labelled)
    return (np.where(better[:, None, None], ys, y), np.where(better[:, None], ls, labelled),
            int(better.sum()))  # fmt: skip


def fit_joint_map(keypoints, joints, labelled, labels: LabelSet, ridge: float = 1e-3) -> JointMap:
    """Fit the map with the left/right swap loop (see the module docstring).

    Args:
        keypoints: (S, N, 2) model keypoints; joints: (S, J, 2) labels; labelled: (S, J) bool.
        labels: names, edges and swap pairs of the joints.
        ridge: shrinkage, relative to the number of samples.
    """
    x = np.concatenate([keypoints.reshape(len(keypoints), -1), np.ones((len(keypoints), 1))], 1)
    y, lab = joints, labelled
    beta = _solve(x, y, lab, ridge)
    for _ in range(MAX_SWAP_ROUNDS):
        y, lab, swapped = _align((x @ beta).reshape(y.shape), y, lab, labels.swap_pairs)
        if swapped == 0:
            break
        beta = _solve(x, y, lab, ridge)
    return JointMap(beta, labels.names, labels.edges, labels.swap_pairs)


def score(jmap: JointMap, keypoints, joints, labelled) -> dict:
    """Mean error per joint (% of the crop side) and PCK@0.1 on labelled joints, after the swap
    alignment of the protocol."""
    pred = jmap.apply(keypoints)
    y, lab, _ = _align(pred, joints, labelled, jmap.swap_pairs)
    d = np.linalg.norm(pred - y, axis=-1) / 2.0  # [-1, 1] spans 2: fractions of the crop side
    per_joint = {
        name: round(100 * float(d[lab[:, j], j].mean()), 3) if lab[:, j].any() else None
        for j, name in enumerate(jmap.names)
    }
    return {
        "error": round(100 * float(d[lab].mean()), 3),
        "pck": round(float((d[lab] < PCK_THRESHOLD).mean()), 4),
        "per_joint": per_joint,
        "samples": int(len(pred)),
    }


def split(count: int, holdout: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(fit indices, held-out indices), a seeded shuffle; at least one of each."""
    if count < 2:
        raise PplEdgeError(f"naming needs at least 2 labelled subjects, got {count}")
    order = np.random.default_rng(seed).permutation(count)
    held = min(max(1, int(round(holdout * count))), count - 1)
    return np.sort(order[held:]), np.sort(order[:held])


def name_checkpoint(
    checkpoint: str | Path,
    labels_path: str | Path,
    out: str | Path,
    holdout: float = 0.2,
    ridge: float = 1e-3,
    limit: int | None = None,
    images_root: str | Path | None = None,
    category: str | None = None,
    seed: int = 0,
    test_labels: str | Path | None = None,
) -> dict:
    """Fit, score and store the named-joint map of a checkpoint.

    Args:
        checkpoint: the model; out: the named checkpoint to write (may equal ``checkpoint``).
        labels_path: COCO keypoints JSON or a synthdir folder.
        holdout: share of the labels kept out of the fit to score it (0 < holdout < 1).
        limit: use the first ``limit`` labelled subjects only.
        test_labels: score on these labels instead of a held-out share (then every label of
            ``labels_path`` is fitted).

    Returns:
        The report: names, fit / held-out counts, held-out error, PCK@0.1 and per-joint errors.
    """
    from ppl_edge import checkpoint as ckpt

    if not 0 < holdout < 1:
        raise PplEdgeError(f"--holdout must be in (0, 1), got {holdout}")
    if ridge < 0:
        raise PplEdgeError(f"--ridge must be >= 0, got {ridge}")
    model, meta = ckpt.load_model(checkpoint)
    labels = read_labels(labels_path, images_root, category)
    if limit is not None:
        if limit < 2:
            raise PplEdgeError(f"--limit must be at least 2, got {limit}")
        labels = LabelSet(labels.names, labels.edges, labels.swap_pairs, labels.items[:limit],
                          labels.source)  # fmt: skip
    images, joints, labelled = crops(labels, model.cfg.img_size)
    keypoints = predict(model, images)
    if test_labels is not None:
        test = read_labels(test_labels, images_root, category)
        if test.names != labels.names:
            raise PplEdgeError(
                f"--test-labels name the joints {list(test.names)[:4]}..., --labels "
                f"{list(labels.names)[:4]}...: they must be the same joints"
            )
        t_images, t_joints, t_labelled = crops(test, model.cfg.img_size)
        jmap = fit_joint_map(keypoints, joints, labelled, labels, ridge)
        report = score(jmap, predict(model, t_images), t_joints, t_labelled)
        report.update(fit_samples=int(len(images)), labels=labels.source, ridge=ridge)
        final = jmap
        t_keypoints = np.zeros((len(t_images), keypoints.shape[1], 2))
        base = fit_joint_map(np.zeros_like(keypoints), joints, labelled, labels, ridge)
        report["baseline_mean_pose"] = score(base, t_keypoints, t_joints, t_labelled)["error"]
    else:
        fit_idx, held_idx = split(len(images), holdout, seed)
        jmap = fit_joint_map(keypoints[fit_idx], joints[fit_idx], labelled[fit_idx], labels, ridge)
        report = score(jmap, keypoints[held_idx], joints[held_idx], labelled[held_idx])
        report.update(fit_samples=int(len(fit_idx)), labels=labels.source, ridge=ridge)
        final = fit_joint_map(keypoints, joints, labelled, labels, ridge)  # every label
        zeros = np.zeros_like(keypoints)
        base = fit_joint_map(zeros[fit_idx], joints[fit_idx], labelled[fit_idx], labels, ridge)
        report["baseline_mean_pose"] = score(
            base, zeros[held_idx], joints[held_idx], labelled[held_idx]
        )["error"]
    _write(checkpoint, out, final, report)
    return {"names": list(labels.names), **report}


def _write(src: str | Path, out: str | Path, jmap: JointMap, report: dict) -> None:
    import torch

    from ppl_edge import checkpoint as ckpt

    meta = ckpt.read_metadata(src)
    tensors = {k: v for k, v in ckpt.load_tensors(src).items() if not k.startswith("joints.")}
    tensors["joints.map"] = torch.from_numpy(jmap.matrix.astype(np.float32))
    joints = {
        "names": list(jmap.names),
        "edges": [list(e) for e in jmap.edges],
        "swap_pairs": [list(p) for p in jmap.swap_pairs],
        "coords": "xy_norm",
        "report": report,
    }
    out = Path(out)
    if out.exists() and out.is_dir():
        raise PplEdgeError(f"--out {out} is a folder; expected a .safetensors file name")
    ckpt.save_checkpoint(out, tensors, meta["model_config"], meta["train_state"], joints)
    log.info("wrote %s with %d named joints", out, len(jmap.names))


def load_joint_map(checkpoint: str | Path) -> JointMap | None:
    """The named-joint map stored in a checkpoint, or None."""
    from ppl_edge import checkpoint as ckpt

    meta = ckpt.read_metadata(checkpoint)
    joints = meta.get("joints")
    if not joints:
        return None
    matrix = ckpt.load_tensors(checkpoint, prefix="joints.")["map"].double().numpy()
    return JointMap(matrix, tuple(joints["names"]), tuple(map(tuple, joints["edges"])),
                    tuple(map(tuple, joints["swap_pairs"])))  # fmt: skip
