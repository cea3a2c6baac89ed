"""φ_enc and the per-keypoint affine head (official ``ResNetConditionalParameterRegressor``)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ppl_edge.model.config import ModelConfig


def coordinate_grid(size: int, device=None) -> torch.Tensor:
    """Pixel-centre grid of a size x size map, row-major, xy in [-1, 1].

    Returns:
        grid: (size*size, 2) float32, column 0 = x, column 1 = y.
    """
    axis = torch.linspace(-1.0, 1.0, size, device=device)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=-1)  # (size², 2)


class ResBlock(nn.Module):
    """Halves the resolution: LReLU(main + residual), each branch conv -> bilinear x0.5 -> BN."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.res_conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.res_bn = nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def half(t):
            return F.interpolate(t, scale_factor=0.5, mode="bilinear", align_corners=False)

        res = self.res_bn(half(self.res_conv(x)))
        main = F.leaky_relu(self.bn1(half(self.conv1(x))), 0.2)
        main = self.bn2(self.conv2(main))
        return F.leaky_relu(main + res, 0.2)


class TransposedBlock(nn.Module):
    """Doubles the resolution: bilinear x2 -> conv -> BN -> LReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        return F.leaky_relu(self.bn(self.conv(x)), 0.2)


class KeypointEncoder(nn.Module):
    """φ_enc in the paper, plus the affine head that transforms the prior T into T'.

    Each keypoint k gets its own 2x3 matrix A_k predicted from attention-pooled image features and
    the prior's embedding h_T = emb(T_k); T'_k = A_k[:, :2] T_k + A_k[:, 2] (official final version:
    the raw affine, no identity initialisation).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w = cfg.enc_width
        self.trunk = nn.Sequential(
            ResBlock(3, w),
            ResBlock(w, 2 * w),
            ResBlock(2 * w, 4 * w),
            ResBlock(4 * w, 8 * w),
            TransposedBlock(8 * w, 4 * w),
            TransposedBlock(4 * w, cfg.feat_dim),
        )
        # DEVIATION(official): 1x1 skips from the down path into the up path (cfg.enc_skips)
        self.skips = (
            nn.ModuleDict(
                {
                    "s8": nn.Conv2d(4 * w, 4 * w, 1),  # H/8 after ResBlock 3 -> after Transposed 1
                    "s4": nn.Conv2d(2 * w, cfg.feat_dim, 1),  # H/4 after ResBlock 2 -> the output
                }
            )
            if cfg.enc_skips
            else None
        )
        self.pred_prob = nn.Conv2d(cfg.feat_dim, cfg.num_keypoints, 3, padding=1)
        self.emb = nn.Linear(
            2, cfg.feat_dim
        )  # shared by grid coordinates and prior points (official)
        self.predict = nn.Sequential(
            nn.Linear(3 * cfg.feat_dim, cfg.head_hidden),
            nn.LeakyReLU(),
            nn.Linear(cfg.head_hidden, 6),
        )
        self.register_buffer("grid", coordinate_grid(cfg.feat_size), persistent=False)
        self.residual = cfg.affine_residual

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, C, H/4, W/4): the trunk, with the skips where the config has them."""
        if self.skips is None:
            return self.trunk(image)
        t = self.trunk
        x4 = t[1](t[0](image))  # H/4
        x8 = t[2](x4)  # H/8
        y = t[4](t[3](x8)) + self.skips["s8"](x8)
        return t[5](y) + self.skips["s4"](x4)

    def attention(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention maps and features.

        Args:
            image: (B, 3, H, W) float32 in [-1, 1].

        Returns:
            prob: (B, N, G) softmax over the G = (H/4)² grid positions.
            feat: (B, G, C) image features at each position.
        """
        feat = self.features(image)  # (B, C, H/4, W/4)
        logits = self.pred_prob(feat).flatten(2)  # (B, N, G)
        return logits.softmax(dim=-1), feat.flatten(2).transpose(1, 2)  # (B, G, C)

    def forward(self, image: torch.Tensor, prior: torch.Tensor) -> dict[str, torch.Tensor]:
        """Transform the prior into this image's pose.

        Args:
            image: (B, 3, H, W) float32 in [-1, 1].
            prior: (N, 2) float32, xy in [-1, 1], the keypoint prior T (detached by the caller).

        Returns:
            keypoints: (B, N, 2) T' in [-1, 1] (unconstrained apart from the boundary loss).
            affine: (B, N, 2, 3) A_k.
            confidence: (B, N) 1 - normalised entropy of each attention map, in [0, 1].
        """
        B = image.shape[0]
        N = prior.shape[0]
        prob, feat = self.attention(image)
        grid_feat = torch.cat([feat, self.emb(self.grid).expand(B, -1, -1)], dim=-1)  # (B, G, 2C)
        key_feat = prob @ grid_feat  # (B, N, 2C)
        h_prior = self.emb(prior).expand(B, -1, -1)  # (B, N, C)
        affine = self.predict(torch.cat([key_feat, h_prior], dim=-1)).view(B, N, 2, 3)
        homog = torch.cat([prior, torch.ones_like(prior[:, :1])], dim=-1)  # (N, 3)
        keypoints = torch.einsum("bnij,nj->bni", affine, homog)  # (B, N, 2)
        if self.residual == "identity":
            keypoints = keypoints + prior
        elif self.residual == "soft_argmax":
            keypoints = keypoints + prob @ self.grid  # (B, N, G) @ (G, 2)
        confidence = 1.0 - normalised_entropy(prob)
        return {"keypoints": keypoints, "affine": affine, "confidence": confidence}


def normalised_entropy(prob: torch.Tensor) -> torch.Tensor:
    """Entropy of each attention map over its G cells, divided by log G: (B, N, G) -> (B, N).

    ``p·log p`` with ``0·log 0 = 0`` exactly, in any precision: a clamp at 1e-12 is 0 in FP16, and
    0·log 0 NaN, for the entries that underflow in an FP16 engine or Core ML model.
    """
    safe = torch.where(prob > 0, prob, torch.ones_like(prob))
    entropy = -(prob * torch.log(safe)).sum(-1)
    return entropy / math.log(prob.shape[-1])
