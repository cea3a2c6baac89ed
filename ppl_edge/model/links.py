"""Connectivity prior W and the differentiable link heatmap S (AutoLink's ``draw_lines``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ppl_edge.model.config import ModelConfig

_CHUNK = 16  # links per chunk of the running max
CAPSULE_TOLERANCE = 0.01  # capsules of links below this share of max w are not drawn


def _segment_projection(gx, gy, sx, sy, dx, dy) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, d²): where grid points project on segments s -> s + d, clamped to [0, 1] (t <= 0 ->
    start, t >= 1 -> end), and their squared distance to the segments (all broadcastable)."""
    t = ((gx - sx) * dx + (gy - sy) * dy) / (dx * dx + dy * dy + 1e-8)
    t = t.clamp(0.0, 1.0)
    return t, (gx - sx - t * dx) ** 2 + (gy - sy - t * dy) ** 2


def _segment_dist2(gx, gy, sx, sy, dx, dy) -> torch.Tensor:
    """Squared distance of grid points to segments s -> s + d (all broadcastable)."""
    return _segment_projection(gx, gy, sx, sy, dx, dy)[1]


def _winners(best: torch.Tensor, *per_link: torch.Tensor) -> list[torch.Tensor]:
    """Each (B, L, 2) tensor of ``per_link`` at the winning link of every pixel, ``best``
    (B, H·W): (B, H·W, 2) each."""
    index = best.unsqueeze(-1).expand(-1, -1, 2)
    return [t.gather(1, index) for t in per_link]


