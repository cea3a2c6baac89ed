"""TrainConfig: everything that shapes one training run (no torch import).

Defaults equal the official PPL ``train.py`` / ``train_h36m.sh`` values (ppl_official_code.md §3)
unless a comment says otherwise. Values flow defaults -> YAML (``--config``) -> ``--set key=value``
-> explicit command-line flags; :func:`resolve_config` applies that order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ppl_edge.config_utils import from_dict, load_yaml, merge, parse_overrides, to_dict
from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.model.config import PRESETS, ModelConfig, preset

ReconLoss = Literal["auto", "perceptual", "pixel"]
ReferenceMode = Literal["mask", "frame"]
Precision = Literal["off", "bf16", "fp16"]


# Settings that must be >= 0 (weights and the like), checked by TrainConfig.
NON_NEGATIVE = (
    "w_reconstruction",
    "w_boundary",
    "w_link_reg",
    "w_consistency",
    "w_commit",
    "w_equivariance",
    "eq_rotation",
    "eq_shift",
    "w_separation",
    "w_mask",
    "w_attraction",
    "mask_warmup_steps",
    "mask_fg_gain",
    "w_coverage",
    "coverage_color",
    "mask_inner_weight",
    "w_extremity",
    "w_capsule",
    "w_appearance",
    "w_rigid",
    "w_flow",
    "flow_gap",
)


# Optional[...] rather than "X | None": config_utils coerces typing.Union values from YAML / --set.
@dataclass(frozen=True)
class TrainConfig:
    """One training run. Loss weights live here, never as literals in the loop (house style 4)."""

    data: str = "synthetic:humanoid"  # dataset spec for ppl_edge.train.data.build_dataset
    data_length: int | None = None  # items per epoch of generated data (None: the dataset's)
    # loader options of the data spec, e.g. {crops: motion} for video:PATH, {masks: DIR} for
    # folder:PATH (``--data-opt KEY=VALUE`` or ``--set data_options.KEY=VALUE``)
    data_options: dict[str, Any] = field(default_factory=dict)
    preset: str = "base"  # ModelConfig preset; base = the official widths at 128 px
    model_overrides: dict[str, Any] = field(default_factory=dict)  # ModelConfig fields to replace
    batch_size: int = 64  # official train.py
    lr: float = 1e-4  # official Adam lr (1e-3 before the last official commit)
    # lr of the connectivity logits θ (None: ``lr``, as official). With w = softplus(512·θ) a step
    # moves the logit by ~512·lr; at lr 1e-3 the weights sink to 0, where softplus has no gradient
    # (official objective, 1,500 steps: every w < 3.8e-4). Keep it at 1e-4 when raising lr.
    link_lr: float | None = None
    # Learning rates after the mask warm-up (the full objective) are lr · lr_late_factor and
    # link_lr · lr_late_factor: the second stage then refines the first instead of re-learning.
    lr_late_factor: float = 1.0
    # DEVIATION(official): 20000 as official, but honoured exactly, even mid-epoch (the official
    # loop checks it only at epoch ends and saves the last completed epoch).
    max_steps: int = 20000
    # Loss weights: L = w_rec·L_rec + w_bnd·L_bnd + w_link·L_link + w_cons·MSE(T'', sg T')
    #                   + w_commit·L_commit
    w_reconstruction: float = 1.0  # official: perceptual loss weight 1
    w_boundary: float = 1.0  # official: hard-coded 1 (--boundary_loss_weight is parsed but unused)
    w_link_reg: float = 0.0  # official: eq. 6 is implemented but its call is commented out
    w_consistency: float = 100.0  # official: 100·MSE(Mem(sg T'), sg T')
    w_commit: float = 1.0  # official: commitment MSE(sg z_q, z_e), weight 1
    # DEVIATION(official): optional equivariance term (Thewlis et al. 2017), off in the official
    # code: w_eq·MSE(T'(warp(x)), warp(T'(x))) for a random similarity warp per image. It ties
    # keypoints to image content from the first steps, which short CPU runs need.
    w_equivariance: float = 0.0
    eq_rotation: float = 20.0  # max |rotation| of the warp, degrees
    eq_scale: float = 0.1  # scale drawn from [1 - eq_scale, 1 + eq_scale]
    eq_shift: float = 0.15  # max |translation| per axis, in [-1, 1] image units
    # Mirror half of the equivariance warps and swap the template's left / right joints in the
    # target (needs model.prior=template:<name>; seed 002's flip augmentation).
    eq_flip: bool = False
    # Semi-supervised (seed 004): the ground truth of a label_fraction share of the training
    # items supervises the keypoints, w_supervised·MSE(T', labels); needs a template prior.
    label_fraction: float = 0.0
    w_supervised: float = 1.0
    # Which labels a keypoint is supervised by: its joint by name, or per image the labels or their
    # left / right mirror, whichever is nearer (``matched``: a figure's sides are not forced).
    supervised_sides: Literal["named", "matched"] = "named"
    # DEVIATION(official): optional separation term (Zhang et al. 2018), off in the official code:
    # w_sep·mean_{i≠j} exp(-|T'_i - T'_j|² / (2σ²)). Equivariance alone is met by keypoints that sit
    # in one cluster on the torso; this term pushes them apart so links can cover the limbs.
    w_separation: float = 0.0
    sep_sigma: float = 0.1  # σ of the separation kernel, in [-1, 1] image units
    # DEVIATION(official): optional mask supervision (seed 003, Mask as Supervision). Weak
    # supervision: it needs a foreground mask per image (the renderer's, Human3.6M's
    # BackgroudMask, a folder of mask PNGs, or background subtraction of a fixed camera's video).
    # w_mask·mean(G ⊙ (M - S / max w)²): the link map, made scale-free, should draw the figure,
    # with seed 003's geodesic weighting G (limb ends and far false positives weigh more).
    w_mask: float = 0.0
    w_mask_late: float | None = None  # mask weight after the warm-up (None: w_mask)
    # w_attr·mean_k D(T'_k): the distance of each keypoint to the figure, in image sides.
    w_attraction: float = 0.0
    # w_cov·Σ_p G·M·min_k |p - T'_k| / Σ G·M: every figure pixel near some keypoint (a chamfer
    # term: long-range, so keypoints reach the limbs the link map's Gaussians do not yet touch).
    w_coverage: float = 0.0
    # DEVIATION(seed 003): λ > 0 measures the coverage distance in position and colour,
    # min_k |p - T'_k|² + λ|c_p - c_k|² (c the frame smoothed over 3 px, in [-1, 1]): an arm in
    # front of the torso leaves no trace in the silhouette but differs from the torso in colour,
    # so the keypoint nearest to it is pulled onto it.
    coverage_color: float = 0.0
    # w_ext·mean_e min_k |x_e - T'_k|: the figure's extremities (the ``extremities`` farthest
    # points along the figure from its centre, geodesically: head, hands, feet) each get a
    # keypoint. Thin limbs hold few pixels, so the coverage mean alone leaves the hands bare.
    w_extremity: float = 0.0
    extremities: int = 5
    # DEVIATION(seed 003): w_cap·mean(G ⊙ (M - C / max w)²), C the figure drawn by the links as
    # tapered capsules with learned radii (needs model.link_capsules). Limbs of fixed widths
    # between the joints make the figure, so C meets the silhouette best with keypoints on the
    # joints and thin links on the arms, which the medial axis does not ask for. After the
    # warm-up it is scaled like the mask weight (w_mask_late / w_mask).
    w_capsule: float = 0.0
    capsule_softness: float = 0.5  # τ of the capsules' edges, in pixels
    # τ at step 0, falling linearly to capsule_softness by the end of the warm-up (None: no
    # schedule): soft edges first, so a capsule feels the figure from farther away.
    capsule_softness_start: float | None = None
    # How the capsules make one drawing: the strongest under each pixel (``max``) or
    # 1 - Π(1 - w·occupancy) (``soft``: every link under a pixel learns, not only the winner).
    capsule_union: Literal["max", "soft"] = "max"
    # DEVIATION(official): w_app·mean_k |c(I, T'_k) - c(I_ref, T'_ref,k)|₁, appearance identity
    # across frames: keypoint k keeps the colour under it (the frame smoothed over 3 and 7 px,
    # sampled at T'_k) from one frame of a clip to another. Clothes keep their colour while the
    # body moves, so a keypoint on a forearm in one frame stays on it in the next, which no mask
    # term can ask of an arm in front of the torso. Needs a reference frame per item (a synthetic
    # clip or video:PATH); costs one more φ_enc pass per item. With masks, a keypoint off the
    # figure costs a full colour mismatch (a fixed camera's background never changes colour),
    # unless appearance_gate is off.
    w_appearance: float = 0.0
    appearance_gate: bool = True
    # DEVIATION(official): w_rig·Σ_l ŵ_l |ℓ_l(T') - ℓ_l(T'_ref)| / Σ_l ŵ_l, rigid bones across
    # frames (ŵ the drawn link weights): a link's length stays the same from one frame of a clip
    # to another, as a bone's does under a fixed camera, so a keypoint keeps its body part instead
    # of its place in the figure; W moves its weight to the links that stay rigid. Needs a
    # reference frame per item; costs one more φ_enc pass per item.
    w_rigid: float = 0.0
    # DEVIATION(official): w_flow·mean_k |T'_near,k - T'_k - F(T'_k)|, keypoints move with the
    # image: F is the optical flow (OpenCV DIS, from the frames alone) from the frame to one
    # ``flow_gap`` frames away, sampled at each keypoint. A keypoint on a wrist follows the wrist;
    # one that keeps a place in the figure (its top: the head, then a raised hand) jumps against
    # the flow. Needs items with ``near`` and ``flow``; one more φ_enc pass per item.
    w_flow: float = 0.0
    flow_gap: float = 2.0  # frames between the frame and its flow partner (synthetic clips)
    # What the link map is asked to draw, and the coverage term to cover: the whole silhouette
    # (seed 003) or its medial axis (DEVIATION: links along the limbs, not across the body; every
    # limb's axis near a keypoint, however thin the limb).
    mask_target: Literal["silhouette", "medial"] = "silhouette"
    coverage_target: Literal["silhouette", "medial"] = "silhouette"
    # DEVIATION(seed 003): the weight of the figure's pixels off the target (with the medial
    # target: all but its axis) relative to G. Below 1 a link may cross the figure cheaply, so a
    # link on an arm is not pushed off it while the arm lies in front of the torso, where the
    # silhouette has no axis for it; outside the figure the full weight stays.
    mask_inner_weight: float = 1.0
    mask_bg_scale: float = 0.0625  # background distance (image sides) where G reaches 2
    mask_fg_gain: float = 1.0  # G at the figure pixel farthest from its centre is 1 + gain
    # Cascade (seed 003 §3.4): the first mask_warmup_steps train φ_enc, the head, W and the memory
    # on the mask terms (+ boundary, equivariance, separation, memory) without the decoder; then
    # the full PPL objective with the mask weight lowered to w_mask_late.
    mask_warmup_steps: int = 0
    # Reference image I_ref fed to φ_dec.
    reference: ReferenceMode = "mask"  # official: the same frame under a random block mask
    # Mask grid side; None: img_size // 8, i.e. 8-px patches (official block 16 at 128 px).
    # DEVIATION(official): the official block is 16 at every size; scaling it keeps the patches of
    # the 32/64-px presets at the official 8 px instead of 2-4 px.
    mask_block: int | None = None
    mask_missing: float = 0.8  # official train_h36m.sh: U(0,1) > 0.8 keeps ~20% of the patches
    # Reconstruction loss: the official VGG16 perceptual loss needs ImageNet weights on disk.
    recon_loss: ReconLoss = "auto"  # perceptual when vgg_weights is set, else pixel (L1 + 1-SSIM)
    vgg_weights: str | None = None  # local torchvision VGG16/19 ImageNet state dict (.pth)
    vgg_arch: Literal["vgg16", "vgg19"] = "vgg16"  # official: VGG16 (the paper says VGG19)
    perceptual_size: int = 224  # official: images resized to 224x224 before VGG; 0 = native
    hflip: bool = True  # official RandomHorizontalFlip(0.5) (off for CUB in the official code)
    num_workers: int = 2  # DataLoader workers (official 8)
    amp: Precision = "off"  # mixed precision on CUDA only; official trains in fp32
    ckpt_interval: int = 500  # steps between checkpoints (latest.safetensors)
    log_interval: int = 10  # steps between log lines / metrics.csv rows
    prior_interval: int = 100  # steps between prior snapshots in prior_history.npz (0: off)
    seed: int = 0
    out: str = "runs/ppl"  # run folder: latest.safetensors, metrics.csv, metrics.jsonl, config.yaml
    device: str = "auto"  # auto: cuda when available, else cpu
    # Intra-op CPU threads (0: torch's default). On a shared CPU fewer threads than cores can be
    # several times faster: OpenMP threads spin while they wait for a core.
    cpu_threads: int = 0

    def __post_init__(self) -> None:
        check_choice(self.preset, PRESETS, "preset")
        for name in ("mask_target", "coverage_target"):
            check_choice(getattr(self, name), ("silhouette", "medial"), name)
        check_choice(self.capsule_union, ("max", "soft"), "capsule_union")
        for name in ("batch_size", "max_steps", "ckpt_interval", "log_interval"):
            if getattr(self, name) <= 0:
                raise PplEdgeError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.lr <= 0:
            raise PplEdgeError(f"lr must be positive, got {self.lr}")
        if not 0 < self.lr_late_factor <= 1e3:
            raise PplEdgeError(f"lr_late_factor must be in (0, 1000], got {self.lr_late_factor}")
        if self.link_lr is not None and self.link_lr <= 0:
            raise PplEdgeError(f"link_lr must be positive, got {self.link_lr}")
        for name in NON_NEGATIVE:
            if getattr(self, name) < 0:
                raise PplEdgeError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.w_mask_late is not None and self.w_mask_late < 0:
            raise PplEdgeError(f"w_mask_late must be >= 0 or None, got {self.w_mask_late}")
        if self.mask_bg_scale <= 0:
            raise PplEdgeError(f"mask_bg_scale must be positive, got {self.mask_bg_scale}")
        if self.mask_warmup_steps and not self.uses_masks:
            raise PplEdgeError(
                f"mask_warmup_steps={self.mask_warmup_steps} trains on the mask terms only, but "
                f"w_mask and w_attraction are 0; set w_mask > 0 or mask_warmup_steps=0"
            )
        if not 0 <= self.label_fraction <= 1 or self.w_supervised < 0:
            raise PplEdgeError(
                f"need 0 <= label_fraction <= 1 and w_supervised >= 0, got "
                f"{self.label_fraction} and {self.w_supervised}"
            )
        if self.label_fraction > 0 and not self.model_config().prior.startswith("template:"):
            raise PplEdgeError(
                "label_fraction supervises named keypoints: set model.prior=template:<name>"
            )
        if self.eq_flip and not self.model_config().prior.startswith("template:"):
            raise PplEdgeError(
                "eq_flip swaps a template's left / right joints: set model.prior=template:<name>"
            )
        if self.w_capsule > 0 and not self.model_config().link_capsules:
            raise PplEdgeError(
                f"w_capsule={self.w_capsule} draws the links as capsules with learned radii: set "
                f"model.link_capsules=true"
            )
        for name in ("capsule_softness", "capsule_softness_start"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise PplEdgeError(f"{name} must be positive, got {getattr(self, name)}")
        if not 1 <= self.extremities <= 64:
            raise PplEdgeError(f"extremities must be in [1, 64], got {self.extremities}")
        if self.sep_sigma <= 0:
            raise PplEdgeError(f"sep_sigma must be positive, got {self.sep_sigma}")
        if not 0.0 <= self.eq_scale < 1.0:
            raise PplEdgeError(f"eq_scale must be in [0, 1), got {self.eq_scale}")
        if not 0.0 <= self.mask_missing < 1.0:
            raise PplEdgeError(f"mask_missing must be in [0, 1), got {self.mask_missing}")
        if self.mask_block is not None and self.mask_block <= 0:
            raise PplEdgeError(f"mask_block must be positive or None, got {self.mask_block}")
        for name in ("num_workers", "prior_interval", "perceptual_size", "cpu_threads"):
            if getattr(self, name) < 0:
                raise PplEdgeError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.recon_loss == "perceptual" and not self.vgg_weights:
            raise PplEdgeError(
                "recon_loss=perceptual needs vgg_weights=PATH (a local torchvision VGG16/VGG19 "
                "ImageNet state dict); use recon_loss=pixel or auto without one"
            )
        if not isinstance(self.data_options, dict):
            raise PplEdgeError(f"data_options must be a mapping, got {self.data_options!r}")
        if not isinstance(self.model_overrides, dict):
            raise PplEdgeError(f"model_overrides must be a mapping, got {self.model_overrides!r}")
        # Validate the overrides now and store them with their ModelConfig types ("8" -> 8).
        model_cfg = self.model_config()
        typed = {k: getattr(model_cfg, k) for k in self.model_overrides}
        object.__setattr__(self, "model_overrides", typed)

    @property
    def uses_masks(self) -> bool:
        """True when a term needs a foreground mask per image (mask supervision)."""
        return (
            self.w_mask > 0
            or self.w_attraction > 0
            or self.w_coverage > 0
            or self.w_extremity > 0
            or self.w_capsule > 0
            or bool(self.w_mask_late)
        )

    @property
    def uses_frame_keypoints(self) -> bool:
        """True when a term compares the keypoints of two frames of a clip (one more φ_enc pass)."""
        return self.w_appearance > 0 or self.w_rigid > 0

    @property
    def uses_flow(self) -> bool:
        """True when the flow term needs a nearby frame and the flow to it (one more φ_enc pass)."""
        return self.w_flow > 0

    def mask_weight_late(self) -> float:
        """The mask weight after the warm-up stage."""
        return self.w_mask if self.w_mask_late is None else self.w_mask_late

    def capsule_softness_at(self, step: int) -> float:
        """τ (pixels) of the capsules' edges at 0-based ``step``."""
        if self.capsule_softness_start is None or not self.mask_warmup_steps:
            return self.capsule_softness
        done = min(step / self.mask_warmup_steps, 1.0)
        return self.capsule_softness_start + done * (
            self.capsule_softness - self.capsule_softness_start
        )

    def capsule_weight(self, stage: str) -> float:
        """``w_capsule``, after the warm-up scaled by w_mask_late / w_mask (when w_mask > 0)."""
        if stage == "mask" or self.w_mask <= 0:
            return self.w_capsule
        return self.w_capsule * self.mask_weight_late() / self.w_mask

    def stage(self, step: int) -> Literal["mask", "full"]:
        """Cascade stage of training step ``step`` (0-based): ``mask`` during the warm-up."""
        return "mask" if step < self.mask_warmup_steps else "full"

    def model_config(self) -> ModelConfig:
        """The ModelConfig of this run: the preset with ``model_overrides`` applied, validated."""
        base = preset(self.preset)
        return merge(ModelConfig, base, dict(self.model_overrides), where="model_overrides")

    def resolved_recon_loss(self) -> Literal["perceptual", "pixel"]:
        """``perceptual`` when VGG weights are given (auto) or asked for, else ``pixel``."""
        if self.recon_loss == "auto":
            return "perceptual" if self.vgg_weights else "pixel"
        return self.recon_loss

    def resolved_mask_block(self, img_size: int) -> int:
        """Mask grid side: explicit, or img_size // 8 so patches are 8 px (the official setup)."""
        return self.mask_block if self.mask_block is not None else max(1, img_size // 8)


_NESTED = {"model.": "model_overrides", "data_options.": "data_options"}


def _split_model_keys(updates: dict[str, Any]) -> dict[str, Any]:
    """Route ``model.<field>=value`` keys into ``model_overrides`` (``--set model.mem_banks=8``)
    and ``data_options.<key>=value`` into ``data_options`` (string values read as YAML scalars:
    ``4`` -> 4, ``true`` -> True; model fields are typed by ModelConfig instead)."""
    import yaml

    out = {k: v for k, v in updates.items() if not k.startswith(tuple(_NESTED))}
    for prefix, target in _NESTED.items():
        nested = {k[len(prefix) :]: v for k, v in updates.items() if k.startswith(prefix)}
        if target == "data_options":
            nested = {k: yaml.safe_load(v) if isinstance(v, str) else v for k, v in nested.items()}
        if nested:
            out[target] = {**dict(out.get(target) or {}), **nested}
    return out


def resolve_config(
    yaml_path: str | Path | None = None,
    overrides: list[str] | None = None,
    flags: dict[str, Any] | None = None,
    base: TrainConfig | None = None,
) -> TrainConfig:
    """Build a TrainConfig: defaults (or ``base``) -> YAML file -> ``--set`` pairs -> flags.

    Args:
        yaml_path: optional YAML mapping of TrainConfig fields (``model_overrides`` nested).
        overrides: ``key=value`` strings; ``model.<field>=v`` sets one model override.
        flags: explicit command-line values; ``None`` values are ignored (flag not given).

    Raises:
        PplEdgeError: on unknown keys (with a suggestion) or invalid values.
    """
    cfg = base or TrainConfig()
    layers: list[tuple[dict[str, Any], str]] = []
    if yaml_path is not None:
        layers.append((load_yaml(yaml_path), f"config file {yaml_path}"))
    layers.append((parse_overrides(overrides), "--set"))
    layers.append(({k: v for k, v in (flags or {}).items() if v is not None}, "command-line flags"))
    for updates, where in layers:
        updates = _split_model_keys(updates)
        for target in _NESTED.values():
            if target in updates:
                updates[target] = {**getattr(cfg, target), **dict(updates[target])}
        cfg = merge(TrainConfig, cfg, updates, where=where) if updates else cfg
    return cfg


def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain-JSON dict of a TrainConfig (for checkpoints and config.yaml)."""
    return to_dict(cfg)


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Inverse of :func:`config_to_dict`, refusing unknown keys."""
    return from_dict(TrainConfig, data, where="train config")


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """``dataclasses.replace`` for TrainConfig (validation runs again)."""
    return dataclasses.replace(cfg, **changes)
