"""Parameter and multiply-accumulate (MAC) counts of a model, by forward hooks on Conv2d / Linear.

Only convolutions and linear layers are counted (they dominate); the link rasteriser, norms,
activations, resizes and the nearest-neighbour lookup are not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def _conv_macs(module: nn.Conv2d, out: torch.Tensor) -> int:
    """MACs of one Conv2d call: every output value costs (C_in / groups)·kh·kw."""
    kh, kw = module.kernel_size
    return out.numel() * (module.in_channels // module.groups) * kh * kw


def _linear_macs(module: nn.Linear, out: torch.Tensor) -> int:
    """MACs of one Linear call: every output value costs in_features."""
    return out.numel() * module.in_features


@torch.no_grad()
def count_macs(root: nn.Module, fn: Callable[[], Any]) -> int:
    """Total Conv2d + Linear MACs of the submodules of ``root`` while ``fn()`` runs.

    Args:
        root: module whose Conv2d / Linear submodules are hooked.
        fn: zero-argument callable running the forward pass to measure.

    Returns:
        MACs summed over the whole call (divide by the batch size for per-image numbers).
    """
    total = 0

    def hook(module: nn.Module, _inputs: Any, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += _conv_macs(module, out)
        else:
            total += _linear_macs(module, out)

    handles = [
        m.register_forward_hook(hook)
        for m in root.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    try:
        fn()
    finally:
        for h in handles:
            h.remove()
    return total


def model_profile(model: nn.Module, img_size: int) -> dict[str, int]:
    """Parameter and per-image MAC counts of a PoseModel.

    Args:
        model: a ``PoseModel`` (its train/eval mode is restored; the memory EMA is not touched).
        img_size: input side in pixels.

    Returns:
        params: trainable parameters; macs_keypoints: the exported keypoint path (φ_enc, affine
        head, memory encode/decode); macs_train_forward: one training forward (φ_enc, head, φ_dec,
        memory), both per image.
    """
    was_training = model.training
    model.eval()  # eval: BatchNorm and the memory EMA are left untouched
    device = next(model.parameters()).device
    image = torch.zeros(1, 3, img_size, img_size, device=device)
    try:
        keypoint = count_macs(model, lambda: model.keypoint_path(image))
        train = count_macs(model, lambda: model(image, image))
    finally:
        model.train(was_training)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"params": params, "macs_keypoints": keypoint, "macs_train_forward": train}


def format_count(value: float) -> str:
    """Human-readable count: 28.2 M, 3.10 G, 512 k."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:g}"
