"""The PPL training loop: single process or DDP, CPU or GPU, exact resume.

Reads top to bottom like nanoGPT's train.py, but is built from functions tests call one by one:
:func:`~ppl_edge.train.step.build_optimizer`, :func:`~ppl_edge.train.step.make_reference`,
:func:`~ppl_edge.train.step.train_step`, :func:`~ppl_edge.train.train_state.save_checkpoint` and
:func:`~ppl_edge.train.train_state.resume` (re-exported here), composed by :func:`train`.

A run folder holds ``latest.safetensors`` (replaced atomically every ``ckpt_interval`` steps, at the
end and on SIGINT / SIGTERM), ``config.yaml``, ``metrics.csv`` / ``metrics.jsonl`` and optionally
``prior_history.npz``. Resuming restores weights, memory buffers, optimiser, RNG and the data
position, so a killed run loses at most one checkpoint interval and ends exactly where an
uninterrupted run would.
"""

from __future__ import annotations

import inspect
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import atomic_write_bytes, remove_stale_temporaries
from ppl_edge.train import distributed
from ppl_edge.train.config import TrainConfig, config_to_dict
from ppl_edge.train.distributed import DistInfo, ResumableSampler
from ppl_edge.train.guards import Saver, check_finite, check_position
from ppl_edge.train.macs import format_count, model_profile
from ppl_edge.train.run_files import MetricsLog, PriorHistory
from ppl_edge.train.step import (
    amp_setup,
    build_model,
    build_optimizer,
    build_recon_loss,
    core_model,
    make_reference,
    step_generator,
    train_step,
)
from ppl_edge.train.stop import StopRequest
from ppl_edge.train.train_state import TrainState, resume, save_checkpoint

# The building blocks are re-exported: ``from ppl_edge.train.loop import ...`` finds them all.
__all__ = [
    "CHECKPOINT_NAME",
    "StopRequest",
    "TrainState",
    "build_model",
    "build_optimizer",
    "build_recon_loss",
    "build_train_dataset",
    "make_reference",
    "resume",
    "save_checkpoint",
    "step_generator",
    "train",
    "train_step",
]

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "latest.safetensors"


def _ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader workers ignore SIGINT and SIGTERM: the main process saves a checkpoint and ends
    them itself. A signal sent to every process of the run (Ctrl-C in a terminal, ``kill --
    -PGID``, ``pkill -f``, a batch scheduler ending the job) would otherwise kill a worker first,
    and the main process would die of the lost worker before its own handler could save."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def build_train_dataset(cfg: TrainConfig, img_size: int):
    """``build_dataset(cfg.data, img_size, "train", cfg.seed[, length=cfg.data_length],
    **cfg.data_options)``.

    With ``reference=frame`` synthetic data is rendered as clips (``video=True``) so every item
    carries a second frame of the same clip; with ``w_flow`` also a third one ``flow_gap``
    frames from the first, and the optical flow to it.
    """
    from ppl_edge.train.data import build_dataset, loader_class, parse_spec

    kwargs: dict[str, Any] = {"length": cfg.data_length} if cfg.data_length is not None else {}
    kwargs.update(cfg.data_options)
    kind = parse_spec(cfg.data)[0]
    if (cfg.reference == "frame" or cfg.uses_flow) and kind == "synthetic":
        kwargs["video"] = True
    if cfg.uses_flow and "flow_gap" in inspect.signature(loader_class(kind)).parameters:
        kwargs.setdefault("flow_gap", cfg.flow_gap)
    return build_dataset(cfg.data, img_size, split="train", seed=cfg.seed, **kwargs)


