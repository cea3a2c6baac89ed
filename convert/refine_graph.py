"""``refine.onnx``: the image-space refinement step, in the form that is cheap on an edge CPU.

(reference image, keypoints) -> φ_dec(α · I, S(keypoints)) clamped to [-1, 1], with W baked in
(``PoseModel.refine_image``). Three things make it cheaper than exporting ``refine_image`` as is,
none of which changes what it computes beyond float rounding:

- only the links ``refine_image`` draws: those above ``cfg.refine_link_tolerance`` of the
  strongest (``links.keep_links``: S within that share of its peak of the full map), picked once
  at export, their pairs and log weights constants of the graph;
- S as exp(max_l (log w_l - d²_l / 2σ²)), one Exp per pixel, the max over links as a tree of
  elementwise Max nodes (``links.rasterize_links_log``);
- the decoder's bilinear x0.5 as a 2 x 2 AveragePool (``decoder.DownBlock``), not a Resize.
"""

from __future__ import annotations

import torch
from torch import nn

from ppl_edge.model.links import keep_links, rasterize_links_log


class RefineGraph(nn.Module):
    """``refine.onnx``: (image (B, 3, H, W), keypoints (B, N, 2)) -> reconstruction (B, 3, H, W).

    Attributes:
        links_kept: how many of the N(N-1)/2 links the graph draws.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        conn = model.connectivity
        weights = conn.drawn_weights().detach()  # (L,)
        keep = keep_links(weights, model.cfg.refine_link_tolerance)
        keep &= weights > 0  # a zero weight never wins the max (and has no finite log)
        self.register_buffer("pairs", conn.pairs[keep].clone())  # (L', 2)
        self.register_buffer("log_weights", weights[keep].log().clone())  # (L',)
        self.thickness = conn.thickness
        self.links_kept = int(keep.sum())

    def forward(self, image: torch.Tensor, keypoints: torch.Tensor) -> torch.Tensor:
        """image: (B, 3, H, W) in [-1, 1]; keypoints: (B, N, 2) xy in [-1, 1] -> (B, 3, H, W)."""
        size = image.shape[-1]
        links = rasterize_links_log(keypoints, self.log_weights, self.pairs, size, self.thickness)
        alpha = self.model.alpha
        ref = image * alpha if alpha is not None else image
        return self.model.decoder(ref, links).clamp(-1.0, 1.0)
