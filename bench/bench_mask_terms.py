"""Which keypoint layouts the mask terms prefer: each term's value for the ground-truth joints
joined by the true skeleton, against a trained model's keypoints and W, on the same test images.

    python bench/bench_mask_terms.py --checkpoint runs/cap1_s0/latest.safetensors \
        --json runs/mask_terms.json

A term that asks for the joints costs less for the ground truth than for a layout whose keypoints
are elsewhere; one that a model's own layout meets as well as the ground truth does (or better)
leaves the keypoints free to sit anywhere it accepts. The link-map terms (silhouette and medial
target) draw each layout's links with the checkpoint's link thickness; the capsule term draws
them as tapered capsules with radii fitted to that layout (one pair per link, the same for every
image, Adam on the log radius), so that each layout is scored at its best. Weights as in
``configs/mask.yaml`` (geodesic weighting with gain 3).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from ppl_edge.checkpoint import load_model
from ppl_edge.fileio import atomic_write_bytes
from ppl_edge.model.links import CAPSULE_TOLERANCE, keep_links, rasterize_capsules, rasterize_links
from ppl_edge.train.data.synthetic import SyntheticDataset
from ppl_edge.train.losses import separation_loss
from ppl_edge.train.mask_losses import (
    coverage_loss,
    mask_distance_maps,
    mask_weight_map,
    medial_axis_map,
    skeleton_mask_loss,
)


def fit_capsules(kpts, weights, pairs, mask, geodesic, iters: int, softness_px: float = 0.5):
    """The capsule term of a layout at its best radii, and those radii in pixels (L, 2)."""
    size = mask.shape[-1]
    px = 2.0 / (size - 1)
    log_r = torch.full((len(pairs), 2), math.log(2.5 * px), requires_grad=True)
    opt = torch.optim.Adam([log_r], lr=0.05)
    one = torch.tensor(1.0)
    for _ in range(iters):
        drawn = rasterize_capsules(kpts, weights, pairs, log_r.exp(), size, softness_px * px)
        loss = skeleton_mask_loss(drawn, one, mask, geodesic)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        drawn = rasterize_capsules(kpts, weights, pairs, log_r.exp(), size, softness_px * px)
        final = skeleton_mask_loss(drawn, one, mask, geodesic)
    return final.item(), log_r.detach().exp() / px


@torch.no_grad()
def link_terms(kpts, weights, pairs, mask, geodesic, thickness: float) -> dict[str, float]:
    """The link map S drawn with ``weights`` / max against the silhouette and its medial axis."""
    links = rasterize_links(kpts, weights / weights.max(), pairs, mask.shape[-1], thickness)
    one = torch.tensor(1.0)
    return {
        "silhouette": skeleton_mask_loss(links, one, mask, geodesic).item(),
        "medial": skeleton_mask_loss(links, one, medial_axis_map(mask), geodesic).item(),
    }


def score_layout(kpts, weights, pairs, mask, geodesic, thickness, sep_sigma, iters) -> dict:
    """Every term for one layout: keypoints (B, N, 2), link weights (L,) on ``pairs`` (L, 2)."""
    terms = link_terms(kpts, weights, pairs, mask, geodesic, thickness)
    terms["coverage"] = coverage_loss(kpts, mask, geodesic).item()
    terms["coverage_medial"] = coverage_loss(kpts, medial_axis_map(mask), geodesic).item()
    terms["separation"] = separation_loss(kpts, sep_sigma).item()
    terms["capsule"], radii = fit_capsules(kpts, weights, pairs, mask, geodesic, iters)
    terms["radii_px"] = [[round(float(r), 2) for r in pair] for pair in radii]
    return terms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--images", type=int, default=64, help="test images scored")
    ap.add_argument("--iters", type=int, default=150, help="Adam steps of the radius fit")
    ap.add_argument("--sep-sigma", type=float, default=0.1, help="separation σ (TrainConfig)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.checkpoint)
    size = model.cfg.img_size
    data = SyntheticDataset("humanoid", size, "test", length=args.images)
    batch = torch.utils.data.default_collate([data[i] for i in range(len(data))])
    mask = batch["mask"]
    geodesic = mask_weight_map(mask_distance_maps(mask), mask > 0.5, 0.0625 * size, 3.0)
    edges = torch.tensor(data.edges)
    with torch.no_grad():
        kpts = model(batch["image"], None)["keypoints"]
        links = model.connectivity
        weights = links.drawn_weights()
        keep = keep_links(weights, CAPSULE_TOLERANCE)  # as Connectivity.capsules draws them
    common = (mask, geodesic, model.cfg.link_thickness, args.sep_sigma, args.iters)
    rows = {
        "ground truth": score_layout(batch["keypoints"], torch.ones(len(edges)), edges, *common),
        str(args.checkpoint): score_layout(kpts, weights[keep], links.pairs[keep], *common),
    }
    names = ("silhouette", "medial", "coverage", "coverage_medial", "separation", "capsule")
    print(f"| layout ({args.images} test images) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for name, terms in rows.items():
        print(f"| {name} | " + " | ".join(f"{terms[k]:.4f}" for k in names) + " |")
    if args.json:
        atomic_write_bytes(args.json, json.dumps(rows, indent=1).encode())


if __name__ == "__main__":
    main()
