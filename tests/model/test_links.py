"""The link rasteriser S and the connectivity prior W against a dense per-pixel reference."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ppl_edge.model.config import preset
from ppl_edge.model.links import (
    Connectivity,
    keep_links,
    max_over_links,
    rasterize_capsules,
    rasterize_links,
    rasterize_links_log,
)


def dense_reference(kpts, weights, pairs, size, thickness):
    """Official draw_lines form: every link's heatmap at every pixel, then the max over links."""
    axis = torch.linspace(-1.0, 1.0, size, dtype=kpts.dtype)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xx, yy], -1).view(1, 1, -1, 2)  # (1, 1, H·W, 2) xy
    s = kpts[:, pairs[:, 0]].unsqueeze(2)  # (B, L, 1, 2)
    e = kpts[:, pairs[:, 1]].unsqueeze(2)
    d = e - s
    t = ((grid - s) * d).sum(-1) / ((d * d).sum(-1) + 1e-8)  # (B, L, H·W)
    t = t.clamp(0, 1).unsqueeze(-1)
    dist2 = ((grid - (s + t * d)) ** 2).sum(-1)
    heat = torch.exp(-dist2 / thickness) * weights.view(1, -1, 1)
    return heat.amax(1).view(-1, 1, size, size)


@pytest.fixture()
def setup():
    gen = torch.Generator().manual_seed(0)
    kpts = torch.rand(2, 5, 2, generator=gen) * 1.6 - 0.8
    pairs = torch.triu_indices(5, 5, 1).T
    weights = torch.rand(len(pairs), generator=gen) + 0.1
    return kpts, weights, pairs


def test_values_match_dense_reference(setup):
    kpts, weights, pairs = setup
    ref = dense_reference(kpts, weights, pairs, 24, 2e-2)
    with torch.no_grad():
        fast = rasterize_links(kpts, weights, pairs, 24, 2e-2)
    assert torch.allclose(fast, ref, atol=1e-6)
    grad_path = rasterize_links(kpts.requires_grad_(True), weights, pairs, 24, 2e-2)
    assert torch.allclose(grad_path, ref, atol=1e-6)


def test_gradients_match_dense_reference(setup):
    kpts, weights, pairs = setup
    k1, w1 = kpts.clone().requires_grad_(True), weights.clone().requires_grad_(True)
    k2, w2 = kpts.clone().requires_grad_(True), weights.clone().requires_grad_(True)
    probe = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    (rasterize_links(k1, w1, pairs, 24, 2e-2) * probe).sum().backward()
    (dense_reference(k2, w2, pairs, 24, 2e-2) * probe).sum().backward()
    assert torch.allclose(k1.grad, k2.grad, atol=1e-4, rtol=1e-4)
    assert torch.allclose(w1.grad, w2.grad, atol=1e-4, rtol=1e-4)


def test_xy_convention_x_is_the_column():
    # One link from (x=1, y=-1) to (x=1, y=1): the right-most column lights up.
    kpts = torch.tensor([[[1.0, -1.0], [1.0, 1.0]]])
    heat = rasterize_links(kpts, torch.ones(1), torch.tensor([[0, 1]]), 16, 1e-3)[0, 0]
    assert torch.allclose(heat[:, -1], torch.ones(16))
    assert heat[:, 0].max() < 1e-6


