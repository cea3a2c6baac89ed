"""What an export is made from: a PoseModel with its name, preset, checkpoint digest and training
category (:class:`ExportSource`), resolved from a model or a checkpoint path by
:func:`load_source`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppl_edge.errors import PplEdgeError

DEFAULT_DATA = "synthetic:humanoid"


@dataclass(frozen=True)
class ExportSource:
    """What an export is made from.

    model: PoseModel in eval mode; name: e.g. "ppl-small-humanoid"; preset: "tiny"/"small"/"base"
    or "custom"; checkpoint_sha256: of the checkpoint file (of the serialised state dict for an
    in-memory model); data: dataset spec of the training category (for
    ``memory.distance_reference``); joints: the named joints
    (:class:`~ppl_edge.named_joints.NamedJoints`: a stored ``ppl-edge name`` map or a template
    prior's identity), None when the model names none.
    """

    model: Any
    name: str
    preset: str
    checkpoint_sha256: str
    data: str
    joints: Any = None


def _preset_of(cfg) -> str:
    from ppl_edge.model.config import PRESETS

    return next((name for name, p in PRESETS.items() if p == cfg), "custom")


def _data_of(train_state: dict) -> str | None:
    """The first ``synthetic:...`` dataset spec found in a checkpoint's train state, if any."""
    stack = [train_state]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str) and item.startswith("synthetic:"):
            return item
    return None


def load_source(
    model_or_checkpoint, name: str | None = None, data: str | None = None
) -> ExportSource:
    """Resolve a PoseModel or a checkpoint path into an :class:`ExportSource`.

    Raises:
        PplEdgeError: the checkpoint is missing or not a ppl-edge checkpoint.
    """
    from ppl_edge.checkpoint import load_model, model_tensors
    from ppl_edge.convert.joints import checkpoint_joints, template_joints

    if isinstance(model_or_checkpoint, (str, Path)):
        path = Path(model_or_checkpoint)
        model, meta = load_model(path)
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        found = _data_of(meta.get("train_state", {}))
        default_name = path.stem
        joints = checkpoint_joints(path, model)
    elif hasattr(model_or_checkpoint, "keypoint_path"):
        from safetensors.torch import save

        model = model_or_checkpoint.eval()
        tensors = {k: v.detach().contiguous().cpu() for k, v in model_tensors(model).items()}
        digest = hashlib.sha256(save(tensors)).hexdigest()
        found, default_name = None, f"ppl-{_preset_of(model.cfg)}"
        joints = template_joints(model)
    else:
        raise PplEdgeError(
            f"expected a PoseModel or a checkpoint path, got {type(model_or_checkpoint).__name__}"
        )
    return ExportSource(
        model,
        name or default_name,
        _preset_of(model.cfg),
        digest,
        data or found or DEFAULT_DATA,
        joints,
    )
