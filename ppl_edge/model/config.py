"""ModelConfig and the size presets (no torch import)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from ppl_edge.errors import PplEdgeError, check_choice

# Upper bounds checked before any tensor is allocated, so a hostile or mistyped config (e.g. a
# checkpoint's img_size 100000) fails in one line instead of after minutes and tens of GiB. Each is
# well above every preset (base: img 128, widths <= 512, memory 34 x 16 x 512).
MAX_IMG_SIZE = 1024
SIZE_CAPS = {
    "enc_width": 1024,
    "feat_dim": 2048,
    "head_hidden": 4096,
    "dec_width": 1024,
    "dec_max_width": 4096,
    "mem_banks": 1024,
    "mem_entries": 4096,
    "mem_dim": 4096,
    "mem_mixer_layers": 64,
    "mem_token_hidden": 4096,
    "mem_dec_dim": 4096,
}


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of one PPL model. Defaults equal the official code (ppl_official_code.md §2).

    The ``base`` preset is exactly these defaults; ``small`` and ``tiny`` shrink widths and
    resolution so that training fits a laptop CPU.
    """

    img_size: int = 128  # official default input 128x128
    num_keypoints: int = 16  # N: official --num_parts
    enc_width: int = 64  # first ResBlock width of φ_enc (official 64 -> 512)
    feat_dim: int = 128  # F channels and emb(2 -> 128) width (official)
    head_hidden: int = 128  # affine head Linear(384, 128) (official)
    dec_width: int = 64  # first conv width of φ_dec (official 64 -> 512)
    dec_max_width: int = 512  # widest φ_dec block (official 512)
    mem_banks: int = 34  # M: official Memory token_num
    mem_entries: int = 16  # K: official token_class_num_each
    mem_dim: int = 512  # D: official token_dim
    mem_mixer_layers: int = 4  # official kpt2token: 4 MixerLayers
    mem_token_hidden: int = 64  # official token_inter
    mem_dec_dim: int = 32  # official token2kpt hidden width
    mem_decay: float = 0.9  # official EMA decay
    mem_eps: float = 1e-5  # official Laplace smoothing epsilon
    link_thickness: float = (
        7.5e-5  # official train_h36m.sh thick (2σ² in normalised units at 128 px)
    )
    link_lr_scale: float = 512.0  # official sklr: w = softplus(512·θ)
    link_init: float = (
        -4.0
    )  # mean of the initial logit sklr·θ ~ N(link_init, 1) (official -4: w ≈ 0.018)
    # DEVIATION(official): draw S with w / max w (peak 1 whatever W's global scale); off in the
    # official code.
    link_normalize: bool = False
    # DEVIATION(official): image-space refinement (``refine_image``, refine.onnx) draws only the
    # links whose drawn weight exceeds this share of the largest; S then differs from the full map
    # by at most this share of its peak (see ``links.keep_links``). 0 draws every link (official).
    refine_link_tolerance: float = 0.0
    # DEVIATION(official): 1x1 skip connections from φ_enc's down path (H/4, H/8) into its up path.
    # Without them the attention grid (H/4) is rebuilt from an H/16 bottleneck, too coarse for a
    # forearm at 64 px; the official encoder has none.
    enc_skips: bool = False
    use_alpha: bool = True  # learnable reference-image scale α (official --use_alpha)
    # How T' is formed from the head's output A_k: "none" = T'_k = A_k[T_k; 1] (official final
    # version), "identity" = T'_k = T_k + A_k[T_k; 1] (the official residual-identity variant,
    # commented out there), "soft_argmax" = T'_k = softargmax(P_k) + A_k[T_k; 1] (official commit
    # 85a996e).
    affine_residual: Literal["none", "identity", "soft_argmax"] = "none"
    # Ablations of paper Table 4: where the keypoint prior and connectivity come from.
    # "memory" (learned, official), "random_frozen" (Table 4 ablation) or "template:<name>" (a
    # human-made prior with named joints, ppl_edge/templates: keypoint k is joint k).
    prior: str = "memory"
    # "learned" (official), "random_frozen" (Table 4 ablation) or "template": W fixed to the
    # template prior's skeleton (its edges weigh 1, every other pair 0; needs
    # prior=template:<name>).
    connectivity: Literal["learned", "random_frozen", "template"] = "learned"
    # DEVIATION(official): draw only the links of W's maximum spanning tree (N - 1 links, chosen
    # anew from W at every step), so that S is a skeleton: a tree whose links must each follow
    # one part of the figure in every image. The other links draw nothing until they outgrow a
    # tree link.
    link_tree: bool = False
    # DEVIATION(official): each link also has a radius at either end (learned, the same for every
    # image), so the links draw the figure as tapered capsules (``Connectivity.capsules``) for the
    # capsule-silhouette term of mask supervision (``w_capsule``). Training only: the keypoint
    # path and its export do not use them.
    link_capsules: bool = False
    seed: int = 0  # seed of the frozen random prior / connectivity in the ablations

    def __post_init__(self) -> None:
        if self.img_size > MAX_IMG_SIZE:
            raise PplEdgeError(f"img_size must be at most {MAX_IMG_SIZE}, got {self.img_size}")
        if self.img_size % 16 != 0 or self.img_size < 32:
            raise PplEdgeError(f"img_size must be a multiple of 16 and >= 32, got {self.img_size}")
        if not 2 <= self.num_keypoints <= 64:
            raise PplEdgeError(f"num_keypoints must be in [2, 64], got {self.num_keypoints}")
        for name, cap in SIZE_CAPS.items():
            value = getattr(self, name)
            if not 0 < value <= cap:
                raise PplEdgeError(f"{name} must be in [1, {cap}], got {value}")
        if not 0.0 < self.mem_decay < 1.0:
            raise PplEdgeError(f"mem_decay must be in (0, 1), got {self.mem_decay}")
        if not self.prior.startswith("template:"):
            check_choice(self.prior, ("memory", "random_frozen", "template:<name>"), "prior")
        else:
            from ppl_edge.templates import load_template

            template = load_template(self.prior.removeprefix("template:"))
            if len(template.names) != self.num_keypoints:
                raise PplEdgeError(
                    f"prior {self.prior} has {len(template.names)} joints; the model has "
                    f"num_keypoints={self.num_keypoints} (set model.num_keypoints to match)"
                )
        if self.connectivity == "template" and not self.prior.startswith("template:"):
            raise PplEdgeError(
                f"connectivity=template draws the template prior's skeleton, but prior is "
                f"{self.prior!r}; set prior=template:<name>"
            )
        if not 0.0 <= self.refine_link_tolerance < 1.0:
            raise PplEdgeError(
                f"refine_link_tolerance must be in [0, 1), got {self.refine_link_tolerance}"
            )
        if self.link_thickness <= 0:
            raise PplEdgeError(f"link_thickness must be positive, got {self.link_thickness}")

    @property
    def feat_size(self) -> int:
        """Side of the attention grid: φ_enc halves four times, then doubles twice (img / 4)."""
        return self.img_size // 4

    @property
    def num_links(self) -> int:
        """N(N-1)/2 upper-triangular links."""
        return self.num_keypoints * (self.num_keypoints - 1) // 2


