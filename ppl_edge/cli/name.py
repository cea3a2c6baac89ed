"""Name a model's joints from a few labelled images: fit the map from its keypoints to named joints.

Examples:
  ppl-edge data synth --out runs/labels --count 100 --split train_reg
  ppl-edge name --checkpoint runs/small/latest.safetensors --labels runs/labels \
      --out runs/small/named.safetensors
  ppl-edge name --checkpoint CKPT --labels person_keypoints.json --images photos/ --out CKPT_NAMED

--labels is a COCO keypoints JSON file (what annotation tools export; --images is the folder its
file_name entries are relative to, default the JSON's folder) or a 'ppl-edge data synth' folder.
Each labelled subject is cropped as the runtime crops it (its box widened to a square), the
model's keypoints are mapped to the named joints by ridge regression with the left/right swap loop
of the Human3.6M protocol, a held-out share (--holdout) scores the map (error per joint in % of the
crop side, PCK@0.1), and the map fitted on every label is stored in the --out checkpoint with the
joint names, edges and left/right pairs; 'ppl-edge convert' bakes it into every exported graph.
"""

from __future__ import annotations

import argparse

from ppl_edge.cli import flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge name``."""
    flags.add_checkpoint(parser)
    parser.add_argument("--labels", required=True, help="COCO keypoints JSON or a synthdir folder")
    parser.add_argument("--images", default=None, help="image folder of a COCO file")
    parser.add_argument("--category", default=None, help="COCO category (default: the first)")
    parser.add_argument("--out", required=True, help="the named checkpoint to write")
    parser.add_argument("--holdout", type=float, default=0.2, help="share scored, not fitted")
    parser.add_argument(
        "--test-labels", default=None, help="score on these labels instead (fit on all --labels)"
    )
    parser.add_argument("--ridge", type=float, default=1e-3, help="ridge shrinkage (default 1e-3)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N subjects only")
    parser.add_argument("--json", default=None, help="also write the report to this JSON file")


def run(args: argparse.Namespace) -> int:
    """Fit, report, write."""
    import json

    from ppl_edge.fileio import atomic_write_bytes
    from ppl_edge.train.naming import name_checkpoint

    report = name_checkpoint(args.checkpoint, args.labels, args.out, holdout=args.holdout,
                             ridge=args.ridge, limit=args.limit, images_root=args.images,
                             category=args.category, test_labels=args.test_labels)  # fmt: skip
    print(f"{len(report['names'])} named joints from {report['fit_samples']} labelled subjects; "
          f"scored on {report['samples']}: error {report['error']:.2f} % of the crop, "
          f"PCK@0.1 {100 * report['pck']:.1f} % (mean pose {report['baseline_mean_pose']:.2f}) "
          f"-> {args.out}")  # fmt: skip
    for name, err in report["per_joint"].items():
        print(f"  {name:<16} {'n/a' if err is None else f'{err:.2f}'}")
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(report, indent=2) + "\n").encode())
    return 0
