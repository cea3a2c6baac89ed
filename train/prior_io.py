"""The prior file (architecture.md, Artifacts) and the trainer's prior history.

``prior.json`` holds the keypoint prior T (N, 2) xy in [-1, 1], the connectivity W (N, N), the
skeleton edges derived from W (:func:`ppl_edge.skeleton.edges_from_weights`) with their weights, and
the memory shape; it is written atomically. ``prior_history.npz`` in a run folder holds ``steps``
(S,), ``priors`` (S, N, 2) and W (S, N, N) under ``connectivity`` (the trainer's name) or
``weights``: snapshots the trainer takes during training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import atomic_write_bytes
from ppl_edge.skeleton import edges_from_weights

FORMAT = "ppl-edge-prior"
FORMAT_VERSION = 1
HISTORY_FILE = "prior_history.npz"


def prior_record(
    prior: np.ndarray,
    weights: np.ndarray,
    memory_shape: tuple[int, int, int],
    img_size: int | None = None,
    source: str | None = None,
) -> dict:
    """Build the prior file's content.

    Args:
        prior: (N, 2) keypoint prior T, xy in [-1, 1].
        weights: (N, N) symmetric connectivity W (diagonal ignored).
        memory_shape: (M banks, K entries, D dims) of the hierarchical memory.
        img_size: the model's input size, for reference.
        source: where it came from (a checkpoint path).
    """
    prior = np.asarray(prior, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    n = prior.shape[0]
    if prior.shape != (n, 2) or weights.shape != (n, n):
        raise PplEdgeError(
            f"expected prior (N, 2) and weights (N, N), got {prior.shape} and {weights.shape}"
        )
    edges = edges_from_weights(weights)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "coords": "xy_norm",
        "num_keypoints": n,
        "img_size": img_size,
        "source": source,
        "prior": prior.round(6).tolist(),
        "connectivity": weights.round(6).tolist(),
        "edges": [list(e) for e in edges],
        "edge_weights": [round(float(weights[i, j]), 6) for i, j in edges],
        "memory": {
            "banks": int(memory_shape[0]),
            "entries": int(memory_shape[1]),
            "dim": int(memory_shape[2]),
        },
    }


def model_prior_record(model, source: str | None = None) -> dict:
    """:func:`prior_record` of a PoseModel: T = ``model.prior()``, W = ``connectivity.matrix()``."""
    import torch

    with torch.no_grad():
        prior = model.prior().cpu().numpy()
        weights = model.connectivity.matrix().cpu().numpy()
    return prior_record(
        prior, weights, tuple(model.memory.codebook.shape), model.cfg.img_size, source
    )


def write_prior(path: str | Path, record: dict) -> Path:
    """Write a prior record as JSON, atomically."""
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(record, indent=1) + "\n").encode())
    return path


def read_prior(path: str | Path) -> dict:
    """Read and validate a prior file; ``prior`` and ``connectivity`` come back as arrays."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise PplEdgeError(f"cannot read prior file {path}: {err}") from err
    if record.get("format") != FORMAT:
        raise PplEdgeError(f"{path} is not a ppl-edge prior file (format={record.get('format')!r})")
    if int(record.get("format_version", 0)) > FORMAT_VERSION:
        raise PplEdgeError(
            f"{path} has prior format {record['format_version']}; "
            f"this ppl-edge reads up to {FORMAT_VERSION}: upgrade"
        )
    record["prior"] = np.asarray(record["prior"], dtype=np.float32)
    record["connectivity"] = np.asarray(record["connectivity"], dtype=np.float32)
    return record


def load_prior_history(run_dir: str | Path) -> dict | None:
    """The trainer's ``prior_history.npz`` of a run folder, or None when it has none.

    Returns:
        {"steps": (S,) int, "priors": (S, N, 2), "weights": (S, N, N)} sorted by step.

    Raises:
        PplEdgeError: the file exists but does not hold those arrays.
    """
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            key = "weights" if "weights" in data.files else "connectivity"
            steps, priors, weights = data["steps"], data["priors"], data[key]
    except (OSError, KeyError, ValueError) as err:
        raise PplEdgeError(
            f"{path} is not a prior history (expected arrays steps, priors and "
            f"weights or connectivity): {err}"
        ) from err
    s = len(steps)
    if (
        priors.ndim != 3
        or priors.shape[0] != s
        or priors.shape[2] != 2
        or weights.shape != (s, priors.shape[1], priors.shape[1])
    ):
        raise PplEdgeError(
            f"{path}: inconsistent shapes steps {steps.shape}, priors {priors.shape}, "
            f"weights {weights.shape}; expected (S,), (S, N, 2), (S, N, N)"
        )
    order = np.argsort(steps, kind="stable")
    return {
        "steps": steps[order].astype(np.int64),
        "priors": priors[order],
        "weights": weights[order],
    }
