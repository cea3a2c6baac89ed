"""Training throughput per preset: seconds per optimiser step and images/s, plus params and MACs.

    python bench/bench_train.py --presets tiny small base --batch-size 16 8 4 --steps 5 3 1 \\
        --threads 2 --json bench/results/train_cpu.json
    python bench/bench_train.py --presets tiny small --batch-size 16 --config configs/cpu.yaml

Each preset trains a randomly initialised model on one fixed batch of synthetic humanoid images
(rendering is timed separately, per image, since a DataLoader with workers overlaps it with the
step). One warm-up step is not timed. The reconstruction loss is the pixel loss (L1 + 1-SSIM) unless
``--vgg-weights`` names a torchvision VGG16 state dict. Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from ppl_edge.train.config import resolve_config
from ppl_edge.train.data import build_dataset
from ppl_edge.train.loop import (
    build_model,
    build_optimizer,
    build_recon_loss,
    step_generator,
    train_step,
)
from ppl_edge.train.macs import format_count, model_profile


def bench_preset(
    name: str,
    batch: int,
    steps: int,
    vgg: str | None,
    device: str,
    config: Path | None = None,
    overrides: list[str] | None = None,
) -> dict:
    """Time ``steps`` training steps of preset ``name`` at ``batch`` images per step.

    ``config`` (a YAML recipe such as configs/cpu.yaml) and ``overrides`` (``key=value``) shape the
    step as they do for ``ppl-edge train``; preset and batch size are always the arguments'.
    """
    flags = {"preset": name, "batch_size": batch, "vgg_weights": vgg, "device": device}
    cfg = resolve_config(config, overrides, flags)
    size = cfg.model_config().img_size
    model = build_model(cfg, device)
    prof = model_profile(model, size)
    optimizer = build_optimizer(model, cfg)
    recon, recon_desc = build_recon_loss(cfg, device)
    data = build_dataset("synthetic:humanoid", size, length=batch)
    start = time.perf_counter()
    items = [data[i] for i in range(batch)]
    render_ms = (time.perf_counter() - start) / batch * 1e3
    batch_dict = torch.utils.data.default_collate(items)
    train_step(model, batch_dict, optimizer, cfg, recon, step_generator(0, 0, 0))  # warm-up
    times = []
    for step in range(steps):
        start = time.perf_counter()
        terms = train_step(model, batch_dict, optimizer, cfg, recon, step_generator(0, 0, step + 1))
        float(terms["total"])  # wait for the device
        times.append(time.perf_counter() - start)
    mean = sum(times) / len(times)
    return {
        "preset": name,
        "img_size": size,
        "batch": batch,
        "steps": steps,
        "params": prof["params"],
        "macs_keypoints": prof["macs_keypoints"],
        "macs_train_forward": prof["macs_train_forward"],
        "s_per_step": mean,
        "images_per_s": batch / mean,
        "render_ms_per_image": render_ms,
        "recon_loss": recon_desc,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument(
        "--batch-size",
        nargs="+",
        type=int,
        default=[16, 8, 4],
        help="one per preset, or one for all",
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        type=int,
        default=[5, 3, 1],
        help="timed steps, one per preset or one for all",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vgg-weights", default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--config", type=Path, default=None, help="YAML recipe, e.g. configs/cpu.yaml"
    )
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    def pick(values, i):  # one value per preset, or one for all
        return values[i] if len(values) > 1 else values[0]

    rows = [
        bench_preset(
            p,
            pick(args.batch_size, i),
            pick(args.steps, i),
            args.vgg_weights,
            args.device,
            args.config,
            args.set,
        )
        for i, p in enumerate(args.presets)
    ]
    print(
        f"torch {torch.__version__}, {args.device}, {args.threads} threads, {platform.processor()}"
    )
    print("| preset | px | params | MACs/img (train fwd) | batch | s/step | images/s | render ms |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['preset']} | {r['img_size']} | {format_count(r['params'])} | "
            f"{format_count(r['macs_train_forward'])} | {r['batch']} | {r['s_per_step']:.3f} | "
            f"{r['images_per_s']:.2f} | {r['render_ms_per_image']:.1f} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {"torch": torch.__version__, "threads": args.threads, "device": args.device}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