def test_connectivity_matrix_and_init():
    links = Connectivity(preset("tiny"))
    w = links.matrix()
    assert torch.equal(w, w.T) and torch.all(w.diagonal() == 0)
    n = w.shape[0]
    assert links.link_weights().shape == (n * (n - 1) // 2,)
    # official init: softplus(N(-4, 1)), median ~0.018
    assert 0.008 < links.link_weights().median().item() < 0.04
    frozen = Connectivity(preset("tiny"), frozen=True)
    assert not any(True for _ in frozen.parameters())


def test_link_init_sets_the_initial_logit():
    strong = Connectivity(preset("tiny", link_init=0.0)).link_weights()
    assert 0.5 < strong.median().item() < 0.9  # softplus(0) = 0.69
    links = Connectivity(preset("tiny", link_init=2.0))
    logits = links.scale * links.theta
    assert abs(logits.mean().item() - 2.0) < 0.3


def test_log_form_equals_the_rasteriser(setup):
    """exp(max (log w - d² / 2σ²)) with a Max tree is the same S as max (w exp(-d² / 2σ²))."""
    kpts, weights, pairs = setup
    want = rasterize_links(kpts, weights, pairs, 24, 0.05)
    got = rasterize_links_log(kpts, weights.log(), pairs, 24, 0.05)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("count", [1, 2, 5, 7, 16])
def test_max_tree_equals_amax(count):
    z = torch.randn(2, count, 4, 3)
    torch.testing.assert_close(max_over_links(z), z.amax(dim=1, keepdim=True), rtol=0, atol=0)


@pytest.mark.parametrize("tolerance", [0.0, 0.02, 0.1, 0.5])
def test_dropped_links_change_s_by_at_most_the_tolerance(tolerance):
    """The bound of keep_links: 0 <= S_full - S_kept <= tolerance · max w, on every pixel."""
    gen = torch.Generator().manual_seed(3)
    n = 16
    pairs = torch.triu_indices(n, n, 1).T
    weights = torch.rand(len(pairs), generator=gen) ** 6  # mostly weak links, as after training
    kpts = torch.rand(8, n, 2, generator=gen) * 1.8 - 0.9
    keep = keep_links(weights, tolerance)
    assert keep[weights.argmax()] and (tolerance > 0 or keep.all())
    full = rasterize_links(kpts, weights, pairs, 32, 1e-2)
    kept = rasterize_links(kpts, weights[keep], pairs[keep], 32, 1e-2)
    gap = full - kept
    assert gap.min() >= 0 and gap.max() <= tolerance * weights.max() + 1e-7


def test_connectivity_tolerance_draws_the_kept_links_only():
    conn = Connectivity(preset("tiny", link_normalize=True))
    with torch.no_grad():
        conn.theta.mul_(3.0)
    kpts = torch.rand(2, 16, 2) * 1.6 - 0.8
    full, kept = conn(kpts, 32), conn(kpts, 32, 0.05)
    assert (full - kept).min() >= 0 and (full - kept).max() <= 0.05 + 1e-7


def test_link_tree_draws_only_the_maximum_spanning_tree_and_follows_w():
    cfg = preset("tiny", link_tree=True, link_normalize=True)
    conn = Connectivity(cfg)
    n = cfg.num_keypoints
    tree = conn.tree()
    assert tree.sum().item() == n - 1
    # connected: every keypoint is reached from keypoint 0 through the tree's links
    reached, edges = {0}, conn.pairs[tree].tolist()
    for _ in range(n):
        reached |= {j for i, j in edges if i in reached} | {i for i, j in edges if j in reached}
    assert reached == set(range(n))
    # maximum (cycle property): no link outside the tree outweighs a link on the tree path
    # between its ends
    w = conn.link_weights().detach()
    weight = {tuple(p): float(v) for p, v in zip(conn.pairs.tolist(), w)}

    def path(a, b):  # the tree's links from a to b (depth-first search)
        stack = [(a, [])]
        while stack:
            node, links = stack.pop()
            if node == b:
                return links
            for i, j in edges:
                if node in (i, j) and (i, j) not in links:
                    stack.append((j if node == i else i, [*links, (i, j)]))

    for (i, j), v in weight.items():
        if [i, j] not in edges:
            assert all(v <= weight[link] for link in path(i, j))
    drawn = conn.drawn_weights()
    assert torch.equal(drawn > 0, tree) and drawn.max().item() == pytest.approx(1.0)
    assert (conn.matrix() > 0).sum().item() == 2 * (n - 1)
    # a link outside the tree that grows above all others enters it
    outside = int(torch.nonzero(~tree)[0])
    with torch.no_grad():
        conn.theta[tuple(conn.pairs[outside])] = 10.0
    assert conn.tree()[outside]
    kpts = torch.rand(2, n, 2) * 2 - 1
    drawn = conn.drawn_weights()
    only = rasterize_links(
        kpts, drawn[conn.tree()], conn.pairs[conn.tree()], 16, cfg.link_thickness
    )
    assert torch.allclose(conn(kpts, 16), only)


def dense_capsules(kpts, weights, pairs, radii, size, softness):
    """Every link's tapered capsule at every pixel, then the max over links."""
    axis = torch.linspace(-1.0, 1.0, size, dtype=kpts.dtype)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    grid = torch.stack([xx, yy], -1).view(1, 1, -1, 2)
    s = kpts[:, pairs[:, 0]].unsqueeze(2)  # (B, L, 1, 2)
    d = kpts[:, pairs[:, 1]].unsqueeze(2) - s
    t = (((grid - s) * d).sum(-1) / ((d * d).sum(-1) + 1e-8)).clamp(0, 1)  # (B, L, H·W)
    dist = ((grid - (s + t.unsqueeze(-1) * d)) ** 2).sum(-1).add(1e-12).sqrt()
    r = radii[:, 0].view(1, -1, 1) * (1 - t) + radii[:, 1].view(1, -1, 1) * t
    occupancy = torch.sigmoid((r - dist) / softness) * weights.view(1, -1, 1)
    return occupancy.amax(1).view(-1, 1, size, size)


def test_capsules_match_the_dense_reference_in_values_and_gradients(setup):
    kpts, weights, pairs = setup
    radii = torch.rand(len(pairs), 2, generator=torch.Generator().manual_seed(2)) * 0.2 + 0.05
    ref = dense_capsules(kpts, weights, pairs, radii, 24, 0.05)
    with torch.no_grad():
        fast = rasterize_capsules(kpts, weights, pairs, radii, 24, 0.05)
    assert torch.allclose(fast, ref, atol=1e-6)
    leaves = [[t.clone().requires_grad_(True) for t in (kpts, weights, radii)] for _ in range(2)]
    probe = torch.rand(2, 1, 24, 24, generator=torch.Generator().manual_seed(1))
    k1, w1, r1 = leaves[0]
    (rasterize_capsules(k1, w1, pairs, r1, 24, 0.05) * probe).sum().backward()
    k2, w2, r2 = leaves[1]
    (dense_capsules(k2, w2, pairs, r2, 24, 0.05) * probe).sum().backward()
    for fast, dense in zip(leaves[0], leaves[1]):
        assert fast.grad.abs().sum() > 0
        assert torch.allclose(fast.grad, dense.grad, atol=1e-4, rtol=1e-4)


def test_the_soft_union_is_one_minus_the_product_of_misses_and_teaches_every_link(setup):
    kpts, weights, pairs = setup
    weights = weights / weights.max()
    radii = torch.rand(len(pairs), 2, generator=torch.Generator().manual_seed(2)) * 0.2 + 0.05
    per_link = [
        dense_capsules(kpts, weights[i : i + 1], pairs[i : i + 1], radii[i : i + 1], 24, 0.05)
        for i in range(len(pairs))
    ]
    expected = 1 - torch.stack([1 - c for c in per_link]).prod(0)
    soft = rasterize_capsules(kpts, weights, pairs, radii, 24, 0.05, union="soft")
    assert torch.allclose(soft, expected, atol=1e-5)
    assert (soft >= dense_capsules(kpts, weights, pairs, radii, 24, 0.05) - 1e-6).all()
    # one link alone: the same drawing either way
    one = [t[:1] for t in (weights, pairs, radii)]
    assert torch.allclose(
        rasterize_capsules(kpts, *one[:2], one[2], 24, 0.05, union="soft"),
        rasterize_capsules(kpts, *one[:2], one[2], 24, 0.05),
        atol=1e-6,
    )
    # two equal capsules on top of each other: the max teaches one of them, the soft union both
    twin = torch.tensor([[[-0.5, 0.0], [0.5, 0.0], [-0.5, 0.0], [0.5, 0.0]]])
    grads = {}
    for union in ("max", "soft"):
        w = torch.full((2,), 0.8, requires_grad=True)
        caps = rasterize_capsules(
            twin, w, torch.tensor([[0, 1], [2, 3]]), torch.full((2, 2), 0.2), 24, 0.05, union=union
        )
        caps.sum().backward()
        grads[union] = w.grad
    assert grads["max"][1].item() == 0 and grads["max"][0].item() > 0
    assert grads["soft"][0].item() > 0 and grads["soft"][1].item() > 0
    with pytest.raises(ValueError, match="union must be 'max' or 'soft'"):
        rasterize_capsules(kpts, weights, pairs, radii, 24, 0.05, union="mean")


def test_a_capsule_covers_the_pixels_within_its_radius_tapering_along_the_link():
    size = 33
    step = 2.0 / (size - 1)
    kpts = torch.tensor([[[-0.5, 0.0], [0.5, 0.0]]])  # a horizontal link across the middle row
    radii = torch.tensor([[6 * step, 2 * step]])  # 6 px at the left end, 2 px at the right one
    c = rasterize_capsules(kpts, torch.ones(1), torch.tensor([[0, 1]]), radii, size, 0.1 * step)
    c = c[0, 0]
    left, right, mid = 8, 24, 16  # the two ends' columns (x = -0.5, 0.5) and the middle row
    assert c[mid - 5, left] > 0.99 and c[mid - 7, left] < 0.01  # 6 px at the left end
    assert c[mid - 1, right] > 0.99 and c[mid - 3, right] < 0.01  # 2 px at the right end
    assert c[mid - 3, mid] > 0.99 and c[mid - 5, mid] < 0.01  # 4 px half way
    assert c[mid, right + 1] > 0.99 and c[mid, right + 3] < 0.01  # a round cap beyond the end


def test_capsules_need_the_link_radii():
    plain = Connectivity(preset("tiny"))
    with pytest.raises(ValueError, match="link_capsules"):
        plain.capsules(torch.zeros(1, plain.theta.shape[0], 2), 16, 0.05)
    cfg = dataclasses.replace(preset("tiny"), link_capsules=True)
    links = Connectivity(cfg)
    n = cfg.num_keypoints
    assert links.log_radius.shape == (n * (n - 1) // 2, 2)
    assert links.log_radius.exp()[0, 0].item() * (cfg.img_size - 1) / 2 == pytest.approx(2.5)
    drawn = links.capsules(torch.rand(2, n, 2) * 2 - 1, 16, 0.05)
    assert drawn.shape == (2, 1, 16, 16) and 0 <= drawn.min() and drawn.max() <= 1