def prior_snapshot(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """(T (N, 2), W (N, N)) of the model as float32 NumPy arrays."""
    core = core_model(model)
    with torch.no_grad():
        return core.prior().float().cpu().numpy(), core.connectivity.matrix().float().cpu().numpy()


def progress_text(row: dict[str, Any]) -> str:
    """Compact loss / speed text for the progress bar and log lines."""
    keys = [
        "total",
        "reconstruction",
        "boundary",
        "consistency",
        "commit",
        "link_reg",
        "equivariance",
        "separation",
        "mask",
        "attraction",
        "coverage",
        "extremity",
        "appearance",
        "rigid",
        "flow",
        "supervised",
    ]
    parts = [f"{k[:5]}={row[k]:.4g}" for k in keys if k in row]
    return " ".join(parts) + f" | {row['images_per_s']:.1f} img/s"


def _check_dataset(dataset, img_size: int, cfg: TrainConfig) -> None:
    """Fail early, in one line, when items do not fit the model."""
    item = dataset[0]
    shape = tuple(item["image"].shape)
    if shape != (3, img_size, img_size):
        raise PplEdgeError(
            f"dataset {cfg.data!r} gives images of shape {shape}; the "
            f"{cfg.preset} model expects (3, {img_size}, {img_size})"
        )
    if cfg.reference == "frame" and "reference" not in item:
        raise PplEdgeError(
            f"reference=frame needs items with a 'reference' frame; {cfg.data!r} "
            f"gives {sorted(item)}; use reference=mask"
        )
    if cfg.uses_flow and not {"near", "flow"} <= set(item):
        raise PplEdgeError(
            f"w_flow > 0 needs items with a 'near' frame and the 'flow' to it; {cfg.data!r} "
            f"gives {sorted(item)}; use a synthetic clip or set w_flow=0"
        )
    if cfg.uses_masks and "mask" not in item:
        raise PplEdgeError(
            f"mask supervision (w_mask / w_attraction > 0) needs a foreground 'mask' per item; "
            f"{cfg.data!r} gives {sorted(item)}; use synthetic, h36m with BackgroudMask, "
            f"folder:PATH with masks, video:PATH with crops=motion, or set w_mask=0 w_attraction=0"
        )


def _prepare_run(cfg: TrainConfig, info: DistInfo, resume_run: bool) -> Path:
    """Create the run folder and refuse to overwrite an existing run without ``--resume``."""
    out = Path(cfg.out)
    if not resume_run and (out / CHECKPOINT_NAME).exists():
        raise PplEdgeError(
            f"{out} already holds a run ({CHECKPOINT_NAME}); pass --resume to continue "
            f"it or choose another --out"
        )
    if info.device.startswith("cuda") and not torch.cuda.is_available():
        raise PplEdgeError(
            f"device {info.device!r} asked for, but torch sees no CUDA GPU; use --device cpu"
        )
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        for stale in remove_stale_temporaries(out):
            log.info("removed %s, left by an interrupted write", stale.name)
        try:
            atomic_write_bytes(
                out / "config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False).encode()
            )
        except OSError as err:
            raise PplEdgeError(f"cannot write the run folder {out}: {err.strerror}") from None
    return out


def train(cfg: TrainConfig, resume_run: bool = False, dataset=None) -> dict[str, Any]:
    """Train a PPL model as ``cfg`` says; under torchrun every rank calls this.

    Args:
        cfg: the run's TrainConfig.
        resume_run: continue from ``<out>/latest.safetensors`` when it exists (else start fresh).
        dataset: a map-style dataset of item dicts (``image`` (3, H, W) in [-1, 1], optional
            ``reference``); built from ``cfg.data`` when None.

    Returns:
        summary: step, epoch, seconds, images_per_s, the last logged losses, checkpoint path,
        params, MACs, recon_loss description, ``stopped_by`` (signal name or None) and ``model``
        (the trained PoseModel, unwrapped from DDP).

    Raises:
        PplEdgeError: bad data, device or run folder, or an incompatible checkpoint.
    """
    info = distributed.setup(cfg.device)
    try:
        return _train(cfg, info, resume_run, dataset)
    finally:
        distributed.teardown()


def _setup_model(cfg: TrainConfig, info: DistInfo, ckpt_path: Path, resume_run: bool):
    """Model, optimiser, AMP and the resumed state; the model is DDP-wrapped when distributed."""
    model_cfg = cfg.model_config()
    model = build_model(cfg, info.device)
    profile = model_profile(model, model_cfg.img_size)
    if info.is_main:
        log.info(
            "model %s: %s parameters, %s MACs/image (keypoint path), %s MACs/image (training "
            "forward); %s on %d process(es), %d CPU threads each",
            cfg.preset,
            format_count(profile["params"]),
            format_count(profile["macs_keypoints"]),
            format_count(profile["macs_train_forward"]),
            info.device,
            info.world_size,
            torch.get_num_threads(),
        )
    optimizer = build_optimizer(model, cfg)
    amp_dtype, scaler = amp_setup(cfg, info.device)
    state = TrainState()
    if resume_run and ckpt_path.is_file():
        state = resume(ckpt_path, model, optimizer, scaler)
        log.info("resumed %s at step %d (epoch %d, batch %d)", ckpt_path, state.step,
                 state.epoch, state.batch_in_epoch)  # fmt: skip
    elif resume_run and info.is_main:
        log.info("no checkpoint in %s yet: starting at step 0", ckpt_path.parent)
    if info.is_distributed:
        ids = [info.local_rank] if info.device.startswith("cuda") else None
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    return model, optimizer, amp_dtype, scaler, state, profile


def _build_loader(cfg: TrainConfig, info: DistInfo, dataset, img_size: int):
    """(DataLoader, its ResumableSampler, full batches per epoch and rank)."""
    dataset = dataset if dataset is not None else build_train_dataset(cfg, img_size)
    if cfg.label_fraction > 0:
        from ppl_edge.templates import template_of
        from ppl_edge.train.supervision import LabelledShare

        dataset = LabelledShare(dataset, template_of(cfg.model_config().prior),
                                cfg.label_fraction, cfg.seed)  # fmt: skip
        log.info("semi-supervised: %d of %d items labelled", len(dataset.labelled), len(dataset))
    _check_dataset(dataset, img_size, cfg)
    sampler = ResumableSampler(dataset, info, seed=cfg.seed)
    per_epoch = sampler.num_samples // cfg.batch_size
    if per_epoch == 0:
        raise PplEdgeError(
            f"dataset {cfg.data!r} has {len(dataset)} items, fewer than one batch of "
            f"{cfg.batch_size} per process; lower --batch-size or add data"
        )
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.num_workers,
        drop_last=True,
        pin_memory=info.device.startswith("cuda"),
        generator=torch.Generator().manual_seed(cfg.seed),
        worker_init_fn=_ignore_stop_signals,
    )
    return loader, sampler, per_epoch


