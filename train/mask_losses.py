"""Mask supervision (seed 003, Mask-as-Supervision): terms that tie the link map S and the keypoints
to a foreground mask M, as weak supervision beside the PPL objective (:mod:`.losses`).

- skeleton-mask loss: ``mean(G ⊙ (M - S / max w)²)``, G the geodesic / distance weighting, M the
  silhouette or its medial axis (``mask_target``);
- attraction: the background's distance transform sampled at each keypoint;
- coverage: a chamfer term that spreads the keypoints over the figure (optionally in position and
  colour, which reaches parts the silhouette cannot show).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ppl_edge.model.encoder import coordinate_grid


def _min_plus_one(dist: torch.Tensor) -> torch.Tensor:
    """One relaxation step of an 8-connected distance map: min over the 3x3 neighbourhood, + 1."""
    return -F.max_pool2d(-dist, 3, stride=1, padding=1) + 1.0


@torch.no_grad()
def mask_distance_maps(mask: torch.Tensor, max_iter: int | None = None) -> dict[str, torch.Tensor]:
    """Distance maps of a foreground mask, in pixels, computed by repeated 3x3 min-pooling.

    Seed 003 (Mask as Supervision, §3.2.5) weights the mask loss with geodesic distances: inside
    the figure the distance from its centre along the figure (limb ends, the hardest joints, weigh
    most), outside it the distance to the figure (far false positives weigh most). Both are 8-
    connected (chessboard) distances here, relaxed on the pixel grid: exact for the metric, and
    cheap on a GPU or CPU at the training resolutions.

    Args:
        mask: (B, 1, H, W) foreground in [0, 1] (binarised at 0.5).
        max_iter: relaxation steps; default H + W (enough for any figure that is not a spiral).

    Returns:
        inside: (B, 1, H, W) geodesic distance from the foreground pixel nearest the mask
            centroid, 0 on the background (and on foreground the seed cannot reach);
        outside: (B, 1, H, W) distance to the nearest foreground pixel (0 inside; H + W for an
            empty mask).
    """
    B, _, H, W = mask.shape
    fg = mask.float() > 0.5
    steps = max_iter or (H + W)
    big = float(H + W)
    outside = torch.where(fg, 0.0, big)
    # seed of the geodesic map: the foreground pixel nearest the centroid of the mask
    ys = torch.arange(H, device=mask.device, dtype=torch.float32).view(1, 1, H, 1)
    xs = torch.arange(W, device=mask.device, dtype=torch.float32).view(1, 1, 1, W)
    area = fg.sum((2, 3), keepdim=True).clamp_min(1)
    cy = (fg * ys).sum((2, 3), keepdim=True) / area
    cx = (fg * xs).sum((2, 3), keepdim=True) / area
    d2 = torch.where(fg, (ys - cy) ** 2 + (xs - cx) ** 2, torch.inf).view(B, -1)
    seed = torch.zeros_like(d2, dtype=torch.bool)
    seed.scatter_(1, d2.argmin(1, keepdim=True), True)
    seed = seed.view(B, 1, H, W) & fg
    inside = torch.where(seed, 0.0, big)
    for i in range(steps):
        new_in = torch.where(fg, torch.minimum(inside, _min_plus_one(inside)), big)
        new_out = torch.minimum(outside, _min_plus_one(outside))
        if i % 8 == 7 and torch.equal(new_in, inside) and torch.equal(new_out, outside):
            break
        inside, outside = new_in, new_out
    inside = torch.where(fg & (inside < big), inside, 0.0)
    return {"inside": inside, "outside": outside.clamp(max=big)}


@torch.no_grad()
def medial_axis_map(mask: torch.Tensor, dilate: int = 1) -> torch.Tensor:
    """The figure's medial axis: its pixels that are farthest from the background in their 3x3
    neighbourhood (the ridges of the chessboard distance transform), dilated by ``dilate`` pixels
    and kept inside the figure.

    A link map that covers the whole silhouette has to cross the torso with long links; one that
    draws the medial axis follows the limbs, with a keypoint where the axis bends or branches.

    Args:
        mask: (B, 1, H, W) foreground in [0, 1] (binarised at 0.5).
        dilate: pixels the ridge is widened by on each side (1: a 3-pixel line).

    Returns:
        (B, 1, H, W) float32 in {0, 1}; 0 for an empty mask.
    """
    fg = mask.float() > 0.5
    H, W = mask.shape[-2:]
    inside = torch.where(fg, float(H + W), 0.0)  # distance to the background, 0 on it
    for _ in range((min(H, W) + 1) // 2):
        new = torch.where(fg, torch.minimum(inside, _min_plus_one(inside)), 0.0)
        if torch.equal(new, inside):
            break
        inside = new
    # beyond the image border is not background (the pooling ignores it): a limb cut by the frame
    # keeps its axis up to the border
    ridge = fg & (inside >= F.max_pool2d(inside, 3, stride=1, padding=1))
    if dilate > 0:
        k = 2 * dilate + 1
        ridge = F.max_pool2d(ridge.float(), k, stride=1, padding=dilate) > 0
    return (ridge & fg).float()


def mask_weight_map(
    maps: dict[str, torch.Tensor], fg: torch.Tensor, bg_scale: float, fg_gain: float = 1.0
) -> torch.Tensor:
    """Geodesic weighting G of seed 003: 1 + fg_gain · d_in / max d_in inside the figure,
    1 + d_out / bg_scale outside it.

    Args:
        maps: :func:`mask_distance_maps` output.
        fg: (B, 1, H, W) bool foreground.
        bg_scale: background distance (pixels) at which the weight reaches 2; capped at 5.
        fg_gain: extra weight of the figure pixel farthest along the figure from its centre.

    Returns:
        (B, 1, H, W) weights >= 1.
    """
    inside = maps["inside"]
    peak = inside.amax((2, 3), keepdim=True).clamp_min(1.0)
    w_in = 1.0 + fg_gain * inside / peak
    w_out = 1.0 + (maps["outside"] / bg_scale).clamp(max=4.0)
    return torch.where(fg, w_in, w_out)


def skeleton_mask_loss(
    links: torch.Tensor, peak: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Seed 003 eq. 5 with geodesic weighting: mean(G ⊙ (M - S / max w)²).

    Dividing the link map by the strongest link weight makes the term scale-free: it shapes which
    links are drawn and where the keypoints are, not the global scale of W (which the decoder
    sets).

    Args:
        links: (B, 1, H, W) S; peak: () max w (with gradient) or 1 when S is normalised already.
        mask: (B, 1, H, W) foreground in [0, 1]; weights: (B, 1, H, W) G (no gradient).

    Returns:
        () the weighted mean squared difference.
    """
    skeleton = links.float() / peak.float()
    return (weights * (mask.float() - skeleton) ** 2).mean()


