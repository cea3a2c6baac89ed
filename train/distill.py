"""A smaller image decoder φ_dec for a trained model, distilled from its own decoder.

Image-space refinement (paper §3.4) runs φ_dec once per iteration; the decoder of the ``small``
preset costs several keypoint inferences on a CPU. :func:`distill_decoder` trains a narrower
decoder (``dec_width`` / ``dec_max_width``) to reproduce the model's decoder on the inputs
refinement feeds it: the (possibly occluded) image as the reference and the link map S of the
memory-refined keypoints the model itself estimates on it, drawn with the links above
``link_tolerance`` only (as refine.onnx draws it), while the teacher draws every link.
Everything else (encoder, memory, W, α) is copied unchanged, so every keypoint output of the
model stays bit-identical; only ``refine_image`` changes.

The loss is the L1 distance between the two decoders' outputs (the teacher's is the target, no
ground truth is used). With ``keypoint_weight`` > 0 a consistency term is added: the keypoints
the (frozen) keypoint path estimates on the student's clamped reconstruction, against the model's
own keypoints on the unoccluded image, mean L1 in normalised units. It trains the decoder for what
refinement needs it for (a reconstruction whose pose the encoder reads as the unoccluded pose)
rather than only for pixels; no ground truth is used either.

Occlusions follow the evaluation's patch masks (``train/occlusion.py``): a third of the images
unoccluded, a third RandomMasking 0.1-0.4, a third CenterMasking 4-12 patches; half of the
keypoint sets get a small jitter, as later iterations re-estimate them on reconstructions.

# DEVIATION(official): the official code has one decoder size and no distillation.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np

from ppl_edge.errors import PplEdgeError

log = logging.getLogger(__name__)

JITTER = 0.03  # keypoint jitter (normalised units, about 1 px at 64 px)


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    """Settings of :func:`distill_decoder` (checked when made)."""

    dec_width: int = 4
    dec_max_width: int = 32
    link_tolerance: float = 0.02  # refine_link_tolerance of the student (links.keep_links)
    steps: int = 1500
    batch_size: int = 16
    lr: float = 2e-3
    seed: int = 0
    data: str = "synthetic:humanoid"
    threads: int | None = None
    center_share: float = 1 / 3  # share of CenterMasking images; the rest split none / random
    occlusion_weight: float = 0.0  # loss weight of occluded pixels: 1 + occlusion_weight
    init: str | None = None  # start from this checkpoint's decoder (a distilled one, same widths)
    keypoint_weight: float = 0.0  # weight of the keypoint-consistency term (0: pixels only)

    def __post_init__(self) -> None:
        if self.dec_width < 1 or self.dec_max_width < self.dec_width:
            raise PplEdgeError(
                f"need 1 <= dec_width <= dec_max_width, got {self.dec_width} and "
                f"{self.dec_max_width}"
            )
        if not 0.0 <= self.link_tolerance < 1.0:
            raise PplEdgeError(f"link tolerance must be in [0, 1), got {self.link_tolerance}")
        if not 0.0 <= self.center_share <= 1.0 or self.occlusion_weight < 0:
            raise PplEdgeError("center share must be in [0, 1] and occlusion weight >= 0")
        if not 0.0 <= self.keypoint_weight <= 1e3:
            raise PplEdgeError(f"keypoint weight must be in [0, 1000], got {self.keypoint_weight}")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise PplEdgeError("steps and batch size must be >= 1 and lr > 0")


def _occlusion_masks(
    batch: int, size: int, rng: np.random.Generator, center_share: float = 1 / 3
) -> np.ndarray:
    """(B, size, size) bool: none / random 0.1-0.4 / center 4-12 patches, ``center_share`` of them
    center, the rest none and random in equal parts (a third each by default)."""
    from ppl_edge.train.occlusion import (
        center_patch_mask,
        patches_to_pixels,
        random_patch_mask,
    )

    out = np.zeros((batch, size, size), dtype=bool)
    for b in range(batch):
        if abs(center_share - 1 / 3) < 1e-9:
            kind = rng.integers(3)
        else:
            kind = rng.choice(3, p=[(1 - center_share) / 2, (1 - center_share) / 2, center_share])
        if kind == 1:
            mask = random_patch_mask(float(rng.uniform(0.1, 0.4)), rng)
        elif kind == 2:
            mask = center_patch_mask(int(rng.integers(4, 13)))
        else:
            continue
        out[b] = patches_to_pixels(mask, size, size)
    return out


def _student(teacher, cfg: DistillConfig):
    """A PoseModel with the narrower decoder and every other tensor copied from ``teacher``."""
    import torch

    from ppl_edge.model.ppl import PoseModel

    model_cfg = dataclasses.replace(
        teacher.cfg,
        dec_width=cfg.dec_width,
        dec_max_width=cfg.dec_max_width,
        refine_link_tolerance=cfg.link_tolerance,
    )
    torch.manual_seed(cfg.seed)
    student = PoseModel(model_cfg)
    keep = {k: v for k, v in teacher.state_dict().items() if not k.startswith("decoder.")}
    if cfg.init is not None:  # warm start: a previous distillation's decoder
        from ppl_edge.checkpoint import load_tensors

        init = load_tensors(cfg.init, prefix="model.")
        init = {k: v for k, v in init.items() if k.startswith("decoder.")}
        if not init:
            raise PplEdgeError(f"{cfg.init} holds no decoder to start from")
        keep.update(init)
    missing, unexpected = student.load_state_dict(keep, strict=False)
    assert not unexpected and all(k.startswith("decoder.") for k in missing), (missing, unexpected)
    return student


def _step_loss(teacher, student, clean, masks: np.ndarray, prior, cfg: DistillConfig):
    """The loss of one batch: L1 to the teacher's reconstruction (occluded pixels weighted
    ``1 + occlusion_weight``) plus the keypoint-consistency term when ``keypoint_weight`` > 0.

    Args:
        clean: (B, 3, H, W) unoccluded images; masks: (B, H, W) bool occlusions; prior: (N, 2) T.

    Returns:
        (loss tensor, the consistency term as a float or None).
    """
    import torch

    from ppl_edge.train.occlusion import occlude

    image = occlude(clean, masks)
    with torch.no_grad():
        kpts = teacher.keypoint_path(image, prior)["keypoints_refined"]
        jitter = torch.rand(len(kpts), 1, 1) < 0.5
        kpts = kpts + jitter * JITTER * torch.randn_like(kpts)
        target = teacher.reconstruct(image, kpts)["image"]  # every link drawn
        wanted = teacher.encoder(clean, prior)["keypoints"] if cfg.keypoint_weight > 0 else None
    recon = student.reconstruct(image, kpts, cfg.link_tolerance)["image"]
    weight = 1.0 + cfg.occlusion_weight * torch.from_numpy(masks[:, None]).float()
    loss = ((recon - target).abs() * weight).mean()
    if wanted is None:
        return loss, None
    again = student.encoder(recon.clamp(-1.0, 1.0), prior)["keypoints"]
    consistency = (again - wanted).abs().mean()
    return loss + cfg.keypoint_weight * consistency, consistency.item()


def distill_decoder(checkpoint: str | Path, out: str | Path, cfg: DistillConfig) -> dict:
    """Distil a ``cfg.dec_width`` / ``cfg.dec_max_width`` decoder from ``checkpoint``'s decoder.

    Args:
        checkpoint: the trained model (its decoder is the teacher).
        out: the checkpoint to write: the same model with the new decoder and model config.
        cfg: the settings.

    Returns:
        A report: {"steps", "seconds", "loss_first", "loss_last", "teacher_params",
        "student_params"}.
    """
    import torch

    from ppl_edge.checkpoint import load_model, load_tensors, model_tensors, save_checkpoint
    from ppl_edge.config_utils import to_dict
    from ppl_edge.train.data import build_dataset

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    teacher, meta = load_model(checkpoint)
    student = _student(teacher, cfg)
    student.eval()
    student.decoder.train()  # only the decoder learns (BatchNorm statistics included)
    for name, param in student.named_parameters():
        param.requires_grad_(name.startswith("decoder."))
    size = teacher.cfg.img_size
    data = build_dataset(cfg.data, size, split="train", seed=cfg.seed)
    loader = torch.utils.data.DataLoader(
        data, batch_size=cfg.batch_size, shuffle=True, drop_last=True, num_workers=0,
        generator=torch.Generator().manual_seed(cfg.seed),
    )  # fmt: skip
    opt = torch.optim.Adam(student.decoder.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    prior = teacher.prior().detach()
    losses, consistencies, step, start = [], [], 0, time.perf_counter()
    while step < cfg.steps:
        for batch in loader:
            if step >= cfg.steps:
                break
            for group in opt.param_groups:  # cosine decay to 0
                group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * step / cfg.steps))
            masks = _occlusion_masks(len(batch["image"]), size, rng, cfg.center_share)
            loss, consistency = _step_loss(teacher, student, batch["image"], masks, prior, cfg)
            if consistency is not None:
                consistencies.append(consistency)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
            step += 1
            if step % 100 == 0 or step == cfg.steps:
                log.info(
                    "distill step %d/%d: loss %.4f, keypoint consistency %.4f", step, cfg.steps,
                    np.mean(losses[-100:]), np.mean(consistencies[-100:] or [0.0]),
                )  # fmt: skip
    student.eval()
    report = {
        "steps": step,
        "seconds": round(time.perf_counter() - start, 1),
        "loss_first": round(float(np.mean(losses[:50])), 5),
        "loss_last": round(float(np.mean(losses[-100:])), 5),
        "consistency_last": round(float(np.mean(consistencies[-100:] or [0.0])), 5),
        "teacher_params": sum(p.numel() for p in teacher.decoder.parameters()),
        "student_params": sum(p.numel() for p in student.decoder.parameters()),
    }
    tensors = model_tensors(student)
    tensors.update({k: v for k, v in load_tensors(checkpoint).items() if k.startswith("joints.")})
    state = dict(meta["train_state"])
    state["decoder_distill"] = {**dataclasses.asdict(cfg), **report, "teacher": str(checkpoint)}
    save_checkpoint(out, tensors, to_dict(student.cfg), state, meta.get("joints"))
    return report
