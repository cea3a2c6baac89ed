"""Evaluate a checkpoint against ground truth: regression protocols, occlusion robustness, pictures.

Examples:
  ppl-edge eval --checkpoint runs/small/latest.safetensors --out runs/small/eval
  ppl-edge eval --checkpoint CKPT --data synthetic:humanoid --occlusion --iterations 4 --out DIR
  ppl-edge eval --checkpoint CKPT --data h36m:/data/h36m --n-fit 2000 --n-test 1000 --out DIR
  ppl-edge eval --checkpoint CKPT --data video:scene.mp4 --iterations 0 --out DIR

The model's keypoints on the train_reg split are mapped to the ground truth by the protocol's linear
regressor (AutoLink's: h36m = no-bias OLS with the left/right swap loop, taichi = summed MAE at
256 px, cub = per-part visible-only OLS; auto picks it from --data), which is then scored on the
test split, with a mean-pose baseline, PDJ@0.2 and BPLP-C; when the test items carry a foreground
mask (synthetic data), the fraction of the model's keypoints and of its skeleton's length that lie
on the figure (keypoints_on_figure, skeleton_on_figure). --iterations scores iterative inference
(paper §3.4). --occlusion adds paper §4.3: RandomMasking 0.1-0.4 and CenterMasking 4x4-12x12 of
32x32 patches, error per iteration. Writes metrics.json, metrics.md, overlays.png and, with
--occlusion, occlusion.{md,csv,json,png} and occlusion_iterations.png into --out. A video
(`video:PATH`, a `<video>.labels.npz` beside it, as `ppl-edge data scene` writes) is read as a fixed
camera's recording (crops=motion): the regressor is fitted on the first 80 % of its frames with a
moving subject and scored on the rest; --data-opt passes loader options (e.g. warmup=50).
"""

from __future__ import annotations

import argparse

from ppl_edge.cli import flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge eval``."""
    flags.add_checkpoint(parser)
    parser.add_argument(
        "--data",
        default="synthetic:humanoid",
        help="dataset spec with ground truth (default synthetic:humanoid)",
    )
    flags.add_data_options(parser, "--data-opt")
    parser.add_argument(
        "--protocol",
        default="auto",
        choices=["auto", "h36m", "taichi", "cub"],
        help="evaluation protocol (default: from --data)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=4,
        help="iterative-inference iterations scored after iteration 0 (default 4, as in the paper)",
    )
    parser.add_argument(
        "--refine",
        default="image",
        choices=["image", "memory"],
        help="refinement: re-estimate on the reconstruction (paper) or snap to memory",
    )
    parser.add_argument("--occlusion", action="store_true", help="run the occlusion protocol too")
    parser.add_argument(
        "--n-fit",
        type=int,
        default=2000,
        help="train_reg images the regressor is fitted on (default 2000)",
    )
    parser.add_argument(
        "--n-test", type=int, default=1000, help="test images scored (default 1000)"
    )
    parser.add_argument(
        "--n-occlusion",
        type=int,
        default=200,
        help="test images per occlusion setting, 10 settings (default 200, at most --n-test)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=64, help="images per forward pass (default 64)"
    )
    parser.add_argument("--seed", type=int, default=0, help="dataset and mask seed (default 0)")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="processes reading / rendering images (default 0)",
    )
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    flags.add_out_folder(parser)


def run(args: argparse.Namespace) -> int:
    """Evaluate into --out and print the headline numbers."""
    from ppl_edge.train.evaluate.report import EvalConfig, evaluate_to_folder

    cfg = EvalConfig(
        checkpoint=args.checkpoint,
        out=args.out,
        data=args.data,
        data_options=flags.parse_options(args.data_opt, "--data-opt"),
        protocol=args.protocol,
        iterations=args.iterations,
        refine=args.refine,
        occlusion=args.occlusion,
        n_fit=args.n_fit,
        n_test=args.n_test,
        n_occlusion=args.n_occlusion,
        batch_size=args.batch_size,
        seed=args.seed,
        num_workers=args.num_workers,
        device=args.device,
    )
    for line in evaluate_to_folder(cfg).lines():
        print(line)
    return 0