def sample_at_keypoints(maps: torch.Tensor, kpts: torch.Tensor, padding: str) -> torch.Tensor:
    """Bilinear samples of (B, C, H, W) ``maps`` at (B, N, 2) keypoints (xy in [-1, 1], pixel
    centres at ±1), differentiable in the keypoints; ``padding`` is ``grid_sample``'s
    padding_mode. Returns (B, C, N)."""
    grid = kpts.float().unsqueeze(1)  # (B, 1, N, 2)
    samples = F.grid_sample(maps, grid, mode="bilinear", padding_mode=padding, align_corners=True)
    return samples[:, :, 0]  # (B, C, 1, N) -> (B, C, N)


def box_smooth(image: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) ``image`` averaged over ``size`` x ``size`` pixels (odd ``size``; the border
    averages only the pixels inside the image), same shape."""
    return F.avg_pool2d(image.float(), size, stride=1, padding=size // 2, count_include_pad=False)


def attraction_loss(kpts: torch.Tensor, outside: torch.Tensor) -> torch.Tensor:
    """Mean distance to the figure, sampled at each keypoint: 0 on the figure, grows outside it.

    Args:
        kpts: (B, N, 2) T', xy in [-1, 1] (pixel centres at ±1: ``align_corners=True``).
        outside: (B, 1, H, W) distance to the foreground in pixels (:func:`mask_distance_maps`).

    Returns:
        () mean over B and N, in units of the image side (a keypoint H/4 px away from the figure
        costs 0.25).
    """
    return sample_at_keypoints(outside, kpts, "border").mean() / outside.shape[-1]


def coverage_loss(
    kpts: torch.Tensor,
    mask: torch.Tensor,
    weights: torch.Tensor,
    image: torch.Tensor | None = None,
    color_weight: float = 0.0,
) -> torch.Tensor:
    """Chamfer coverage of the figure by the keypoints: weighted mean over figure pixels of the
    distance to the nearest keypoint.

    The skeleton-mask term only sees a limb a link's Gaussian already touches (a few pixels); this
    term pulls the nearest keypoint towards every uncovered part of the figure from any distance,
    so the keypoints spread over the figure (with the geodesic weights G, towards its extremities:
    head, hands, feet) instead of gathering on the torso.

    With ``image`` and ``color_weight`` λ > 0 the distance is taken in position and colour,
    ``sqrt(min_k |p - T'_k|² + λ |c_p - c_k|²)``, c the frame smoothed over 3 px (c_k sampled at
    T'_k): a part the silhouette cannot show (an arm in front of the torso) still differs in
    colour from the keypoints around it, so the nearest keypoint is pulled onto it as onto an
    uncovered limb.

    Args:
        kpts: (B, N, 2) T', xy in [-1, 1].
        mask: (B, 1, H, H) foreground in [0, 1]; weights: (B, 1, H, H) G (no gradient).
        image: (B, C, H, H) the frame in [-1, 1], needed when ``color_weight`` > 0.
        color_weight: λ, the squared colour distance (summed over channels) worth one squared
            image unit ([-1, 1] coordinates).

    Returns:
        () in units of the image side; 0 when every figure pixel holds a keypoint (of its colour).
    """
    B, _, H, W = mask.shape
    grid = coordinate_grid(H, kpts.device).unsqueeze(0)  # (1, H·W, 2), the images are square
    w = (mask.float() * weights.float()).view(B, H * W)
    d2 = (grid.unsqueeze(2) - kpts.float().unsqueeze(1)).pow(2).sum(-1)  # (B, H·W, N)
    if color_weight > 0:
        if image is None:
            raise ValueError("coverage_loss with color_weight > 0 needs the image")
        smooth = box_smooth(image, 3)
        at_pixel = smooth.flatten(2).unsqueeze(-1)  # (B, C, H·W, 1)
        at_keypoint = sample_at_keypoints(smooth, kpts, "border").unsqueeze(2)  # (B, C, 1, N)
        d2 = d2 + color_weight * (at_pixel - at_keypoint).pow(2).sum(1)
    nearest = (d2.amin(-1) + 1e-8).sqrt()  # (B, H·W)
    return 0.5 * (w * nearest).sum() / w.sum().clamp_min(1e-8)


@torch.no_grad()
def extremity_points(inside: torch.Tensor, count: int, radius: float) -> torch.Tensor:
    """The figure's extremities: ``count`` points of largest geodesic distance from its centre,
    each at least ``radius`` pixels (Euclidean) from the ones before (greedy non-maximum
    suppression).

    Args:
        inside: (B, 1, H, W) geodesic distance inside the figure (:func:`mask_distance_maps`).
        count: points per image.
        radius: suppression radius in pixels.

    Returns:
        (B, count, 3): x, y in [-1, 1] (pixel centres at ±1) and a validity flag (1 where the
        point lies on the figure; 0 once the figure has no pixel left outside the radii).
    """
    B, _, H, W = inside.shape
    ys = torch.arange(H, device=inside.device, dtype=torch.float32).view(1, H, 1)
    xs = torch.arange(W, device=inside.device, dtype=torch.float32).view(1, 1, W)
    left = inside[:, 0].clone()  # (B, H, W)
    out = []
    for _ in range(count):
        flat = left.view(B, -1)
        value, idx = flat.max(1)
        y, x = (idx // W).float(), (idx % W).float()
        valid = (value > 0).float()
        out.append(torch.stack([x / (W - 1) * 2 - 1, y / (H - 1) * 2 - 1, valid], -1))
        near = (ys - y.view(B, 1, 1)) ** 2 + (xs - x.view(B, 1, 1)) ** 2 <= radius**2
        left = torch.where(near, torch.zeros_like(left), left)
    return torch.stack(out, 1)


def extremity_loss(kpts: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Mean over the valid extremities of the distance to the nearest keypoint (image sides).

    Args:
        kpts: (B, N, 2) T', xy in [-1, 1]; points: (B, E, 3) from :func:`extremity_points`.
    """
    d = (points[:, :, None, :2] - kpts.float()[:, None]).pow(2).sum(-1)  # (B, E, N)
    nearest = (d.amin(-1) + 1e-8).sqrt()
    valid = points[..., 2]
    return 0.5 * (nearest * valid).sum() / valid.sum().clamp_min(1.0)


def mask_terms(
    out: dict[str, torch.Tensor],
    mask: torch.Tensor,
    peak: torch.Tensor,
    cfg,
    image: torch.Tensor | None = None,
) -> dict:
    """The mask-supervision terms of one step (unweighted): ``mask``, ``attraction`` and, when
    ``w_coverage`` > 0, ``coverage`` (of the silhouette or its medial axis, ``coverage_target``);
    with ``w_extremity`` > 0, ``extremity``; when ``out`` holds ``capsules`` (the links drawn as
    capsules), ``capsule``.

    Args:
        out: model output with ``links`` (B, 1, H, W) and ``keypoints`` (B, N, 2), optionally
            ``capsules`` (B, 1, H, W).
        mask: (B, 1, H, W) foreground of the frame (flipped with it).
        peak: () the normalisation of S (max w), see :func:`skeleton_mask_loss`.
        cfg: TrainConfig (``mask_bg_scale``, ``mask_fg_gain``, ``mask_inner_weight``,
            ``coverage_target``, ``coverage_color``).
        image: (B, 3, H, W) the frame, needed when ``coverage_color`` > 0.
    """
    maps = mask_distance_maps(mask)
    H = mask.shape[-1]
    weights = mask_weight_map(maps, mask > 0.5, cfg.mask_bg_scale * H, cfg.mask_fg_gain)
    target = medial_axis_map(mask) if cfg.mask_target == "medial" else mask
    link_weights = weights
    if cfg.mask_inner_weight != 1.0:  # figure pixels off the target: a link may cross them
        off_target = (mask > 0.5) & (target < 0.5)
        link_weights = torch.where(off_target, weights * cfg.mask_inner_weight, weights)
    terms = {
        "mask": skeleton_mask_loss(out["links"], peak, target, link_weights),
        "attraction": attraction_loss(out["keypoints"], maps["outside"]),
    }
    if cfg.w_coverage > 0:
        covered = mask
        if cfg.coverage_target == "medial":
            covered = target if cfg.mask_target == "medial" else medial_axis_map(mask)
        terms["coverage"] = coverage_loss(
            out["keypoints"], covered, weights, image, color_weight=cfg.coverage_color
        )
    if "capsules" in out:  # the silhouette drawn as capsules, against the whole silhouette
        terms["capsule"] = skeleton_mask_loss(out["capsules"], peak, mask, weights)
    if cfg.w_extremity > 0:
        points = extremity_points(maps["inside"], cfg.extremities, radius=H / 6)
        terms["extremity"] = extremity_loss(out["keypoints"], points)
    return terms
