"""Training terms that compare two frames of a clip (none is in the official code): appearance
identity (``w_appearance``), rigid links (``w_rigid``) and keypoints that move with the optical flow
(``w_flow``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ppl_edge.train.mask_losses import box_smooth, sample_at_keypoints


def smoothed_colors(image: torch.Tensor, kpts: torch.Tensor, sizes=(3, 7)) -> torch.Tensor:
    """The colour of ``image`` under each keypoint, box-smoothed over each of ``sizes`` pixels.

    Args:
        image: (B, 3, H, W); kpts: (B, N, 2) xy in [-1, 1] (pixel centres at ±1).

    Returns:
        (B, len(sizes) · 3, N): bilinear samples of every smoothed copy (differentiable in kpts;
        the wider copy reaches a keypoint a few pixels off the part it belongs to).
    """
    smooth = torch.cat([box_smooth(image, k) for k in sizes], 1)
    return sample_at_keypoints(smooth, kpts, "border")


def appearance_loss(
    image: torch.Tensor,
    kpts: torch.Tensor,
    reference: torch.Tensor,
    ref_kpts: torch.Tensor,
    mask: torch.Tensor | None = None,
    off_figure: float = 1.0,
) -> torch.Tensor:
    """Appearance identity across frames: mean L1 between the smoothed colours under keypoint k in
    the frame and under keypoint k in another frame of the clip (:func:`smoothed_colors`).

    A fixed camera's background keeps its colour in every frame, so with a mask a keypoint off the
    figure costs ``off_figure`` (a full mismatch of colours in [-1, 1]) instead of nothing: the
    term is ``f·d + (1 - f)·off_figure``, f the frame's mask (dilated 1 px) under the keypoint.

    Args:
        image, reference: (B, 3, H, W) two frames of one clip in [-1, 1] (flipped together).
        kpts, ref_kpts: (B, N, 2) T' of each.
        mask: (B, 1, H, W) the frame's foreground in [0, 1], or None (no gate).
        off_figure: the cost of a keypoint off the figure.

    Returns:
        () mean over B and N of the mean L1 over the colour channels (0 when every keypoint keeps
        its colour on the figure).
    """
    d = (smoothed_colors(image, kpts) - smoothed_colors(reference, ref_kpts)).abs().mean(1)
    if mask is None:
        return d.mean()
    grown = F.max_pool2d(mask.float(), 3, stride=1, padding=1)
    on = sample_at_keypoints(grown, kpts, "zeros")[:, 0]  # (B, N)
    return (on * d + (1.0 - on) * off_figure).mean()


def _appearance_term(out: dict, image, reference, mask, cfg) -> torch.Tensor:
    """:func:`appearance_loss` of a training step (its inputs checked; gated by ``mask`` when
    ``cfg.appearance_gate``)."""
    if reference is None or "keypoints_ref" not in out:
        raise ValueError("w_appearance > 0 needs the reference frame and out['keypoints_ref']")
    gate = mask if cfg.appearance_gate else None
    return appearance_loss(image, out["keypoints"], reference, out["keypoints_ref"], gate)


def rigidity_loss(
    kpts: torch.Tensor,
    ref_kpts: torch.Tensor,
    link_weights: torch.Tensor,
    pairs: torch.Tensor,
    eps: float = 1e-3,
) -> torch.Tensor:
    """Bones keep their length: the change of each link's length between two frames of a clip,
    averaged with the links' drawn weights.

    A fixed camera sees the same body at the same scale in both frames, and a bone's projected
    length changes only with its foreshortening (synthetic humanoid, frames 4-16 apart: 1.3 % on
    average over its bones against 9.7 % over every other pair of joints). Keypoints that take
    their place by position (the top-left point of the figure: a hand in one frame, the head in
    the next) change their distances to the others, so the term asks each keypoint to keep its
    part. W learns from it too: the weight moves to the links that stay rigid.

    Args:
        kpts, ref_kpts: (B, N, 2) T' of the frame and of the other frame (flipped together).
        link_weights: (L,) w of the upper-triangular ``pairs`` (L, 2), e.g. the drawn weights.
        eps: smoothing of |·| at 0, in [-1, 1] image units.

    Returns:
        () Σ_l w_l · mean_B |ℓ_l(T') - ℓ_l(T'_ref)| / Σ_l w_l, in [-1, 1] image units.
    """
    i, j = pairs[:, 0], pairs[:, 1]

    def lengths(k: torch.Tensor) -> torch.Tensor:  # (B, L), smooth at 0
        return ((k[:, i] - k[:, j]).float().pow(2).sum(-1) + eps * eps).sqrt()

    change = ((lengths(kpts) - lengths(ref_kpts)).pow(2) + eps * eps).sqrt().mean(0)  # (L,)
    w = link_weights.float()
    return (w * change).sum() / w.sum().clamp_min(1e-12)


def flow_loss(
    kpts: torch.Tensor, near_kpts: torch.Tensor, flow: torch.Tensor, eps: float = 1e-3
) -> torch.Tensor:
    """Keypoints move with the image content under them: the distance between where keypoint k
    is in a nearby frame and where the optical flow carries it.

    Args:
        kpts, near_kpts: (B, N, 2) T' of the frame and of a frame a step or two away (xy in
            [-1, 1], pixel centres at ±1).
        flow: (B, 2, H, W) the flow from the frame to the nearby one, in [-1, 1] image units;
            sampled (bilinear) where the keypoints are, without a gradient through the sampling
            position (the flow field's own slope is noise).
        eps: smoothing of |·| at 0, in [-1, 1] image units.

    Returns:
        () mean over B and N of |T'_near,k - T'_k - F(T'_k)| (an L1-like norm: a keypoint the
        flow cannot follow, as at an occlusion, costs its distance, not its square).
    """
    carried = sample_at_keypoints(flow.float(), kpts.detach(), "zeros")  # (B, 2, N)
    residual = near_kpts.float() - kpts.float() - carried.transpose(1, 2)  # (B, N, 2)
    return (residual.pow(2).sum(-1) + eps * eps).sqrt().mean()


def frame_terms(out, image, reference, mask, cfg, drawn_weights, pairs, flow) -> dict:
    """The terms that compare two frames of a clip (``appearance``, ``rigid``, ``flow``), where
    weighted.

    Args:
        out: the step's outputs, with ``keypoints_ref`` (of ``reference``, another frame of the
            clip) and ``keypoints_near`` (of the frame ``flow`` leads to) where a term needs them.
        image, reference: (B, 3, H, W) the frame and the other frame; mask: its foreground.
        drawn_weights, pairs: (L,) the weights S is drawn with and their (L, 2) links.
        flow: (B, 2, H, W) the optical flow from ``image`` to the nearby frame.
    """
    terms = {}
    if cfg.w_flow > 0:
        if flow is None or "keypoints_near" not in out:
            raise ValueError("w_flow > 0 needs the flow and out['keypoints_near']")
        terms["flow"] = flow_loss(out["keypoints"], out["keypoints_near"], flow)
    if cfg.w_appearance > 0:
        terms["appearance"] = _appearance_term(out, image, reference, mask, cfg)
    if cfg.w_rigid > 0:
        if "keypoints_ref" not in out or drawn_weights is None or pairs is None:
            raise ValueError("w_rigid > 0 needs out['keypoints_ref'], drawn_weights and pairs")
        terms["rigid"] = rigidity_loss(out["keypoints"], out["keypoints_ref"], drawn_weights, pairs)
    return terms