class _Window:
    """Loss sums and throughput over the steps since the last metrics row."""

    def __init__(self, images_per_step: int):
        self.images_per_step = images_per_step
        self.started = self.since = time.perf_counter()
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}  # per term: a cascade stage may start mid-window
        self.count = 0

    def add(self, terms: dict[str, torch.Tensor]) -> None:
        for k, v in terms.items():
            self.sums[k] = self.sums.get(k, 0.0) + v  # stays on the device: no sync per step
            self.counts[k] = self.counts.get(k, 0) + 1
        self.count += 1

    def row(self, state: TrainState, lr: float) -> dict[str, Any]:
        """One metrics row (mean of each term over the window); starts a new window."""
        now = time.perf_counter()
        row = {
            "step": state.step,
            "time": round(now - self.started, 3),
            "epoch": state.epoch,
            "images_per_s": self.count * self.images_per_step / max(now - self.since, 1e-9),
            "lr": lr,
            **{k: float(v) / self.counts[k] for k, v in self.sums.items()},
        }
        self.sums, self.counts, self.count, self.since = {}, {}, 0, now
        return row


def _log_row(row: dict, metrics: MetricsLog, bar, use_bar: bool, max_steps: int) -> None:
    metrics.append(row)
    bar.set_postfix_str(progress_text(row), refresh=False)
    (log.debug if use_bar else log.info)(
        "step %d/%d %s", row["step"], max_steps, progress_text(row)
    )


