"""The one protocol every inference backend implements (house style 9).

A backend wraps one compiled graph (an ONNX model, a TensorRT engine, a Core ML package) and runs it
on NumPy arrays: ``run(feeds) -> outputs``, both keyed by tensor name. It owns its native resources
and releases them in ``close()``; it is a context manager.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from ppl_edge.errors import PplEdgeError


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one graph input or output.

    ``shape`` holds ints for fixed dimensions and ``None`` for dynamic ones (e.g. the batch).
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


@runtime_checkable
class Backend(Protocol):
    """What the estimator needs from a backend."""

    name: str

    @property
    def input_spec(self) -> list[TensorSpec]:
        """The graph's inputs, in order."""
        ...

    @property
    def output_spec(self) -> list[TensorSpec]:
        """The graph's outputs, in order."""
        ...

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph on ``feeds`` (name -> array); return every output by name."""
        ...

    def close(self) -> None:
        """Release native resources; further ``run`` calls raise."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc) -> None: ...


class BackendBase:
    """Shared behaviour: I/O specs, context manager, closed-state check, feed validation.

    Subclasses set ``_inputs`` and ``_outputs`` (lists of :class:`TensorSpec`) when they load.
    """

    name = "base"
    _closed = False
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    @property
    def input_spec(self) -> list[TensorSpec]:
        """The graph's inputs, in order."""
        return list(self._inputs)

    @property
    def output_spec(self) -> list[TensorSpec]:
        """The graph's outputs, in order."""
        return list(self._outputs)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise PplEdgeError(f"the {self.name} backend was closed; create a new one")

    def check_feeds(
        self, feeds: dict[str, np.ndarray], specs: list[TensorSpec] | None = None
    ) -> dict:
        """Validate names and static dims and cast dtypes; return contiguous arrays by name.

        Args:
            feeds: name -> array.
            specs: the inputs to check against (default: the graph's, ``input_spec``).

        Raises:
            PplEdgeError: a missing input, or a fixed dimension that differs from the graph's.
        """
        specs = self._inputs if specs is None else specs
        out = {}
        for spec in specs:
            if spec.name not in feeds:
                raise PplEdgeError(
                    f"input '{spec.name}' missing; the graph takes "
                    f"{[s.name for s in specs]}, got {sorted(feeds)}"
                )
            arr = np.ascontiguousarray(feeds[spec.name], dtype=spec.dtype)
            fixed = [(i, d) for i, d in enumerate(spec.shape) if d is not None]
            if arr.ndim != len(spec.shape) or any(arr.shape[i] != d for i, d in fixed):
                expected = tuple("?" if d is None else d for d in spec.shape)
                raise PplEdgeError(
                    f"input '{spec.name}' has shape {arr.shape}, the graph expects "
                    f"{expected}; re-export the model for this input size"
                )
            out[spec.name] = arr
        return out
