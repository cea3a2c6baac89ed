"""Checkpoints: safetensors tensors + JSON metadata, never pickled objects (house style 5).

One ``.safetensors`` file holds the model's weights and buffers under ``model.``, optionally the
optimiser's tensors under ``optim.`` and RNG states under ``rng.``; the safetensors metadata holds
``format``, ``format_version``, ``ppl_edge_version``, ``model_config`` and ``train_state`` as JSON
strings. Loading parses only tensors and JSON, so an untrusted checkpoint cannot execute code.
Writes go to a temporary name and are renamed into place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import atomic_write_bytes

FORMAT = "ppl-edge-checkpoint"
FORMAT_VERSION = 1
MAX_METADATA_CHARS = 16 << 20  # 16 M characters: optimiser layouts of the base model need < 1 M


def save_checkpoint(
    path: str | Path,
    tensors: dict[str, Any],
    model_config: dict[str, Any],
    train_state: dict[str, Any] | None = None,
    joints: dict[str, Any] | None = None,
) -> None:
    """Save tensors (name -> torch.Tensor) with JSON metadata, atomically.

    Args:
        path: destination ``.safetensors`` file; its folder must exist.
        tensors: flat mapping; use the ``model.`` / ``optim.`` / ``rng.`` / ``joints.`` prefixes.
        model_config: ``ModelConfig`` as a dict.
        train_state: JSON-serialisable training state (step, config, optimiser layout, ...).
        joints: the named-joint map's description (names, edges, swap pairs, fit report), its
            matrix being the ``joints.map`` tensor (``ppl-edge name``).
    """
    from safetensors.torch import save

    from ppl_edge import __version__

    path = Path(path)
    if not path.parent.is_dir():
        raise PplEdgeError(f"checkpoint folder does not exist: {path.parent}")
    meta = {
        "format": FORMAT,
        "format_version": str(FORMAT_VERSION),
        "ppl_edge_version": __version__,
        "model_config": json.dumps(model_config),
        "train_state": json.dumps(train_state or {}),
    }
    if joints is not None:
        meta["joints"] = json.dumps(joints)
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write_bytes(path, save(contiguous, metadata=meta))


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Parse and validate a checkpoint's metadata without loading tensors."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise PplEdgeError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except Exception as err:  # safetensors raises its own error types for foreign files
        raise PplEdgeError(
            f"{path} is not a ppl-edge checkpoint (expected a .safetensors file written by "
            f"'ppl-edge train'): {err}"
        ) from err
    if meta.get("format") != FORMAT:
        raise PplEdgeError(
            f"{path} is a safetensors file but not a ppl-edge checkpoint "
            f"(format={meta.get('format')!r}, expected {FORMAT!r})"
        )
    try:
        version = int(meta.get("format_version", "0"))
    except ValueError:
        raise PplEdgeError(
            f"{path}: checkpoint format_version {meta.get('format_version')!r} is not a number"
        ) from None
    if version > FORMAT_VERSION:
        raise PplEdgeError(
            f"{path} has checkpoint format {version}; this ppl-edge reads up to "
            f"{FORMAT_VERSION}: upgrade"
        )
    return {
        "format_version": version,
        "ppl_edge_version": meta.get("ppl_edge_version"),
        "model_config": _json_field(meta, "model_config", path, required=True),
        "train_state": _json_field(meta, "train_state", path, required=False),
        "joints": _json_field(meta, "joints", path, required=False) or None,
    }


def _json_field(meta: dict[str, str], key: str, path: Path, required: bool) -> dict[str, Any]:
    """A metadata entry that must hold a JSON object (bounded in size and nesting)."""
    text = meta.get(key)
    if text is None:
        if required:
            raise PplEdgeError(f"{path}: checkpoint metadata lacks '{key}'; it is damaged")
        return {}
    if len(text) > MAX_METADATA_CHARS:
        raise PplEdgeError(
            f"{path}: checkpoint metadata '{key}' holds {len(text)} characters (at most "
            f"{MAX_METADATA_CHARS}); it is damaged"
        )
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise PplEdgeError(
            f"{path}: checkpoint metadata '{key}' is not valid JSON: {err}"
        ) from None
    if not isinstance(value, dict):
        raise PplEdgeError(
            f"{path}: checkpoint metadata '{key}' must be a JSON object, got {type(value).__name__}"
        )
    return value


def load_tensors(path: str | Path, prefix: str | None = None) -> dict[str, Any]:
    """Load tensors (optionally only those under ``prefix``, with the prefix stripped)."""
    from safetensors.torch import load_file

    read_metadata(path)
    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors' own error types: truncated or damaged data
        raise PplEdgeError(
            f"{path}: checkpoint tensors cannot be read ({err}); it is damaged"
        ) from None
    if prefix is None:
        return tensors
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def load_model(path: str | Path, device: str = "cpu"):
    """Rebuild a PoseModel from a checkpoint, in eval mode.

    Returns:
        (model, metadata): the model on ``device`` and the parsed metadata.
    """
    from ppl_edge.config_utils import from_dict
    from ppl_edge.model.config import ModelConfig
    from ppl_edge.model.ppl import PoseModel

    meta = read_metadata(path)
    cfg = from_dict(ModelConfig, meta["model_config"], where=f"model_config of {path}")
    model = PoseModel(cfg)
    state = load_tensors(path, prefix="model.")
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a tensor of the wrong shape
        first = str(err).strip().splitlines()[-1].strip()
        raise PplEdgeError(f"{path} does not match its model_config: {first}") from None
    if missing or unexpected:
        raise PplEdgeError(
            f"{path} does not match its model_config: missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]}"
        )
    bad = [k for k, t in state.items() if t.is_floating_point() and not bool(t.isfinite().all())]
    if bad:
        raise PplEdgeError(
            f"{path} holds NaN or infinite weights ({', '.join(sorted(bad)[:3])}"
            f"{', ...' if len(bad) > 3 else ''}): its training diverged; use an earlier checkpoint "
            "(a run keeps previous.safetensors beside latest.safetensors)"
        )
    return model.to(device).eval(), meta


def model_tensors(model) -> dict[str, Any]:
    """The model's state dict under the ``model.`` prefix."""
    return {f"model.{k}": v for k, v in model.state_dict().items()}


def strip_to_weights(src: str | Path, dst: str | Path) -> None:
    """Write a release copy of a training checkpoint: model tensors only, no optimiser or RNG state.

    The metadata keeps the model config and the run's step and training config, so the copy still
    says how it was made.
    """
    meta = read_metadata(src)
    state = meta["train_state"]
    keep = {k: state[k] for k in ("step", "epoch", "train_config", "git_sha") if k in state}
    tensors = {k: v for k, v in load_tensors(src).items() if k.startswith(("model.", "joints."))}
    save_checkpoint(dst, tensors, meta["model_config"], keep, meta.get("joints"))
