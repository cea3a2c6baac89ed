"""Skeleton edges from the learned connectivity prior W (NumPy only, one rule for every caller)."""

from __future__ import annotations

import colorsys

import numpy as np


def maximum_spanning_tree(weights: np.ndarray) -> list[tuple[int, int]]:
    """W's maximum spanning tree (Prim's algorithm from keypoint 0; ties go to the lower index).

    Args:
        weights: (N, N) symmetric, non-negative; the diagonal is ignored.

    Returns:
        The N - 1 tree edges (i, j) with i < j, in the order Prim's algorithm adds them.
    """
    w = np.asarray(weights, dtype=np.float64)
    n = w.shape[0]
    if w.ndim != 2 or w.shape != (n, n):
        raise ValueError(f"weights must be square (N, N), got {w.shape}")
    if n == 0:
        return []
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
    return tree


def edges_from_weights(
    weights: np.ndarray, extra_ratio: float = 1.0, max_edges: int | None = None
) -> list[tuple[int, int]]:
    """Derive a sparse, drawable skeleton from a symmetric link-weight matrix W.

    The rule, for N keypoints:

    1. Every edge of W's maximum spanning tree is kept (every keypoint is connected, N - 1 edges).
    2. A link outside the tree is an extra candidate when its weight is positive and at least
       ``extra_ratio`` times the median weight of the tree's edges (default 1.0: at least as
       strong as the tree's median edge).
    3. Candidates are added strongest first (ties: lower (i, j) first) until the skeleton has
       ``max_edges`` edges (default 2N).

    So N - 1 <= len(edges) <= max(2N, N - 1) (fewer only when N < 2), and a W that is a clear
    chain (or tree) with weak other links gives exactly that chain.

    Args:
        weights: (N, N) symmetric, non-negative; the diagonal is ignored.
        extra_ratio: floor for links beyond the tree, relative to the tree's median edge weight
            (``inf`` keeps only the tree).
        max_edges: cap on the total edge count; default 2N. The tree is kept even when the cap
            is below N - 1.

    Returns:
        Sorted list of (i, j) with i < j.
    """
    w = np.asarray(weights, dtype=np.float64)
    tree = maximum_spanning_tree(w)
    n = w.shape[0]
    if not tree:
        return []
    cap = 2 * n if max_edges is None else int(max_edges)
    room = cap - len(tree)
    edges = set(tree)
    if room > 0:
        floor = extra_ratio * float(np.median([w[i, j] for i, j in tree]))
        iu, ju = np.triu_indices(n, 1)
        link = w[iu, ju]
        keep = (link >= floor) & (link > 0)
        cands = [
            (-float(link[k]), int(iu[k]), int(ju[k]))
            for k in np.flatnonzero(keep)
            if (int(iu[k]), int(ju[k])) not in edges
        ]
        edges.update((i, j) for _, i, j in sorted(cands)[:room])
    return sorted(edges)


def edge_colours(count: int) -> list[tuple[int, int, int]]:
    """``count`` distinct BGR colours, evenly spaced in hue."""
    colours = []
    for i in range(count):
        r, g, b = colorsys.hsv_to_rgb(i / max(count, 1), 0.85, 1.0)
        colours.append((int(b * 255), int(g * 255), int(r * 255)))
    return colours
