"""Skeleton edges from the learned connectivity prior W (NumPy only, shared by prior, export and runtime)."""

from __future__ import annotations

import numpy as np


def edges_from_weights(weights: np.ndarray, extra_ratio: float = 0.5) -> list[tuple[int, int]]:
    """Derive drawable skeleton edges from a symmetric link-weight matrix W.

    The edges are W's maximum spanning tree (so every keypoint is connected, N-1 edges), plus any
    other link whose weight is at least ``extra_ratio`` times the tree's weakest edge.

    Args:
        weights: (N, N) symmetric, non-negative; the diagonal is ignored.
        extra_ratio: threshold for links beyond the tree, relative to the weakest tree edge
            (values > 1 keep only the tree).

    Returns:
        Sorted list of (i, j) with i < j.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    if w.shape != (n, n):
        raise ValueError(f"weights must be square (N, N), got {w.shape}")
    # Prim's algorithm on -W: the maximum spanning tree.
    in_tree = np.zeros(n, dtype=bool)
    in_tree[0] = True
    best = w[0].copy()
    parent = np.zeros(n, dtype=int)
    tree: list[tuple[int, int]] = []
    for _ in range(n - 1):
        cand = np.where(in_tree, -np.inf, best)
        j = int(np.argmax(cand))
        i = int(parent[j])
        tree.append((min(i, j), max(i, j)))
        in_tree[j] = True
        better = (w[j] > best) & ~in_tree
        best[better] = w[j][better]
        parent[better] = j
    edges = set(tree)
    if tree:
        floor = min(w[i, j] for i, j in tree) * extra_ratio
        for i in range(n):
            for j in range(i + 1, n):
                if w[i, j] >= floor and extra_ratio <= 1.0:
                    edges.add((i, j))
    return sorted(edges)
