"""One training step and its parts: models, optimiser, reference images, augmentation, AMP.

Randomness of a step (block mask, flips, equivariance warps) comes from :func:`step_generator`,
seeded by (seed, rank, step), so a resumed run draws exactly what the uninterrupted run drew.
"""

from __future__ import annotations

import logging
import math
from contextlib import nullcontext

import numpy as np
import torch
import torch.nn.functional as F

from ppl_edge.errors import PplEdgeError
from ppl_edge.model.ppl import PoseModel
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.data.common import mirror_flow
from ppl_edge.train.losses import ReconFn, perceptual_term, pixel_loss, training_losses
from ppl_edge.train.supervision import mirror_labels

log = logging.getLogger(__name__)


def build_model(cfg: TrainConfig, device: str = "cpu") -> PoseModel:
    """The PoseModel of ``cfg`` (preset + overrides), initialised from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)
    return PoseModel(cfg.model_config()).to(device)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Adam:
    """Adam over every trainable parameter, lr 1e-4, no weight decay, no schedule (official).

    The connectivity logits get ``cfg.link_lr`` when it is set (a second parameter group).
    """
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.link_lr is None:
        return torch.optim.Adam(params, lr=cfg.lr)
    links = {id(p) for p in core_model(model).connectivity.parameters()}
    groups = [
        {"params": [p for p in params if id(p) not in links]},
        {"params": [p for p in params if id(p) in links], "lr": cfg.link_lr},
    ]
    return torch.optim.Adam([g for g in groups if g["params"]], lr=cfg.lr)


def set_stage_lr(optimizer: torch.optim.Optimizer, cfg: TrainConfig, stage: str) -> None:
    """Learning rates of the cascade stage: ``lr`` (and ``link_lr`` for the connectivity group of
    :func:`build_optimizer`), times ``lr_late_factor`` in the full stage after a mask warm-up."""
    factor = cfg.lr_late_factor if stage == "full" and cfg.mask_warmup_steps else 1.0
    for i, group in enumerate(optimizer.param_groups):
        base = cfg.link_lr if i == 1 and cfg.link_lr is not None else cfg.lr
        group["lr"] = base * factor


def build_recon_loss(cfg: TrainConfig, device: str = "cpu") -> tuple[ReconFn, str]:
    """The reconstruction-loss function and a one-line description for the log."""
    if cfg.resolved_recon_loss() == "perceptual":
        from ppl_edge.train.perceptual import PerceptualLoss

        module = PerceptualLoss(cfg.vgg_weights, cfg.vgg_arch, cfg.perceptual_size).to(device)
        size = f"{cfg.perceptual_size} px" if cfg.perceptual_size else "native size"
        return perceptual_term(module), f"perceptual ({cfg.vgg_arch}, {size}, {cfg.vgg_weights})"
    return pixel_loss, "pixel (L1 + 1-SSIM; set vgg_weights for the official VGG16 perceptual loss)"


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """CPU generator for the randomness of one step, a pure function of (seed, rank, step)."""
    entropy = np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(entropy))


def random_hflip(
    image: torch.Tensor, *others: torch.Tensor | None, gen: torch.Generator
) -> tuple[torch.Tensor | None, ...]:
    """Flip each sample left-right with probability 0.5 (official RandomHorizontalFlip).

    Args:
        image: (B, C, H, W); others: (B, C', H, W) tensors or None (a reference frame, a mask),
            each flipped with its image.

    Returns:
        ``(image, *others)`` with the same samples flipped in every tensor.
    """
    return apply_hflip(hflip_draw(image.shape[0], gen).to(image.device), image, *others)


def hflip_draw(batch: int, gen: torch.Generator) -> torch.Tensor:
    """(B,) bool: which samples :func:`random_hflip` flips (probability 0.5 each)."""
    return torch.rand(batch, generator=gen) < 0.5


def apply_hflip(flip: torch.Tensor, *tensors: torch.Tensor | None) -> tuple:
    """Flip the samples ``flip`` (B,) marks in every (B, C, H, W) tensor (None passes through)."""
    f = flip.view(-1, 1, 1, 1)
    return tuple(t if t is None else torch.where(f, t.flip(-1), t) for t in tensors)


def block_mask(
    batch: int, size: int, block: int, missing: float, gen: torch.Generator
) -> torch.Tensor:
    """Official damage mask: U(0,1) > missing on a block x block grid, nearest-upsampled.

    Returns:
        (B, 1, size, size) float32 of 0 (dropped) and 1 (kept).
    """
    keep = (torch.rand(batch, 1, block, block, generator=gen) > missing).float()
    return F.interpolate(keep, size=(size, size), mode="nearest")


def random_similarity(
    batch: int, cfg: TrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random similarity warps for the equivariance term, in [-1, 1] image coordinates.

    Returns:
        theta: (B, 2, 3) ``affine_grid`` matrices (output point -> input point, align_corners=True,
            the pixel-centre convention of the keypoints).
        forward: (B, 2, 3) the inverse map (input point -> output point), applied to keypoints.
    """
    rot = (torch.rand(batch, generator=gen) * 2 - 1) * math.radians(cfg.eq_rotation)
    scale = 1.0 + (torch.rand(batch, generator=gen) * 2 - 1) * cfg.eq_scale
    shift = (torch.rand(batch, 2, generator=gen) * 2 - 1) * cfg.eq_shift
    cos, sin = torch.cos(rot) * scale, torch.sin(rot) * scale
    rows = [torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)]
    fwd_lin = torch.stack(rows, 1)  # (B, 2, 2)
    forward = torch.cat([fwd_lin, shift.unsqueeze(-1)], dim=-1)  # p_out = R p_in + t
    inv_lin = torch.linalg.inv(fwd_lin)
    theta = torch.cat([inv_lin, -(inv_lin @ shift.unsqueeze(-1))], dim=-1)  # p_in = R⁻¹(p_out - t)
    return theta, forward


