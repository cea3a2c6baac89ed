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

OVERLAY_IMAGES = 16


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
    """Evaluate, write the files, print the headline numbers."""
    import json
    import logging
    from pathlib import Path

    import torch

    from ppl_edge.checkpoint import load_model
    from ppl_edge.errors import PplEdgeError
    from ppl_edge.fileio import atomic_write_bytes
    from ppl_edge.skeleton import edges_from_weights
    from ppl_edge.train import occlusion, plots
    from ppl_edge.train.evaluate import run as eval_run

    log = logging.getLogger(__name__)
    for name in ("n_fit", "n_test", "n_occlusion", "batch_size"):
        if getattr(args, name) <= 0:
            raise PplEdgeError(
                f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
            )
    if args.num_workers < 0:
        raise PplEdgeError(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.iterations < 0:
        raise PplEdgeError(f"--iterations must be >= 0, got {args.iterations}")
    device = (
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    data_options = flags.parse_options(args.data_opt, "--data-opt")
    # refuse unlabelled data and impossible combinations before any work
    if eval_run.layout_for(args.data, args.protocol).protocol != "h36m" and args.occlusion:
        raise PplEdgeError(
            "--occlusion is scored with the h36m-style regressor; use --protocol h36m"
        )
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise PplEdgeError(f"--out {out} exists and is not a folder")
    model, _ = load_model(args.checkpoint, device)
    fit_data, test_data = eval_run.build_splits(
        args.data,
        model.cfg.img_size,
        args.n_fit,
        args.n_test,
        args.seed,
        data_options,
    )
    layout = eval_run.layout_for(args.data, args.protocol, test_data)
    edges = edges_from_weights(model.connectivity.matrix().detach().cpu().numpy())
    with torch.inference_mode():
        metrics, fit, test_pred = eval_run.run_evaluation(
            model,
            fit_data,
            test_data,
            layout,
            args.n_fit,
            args.n_test,
            args.batch_size,
            args.iterations,
            args.refine,
            keep=OVERLAY_IMAGES,
            num_workers=args.num_workers,
        )
        metrics = {"checkpoint": str(args.checkpoint), "data": args.data, **metrics}
        occ = None
        if args.occlusion:
            occ = occlusion.run_occlusion(
                model,
                fit,
                test_data,
                layout.swap_pairs,
                min(args.n_occlusion, args.n_test),
                args.batch_size,
                args.iterations,
                args.refine,
                args.seed,
                keep=1,
                num_workers=args.num_workers,
            )
    if occ is not None:
        metrics["occlusion"] = occ.to_json()
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    atomic_write_bytes(out / "metrics.md", eval_run.metrics_markdown(metrics).encode())
    plots.plot_overlays(
        test_pred.images[0],
        test_pred.keypoints[0, :OVERLAY_IMAGES] * 2 - 1,
        edges,
        out / "overlays.png",
        title=f"{args.data}: predicted keypoints, learned skeleton",
    )
    if occ is not None:
        occ.write(out)
        plots.plot_occlusion_curves(occ.labels, occ.errors, out / "occlusion.png", occ.mode)
        plots.plot_occlusion_iterations(occ.examples, edges, out / "occlusion_iterations.png")
    log.info("wrote %s", ", ".join(sorted(p.name for p in out.iterdir())))
    scale, unit = (1.0, "px@256") if metrics["protocol"] == "taichi" else (100.0, "% of image")
    print(
        f"{metrics['protocol']} error {metrics['error'] * scale:.2f} {unit} (mean-pose baseline "
        f"{metrics['baseline_mean_pose'] * scale:.2f}), PDJ@0.2 {100 * metrics['pdj']:.1f}% on "
        f"{metrics['n_test']} test images -> {out}"
    )
    if "keypoints_on_figure" in metrics:

        def pct(value):
            return "n/a" if value is None else f"{100 * value:.1f}%"

        print(
            f"on the figure (mask dilated 1 px): keypoints "
            f"{pct(metrics['keypoints_on_figure'])}, skeleton length "
            f"{pct(metrics['skeleton_on_figure'])} ({len(edges)} edges)"
        )
    if occ is not None:
        print(occ.to_markdown(), end="")
    return 0
