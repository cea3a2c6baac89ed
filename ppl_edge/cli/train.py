"""Train a Pose Prior Learner on unlabelled images (single process, or DDP under torchrun).

Examples:
  ppl-edge train --preset small --data synthetic:humanoid --steps 3000 --batch-size 32 \
      --out runs/small
  ppl-edge train --out runs/small --resume            # continue where the run stopped
  ppl-edge train --preset base --dry-run              # parameters and MACs only
  ppl-edge train --config run.yaml --set w_link_reg=1 --set model.num_keypoints=10
  torchrun --nproc_per_node 2 $(which ppl-edge) train --device cpu --preset tiny --out runs/ddp

Settings flow defaults -> --config YAML -> --set key=value -> the flags below; every TrainConfig
field (see ppl_edge/train/config.py) can be set with --set, model fields as model.<field>. With
--resume the run's stored settings are the defaults. Ctrl-C or SIGTERM saves a checkpoint after the
current step (exit 130 / 0); --resume continues it exactly.
"""

from __future__ import annotations

import argparse

from ppl_edge.config_utils import parse_bool

# flag destination -> TrainConfig field
_FLAG_FIELDS = {
    "preset": "preset",
    "data": "data",
    "steps": "max_steps",
    "batch_size": "batch_size",
    "lr": "lr",
    "out": "out",
    "device": "device",
    "vgg_weights": "vgg_weights",
    "num_workers": "num_workers",
    "amp": "amp",
    "seed": "seed",
    "ckpt_interval": "ckpt_interval",
    "log_interval": "log_interval",
    "prior_interval": "prior_interval",
    "reference": "reference",
    "hflip": "hflip",
    "threads": "cpu_threads",
    "label_fraction": "label_fraction",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge train`` (all default to 'not given', so YAML / --set values stand)."""
    parser.add_argument(
        "--preset", help="model size: tiny (32 px), small (64 px), base (128 px, official)"
    )
    parser.add_argument(
        "--data", help="dataset spec, e.g. synthetic:humanoid, folder:PATH, video:PATH"
    )
    parser.add_argument(
        "--data-opt",
        dest="data_opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset loader option (repeatable), e.g. crops=motion for video:PATH, masks=DIR for "
        "folder:PATH (same as --set data_options.KEY=VALUE)",
    )
    parser.add_argument("--steps", type=int, help="optimiser steps to train to (official 20000)")
    parser.add_argument("--batch-size", type=int, help="images per step and process (official 64)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (official 1e-4)")
    parser.add_argument("--out", help="run folder (checkpoint, config.yaml, metrics.csv)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from <out>/latest.safetensors (start fresh if there is none)",
    )
    parser.add_argument("--config", metavar="YAML", help="YAML file of TrainConfig fields")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one TrainConfig field (model.<field> for the model); repeatable",
    )
    parser.add_argument("--device", help="auto (default), cpu, cuda or cuda:N")
    parser.add_argument(
        "--vgg-weights",
        metavar="PATH",
        help="torchvision VGG16 ImageNet state dict for the official perceptual loss",
    )
    parser.add_argument(
        "--reference",
        choices=["mask", "frame"],
        help="decoder reference: masked frame (official) or another frame of the clip",
    )
    parser.add_argument("--num-workers", type=int, help="DataLoader worker processes")
    parser.add_argument("--amp", choices=["off", "bf16", "fp16"], help="mixed precision on CUDA")
    parser.add_argument("--hflip", type=parse_bool, metavar="BOOL", help="random horizontal flips")
    parser.add_argument(
        "--threads", type=int, help="intra-op CPU threads (default: torch's; fewer on a busy CPU)"
    )
    parser.add_argument("--seed", type=int, help="seed of weights, data order, masks and flips")
    parser.add_argument(
        "--label-fraction",
        type=float,
        help="semi-supervised: share of the training items whose ground truth supervises the "
        "keypoints (needs --set model.prior=template:<name>)",
    )
    parser.add_argument("--ckpt-interval", type=int, help="steps between checkpoints")
    parser.add_argument("--log-interval", type=int, help="steps between metrics rows")
    parser.add_argument(
        "--prior-interval",
        type=int,
        help="steps between prior snapshots in prior_history.npz (0: off)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the model's parameters and MACs, then exit",
    )


def _resolve(args: argparse.Namespace):
    """TrainConfig from the flags; with --resume the stored run config is the base layer."""
    from pathlib import Path

    from ppl_edge.checkpoint import read_metadata
    from ppl_edge.errors import PplEdgeError
    from ppl_edge.train.config import config_from_dict, resolve_config
    from ppl_edge.train.loop import CHECKPOINT_NAME

    flags = {field: getattr(args, dest) for dest, field in _FLAG_FIELDS.items()}
    overrides = list(args.overrides) + [f"data_options.{p}" for p in args.data_opt]
    if args.resume:
        # The run folder decides the base layer, so find it before validating anything: overrides
        # that are only valid on top of the stored settings (e.g. mask_warmup_steps of a mask
        # run) must not be checked against the defaults.
        out = (
            flags.get("out")
            or resolve_config(args.config, [o for o in overrides if o.startswith("out=")], {}).out
        )
        ckpt = Path(out) / CHECKPOINT_NAME
        if ckpt.is_file():
            stored_dict = read_metadata(ckpt)["train_state"].get("train_config")
            if not isinstance(stored_dict, dict):
                raise PplEdgeError(
                    f"{ckpt} holds no training config (train_state.train_config), so the run "
                    "cannot be resumed; its weights still load for eval and convert"
                )
            stored = config_from_dict(stored_dict)
            return resolve_config(args.config, overrides, flags, base=stored)
    return resolve_config(args.config, overrides, flags)


def _dry_run(cfg) -> int:
    import torch

    from ppl_edge.model.ppl import PoseModel
    from ppl_edge.train.macs import format_count, model_profile

    torch.manual_seed(cfg.seed)
    mcfg = cfg.model_config()
    prof = model_profile(PoseModel(mcfg), mcfg.img_size)
    print(
        f"preset {cfg.preset}: {mcfg.img_size}x{mcfg.img_size} px, {mcfg.num_keypoints} keypoints, "
        f"memory {mcfg.mem_banks}x{mcfg.mem_entries}x{mcfg.mem_dim}"
    )
    print(f"parameters: {prof['params']:,} ({format_count(prof['params'])})")
    print(
        f"MACs per image (Conv2d + Linear): keypoint path {format_count(prof['macs_keypoints'])}, "
        f"training forward {format_count(prof['macs_train_forward'])}"
    )
    loss = cfg.resolved_recon_loss()
    print(f"reconstruction loss: {loss}" + ("" if loss == "perceptual" else " (L1 + 1-SSIM)"))
    return 0


def run(args: argparse.Namespace) -> int:
    """Resolve the config, then train (or only describe the model with --dry-run)."""
    from ppl_edge.train.macs import format_count

    cfg = _resolve(args)
    if args.dry_run:
        return _dry_run(cfg)
    from ppl_edge.train.loop import train

    summary = train(cfg, resume_run=args.resume)
    if summary["world_size"] > 1:
        import os

        if int(os.environ.get("RANK", "0")) != 0:
            return 0
    losses = " ".join(f"{k}={v:.4g}" for k, v in summary["losses"].items() if k != "images_per_s")
    print(
        f"preset {cfg.preset}: {format_count(summary['params'])} parameters, "
        f"{format_count(summary['macs_train_forward'])} MACs/image (training forward)"
    )
    print(
        f"step {summary['step']}/{cfg.max_steps} (epoch {summary['epoch']}): "
        f"{summary['steps_run']} steps in {summary['seconds']:.1f} s, "
        f"{summary['images_per_s']:.1f} images/s"
    )
    print(f"losses: {losses}")
    print(f"reconstruction loss: {summary['recon_loss']}")
    print(f"checkpoint: {summary['checkpoint']}")
    if summary["stopped_by"]:
        resume_cmd = f"ppl-edge train --out {cfg.out} --resume"
        print(f"stopped by {summary['stopped_by']}; continue with: {resume_cmd}")
        return 130 if summary["stopped_by"] == "SIGINT" else 0
    return 0