PRESETS: dict[str, ModelConfig] = {
    # The paper's / official widths at 128x128 (28.2 M parameters).
    "base": ModelConfig(),
    # DEVIATION(official): CPU-trainable widths at 64x64, trained for minutes instead of GPU-hours.
    # Two choices make keypoints leave their initial collapse within a few hundred steps: thick
    # links (2σ² = 1e-2, σ ≈ 2 px; AutoLink used up to 0.05) that give the rasteriser gradients far
    # from the lines, and T' = softargmax(P_k) + A_k[T_k; 1] (official commit 85a996e) that anchors
    # each transformed prior point at its attention peak. Measured at 200 steps on
    # synthetic:humanoid: 17.8 (this) vs 20.1 (official form) vs 19.4 (mean pose), error x100.
    "small": ModelConfig(
        img_size=64,
        enc_width=16,
        feat_dim=64,
        head_hidden=64,
        dec_width=16,
        dec_max_width=128,
        mem_dim=128,
        link_thickness=1e-2,
        affine_residual="soft_argmax",
    ),
    "tiny": ModelConfig(
        img_size=32,
        enc_width=8,
        feat_dim=32,
        head_hidden=32,
        dec_width=8,
        dec_max_width=64,
        mem_dim=64,
        mem_mixer_layers=2,
        mem_banks=8,
        mem_entries=8,
        link_thickness=2e-2,
        affine_residual="soft_argmax",
    ),
}


def preset(name: str, **overrides) -> ModelConfig:
    """Return a preset by name with optional field overrides."""
    check_choice(name, PRESETS, "preset")
    return dataclasses.replace(PRESETS[name], **overrides)