def _run_records(cfg: TrainConfig, info: DistInfo, out: Path, state, resume_run: bool, model):
    """(MetricsLog, PriorHistory) of the main rank (None elsewhere / when disabled)."""
    if not info.is_main:
        return None, None
    metrics = MetricsLog(out, state.step if resume_run else None)
    history = None
    if cfg.prior_interval:
        history = PriorHistory(out, state.step if resume_run else None)
        if state.step == 0:
            history.add(0, *prior_snapshot(model))
    return metrics, history


def _train(cfg: TrainConfig, info: DistInfo, resume_run: bool, dataset) -> dict[str, Any]:
    out = _prepare_run(cfg, info, resume_run)
    if cfg.cpu_threads:
        torch.set_num_threads(cfg.cpu_threads)
    ckpt_path = out / CHECKPOINT_NAME
    model, optimizer, amp_dtype, scaler, state, profile = _setup_model(
        cfg, info, ckpt_path, resume_run
    )
    recon_fn, recon_desc = build_recon_loss(cfg, info.device)
    if info.is_main:
        log.info("reconstruction loss: %s; reference: %s", recon_desc, cfg.reference)
    loader, sampler, per_epoch = _build_loader(cfg, info, dataset, cfg.model_config().img_size)
    check_position(state, per_epoch, cfg)
    metrics, history = _run_records(cfg, info, out, state, resume_run, model)

    from tqdm.auto import tqdm

    use_bar = info.is_main and sys.stderr.isatty()
    bar = tqdm(total=cfg.max_steps, initial=state.step, disable=not use_bar, unit="step")
    window = _Window(cfg.batch_size * info.world_size)
    first_step, row, stopping = state.step, {}, False
    saver = Saver(ckpt_path, state.step)
    with StopRequest() as stop:
        while state.step < cfg.max_steps and not stopping:
            sampler.set_position(state.epoch, state.batch_in_epoch * cfg.batch_size)
            yielded = 0
            for batch in loader:
                yielded += 1
                gen = step_generator(cfg.seed, info.rank, state.step)
                terms = train_step(
                    model, batch, optimizer, cfg, recon_fn, gen, scaler, amp_dtype, state.step
                )
                state.step += 1
                state.batch_in_epoch += 1
                if state.batch_in_epoch == per_epoch:  # the loader ends this epoch now
                    state.epoch, state.batch_in_epoch = state.epoch + 1, 0
                check_finite(terms, state.step, info, saver)
                window.add(terms)
                bar.update(1)
                done = state.step >= cfg.max_steps
                stopping = distributed.any_rank(stop.signal is not None, info)
                if state.step % cfg.log_interval == 0 or done or stopping:
                    row = window.row(state, optimizer.param_groups[0]["lr"])
                    if info.is_main:
                        _log_row(row, metrics, bar, use_bar, cfg.max_steps)
                if history is not None and (state.step % cfg.prior_interval == 0 or done):
                    history.add(state.step, *prior_snapshot(model))
                final = done or stopping
                if info.is_main and (state.step % cfg.ckpt_interval == 0 or final):
                    saver.save(model, optimizer, cfg, state, scaler, final)
                if final:
                    break
            if yielded == 0:
                raise PplEdgeError(
                    f"the data loader yielded no batch at epoch {state.epoch}, batch "
                    f"{state.batch_in_epoch} of {per_epoch}: {cfg.data!r} holds "
                    f"{len(loader.dataset)} items; check the data"
                )
            stopping = stopping or stop.signal is not None
    bar.close()
    seconds = time.perf_counter() - window.started
    steps_run = state.step - first_step
    return {
        "step": state.step,
        "epoch": state.epoch,
        "steps_run": steps_run,
        "seconds": seconds,
        "images_per_s": steps_run * window.images_per_step / max(seconds, 1e-9),
        "losses": {k: v for k, v in row.items() if k not in ("step", "time", "epoch", "lr")},
        "checkpoint": str(ckpt_path),
        **profile,
        "recon_loss": recon_desc,
        "world_size": info.world_size,
        "model": core_model(model),
        "stopped_by": signal.Signals(stop.signal).name if stop.signal is not None else None,
    }
