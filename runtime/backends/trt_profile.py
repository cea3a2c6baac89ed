"""The batch range of a TensorRT engine, read from its optimisation profile, and the checks made
before each inference against it.

An engine built with a dynamic batch accepts only the batches of its optimisation profile
(``ppl-edge convert --target trt --max-batch``, default 8), whatever the manifest's ``batch.max``
says (the ONNX graphs' limit, 64). The profile is read from the engine itself, for every input whose
batch dimension is dynamic: ``engine.get_tensor_profile_shape(name, 0)`` (TensorRT >= 8.5, hence
10 and 11) or ``engine.get_profile_shape(0, name)`` (older 8.x bindings). Every batch is checked
against it before ``set_input_shape``, whose return value is checked too, so a batch outside the
profile is one line naming the batch and the range instead of a failure deep inside enqueue.

No TensorRT import here: the functions take the engine and execution context objects, so they are
tested with stand-ins on machines without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ppl_edge.errors import PplEdgeError


@dataclass(frozen=True)
class BatchProfile:
    """The batch sizes an engine accepts: ``min`` <= batch <= ``max``, tuned for ``opt``."""

    min: int
    opt: int
    max: int

    def __str__(self) -> str:
        return f"{self.min}..{self.max} (opt {self.opt})"

    @property
    def range(self) -> tuple[int, int]:
        """(min, max)."""
        return self.min, self.max


def _dims(shape: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


def tensor_profile(engine: Any, name: str, profile: int = 0) -> tuple[tuple[int, ...], ...]:
    """(min, opt, max) shapes of input ``name`` in optimisation profile ``profile``.

    Raises:
        PplEdgeError: the engine's bindings have neither profile query.
    """
    getter = getattr(engine, "get_tensor_profile_shape", None)
    if getter is not None:  # TensorRT >= 8.5 (10, 11)
        shapes = getter(name, profile)
    elif hasattr(engine, "get_profile_shape"):  # TensorRT 8.x before the name-based API
        shapes = engine.get_profile_shape(profile, name)
    else:
        raise PplEdgeError(
            "this TensorRT's Python bindings have neither get_tensor_profile_shape nor "
            "get_profile_shape; TensorRT 8.6 or newer is needed"
        )
    lo, opt, hi = (_dims(s) for s in shapes)
    return lo, opt, hi


def input_names(engine: Any, input_mode: Any) -> list[str]:
    """The engine's input tensor names, in order (``input_mode``: ``trt.TensorIOMode.INPUT``)."""
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    return [n for n in names if engine.get_tensor_mode(n) == input_mode]


def batch_profile(engine: Any, inputs: list[str], label: str) -> BatchProfile:
    """The batch range every input of the engine accepts (profile 0).

    An input with a fixed batch dimension b contributes b..b; dynamic ones their profile's
    min/opt/max; the result is the range common to all.

    Raises:
        PplEdgeError: the inputs' ranges do not overlap (an engine no batch can run).
    """
    ranges = []
    for name in inputs:
        declared = _dims(engine.get_tensor_shape(name))
        if not declared:
            continue
        if declared[0] >= 0:
            ranges.append((declared[0],) * 3)
        else:
            lo, opt, hi = tensor_profile(engine, name)
            ranges.append((lo[0], opt[0], hi[0]))
    if not ranges:
        return BatchProfile(1, 1, 1)
    lo, hi = max(r[0] for r in ranges), min(r[2] for r in ranges)
    if lo > hi or hi < 1:
        raise PplEdgeError(
            f"{label}: its inputs' optimisation profiles share no batch size "
            f"({', '.join(f'{n}: {r[0]}..{r[2]}' for n, r in zip(inputs, ranges))}); rebuild it"
        )
    opt = min(max(ranges[0][1], lo), hi)
    return BatchProfile(max(lo, 1), opt, hi)


def check_batch(profile: BatchProfile, name: str, shape: tuple[int, ...], label: str) -> None:
    """Refuse a batch outside the profile, in one line.

    Raises:
        PplEdgeError: ``shape[0]`` is not in profile.min..profile.max.
    """
    batch = int(shape[0]) if shape else 1
    if not profile.min <= batch <= profile.max:
        raise PplEdgeError(
            f"{label} received a batch of {batch} on input '{name}' {tuple(shape)}, but its "
            f"optimisation profile takes {profile.min}..{profile.max}: split the batch, or "
            f"rebuild the engine with --max-batch {batch}"
        )


def set_input_shape(
    context: Any, name: str, shape: tuple[int, ...], profile: BatchProfile, label: str
) -> None:
    """:func:`check_batch`, then ``context.set_input_shape``, whose refusal (False) is one line.

    Raises:
        PplEdgeError: a batch outside the profile, or a shape TensorRT refuses.
    """
    check_batch(profile, name, shape, label)
    if context.set_input_shape(name, tuple(int(d) for d in shape)) is False:
        raise PplEdgeError(
            f"{label}: TensorRT refused input '{name}' of shape {tuple(shape)} (batch profile "
            f"{profile}); the engine was built for other input dimensions: rebuild it for this "
            "model"
        )
