"""PoseModel: the Pose Prior Learner composed from its parts (official ``PosePriorLearner``)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ppl_edge.model.config import ModelConfig
from ppl_edge.model.decoder import ImageDecoder
from ppl_edge.model.encoder import KeypointEncoder
from ppl_edge.model.links import Connectivity
from ppl_edge.model.memory import HierarchicalMemory
from ppl_edge.templates import template_of

RefineMode = Literal["none", "memory", "image"]


class PoseModel(nn.Module):
    """PPL: prior T (from memory) -> affine per keypoint -> links S (W) -> φ_dec reconstruction.

    Gradient detachments of paper appendix A6: T is detached before the affine head, and T' is
    detached before the memory, so image reconstruction trains φ_enc/W/φ_dec and the keypoint
    reconstruction trains the memory.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = KeypointEncoder(cfg)
        template = template_of(cfg.prior)
        self.connectivity = Connectivity(
            cfg,
            frozen=cfg.connectivity == "random_frozen",
            edges=template.edges if cfg.connectivity == "template" else None,
        )
        self.decoder = ImageDecoder(cfg)
        self.memory = HierarchicalMemory(cfg)
        self.alpha = nn.Parameter(torch.ones(())) if cfg.use_alpha else None
        if cfg.prior == "random_frozen":
            gen = torch.Generator().manual_seed(cfg.seed)
            self.register_buffer(
                "fixed_prior", torch.rand(cfg.num_keypoints, 2, generator=gen) - 0.5
            )
        elif template is not None:  # a human-made prior: keypoint k is the template's joint k
            self.register_buffer("fixed_prior", torch.tensor(template.points, dtype=torch.float32))
        else:
            self.fixed_prior = None

    def prior(self) -> torch.Tensor:
        """The keypoint prior T: (N, 2), xy in [-1, 1], never carrying gradients."""
        if self.fixed_prior is not None:
            return self.fixed_prior
        return self.memory.distill_prior()

    def reconstruct(
        self, reference: torch.Tensor, kpts: torch.Tensor, link_tolerance: float = 0.0
    ) -> dict[str, torch.Tensor]:
        """x̂ = φ_dec(α · I_ref, S(kpts)).

        Args:
            reference: (B, 3, H, W) reference image in [-1, 1].
            kpts: (B, N, 2) keypoints, xy in [-1, 1].
            link_tolerance: draw only links above this share of the strongest (0: all links).

        Returns:
            image: (B, 3, H, W) reconstruction; links: (B, 1, H, W) S.
        """
        links = self.connectivity(kpts, reference.shape[-1], link_tolerance)
        ref = reference * self.alpha if self.alpha is not None else reference
        return {"image": self.decoder(ref, links), "links": links}

    def refine_image(self, reference: torch.Tensor, kpts: torch.Tensor) -> torch.Tensor:
        """The image-space refinement step (refine.onnx): φ_dec(α · I_ref, S(kpts)) clamped to
        [-1, 1].

        The decoder has no output activation (official); clamping keeps the re-fed image in the
        range the encoder was trained on, so iterations cannot drift out of it. S is drawn with the
        links above ``cfg.refine_link_tolerance`` of the strongest only (``links.keep_links``).

        Args:
            reference: (B, 3, H, W) reference image in [-1, 1].
            kpts: (B, N, 2) keypoints, xy in [-1, 1].

        Returns:
            (B, 3, H, W) reconstruction in [-1, 1].
        """
        tolerance = self.cfg.refine_link_tolerance
        return self.reconstruct(reference, kpts, tolerance)["image"].clamp(-1.0, 1.0)

    def forward(
        self,
        image: torch.Tensor,
        reference: torch.Tensor | None,
        warped: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One training / evaluation pass.

        Args:
            image: (B, 3, H, W) the frame in [-1, 1].
            reference: (B, 3, H, W) I_ref: a block-masked copy of the frame or another frame;
                None skips the decoder (the mask stage of the cascade): no ``recon`` then.
            warped: optional (B', 3, H, W) geometrically warped frames for the equivariance term;
                their keypoints come back as ``keypoints_warped`` (one forward, so DDP sees it).

        Returns:
            prior (N, 2), keypoints (B, N, 2) T', affine (B, N, 2, 3), confidence (B, N),
            recon (B, 3, H, W), links (B, 1, H, W), mem_keypoints (B, N, 2) T'_recon,
            mem_indices (B, M), mem_distances (B, M), commit_loss ().
        """
        prior = self.prior()
        enc = self.encoder(image, prior)
        if reference is None:
            rec = {"links": self.connectivity(enc["keypoints"], image.shape[-1])}
        else:
            rec = self.reconstruct(reference, enc["keypoints"])
        mem = self.memory(enc["keypoints"].detach())
        out = {
            "prior": prior,
            **enc,
            "links": rec["links"],
            "mem_keypoints": mem.keypoints,
            "mem_indices": mem.indices,
            "mem_distances": mem.distances,
            "commit_loss": mem.commit_loss,
        }
        if "image" in rec:
            out["recon"] = rec["image"]
        if warped is not None:
            out["keypoints_warped"] = self.encoder(warped, prior)["keypoints"]
        return out

    def keypoint_path(self, image: torch.Tensor, prior: torch.Tensor | None = None) -> dict:
        """The exported inference path (keypoints.onnx).

        Args:
            image: (B, 3, H, W) in [-1, 1].
            prior: (N, 2) precomputed T; computed from the memory when None.

        Returns:
            keypoints (B, N, 2), keypoints_refined (B, N, 2) = Dec(nearest codes), prototype_ids (B,
            M) int64, prototype_distances (B, M), confidence (B, N).
        """
        prior = self.prior() if prior is None else prior
        enc = self.encoder(image, prior)
        z_e = self.memory.encode(enc["keypoints"])
        z_q, ids, dist = self.memory.quantize(z_e)
        return {
            "keypoints": enc["keypoints"],
            "keypoints_refined": self.memory.decode(z_q),
            "prototype_ids": ids,
            "prototype_distances": dist,
            "confidence": enc["confidence"],
        }

    @torch.no_grad()
    def iterative_inference(
        self, image: torch.Tensor, iterations: int, mode: RefineMode = "image"
    ) -> list[dict[str, torch.Tensor]]:
        """Paper §3.4: re-estimate the pose on the reconstruction of the memory-refined pose.

        Iteration 0 runs on the input. With ``mode="image"``, iteration i+1 runs on
        x_{i+1} = φ_dec(α · I, S(Mem(T'_i))), the original (possibly occluded) image staying the
        reference. With ``mode="memory"`` the keypoints are snapped to Mem(T') with no decoder.

        Args:
            image: (B, 3, H, W) in [-1, 1].
            iterations: number of refinement iterations after iteration 0 (>= 0).
            mode: "none", "memory" or "image".

        Returns:
            One dict per iteration 0..iterations with keypoints (B, N, 2) (the estimate of that
            iteration), keypoints_refined (B, N, 2), prototype_ids, prototype_distances, and for
            the image mode input (B, 3, H, W), the image the estimate was made on.
        """
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        prior = self.prior()
        current = image
        out = self.keypoint_path(current, prior)
        steps = [{**out, "input": current}]
        for _ in range(iterations if mode != "none" else 0):
            if mode == "memory":
                mem = self.memory(out["keypoints_refined"])
                out = {
                    **out,
                    "keypoints": out["keypoints_refined"],
                    "keypoints_refined": mem.keypoints,
                    "prototype_ids": mem.indices,
                    "prototype_distances": mem.distances,
                }
            else:
                current = self.refine_image(image, out["keypoints_refined"])
                out = self.keypoint_path(current, prior)
            steps.append({**out, "input": current})
        return steps


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