def _flat_grid(gx: torch.Tensor, gy: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The (1, 1, 1, W) and (1, 1, H, 1) grid axes as (1, H·W) rows, pixel by pixel."""
    return gx.expand(1, 1, size, size).reshape(1, -1), gy.expand(1, 1, size, size).reshape(1, -1)


def _running_max(heat, num_links: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Max and argmax over links of ``heat(slice) -> (B, l, H, W)``, chunk by chunk and without
    autograd: the (B, L, H, W) tensor is never held whole. Ties go to the lowest link index."""
    best_val = best = None
    for lo in range(0, num_links, _CHUNK):
        with torch.no_grad():
            val, idx = heat(slice(lo, lo + _CHUNK)).max(dim=1)  # (B, H, W)
        if best_val is None:
            best_val, best = val, idx
        else:
            better = val > best_val  # strict: the lowest link index wins ties, as argmax
            best_val = torch.where(better, val, best_val)
            best = torch.where(better, idx + lo, best)
    return best_val, best


def rasterize_links(
    kpts: torch.Tensor, weights: torch.Tensor, pairs: torch.Tensor, size: int, thickness: float
) -> torch.Tensor:
    """Link heatmap S(g) = max over links of w_ij · exp(-d²(g, segment_ij) / thickness).

    DEVIATION(official): the official code materialises (B, L, H·W, 2) offset tensors and keeps
    every link's heatmap for autograd. Here the separable grid is broadcast as rows and columns, and
    when gradients are needed the max is taken without autograd first; only the winning link of each
    pixel is then recomputed with autograd. The values and gradients are those of the max (the
    gradient of a max flows to its argmax), at a fraction of the time and memory.

    Args:
        kpts: (B, N, 2) float32, xy in [-1, 1].
        weights: (L,) link weights w_ij >= 0.
        pairs: (L, 2) int64 keypoint indices (i < j) of each link.
        size: output side in pixels.
        thickness: 2σ² in normalised units.

    Returns:
        S: (B, 1, size, size).
    """
    B = kpts.shape[0]
    axis = torch.linspace(-1.0, 1.0, size, device=kpts.device, dtype=kpts.dtype)
    gx = axis.view(1, 1, 1, size)
    gy = axis.view(1, 1, size, 1)
    start = kpts[:, pairs[:, 0]]  # (B, L, 2)
    delta = kpts[:, pairs[:, 1]] - start  # (B, L, 2)

    def heat(links: slice) -> torch.Tensor:
        sx, sy = start[:, links, 0, None, None], start[:, links, 1, None, None]  # (B, l, 1, 1)
        dx, dy = delta[:, links, 0, None, None], delta[:, links, 1, None, None]
        dist2 = _segment_dist2(gx, gy, sx, sy, dx, dy)  # (B, l, H, W)
        return torch.exp(-dist2 / thickness) * weights[links].view(1, -1, 1, 1)

    needs_grad = torch.is_grad_enabled() and (kpts.requires_grad or weights.requires_grad)
    if torch.onnx.is_in_onnx_export():
        return heat(slice(None)).amax(dim=1, keepdim=True)  # (B, 1, H, W), one static graph
    best_val, best = _running_max(heat, pairs.shape[0])
    if not needs_grad:
        return best_val.unsqueeze(1)  # (B, 1, H, W)
    best = best.view(B, -1)  # (B, H·W) winning link per pixel
    s, d = _winners(best, start, delta)
    gxf, gyf = _flat_grid(gx, gy, size)
    dist2 = _segment_dist2(gxf, gyf, s[..., 0], s[..., 1], d[..., 0], d[..., 1])  # (B, H·W)
    heat = torch.exp(-dist2 / thickness) * weights[best]  # (B, H·W)
    return heat.view(B, 1, size, size)


def _capsule(gx, gy, sx, sy, dx, dy, r0, r1, softness: float) -> torch.Tensor:
    """Soft occupancy of tapered capsules s -> s + d, radius r0 at s and r1 at s + d."""
    t, dist2 = _segment_projection(gx, gy, sx, sy, dx, dy)
    return torch.sigmoid((r0 + t * (r1 - r0) - (dist2 + 1e-12).sqrt()) / softness)


def rasterize_capsules(
    kpts: torch.Tensor,
    weights: torch.Tensor,
    pairs: torch.Tensor,
    radii: torch.Tensor,
    size: int,
    softness: float,
    union: str = "max",
) -> torch.Tensor:
    """Silhouette drawn by the links as tapered capsules: C(g) = max_l w_l σ((r_l(t) - d_l(g)) / τ).

    d_l(g) is the distance of pixel g to link l's segment, t its projection on the segment in
    [0, 1] and r_l(t) the radius interpolated between the link's two ends. A figure made of limbs
    of fixed widths between its joints is such a union of capsules, so a silhouette drawn this way
    meets the foreground mask best with keypoints on the joints, links on the bones and radii
    that fit each limb: what the medial axis alone cannot ask for (it is met as well by keypoints
    anywhere along the axis). Values and gradients as :func:`rasterize_links` (the max without
    autograd, the winning link of each pixel recomputed with it).

    Args:
        kpts: (B, N, 2) xy in [-1, 1]; weights: (L,) w >= 0; pairs: (L, 2) keypoint indices.
        radii: (L, 2) radius at each link's first and second keypoint, normalised units.
        size: output side in pixels.
        softness: τ, the edge's width in normalised units.
        union: ``max`` (above) or ``soft``: C(g) = 1 - Π_l (1 - w_l σ_l(g)) (weights in [0, 1]),
            where every link under a pixel gets a gradient, not only the strongest; it holds the
            (B, L, H, W) occupancies for autograd.

    Returns:
        C: (B, 1, size, size) in [0, max w] (``soft``: [0, 1]).
    """
    B = kpts.shape[0]
    axis = torch.linspace(-1.0, 1.0, size, device=kpts.device, dtype=kpts.dtype)
    gx, gy = axis.view(1, 1, 1, size), axis.view(1, 1, size, 1)
    start = kpts[:, pairs[:, 0]]  # (B, L, 2)
    delta = kpts[:, pairs[:, 1]] - start  # (B, L, 2)

    def heat(links: slice) -> torch.Tensor:
        sx, sy = start[:, links, 0, None, None], start[:, links, 1, None, None]  # (B, l, 1, 1)
        dx, dy = delta[:, links, 0, None, None], delta[:, links, 1, None, None]
        r0, r1 = radii[links, 0].view(1, -1, 1, 1), radii[links, 1].view(1, -1, 1, 1)
        occupancy = _capsule(gx, gy, sx, sy, dx, dy, r0, r1, softness)
        return occupancy * weights[links].view(1, -1, 1, 1)

    if union == "soft":
        miss = torch.log1p(-heat(slice(None)).clamp(max=1.0 - 1e-6)).sum(1, keepdim=True)
        return -torch.expm1(miss)  # 1 - Π (1 - w σ), (B, 1, H, W)
    if union != "max":
        raise ValueError(f"union must be 'max' or 'soft', got {union!r}")
    best_val, best = _running_max(heat, pairs.shape[0])
    if not torch.is_grad_enabled():
        return best_val.unsqueeze(1)
    best = best.view(B, -1)  # (B, H·W) winning link per pixel
    s, d = _winners(best, start, delta)
    r = radii[best]  # (B, H·W, 2)
    gxf, gyf = _flat_grid(gx, gy, size)
    occupancy = _capsule(
        gxf, gyf, s[..., 0], s[..., 1], d[..., 0], d[..., 1], r[..., 0], r[..., 1], softness
    )
    return (occupancy * weights[best]).view(B, 1, size, size)


def keep_links(weights: torch.Tensor, tolerance: float) -> torch.Tensor:
    """(L,) bool: the links whose weight exceeds ``tolerance`` times the largest weight.

    Bound: S(g) = max_l w_l h_l(g) with h_l = exp(-d² / thickness) in (0, 1]. Drawing only a
    subset K gives S_K(g) = max over K <= S(g); where S(g) is attained by a dropped link l,
    S(g) - S_K(g) <= w_l h_l(g) <= w_l <= tolerance · max w, and elsewhere S_K(g) = S(g). So
    0 <= S - S_K <= tolerance · max w everywhere (tolerance itself with ``link_normalize``,
    whose peak is 1). The strongest link is always kept.

    Args:
        weights: (L,) the drawn weights, >= 0.
        tolerance: in [0, 1); 0 keeps every link.
    """
    if tolerance <= 0:
        return torch.ones_like(weights, dtype=torch.bool)
    return weights > tolerance * weights.amax()


def max_over_links(z: torch.Tensor) -> torch.Tensor:
    """(B, L, H, W) -> (B, 1, H, W) max over dim 1 as a tree of elementwise maxima.

    The same values as ``amax(dim=1, keepdim=True)``; exported, it is a few elementwise Max
    nodes, which ONNX Runtime runs several times faster than a ReduceMax over a middle axis.
    """
    while z.shape[1] > 1:
        half = z.shape[1] // 2
        paired = torch.maximum(z[:, :half], z[:, half : 2 * half])  # (B, half, H, W)
        z = torch.cat([paired, z[:, 2 * half :]], dim=1) if z.shape[1] % 2 else paired
    return z


def rasterize_links_log(
    kpts: torch.Tensor, log_weights: torch.Tensor, pairs: torch.Tensor, size: int, thickness: float
) -> torch.Tensor:
    """The link heatmap S of :func:`rasterize_links`, in the form refine.onnx computes it.

    exp is monotonic, so max_l w_l exp(-d²_l / thickness) = exp(max_l (log w_l - d²_l /
    thickness)): one Exp per pixel instead of one per link and pixel. Inference only (no
    gradient trick), links given as constants (e.g. those :func:`keep_links` keeps).

    Args:
        kpts: (B, N, 2) float32, xy in [-1, 1].
        log_weights: (L,) log w_l of the drawn links (finite).
        pairs: (L, 2) int64 keypoint indices of each link.
        size: output side in pixels.
        thickness: 2σ² in normalised units.

    Returns:
        S: (B, 1, size, size).
    """
    axis = torch.linspace(-1.0, 1.0, size, device=kpts.device, dtype=kpts.dtype)
    start = kpts[:, pairs[:, 0]]  # (B, L, 2)
    delta = kpts[:, pairs[:, 1]] - start  # (B, L, 2)
    sx, sy = start[:, :, 0, None, None], start[:, :, 1, None, None]  # (B, L, 1, 1)
    dx, dy = delta[:, :, 0, None, None], delta[:, :, 1, None, None]
    dist2 = _segment_dist2(axis.view(1, 1, 1, size), axis.view(1, 1, size, 1), sx, sy, dx, dy)
    z = log_weights.view(1, -1, 1, 1) - dist2 * (1.0 / thickness)  # (B, L, H, W)
    return max_over_links(z).exp()  # (B, 1, H, W)


class Connectivity(nn.Module):
    """Connectivity prior W: w_ij = softplus(sklr · θ_ij) over the upper triangle (i < j).

    θ is initialised as (randn + link_init) / sklr; the official link_init = -4 gives
    w ≈ softplus(N(-4, 1)) ≈ 0.018.
    With ``frozen`` (Table 4 ablation) θ is a fixed random buffer instead of a parameter; with
    ``edges`` (``connectivity=template``) a fixed buffer that draws exactly those links.
    With ``cfg.link_normalize`` S is drawn with w / max w, so its peak is 1 whatever the global
    scale of W (which is otherwise a free degree of freedom that drifts towards 0).
    """

    def __init__(
        self,
        cfg: ModelConfig,
        frozen: bool = False,
        edges: tuple[tuple[int, int], ...] | None = None,
    ):
        super().__init__()
        self.scale = cfg.link_lr_scale
        self.thickness = cfg.link_thickness
        self.normalize = cfg.link_normalize
        self.only_tree = cfg.link_tree
        n = cfg.num_keypoints
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        theta = (torch.randn(n, n, generator=gen) + cfg.link_init) / self.scale
        if edges is not None:
            # a fixed skeleton: w = 1 on its edges, softplus(-30) ~ 1e-13 elsewhere
            theta = torch.full((n, n), -30.0 / self.scale)
            i, j = torch.tensor(edges, dtype=torch.long).T
            theta[i, j] = theta[j, i] = math.log(math.e - 1.0) / self.scale  # softplus = 1
            frozen = True
        if frozen:
            self.register_buffer("theta", theta)
        else:
            self.theta = nn.Parameter(theta)
        self.register_buffer("pairs", torch.triu_indices(n, n, 1).T.contiguous(), persistent=False)
        if cfg.link_capsules:  # 2.5 px at either end of every link to begin with
            start = math.log(2.5 * 2.0 / (cfg.img_size - 1))
            self.log_radius = nn.Parameter(torch.full((n * (n - 1) // 2, 2), start))

    def link_weights(self) -> torch.Tensor:
        """(L,) w_ij for the upper-triangular pairs."""
        theta = self.theta[self.pairs[:, 0], self.pairs[:, 1]]
        return F.softplus(self.scale * theta)

    def tree(self) -> torch.Tensor:
        """(L,) bool: the links of W's maximum spanning tree (Prim; ties to the lower index)."""
        n = self.theta.shape[0]
        dense = torch.full((n, n), -1.0, device=self.theta.device)
        vals = self.link_weights().detach().float()
        dense[self.pairs[:, 0], self.pairs[:, 1]] = vals
        dense[self.pairs[:, 1], self.pairs[:, 0]] = vals
        inside = torch.zeros(n, dtype=torch.bool, device=dense.device)
        inside[0] = True
        chosen = torch.zeros(n, n, dtype=torch.bool, device=dense.device)
        for _ in range(n - 1):
            cand = dense[inside][:, ~inside]  # (in, out)
            flat = int(cand.argmax())
            i = torch.nonzero(inside)[flat // cand.shape[1], 0]
            j = torch.nonzero(~inside)[flat % cand.shape[1], 0]
            chosen[i, j] = chosen[j, i] = True
            inside[j] = True
        return chosen[self.pairs[:, 0], self.pairs[:, 1]]

    def kept_weights(self) -> torch.Tensor:
        """(L,) w, or with ``link_tree`` w on W's maximum spanning tree and 0 elsewhere."""
        w = self.link_weights()
        return w * self.tree().to(w.dtype) if self.only_tree else w

    def drawn_weights(self) -> torch.Tensor:
        """(L,) the weights S is drawn with: :meth:`kept_weights`, divided by their max with
        ``link_normalize``."""
        w = self.kept_weights()
        return w / w.amax(dim=0) if self.normalize else w  # dim given: ONNX ReduceMax needs it

    def peak(self) -> torch.Tensor:
        """() the largest value S can take: max of :meth:`drawn_weights` (with gradient)."""
        return self.drawn_weights().amax(dim=0)

    def capsules(
        self, kpts: torch.Tensor, size: int, softness: float, union: str = "max"
    ) -> torch.Tensor:
        """The figure drawn as tapered capsules along the links (:func:`rasterize_capsules`, its
        ``union``), with the weights S is drawn with; needs ``link_capsules``.

        Returns:
            (B, 1, size, size).
        """
        if not hasattr(self, "log_radius"):
            raise ValueError("capsules need ModelConfig.link_capsules=true (the link radii)")
        weights, pairs, radii = self.drawn_weights(), self.pairs, self.log_radius.exp()
        keep = keep_links(weights.detach(), CAPSULE_TOLERANCE)  # changes C by <= 1 % of max w
        return rasterize_capsules(
            kpts, weights[keep], pairs[keep], radii[keep], size, softness, union
        )

    def matrix(self) -> torch.Tensor:
        """(N, N) symmetric W with a zero diagonal, for pictures and the exported skeleton."""
        n = self.theta.shape[0]
        w = torch.zeros(n, n, device=self.theta.device, dtype=self.theta.dtype)
        vals = self.kept_weights()
        w[self.pairs[:, 0], self.pairs[:, 1]] = vals
        w[self.pairs[:, 1], self.pairs[:, 0]] = vals
        return w

    def forward(self, kpts: torch.Tensor, size: int, tolerance: float = 0.0) -> torch.Tensor:
        """S for keypoints (B, N, 2) at size x size: (B, 1, size, size); with ``tolerance`` > 0
        only the links :func:`keep_links` keeps are drawn (within tolerance · max w of S)."""
        weights, pairs = self.drawn_weights(), self.pairs
        if tolerance > 0:
            keep = keep_links(weights.detach(), tolerance)
            weights, pairs = weights[keep], pairs[keep]
        return rasterize_links(kpts, weights, pairs, size, self.thickness)
