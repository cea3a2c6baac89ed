"""Does the flow term (``w_flow``) ask for the joints? Its value for the ground-truth joints against
a trained model's keypoints, on synthetic test clips, for a few frame gaps.

    python bench/bench_flow.py --checkpoint models/ppl-small-humanoid.safetensors --gaps 1 2 4

For each clip a frame and the frame ``gap`` frames later are rendered, the optical flow between them
is measured from the two images alone (:func:`ppl_edge.flow.dense_flow`, as training does), and
each layout is scored by :func:`ppl_edge.train.losses.flow_loss`: how far its keypoints in the later
frame are from where the flow carries them. Reported in pixels, with the layouts' own motion beside
it: a term that asks for the joints costs the ground truth less than a layout whose keypoints are
elsewhere. The midpoints of the true skeleton's bones are scored beside the joints: points in
the middle of a rigid bone, which the flow follows best. ``--mask-background`` measures the flow
on frames whose background is blacked out with the figure's mask, to tell the flow's blending with
the background at the figure's edge from what the term asks for in the figure.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ppl_edge.checkpoint import load_model
from ppl_edge.fileio import atomic_write_bytes
from ppl_edge.flow import dense_flow
from ppl_edge.synth.render import get_category, item_seed, render_pair_near
from ppl_edge.train.data.common import flow_to_tensor, image_to_tensor, keypoints_to_tensor
from ppl_edge.train.losses import flow_loss


def _flow_input(sample, mask_background: bool):
    """The frame the flow is measured on: as rendered, or with the background blacked out."""
    if not mask_background:
        return sample.image
    return sample.image * (sample.mask[..., None] > 0.5).astype(sample.image.dtype)


def bone_midpoints(joints: torch.Tensor) -> torch.Tensor:
    """(B, J, 2) joints of the synthetic humanoid -> (B, E, 2) the midpoints of its E bones."""
    edges = torch.tensor(get_category("humanoid").edges)
    return (joints[:, edges[:, 0]] + joints[:, edges[:, 1]]) / 2


def clips(
    count: int, size: int, gap: float, seed: int = 0, mask_background: bool = False
) -> dict[str, torch.Tensor]:
    """``count`` test clips: frames, frames ``gap`` later, the flow between them and both frames'
    joints ([-1, 1] units)."""
    rows = {"image": [], "near": [], "flow": [], "joints": [], "joints_near": []}
    for index in range(count):
        frame, _, near = render_pair_near(
            "humanoid", size, item_seed("humanoid", "test", seed, index), 32, 16, 4, near_gap=gap
        )
        rows["image"].append(image_to_tensor(frame.image))
        rows["near"].append(image_to_tensor(near.image))
        pair = (_flow_input(frame, mask_background), _flow_input(near, mask_background))
        rows["flow"].append(flow_to_tensor(dense_flow(*pair), size, size))
        rows["joints"].append(keypoints_to_tensor(frame.keypoints, size, size))
        rows["joints_near"].append(keypoints_to_tensor(near.keypoints, size, size))
    return {k: torch.stack(v) for k, v in rows.items()}


def score(kpts: torch.Tensor, near: torch.Tensor, flow: torch.Tensor, size: int) -> dict:
    """The flow term and the layout's mean motion, in pixels."""
    px = (size - 1) / 2.0
    return {
        "flow_term_px": round(flow_loss(kpts, near, flow).item() * px, 3),
        "motion_px": round((near - kpts).norm(dim=-1).mean().item() * px, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", type=Path, required=True)
    ap.add_argument("--clips", type=int, default=150, help="test clips scored")
    ap.add_argument("--gaps", type=float, nargs="+", default=[1.0, 2.0, 4.0])
    ap.add_argument(
        "--mask-background",
        action="store_true",
        help="measure the flow on frames whose background is blacked out with the figure's mask",
    )
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, _ = load_model(args.checkpoint)
    size = model.cfg.img_size
    rows = {}
    print("| gap (frames) | layout | flow term (px) | motion (px) |")
    print("|---:|---|---:|---:|")
    for gap in args.gaps:
        data = clips(args.clips, size, gap, mask_background=args.mask_background)
        with torch.no_grad():
            both = model(torch.cat([data["image"], data["near"]]), None)["keypoints"]
        kpts, near = both.split(len(data["image"]))
        rows[str(gap)] = {
            "ground truth": score(data["joints"], data["joints_near"], data["flow"], size),
            "ground-truth bone midpoints": score(
                bone_midpoints(data["joints"]),
                bone_midpoints(data["joints_near"]),
                data["flow"],
                size,
            ),
            str(args.checkpoint): score(kpts, near, data["flow"], size),
        }
        for name, terms in rows[str(gap)].items():
            print(f"| {gap:g} | {name} | {terms['flow_term_px']:.2f} | {terms['motion_px']:.2f} |")
    if args.json:
        atomic_write_bytes(args.json, json.dumps(rows, indent=1).encode())


if __name__ == "__main__":
    main()
