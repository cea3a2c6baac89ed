"""Training checkpoints: state <-> safetensors tensors + JSON, never a pickle (house style 5).

The optimiser's per-parameter tensors go under ``optim.state.<param index>.<name>``, its groups
and non-tensor state into the JSON ``train_state["optimizer"]``; the torch RNG under ``rng.torch``
(``rng.cuda.<i>`` per GPU), the Python and NumPy RNG states into JSON.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppl_edge import checkpoint as ckpt
from ppl_edge.config_utils import to_dict
from ppl_edge.errors import PplEdgeError


@dataclass
class TrainState:
    """Where a run stands: completed optimiser steps and the data position.

    step: optimiser steps done. epoch: current epoch. batch_in_epoch: batches of ``epoch`` used.
    """

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def optimizer_to_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors and a JSON layout.

    Returns:
        tensors: ``optim.state.<i>.<name>`` -> tensor.
        layout: ``{"param_groups": [...], "scalars": {"<i>": {name: number}}}``.
    """
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in sd["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"optim.state.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
        for g in sd["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_tensors(
    optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], layout: dict
) -> None:
    """Inverse of :func:`optimizer_to_tensors`: load the state into ``optimizer``.

    Raises:
        PplEdgeError: when the stored layout does not fit the optimiser (different model).
    """
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if not key.startswith("optim.state."):
            continue
        idx, name = key[len("optim.state.") :].split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in layout.get("scalars", {}).items():
        state.setdefault(int(idx), {}).update(entry)
    groups = []
    for g in layout["param_groups"]:
        groups.append({k: (tuple(v) if k == "betas" else v) for k, v in g.items()})
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError) as err:
        raise PplEdgeError(f"checkpoint optimiser state does not fit this model: {err}") from err


def rng_to_tensors() -> tuple[dict[str, torch.Tensor], dict]:
    """Torch (CPU and CUDA) RNG states as tensors; Python and NumPy states as JSON."""
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }
    return tensors, state


def rng_from_tensors(tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Restore what :func:`rng_to_tensors` saved (missing parts are left as they are)."""
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    cuda = [
        tensors[f"rng.cuda.{i}"]
        for i in range(torch.cuda.device_count())
        if f"rng.cuda.{i}" in tensors
    ]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def git_sha(folder: str | Path | None = None) -> str | None:
    """The source tree's git commit, or None outside a git checkout."""
    folder = Path(folder) if folder else Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def save_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg,
    state: TrainState,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """Write model, optimiser, RNG and data position to one safetensors file, atomically."""
    from ppl_edge.train.config import config_to_dict

    core = getattr(model, "module", model)  # unwrap DDP
    optim_tensors, optim_layout = optimizer_to_tensors(optimizer)
    rng_tensors, rng_state = rng_to_tensors()
    train_state = {
        "step": state.step,
        "epoch": state.epoch,
        "batch_in_epoch": state.batch_in_epoch,
        "train_config": config_to_dict(cfg),
        "optimizer": optim_layout,
        "rng": rng_state,
        "grad_scaler": scaler.state_dict() if scaler is not None else None,
        "git_sha": git_sha(),
        "torch": torch.__version__,
    }
    tensors = {**ckpt.model_tensors(core), **optim_tensors, **rng_tensors}
    ckpt.save_checkpoint(path, tensors, to_dict(core.cfg), train_state)


PREVIOUS_NAME = "previous.safetensors"


def non_finite_parameters(model: torch.nn.Module) -> list[str]:
    """Names of the model's parameters and buffers holding NaN or infinity."""
    core = getattr(model, "module", model)
    named = list(core.named_parameters()) + list(core.named_buffers())
    return [
        name for name, t in named if t.is_floating_point() and not bool(torch.isfinite(t).all())
    ]


def save_rotating(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    cfg,
    state: TrainState,
    scaler: torch.amp.GradScaler | None = None,
) -> None:
    """:func:`save_checkpoint` that keeps the checkpoint it replaces as ``previous.safetensors``
    beside it and never writes non-finite weights.

    The old file is hard-linked (copied where links are not supported) to the previous name
    before the new one is renamed over it, so at every moment a complete checkpoint exists under
    ``latest`` and, after the first save, another one under ``previous``.

    Raises:
        PplEdgeError: the weights hold NaN or infinity (nothing is written).
        OSError: the folder cannot be written (the caller decides whether to retry).
    """
    path = Path(path)
    bad = non_finite_parameters(model)
    if bad:
        raise PplEdgeError(
            f"not saving step {state.step}: the weights hold NaN or infinity ({', '.join(bad[:3])}"
            f"{', ...' if len(bad) > 3 else ''}); {path} keeps the last good checkpoint"
        )
    if path.is_file():
        previous = path.with_name(PREVIOUS_NAME)
        staging = path.with_name(f".{PREVIOUS_NAME}.{os.getpid()}.tmp")
        staging.unlink(missing_ok=True)
        try:
            os.link(path, staging)
        except OSError:
            shutil.copyfile(path, staging)
        os.replace(staging, previous)
    save_checkpoint(path, model, optimizer, cfg, state, scaler)


def resume(
    path: str | Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> TrainState:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and optimiser, RNG).

    Raises:
        PplEdgeError: not a ppl-edge checkpoint (pickles and ``.pt`` files are refused unread), or
            written for another model configuration.
    """
    meta = ckpt.read_metadata(path)
    core = getattr(model, "module", model)  # unwrap DDP
    if meta["model_config"] != to_dict(core.cfg):
        diff = {k: v for k, v in meta["model_config"].items() if to_dict(core.cfg).get(k) != v}
        raise PplEdgeError(f"{path} was trained with another model config (differs in {diff})")
    tensors = ckpt.load_tensors(path)
    device = next(core.parameters()).device
    model_state = {
        k[len("model.") :]: v.to(device) for k, v in tensors.items() if k.startswith("model.")
    }
    try:
        core.load_state_dict(model_state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise PplEdgeError(f"{path} does not match its model config: {first}") from None
    ts = meta["train_state"]
    state = _position(ts, path)
    try:
        if optimizer is not None and "optimizer" in ts:
            optim = {k: v for k, v in tensors.items() if k.startswith("optim.")}
            optimizer_from_tensors(optimizer, optim, ts["optimizer"])
        if scaler is not None and ts.get("grad_scaler"):
            scaler.load_state_dict(ts["grad_scaler"])
        rng_from_tensors(tensors, ts.get("rng", {}))
    except PplEdgeError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, RuntimeError) as err:
        raise PplEdgeError(
            f"{path}: the optimiser or RNG state cannot be restored ({type(err).__name__}: "
            f"{err}); the checkpoint is damaged (its weights still load for eval and convert)"
        ) from None
    return state


def _position(ts: dict, path: str | Path) -> TrainState:
    """The stored step / epoch / batch, each a non-negative integer."""
    values = {}
    for key in ("step", "epoch", "batch_in_epoch"):
        value = ts.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PplEdgeError(
                f"{path}: train_state.{key} must be a non-negative integer, got {value!r}; the "
                "checkpoint is damaged"
            )
        values[key] = value
    return TrainState(**values)
