"""PPL training losses as pure functions returning dicts of named terms (house style 8).

Total (ppl_official_code.md §2.5, weights from TrainConfig):
    L = w_rec·L_rec(x̂, x) + w_bnd·L_bnd(T') + w_link·L_link(T, T', W)
        + w_cons·MSE(Mem(sg T'), sg T') + w_commit·MSE(sg z_q, z_e)
        + w_eq·MSE(T'(warp x), warp T'(x))      (optional, not in the official code)
        + w_sep·mean_{i≠j} exp(-|T'_i - T'_j|² / 2σ²)  (optional, not in the official code)
        + w_mask·mean(G ⊙ (M - S / max w)²) + w_attr·mean_k D_bg(T'_k)  (optional, mask supervision)
        + the terms that compare two frames of a clip (optional: ``frame_losses.py``)

Gradient routing follows from the model's detachments: L_rec reaches φ_enc, the affine head, W,
α and φ_dec; L_bnd reaches φ_enc and the head; L_link reaches W only (T and T' are detached); the
consistency term reaches the memory decoder and, straight through the quantiser, the memory
encoder; the commitment reaches the memory encoder only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ppl_edge.train.frame_losses import (  # noqa: F401  (re-exported: one place for every term)
    appearance_loss,
    flow_loss,
    frame_terms,
    rigidity_loss,
    smoothed_colors,
)
from ppl_edge.train.mask_losses import (  # noqa: F401  (re-exported: one place for every term)
    attraction_loss,
    box_smooth,
    coverage_loss,
    extremity_loss,
    extremity_points,
    mask_distance_maps,
    mask_terms,
    mask_weight_map,
    sample_at_keypoints,
    skeleton_mask_loss,
)
from ppl_edge.train.supervision import supervised_loss

ReconFn = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def gaussian_window(size: int, sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    """Separable-product 2D gaussian window: (1, 1, size, size) summing to 1."""
    coords = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2.0
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).view(1, 1, size, size)


def ssim(
    x: torch.Tensor, y: torch.Tensor, window: int = 11, sigma: float = 1.5, data_range: float = 1.0
) -> torch.Tensor:
    """Mean structural similarity (Wang et al. 2004) with a gaussian window, valid positions only.

    Args:
        x, y: (B, C, H, W) images with non-negative intensities, e.g. [0, 1] (the luminance term
            assumes non-negative means; map [-1, 1] images with ``x * 0.5 + 0.5`` first).
        window: window side, shrunk to the image side for tiny images.
        sigma: gaussian standard deviation in pixels.
        data_range: max - min of the pixel range (sets C1 = (0.01 L)², C2 = (0.03 L)²).

    Returns:
        () mean SSIM over batch, channels and positions; 1 for identical images.
    """
    C = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    w = gaussian_window(window, sigma, x.device, x.dtype).expand(C, 1, window, window)

    def blur(t: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, H-w+1, W-w+1)
        return F.conv2d(t, w, groups=C)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
    return (num / den).mean()


def pixel_loss(recon: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """L1 + (1 - SSIM) between x̂ and x, the fallback when no ImageNet VGG weights are available.

    Args:
        recon: (B, 3, H, W) x̂; target: (B, 3, H, W) x in [-1, 1] (no gradient into it).

    Returns:
        reconstruction (the sum), l1, ssim (the similarity, for logging), all ().
    """
    # DEVIATION(official): the official loss is the VGG16 perceptual loss only; without its ImageNet
    # weights (nothing is downloaded) a perceptual loss on random weights would be meaningless.
    target = target.detach()
    l1 = F.l1_loss(recon, target)
    sim = ssim(recon.float() * 0.5 + 0.5, target.float() * 0.5 + 0.5)  # SSIM on [0, 1] intensities
    return {"reconstruction": l1 + (1.0 - sim), "l1": l1.detach(), "ssim": sim.detach()}


def perceptual_term(perceptual: torch.nn.Module) -> ReconFn:
    """Wrap a :class:`~ppl_edge.train.perceptual.PerceptualLoss` as a reconstruction loss."""

    def fn(recon: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"reconstruction": perceptual(recon, target)}

    return fn


def boundary_loss(kpts: torch.Tensor) -> torch.Tensor:
    """Official ``compute_template_boundary_loss``: |p| where |p| > 1, summed over keypoints.

    Args:
        kpts: (B, N, 2) T', xy in [-1, 1].

    Returns:
        () Σ_N then mean over batch and the 2 coordinates.
    """
    return F.threshold(kpts.abs(), 1.0, 0.0).sum(dim=1).mean()


def _normalize_points(points: torch.Tensor) -> torch.Tensor:
    """Per-sample, per-axis min-max scaling to [0, 1]: (B, N, 2) -> (B, N, 2)."""
    lo = points.amin(dim=1, keepdim=True)  # (B, 1, 2)
    hi = points.amax(dim=1, keepdim=True)
    # DEVIATION(official): the span is clamped so a collapsed pose gives 0-length links, not NaN.
    return (points - lo) / (hi - lo).clamp_min(1e-8)


def link_reg_loss(
    prior: torch.Tensor, kpts: torch.Tensor, link_weights: torch.Tensor, pairs: torch.Tensor
) -> torch.Tensor:
    """Paper eq. 6 in the official ``compute_edge_reg_loss`` form: w_ij -> exp(-10·Δℓ_ij).

    Links whose normalised length changes between T and T' get weaker. Only links of normalised
    length 0.3 < ℓ(T') < 0.7 count; invalid ones contribute 0 to the mean (official). T and T' are
    detached, so only W learns from this term.

    Args:
        prior: (N, 2) T.
        kpts: (B, N, 2) T'.
        link_weights: (L,) w_ij > 0 of the upper-triangular pairs.
        pairs: (L, 2) int64 (i, j), i < j.

    Returns:
        () mean over (B, L) of |10·sg(|ℓ_ij(T) - ℓ_ij(T')|) + log w_ij| on valid links.
    """
    t = _normalize_points(prior.detach().unsqueeze(0))  # (1, N, 2)
    p = _normalize_points(kpts.detach())  # (B, N, 2)
    i, j = pairs[:, 0], pairs[:, 1]
    len_t = (t[:, i] - t[:, j]).norm(dim=-1)  # (1, L)
    len_p = (p[:, i] - p[:, j]).norm(dim=-1)  # (B, L)
    valid = ((len_p > 0.3) & (len_p < 0.7)).to(link_weights.dtype)
    diff = (len_t - len_p).abs()
    return ((10.0 * diff + torch.log(link_weights).unsqueeze(0)) * valid).abs().mean()


def equivariance_loss(
    kpts: torch.Tensor,
    kpts_warped: torch.Tensor,
    forward: torch.Tensor,
    order: torch.Tensor | None = None,
) -> torch.Tensor:
    """MSE between the keypoints of a warped image and the warped keypoints of the image.

    Args:
        kpts: (B, N, 2) T'(x); kpts_warped: (B, N, 2) T'(warp(x)).
        forward: (B, 2, 3) the warp as a map of [-1, 1] points (p -> R p + t).
        order: (B, N) long: keypoint k of the warped image is keypoint ``order[b, k]`` of the
            image (a mirroring warp swaps a template's left / right joints); None: identity.

    Returns:
        () mean over B, N and the 2 coordinates; gradients reach both estimates.
    """
    moved = kpts @ forward[:, :, :2].transpose(1, 2) + forward[:, None, :, 2]  # (B, N, 2)
    if order is not None:
        moved = torch.gather(moved, 1, order.unsqueeze(-1).expand(-1, -1, 2))
    return F.mse_loss(kpts_warped.float(), moved.float())


def separation_loss(kpts: torch.Tensor, sigma: float) -> torch.Tensor:
    """Zhang et al. 2018 separation: penalise keypoints that coincide.

    Args:
        kpts: (B, N, 2) T', xy in [-1, 1].
        sigma: kernel width in the same units.

    Returns:
        () mean over B and the N(N-1) ordered pairs i≠j of exp(-|T'_i - T'_j|² / (2σ²)): 1 when all
        keypoints coincide, towards 0 when they are further apart than a few σ.
    """
    N = kpts.shape[1]
    k = kpts.float()
    d2 = (k[:, :, None] - k[:, None]).pow(2).sum(-1)  # (B, N, N), no sqrt: smooth at 0
    kernel = torch.exp(-d2 / (2.0 * sigma * sigma))
    off = ~torch.eye(N, dtype=torch.bool, device=kpts.device)
    return kernel[:, off].mean()


def memory_losses(
    mem_keypoints: torch.Tensor, keypoints: torch.Tensor, commit_loss: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Keypoint-configuration reconstruction through the memory (unweighted).

    Args:
        mem_keypoints: (B, N, 2) T'' = Dec(quantised Enc(sg T')).
        keypoints: (B, N, 2) T' (detached here: only the memory learns from this term).
        commit_loss: () MSE(sg z_q, z_e) from the memory.

    Returns:
        consistency: () MSE(T'', sg T'); commit: () the commitment term.
    """
    return {
        "consistency": F.mse_loss(mem_keypoints.float(), keypoints.detach().float()),
        "commit": commit_loss,
    }


def training_losses(
    out: dict[str, torch.Tensor],
    image: torch.Tensor,
    cfg,
    recon_fn: ReconFn,
    link_weights: torch.Tensor | None = None,
    pairs: torch.Tensor | None = None,
    warp: torch.Tensor | None = None,
    mask: torch.Tensor | None = None,
    link_peak: torch.Tensor | None = None,
    stage: str = "full",
    warp_order: torch.Tensor | None = None,
    supervision: list | None = None,
    reference: torch.Tensor | None = None,
    drawn_weights: torch.Tensor | None = None,
    flow: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Every term of one training step and the weighted total.

    Args:
        out: ``PoseModel.forward`` output (prior, keypoints, recon, mem_keypoints, commit_loss).
        image: (B, 3, H, W) the target frame x in [-1, 1].
        cfg: TrainConfig (its ``w_*`` weights).
        recon_fn: ``pixel_loss`` or ``perceptual_term(...)``.
        link_weights, pairs: (L,), (L, 2) from ``model.connectivity``; needed if ``w_link_reg > 0``.
        warp: (B, 2, 3) the warp whose image gave ``out["keypoints_warped"]``; needed if
            ``w_equivariance > 0``.
        mask: (B, 1, H, W) the frame's foreground; needed if ``w_mask`` or ``w_attraction`` > 0.
        link_peak: () what S is divided by for the mask term (``Connectivity.peak()``).
        stage: ``full`` (every term) or ``mask`` (the first stage of the cascade: no image
            reconstruction, ``out`` then has no ``recon``; mask weight ``w_mask``, later
            ``w_mask_late``).
        reference, drawn_weights, flow: for the two-frame terms (:func:`frame_terms`).

    Returns:
        total () with gradients, and every unweighted term computed (l1/ssim in pixel mode).
    """
    terms = dict(recon_fn(out["recon"], image)) if stage == "full" else {}
    terms["boundary"] = boundary_loss(out["keypoints"])
    terms.update(memory_losses(out["mem_keypoints"], out["keypoints"], out["commit_loss"]))
    total = (
        cfg.w_boundary * terms["boundary"]
        + cfg.w_consistency * terms["consistency"]
        + cfg.w_commit * terms["commit"]
    )
    if stage == "full":
        total = total + cfg.w_reconstruction * terms["reconstruction"]
    w_mask = cfg.w_mask if stage == "mask" else cfg.mask_weight_late()
    if cfg.uses_masks:
        if mask is None or link_peak is None:
            raise ValueError("mask supervision needs the frame's mask and link_peak")
        terms.update(mask_terms(out, mask, link_peak, cfg, image))
        total = total + w_mask * terms["mask"] + cfg.w_attraction * terms["attraction"]
        optional = {"coverage": cfg.w_coverage, "extremity": cfg.w_extremity}
        optional["capsule"] = cfg.capsule_weight(stage)
        total = total + sum(w * terms[k] for k, w in optional.items() if k in terms)
    if cfg.w_link_reg > 0:
        if link_weights is None or pairs is None:
            raise ValueError("w_link_reg > 0 needs link_weights and pairs")
        terms["link_reg"] = link_reg_loss(out["prior"], out["keypoints"], link_weights, pairs)
        total = total + cfg.w_link_reg * terms["link_reg"]
    if supervision is not None:
        terms["supervised"] = supervised_loss(out["keypoints"], *supervision)
        total = total + cfg.w_supervised * terms["supervised"]
    if cfg.w_equivariance > 0:
        if warp is None or "keypoints_warped" not in out:
            raise ValueError("w_equivariance > 0 needs the warp and out['keypoints_warped']")
        terms["equivariance"] = equivariance_loss(
            out["keypoints"], out["keypoints_warped"], warp, warp_order
        )
        total = total + cfg.w_equivariance * terms["equivariance"]
    frame = frame_terms(out, image, reference, mask, cfg, drawn_weights, pairs, flow)
    terms.update(frame)
    total = total + sum(getattr(cfg, f"w_{k}") * v for k, v in frame.items())
    if cfg.w_separation > 0:
        terms["separation"] = separation_loss(out["keypoints"], cfg.sep_sigma)
        total = total + cfg.w_separation * terms["separation"]
    terms["total"] = total
    return terms
