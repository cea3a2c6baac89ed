"""The skeleton rule: W's maximum spanning tree plus strong extra links, at most 2N edges."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_edge.skeleton import edges_from_weights, maximum_spanning_tree


def _symmetric(w: np.ndarray) -> np.ndarray:
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.0)
    return w


def _chain(n: int, rng: np.random.Generator) -> np.ndarray:
    """Neighbours linked at 0.8-1.0, every other link at most 0.1."""
    w = rng.uniform(0.0, 0.1, (n, n))
    for i in range(n - 1):
        w[i, i + 1] = w[i + 1, i] = rng.uniform(0.8, 1.0)
    return _symmetric(w)


def test_a_clear_chain_gives_exactly_the_chain():
    rng = np.random.default_rng(0)
    for n in (2, 5, 16, 32):
        order = rng.permutation(n)  # the chain in a shuffled keypoint order
        w = _chain(n, rng)[np.ix_(order, order)]
        inv = np.argsort(order)
        chain = sorted(
            (min(a, b), max(a, b))
            for a, b in ((int(inv[i]), int(inv[i + 1])) for i in range(n - 1))
        )
        assert edges_from_weights(w) == chain


def test_only_shortcuts_above_the_tree_median_are_added():
    w = np.full((6, 6), 0.05)
    for i, x in enumerate((1.0, 0.9, 0.8, 0.7, 0.6)):  # the chain; tree median 0.8
        w[i, i + 1] = w[i + 1, i] = x
    w[0, 2] = w[2, 0] = 0.85  # weakest in its loop, so not in the tree; above the median
    w[0, 3] = w[3, 0] = 0.75  # not in the tree either, but below the median
    w = _symmetric(w)
    chain = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)]
    assert sorted(maximum_spanning_tree(w)) == chain
    assert edges_from_weights(w) == sorted(chain + [(0, 2)])
    assert edges_from_weights(w, extra_ratio=0.9) == sorted(chain + [(0, 2), (0, 3)])
    assert edges_from_weights(w, extra_ratio=np.inf) == chain


@pytest.mark.parametrize("n", [3, 8, 16, 40])
def test_a_uniform_ish_w_stays_sparse_and_contains_the_tree(n):
    rng = np.random.default_rng(n)
    for _ in range(20):
        w = _symmetric(rng.uniform(0.9, 1.1, (n, n)))
        edges = edges_from_weights(w)
        assert n - 1 <= len(edges) <= 2 * n
        assert set(maximum_spanning_tree(w)) <= set(edges)
        assert all(i < j for i, j in edges) and edges == sorted(set(edges))


def test_the_cap_keeps_the_strongest_extras():
    n = 16
    w = _symmetric(np.full((n, n), 1.0))  # all links equal: every extra passes the floor
    edges = edges_from_weights(w)
    assert len(edges) == 2 * n
    rng = np.random.default_rng(3)
    w = _symmetric(rng.uniform(0.0, 1.0, (n, n)))
    tree = set(maximum_spanning_tree(w))
    for cap in (n - 1, n + 3, 2 * n):
        edges = edges_from_weights(w, extra_ratio=0.0, max_edges=cap)
        assert len(edges) == cap and tree <= set(edges)
        extras = [w[i, j] for i, j in set(edges) - tree]
        left = [w[i, j] for i in range(n) for j in range(i + 1, n) if (i, j) not in set(edges)]
        assert not extras or min(extras) >= max(left)


@pytest.mark.parametrize("seed", range(5))
def test_edge_count_bounds_on_random_w(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    w = _symmetric(rng.exponential(1.0, (n, n)))
    edges = edges_from_weights(w)
    assert n - 1 <= len(edges) <= 2 * n
    median = np.median([w[i, j] for i, j in maximum_spanning_tree(w)])
    assert all(w[i, j] >= median for i, j in set(edges) - set(maximum_spanning_tree(w)))


def test_small_and_degenerate_inputs():
    assert edges_from_weights(np.zeros((1, 1))) == []
    assert edges_from_weights(np.zeros((2, 2))) == [(0, 1)]
    assert len(edges_from_weights(np.zeros((5, 5)))) == 4  # zero links are never extras
    with pytest.raises(ValueError, match="square"):
        edges_from_weights(np.zeros((3, 4)))
