"""How low the keypoint error can go for an encoder architecture in a training budget, when the
keypoints are learned from the ground truth instead of from images and masks.

    python bench/bench_supervised_bound.py --steps 2600 --threads 1 --json bench/results/bound.json
    python bench/bench_supervised_bound.py --steps 2600 --threads 1 --set enc_skips=true
    python bench/bench_supervised_bound.py --steps 2600 --threads 1 --set enc_skips=true \
        --input mask

φ_enc and its affine head (``small`` preset by default, with one keypoint per ground-truth joint)
are trained with the L1 distance between T' and the synthetic humanoid's joints, the recipe's batch
size and learning rate, each image's left/right sides matched first (the figure may face either
way). The score is the mean joint distance on the test split in % of the image size, sides matched
per image, the unit of the Human3.6M protocol. An unsupervised model scored by the protocol's
linear regression can get below this only through the regression; it is the reference the
unsupervised errors of the README are read against. With ``--input mask`` the encoder sees only
the foreground mask: how far a signal computed from silhouettes alone can place the joints.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from ppl_edge.config_utils import merge, parse_overrides
from ppl_edge.fileio import atomic_write_bytes
from ppl_edge.model.config import ModelConfig, preset
from ppl_edge.model.ppl import PoseModel
from ppl_edge.named_joints import swap_permutation
from ppl_edge.synth.render import get_category
from ppl_edge.train.data.synthetic import SyntheticDataset


def encoder_input(batch: dict, kind: str) -> torch.Tensor:
    """What φ_enc sees: the image, or (``mask``) the foreground mask alone as a grey image in
    [-1, 1], which bounds what any term computed from silhouettes can tell."""
    if kind == "mask":
        return (batch["mask"] * 2 - 1).expand(-1, 3, -1, -1)
    return batch["image"]


def side_matched(pred: torch.Tensor, gt: torch.Tensor, perm: list[int]) -> torch.Tensor:
    """Per image, ``gt`` or ``gt`` with its left / right joints swapped, whichever is nearer."""
    direct = (pred - gt).norm(dim=-1).mean(-1)
    swapped = (pred - gt[:, perm]).norm(dim=-1).mean(-1)
    return torch.where((direct <= swapped)[:, None, None], gt, gt[:, perm])


@torch.no_grad()
def score(
    model: PoseModel, prior: torch.Tensor, data: SyntheticDataset, perm, kind: str = "image"
) -> dict:
    """Mean and per-joint error (% of the image size) on ``data``, sides matched per image."""
    model.eval()
    loader = torch.utils.data.DataLoader(data, batch_size=100)
    dists = []
    for batch in loader:
        pred = model.encoder(encoder_input(batch, kind), prior)["keypoints"]
        gt = side_matched(pred, batch["keypoints"], perm)
        dists.append((pred - gt).norm(dim=-1) / 2 * 100)  # [-1, 1] units -> % of the side
    model.train()
    d = torch.cat(dists)
    names = data.joint_names
    return {"error": float(d.mean()), "per_joint": dict(zip(names, d.mean(0).tolist()))}


def train_bound(
    preset_name: str = "small",
    overrides: dict[str, str] | None = None,
    steps: int = 2600,
    batch_size: int = 16,
    lr: float = 1e-3,
    n_test: int = 1000,
    seed: int = 0,
    log_every: int = 500,
    kind: str = "image",
) -> dict:
    """Train φ_enc from the ground truth for ``steps`` and score it (:func:`score`)."""
    torch.manual_seed(seed)
    overrides = dict(overrides or {})
    base = preset(preset_name, num_keypoints=len(get_category("humanoid").joint_names))
    cfg = merge(ModelConfig, base, overrides, "--set")
    train = SyntheticDataset(split="train", img_size=cfg.img_size, seed=seed)
    test = SyntheticDataset(split="test", img_size=cfg.img_size, seed=seed, length=n_test)
    perm = swap_permutation(len(train.joint_names), train.swap_pairs)
    model = PoseModel(cfg).train()
    prior = model.prior().detach()
    opt = torch.optim.Adam(model.encoder.parameters(), lr=lr)
    loader = torch.utils.data.DataLoader(
        train, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    start, step = time.perf_counter(), 0
    while step < steps:
        for batch in loader:
            pred = model.encoder(encoder_input(batch, kind), prior)["keypoints"]
            target = side_matched(pred.detach(), batch["keypoints"], perm)
            loss = (pred - target).abs().mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % log_every == 0 or step == steps:
                elapsed = time.perf_counter() - start
                print(f"step {step}/{steps} loss {loss.item():.4f} {elapsed:.0f} s", flush=True)
            if step == steps:
                break
    return {
        "preset": preset_name,
        "overrides": overrides,
        "steps": steps,
        "batch_size": batch_size,
        "input": kind,
        "seconds": round(time.perf_counter() - start, 1),
        **score(model, prior, test, perm, kind),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="small")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="ModelConfig field, e.g. enc_skips=true (repeatable)",
    )
    ap.add_argument(
        "--input",
        choices=("image", "mask"),
        default="image",
        help="what the encoder sees: the image, or only its foreground mask",
    )
    ap.add_argument("--steps", type=int, default=2600)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the result here")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.json:  # made before the training, so that a path it cannot write fails at once
        args.json.parent.mkdir(parents=True, exist_ok=True)
    result = train_bound(
        args.preset,
        parse_overrides(args.set),
        args.steps,
        args.batch_size,
        args.lr,
        args.n_test,
        args.seed,
        kind=args.input,
    )
    joints = result["per_joint"]
    print(
        f"| {args.preset} {args.input} {' '.join(args.set)} | {args.steps} | "
        f"{result['error']:.2f} | "
        + " | ".join(f"{joints[n]:.1f}" for n in ("head", "l_elbow", "l_wrist", "l_ankle"))
        + " |"
    )
    if args.json:
        atomic_write_bytes(args.json, (json.dumps(result, indent=2) + "\n").encode())


if __name__ == "__main__":
    main()
