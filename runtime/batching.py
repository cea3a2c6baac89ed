"""Run a graph over a batch of any size within the batch range it accepts.

A frame with more subjects than a graph's largest batch (many people with ``--crops motion``, a
TensorRT engine built with ``--max-batch 4``) is split into chunks of at most ``max``; a chunk
smaller than the graph's ``min`` (an engine built for a fixed batch) is padded with copies of its
last item, whose outputs are dropped. Every feed is split along its first axis together.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ppl_edge.errors import PplEdgeError

RunFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


def batch_limits(backend, manifest_max: int | None) -> tuple[int, int]:
    """(min, max) batch for a backend: its own range (an engine's optimisation profile) when it
    declares one, else 1..``manifest_max`` for a graph with a dynamic batch, else 1..1."""
    declared = getattr(backend, "batch_range", None)
    if declared is not None:
        return int(declared[0]), int(declared[1])
    spec = backend.input_spec[0].shape if backend.input_spec else ()
    dynamic = bool(spec) and spec[0] is None
    return (1, max(1, int(manifest_max))) if dynamic and manifest_max else (1, 1)


def run_in_chunks(run: RunFn, feeds: dict[str, np.ndarray], low: int, high: int) -> dict:
    """``run(feeds)`` for a batch of any size, in chunks of ``low``..``high`` items.

    Raises:
        PplEdgeError: an empty range, or feeds whose first dimensions differ.
    """
    if not 1 <= low <= high:
        raise PplEdgeError(f"a batch range must satisfy 1 <= min <= max, got {low}..{high}")
    sizes = {len(v) for v in feeds.values()}
    if len(sizes) != 1:
        raise PplEdgeError(f"feeds of one batch must have one batch size, got {sorted(sizes)}")
    total = sizes.pop()
    if total == 0 or low <= total <= high:
        return run(feeds)
    parts = []
    for start in range(0, total, high):
        chunk = {k: v[start : start + high] for k, v in feeds.items()}
        n = len(next(iter(chunk.values())))
        if n < low:
            chunk = {
                k: np.concatenate([v, np.repeat(v[-1:], low - n, axis=0)]) for k, v in chunk.items()
            }
        parts.append({k: v[:n] for k, v in run(chunk).items()})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
