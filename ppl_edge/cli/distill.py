"""Distil a smaller image decoder for a trained model (cheaper image-space refinement).

Examples:
  ppl-edge distill --checkpoint models/ppl-small-humanoid.safetensors --dec-width 4 \
      --dec-max-width 32 --steps 1500 --threads 1 --out runs/small-dec4.safetensors

The model's own decoder is the teacher; the student sees the inputs refinement gives it (occluded
images, the link map of the model's memory-refined keypoints) and learns the teacher's output.
Every other tensor is copied, so the keypoints stay bit-identical; 'ppl-edge convert' then
exports a cheaper refine.onnx.
"""

from __future__ import annotations

import argparse

from ppl_edge.cli import flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge distill``."""
    flags.add_checkpoint(parser)
    parser.add_argument("--out", required=True, help="the checkpoint to write")
    parser.add_argument("--dec-width", type=int, default=4, help="first decoder width (4)")
    parser.add_argument("--dec-max-width", type=int, default=32, help="widest block (32)")
    parser.add_argument(
        "--link-tolerance",
        type=float,
        default=0.02,
        help="refinement draws links above this share of the strongest (0.02)",
    )
    parser.add_argument("--steps", type=int, default=1500, help="training steps (1500)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per step (16)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (2e-3)")
    parser.add_argument("--seed", type=int, default=0, help="data and init seed (0)")
    parser.add_argument("--data", default="synthetic:humanoid", help="images to distil on")
    parser.add_argument(
        "--center-share", type=float, default=1 / 3, help="share of centre-occluded images (1/3)"
    )
    parser.add_argument(
        "--occlusion-weight", type=float, default=0.0, help="extra loss weight of occluded pixels"
    )
    parser.add_argument(
        "--keypoint-weight", type=float, default=0.0,
        help="weight of the keypoint-consistency term: keypoints re-estimated on the "
        "reconstruction of an occluded image against those of the unoccluded image (0: off)",
    )  # fmt: skip
    parser.add_argument("--init", default=None, help="start from this distilled checkpoint")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")


def run(args: argparse.Namespace) -> int:
    """Distil, write, report."""
    from ppl_edge.train.distill import DistillConfig, distill_decoder

    cfg = DistillConfig(dec_width=args.dec_width, dec_max_width=args.dec_max_width,
                        link_tolerance=args.link_tolerance,
                        steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                        seed=args.seed, data=args.data, threads=args.threads,
                        center_share=args.center_share,
                        occlusion_weight=args.occlusion_weight, init=args.init,
                        keypoint_weight=args.keypoint_weight)  # fmt: skip
    report = distill_decoder(args.checkpoint, args.out, cfg)
    print(f"decoder {report['teacher_params']:,} -> {report['student_params']:,} parameters, "
          f"{report['steps']} steps in {report['seconds']:.0f} s, L1 to the teacher "
          f"{report['loss_first']:.4f} -> {report['loss_last']:.4f}, keypoint consistency "
          f"{report['consistency_last']:.4f} -> {args.out}")  # fmt: skip
    return 0
