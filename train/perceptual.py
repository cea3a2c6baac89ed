"""VGG perceptual loss (official ``VGGPerceptualLoss``), built without torchvision.

The VGG feature stack is rebuilt here layer for layer so that a torchvision ImageNet state dict
(``vgg16-397923af.pth``, ``vgg19-dcbb9e9d.pth``) loads by its own keys (``features.N.weight``).
Loading uses ``torch.load(weights_only=True)``, which refuses pickled code.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ppl_edge.errors import PplEdgeError, check_choice

# torchvision's layer lists ("D" = VGG16, "E" = VGG19): channel counts, "M" = 2x2 max-pool.
_LAYERS = {
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M"],
    "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M"],
}
# Slice ends into ``features``: relu1_2, relu2_2, relu3_3, relu4_3 (official VGG16 [:4] [4:9] [9:16]
# [16:23]). For VGG19 the same named activations sit at 4, 9, 16 and 25.
SLICES = {"vgg16": (4, 9, 16, 23), "vgg19": (4, 9, 16, 25)}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_features(arch: str) -> nn.Sequential:
    """torchvision's ``vgg16().features`` / ``vgg19().features`` up to the last slice end.

    Indices match torchvision's (conv, ReLU, ..., MaxPool), so state-dict keys are ``N.weight``.
    """
    check_choice(arch, sorted(_LAYERS), "vgg_arch")
    layers: list[nn.Module] = []
    cin = 3
    for item in _LAYERS[arch]:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, item, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            cin = item
    return nn.Sequential(*layers[: SLICES[arch][-1]])


def load_vgg_state(path: str | Path, features: nn.Sequential) -> None:
    """Load ``features.N.*`` tensors of a torchvision VGG state dict into ``features``.

    Raises:
        PplEdgeError: file missing, not a weights-only torch file, or missing / mis-shaped tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise PplEdgeError(f"VGG weights file not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors of many kinds for foreign or unsafe files
        raise PplEdgeError(
            f"{path} could not be read as a weights-only torch state dict (expected torchvision's "
            f"vgg16-397923af.pth or vgg19-dcbb9e9d.pth): {err}"
        ) from err
    if not isinstance(state, dict):
        raise PplEdgeError(f"{path} holds a {type(state).__name__}, expected a state dict")
    wanted = features.state_dict()
    picked = {}
    for key, ref in wanted.items():
        full = f"features.{key}"
        if full not in state:
            raise PplEdgeError(f"{path} has no tensor '{full}'; not a torchvision VGG state dict?")
        if tuple(state[full].shape) != tuple(ref.shape):
            raise PplEdgeError(
                f"{path}: '{full}' has shape {tuple(state[full].shape)}, expected "
                f"{tuple(ref.shape)} (wrong vgg_arch?)"
            )
        picked[key] = state[full]
    features.load_state_dict(picked)


class PerceptualLoss(nn.Module):
    """Σ over 4 VGG slices of mean |φ_s(x̂) - φ_s(x)| (official weights 1 each), frozen VGG.

    Args:
        weights: path of a torchvision ImageNet state dict for ``arch``.
        arch: ``vgg16`` (official) or ``vgg19``.
        size: side the images are bilinearly resized to before VGG (official 224); 0 keeps them.
    """

    def __init__(self, weights: str | Path, arch: str = "vgg16", size: int = 224):
        super().__init__()
        features = vgg_features(arch)
        load_vgg_state(weights, features)
        bounds = (0, *SLICES[arch])
        self.blocks = nn.ModuleList(features[a:b] for a, b in itertools.pairwise(bounds))
        self.blocks.requires_grad_(False)
        self.blocks.eval()
        self.size = size
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def train(self, mode: bool = True) -> PerceptualLoss:
        """Keep the VGG in eval mode whatever the caller asks (it is a frozen feature extractor)."""
        super().train(mode)
        self.blocks.eval()
        return self

    def _prepare(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) in [-1, 1] -> ImageNet-normalised (B, 3, S, S)."""
        x = (img * 0.5 + 0.5 - self.mean) / self.std
        if self.size and x.shape[-1] != self.size:
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return x

    def forward(self, recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Perceptual distance.

        Args:
            recon: (B, 3, H, W) reconstruction x̂, in [-1, 1] units.
            target: (B, 3, H, W) image x in [-1, 1]; no gradient flows into it.

        Returns:
            () scalar loss.
        """
        x, y = self._prepare(recon), self._prepare(target.detach())
        loss = x.new_zeros(())
        for block in self.blocks:
            x = block(x)
            with torch.no_grad():
                y = block(y)
            loss = loss + F.l1_loss(x, y)
        return loss
