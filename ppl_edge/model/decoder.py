"""φ_dec: the U-Net that reconstructs the image from the link heatmap S and a reference image
(official ``ResNetReconstructor``, identical to AutoLink's decoder)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ppl_edge.model.config import ModelConfig


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout)]


class DownBlock(nn.Module):
    """conv -> BN -> LReLU -> conv -> BN -> bilinear x0.5 -> LReLU (both convs at input
    resolution).

    Bilinear x0.5 without antialiasing (align_corners=False) samples at 2i + 0.5, the mean of each
    2 x 2 block: it is computed as a 2 x 2 average pool, which exports as one AveragePool node
    instead of a Resize and runs several times faster on CPUs.
    """

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(*_conv_bn(cin, cout), nn.LeakyReLU(0.2), *_conv_bn(cout, cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(F.avg_pool2d(self.body(x), 2), 0.2)  # = bilinear x0.5, see above


class UpBlock(nn.Module):
    """bilinear x2 -> conv -> BN -> LReLU -> conv -> BN -> LReLU."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(
            *_conv_bn(cin, cout), nn.LeakyReLU(0.2), *_conv_bn(cout, cout), nn.LeakyReLU(0.2)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))


class ImageDecoder(nn.Module):
    """φ_dec in the paper: x̂ = φ_dec([α · I_ref, S]).

    Widths follow the official 64-128-256-512-512 ladder scaled by ``dec_width`` and capped at
    ``dec_max_width``. The output has no activation (official).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        w, cap = cfg.dec_width, cfg.dec_max_width
        c = [w, min(2 * w, cap), min(4 * w, cap), min(8 * w, cap), min(8 * w, cap)]
        self.down0 = nn.Sequential(nn.Conv2d(4, c[0], 3, padding=1), nn.LeakyReLU(0.2))
        self.downs = nn.ModuleList(DownBlock(c[i], c[i + 1]) for i in range(4))
        self.ups = nn.ModuleList(
            [
                UpBlock(c[4], c[3]),
                UpBlock(2 * c[3], c[2]),
                UpBlock(2 * c[2], c[1]),
                UpBlock(2 * c[1], c[0]),
            ]
        )
        self.out = nn.Conv2d(2 * c[0], 3, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.2)  # official decoder init
                nn.init.zeros_(m.bias)

    def forward(self, reference: torch.Tensor, links: torch.Tensor) -> torch.Tensor:
        """Reconstruct the image.

        Args:
            reference: (B, 3, H, W) the (masked) reference image, already scaled by α.
            links: (B, 1, H, W) the link heatmap S.

        Returns:
            (B, 3, H, W) reconstruction in the image's normalised range.
        """
        skips = [self.down0(torch.cat([reference, links], dim=1))]  # d0 at H
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()  # bottom, H/16
        for up in self.ups:
            x = torch.cat([up(x), skips.pop()], dim=1)
        return self.out(x)