def mirror_order(model: torch.nn.Module) -> list[int]:
    """Keypoint k of a mirrored image is keypoint ``order[k]`` of the image: the template
    prior's left / right swap (seed 002's flip augmentation keeps the sides apart)."""
    from ppl_edge.templates import template_of

    template = template_of(core_model(model).cfg.prior)
    if template is None:
        raise PplEdgeError(
            "eq_flip and label_fraction need a template prior (model.prior=template:<name>)"
        )
    return template.swap_permutation()


def mirror_warps(
    theta: torch.Tensor, forward: torch.Tensor, gen: torch.Generator, order: list[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compose half of the warps (drawn from ``gen``) with a horizontal mirror x -> -x.

    Returns:
        theta, forward as :func:`random_similarity`; order (B, N) long: the swap for mirrored
        samples, the identity for the others.
    """
    flip = torch.rand(theta.shape[0], generator=gen) < 0.5
    sign = torch.where(flip, -1.0, 1.0)
    theta = theta.clone()
    forward = forward.clone()
    theta[:, 0, :] = theta[:, 0, :] * sign[:, None]  # p_in = M(R⁻¹(p_out - t)), M = diag(±1, 1)
    forward[:, :, 0] = forward[:, :, 0] * sign[:, None]  # p_out = R M p_in + t
    n = len(order)
    identity = torch.arange(n)
    swapped = torch.tensor(order, dtype=torch.long)
    return theta, forward, torch.where(flip[:, None], swapped, identity)


def warp_images(image: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample (B, 3, H, W) images under ``theta`` (B, 2, 3), reflecting at the borders."""
    grid = F.affine_grid(theta.to(image.dtype), list(image.shape), align_corners=True)
    return F.grid_sample(
        image, grid, mode="bilinear", padding_mode="reflection", align_corners=True
    )


def make_reference(
    image: torch.Tensor, reference: torch.Tensor | None, cfg: TrainConfig, gen: torch.Generator
) -> torch.Tensor:
    """I_ref for φ_dec: the frame under a fresh block mask (``mask``) or another frame (``frame``).

    Args:
        image: (B, 3, H, W) the frame in [-1, 1].
        reference: (B, 3, H, W) another frame of the clip, or None.

    Returns:
        (B, 3, H, W); masked pixels are 0, i.e. mid-grey in [-1, 1] (official).
    """
    if cfg.reference == "frame":
        if reference is None:
            raise PplEdgeError(
                f"reference=frame needs a dataset with a 'reference' frame per item (video:PATH "
                f"or a synthetic clip), but {cfg.data!r} gives none; use reference=mask"
            )
        return reference
    B, _, H, _ = image.shape
    mask = block_mask(B, H, cfg.resolved_mask_block(H), cfg.mask_missing, gen).to(image.device)
    return image * mask


def core_model(model: torch.nn.Module) -> PoseModel:
    """The PoseModel inside a DDP wrapper (or the model itself)."""
    return getattr(model, "module", model)


def _batch_on_device(model, batch: dict, cfg: TrainConfig, gen: torch.Generator, device):
    """(image, reference frame or None, mask or None, [labels, weights] or None, (near frame,
    flow to it) or None) on ``device``, randomly flipped together (labels mirrored with the
    template's left / right swap, the flow's x negated)."""
    image = batch["image"].to(device, non_blocking=True)
    ref = batch.get("reference")
    for name in ("w_appearance", "w_rigid"):
        if getattr(cfg, name) > 0 and ref is None:
            raise PplEdgeError(
                f"{name} > 0 compares two frames of a clip, but {cfg.data!r} gives no "
                f"'reference' frame per item (use a synthetic clip or video:PATH); set {name}=0"
            )
    wants_ref = cfg.reference == "frame" or cfg.uses_frame_keypoints
    ref = ref.to(device, non_blocking=True) if ref is not None and wants_ref else None
    mask = None
    if cfg.uses_masks:
        if "mask" not in batch:
            raise PplEdgeError(
                f"mask supervision (w_mask / w_attraction > 0) needs a 'mask' per item, but "
                f"{cfg.data!r} gives {sorted(batch)}; set w_mask=0 w_attraction=0"
            )
        mask = batch["mask"].to(device, non_blocking=True)
    near = flow = None
    if cfg.uses_flow:
        if "near" not in batch or "flow" not in batch:
            raise PplEdgeError(
                f"w_flow > 0 needs a 'near' frame and its 'flow' per item, but {cfg.data!r} "
                f"gives {sorted(batch)}; set w_flow=0"
            )
        near = batch["near"].to(device, non_blocking=True)
        flow = batch["flow"].to(device, non_blocking=True)
    sup = None
    if cfg.label_fraction > 0 and "sup_joints" in batch:
        sup = [batch["sup_joints"].to(device), batch["sup_weight"].to(device)]
        if cfg.supervised_sides == "matched":
            sup.append(mirror_order(model))
    if cfg.hflip:
        flip = hflip_draw(image.shape[0], gen).to(device)
        image, ref, mask, near = apply_hflip(flip, image, ref, mask, near)
        if flow is not None:
            flow = torch.where(flip.view(-1, 1, 1, 1), mirror_flow(flow), flow)
        if sup is not None:
            sup[0] = mirror_labels(sup[0], flip, mirror_order(model))
    return image, ref, mask, sup, None if near is None else (near, flow)


def _extra_inputs(cfg: TrainConfig, warped, ref, near) -> dict[str, torch.Tensor]:
    """The images φ_enc also reads this step, by the key of ``out`` their keypoints go to (all in
    one forward, so DDP sees one graph): the warped frames, the reference frames, the near
    frames."""
    parts = {
        "keypoints_warped": warped,
        "keypoints_ref": ref if cfg.uses_frame_keypoints else None,
        "keypoints_near": None if near is None else near[0],
    }
    return {k: v for k, v in parts.items() if v is not None}


def train_step(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    cfg: TrainConfig,
    recon_fn: ReconFn,
    gen: torch.Generator,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
    step: int = 0,
) -> dict[str, torch.Tensor]:
    """One optimiser step on one batch.

    Args:
        model: PoseModel, or its DDP wrapper.
        batch: dataset items collated: ``image`` (B, 3, H, W), optionally ``reference`` and
            ``mask`` (B, 1, H, W) (needed by mask supervision).
        gen: this step's generator (:func:`step_generator`).
        scaler: GradScaler for fp16 autocast, else None.
        amp_dtype: autocast dtype (bf16 / fp16) on CUDA, or None for fp32.
        step: the 0-based step number; selects the cascade stage (:meth:`TrainConfig.stage`).

    Returns:
        every loss term as a detached () tensor (``total`` included); no host sync happens here.
    """
    device = next(model.parameters()).device
    image, ref, mask, sup, near = _batch_on_device(model, batch, cfg, gen, device)
    stage = cfg.stage(step)
    set_stage_lr(optimizer, cfg, stage)
    reference = make_reference(image, ref, cfg, gen) if stage == "full" else None
    model.train()
    autocast = (
        torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype else nullcontext()
    )
    warped = warp = order = None
    if cfg.w_equivariance > 0:
        theta, warp = random_similarity(image.shape[0], cfg, gen)
        if cfg.eq_flip:
            theta, warp, order = mirror_warps(theta, warp, gen, mirror_order(model))
            order = order.to(device)
        warped = warp_images(image, theta.to(device))
        warp = warp.to(device)
    parts = _extra_inputs(cfg, warped, ref, near)
    with autocast:
        out = model(image, reference, torch.cat(list(parts.values())) if parts else None)
        if parts:
            sizes = [v.shape[0] for v in parts.values()]
            out.update(zip(parts, out.pop("keypoints_warped").split(sizes)))
        links = core_model(model).connectivity
        if cfg.w_capsule > 0:
            out["capsules"] = capsule_map(links, out["keypoints"], image.shape[-1], cfg, step)
        terms = training_losses(
            out,
            image,
            cfg,
            recon_fn,
            links.link_weights(),
            links.pairs,
            warp,
            mask,
            links.peak() if mask is not None else None,
            stage,
            order,
            sup,
            ref,
            links.drawn_weights() if cfg.w_rigid > 0 else None,
            None if near is None else near[1],
        )
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(terms["total"]).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        terms["total"].backward()
        optimizer.step()
    return {k: v.detach().float() for k, v in terms.items()}


def capsule_map(links, kpts: torch.Tensor, size: int, cfg: TrainConfig, step: int) -> torch.Tensor:
    """(B, 1, size, size) the links drawn as capsules for the ``w_capsule`` term, their edges
    ``cfg.capsule_softness_at(step)`` pixels wide, joined by ``cfg.capsule_union``."""
    softness = cfg.capsule_softness_at(step) * 2.0 / (size - 1)
    return links.capsules(kpts, size, softness, cfg.capsule_union)


def amp_setup(
    cfg: TrainConfig, device: str
) -> tuple[torch.dtype | None, torch.amp.GradScaler | None]:
    """Autocast dtype and GradScaler: bf16 (no scaler) or fp16 (scaler) on CUDA, fp32 elsewhere."""
    if cfg.amp == "off":
        return None, None
    if not device.startswith("cuda"):
        log.warning("amp=%s is for CUDA only; training on %s in fp32", cfg.amp, device)
        return None, None
    if cfg.amp == "bf16":
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")
