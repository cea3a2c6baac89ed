"""The one protocol every inference backend implements (house style 9), and the class a backend
subclasses to declare itself to the registry (``runtime/backends/__init__.py``).

A backend wraps one compiled graph (an ONNX model, a TensorRT engine, a Core ML package) and runs it
on NumPy arrays: ``run(feeds) -> outputs``, both keyed by tensor name. It owns its native resources
and releases them in ``close()``; it is a context manager.

A backend class also declares, as class attributes and class methods, what the registry needs
without opening anything: its name, the file suffixes it opens, the manifest keys of its keypoint
artifact, whether it can run on this machine (and if not, why, naming the pip extra) and the
options the estimator opens it with. Its module imports its native library only when a backend is
opened, so reading these declarations is cheap. Adding a backend: one module with a
:class:`BackendBase` subclass, and one line in ``BACKENDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from ppl_edge.errors import PplEdgeError

if TYPE_CHECKING:
    from ppl_edge.manifest import Manifest
    from ppl_edge.runtime.config import RuntimeConfig


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
        """Run the graph on ``feeds`` (name -> array); return every output by name, as new
        arrays the caller owns (never a buffer the backend reuses: the estimator hands them on
        as the Results' arrays)."""
        ...

    def close(self) -> None:
        """Release native resources; further ``run`` calls raise."""
        ...

    def __enter__(self) -> Backend: ...

    def __exit__(self, *exc) -> None: ...


class BackendBase:
    """Shared behaviour: I/O specs, context manager, closed-state check, feed validation; and the
    declarations of a backend class (override them in a subclass).

    Subclasses set ``_inputs`` and ``_outputs`` (lists of :class:`TensorSpec`) when they load.

    Attributes:
        name: the backend's name in ``BACKENDS``, ``--backend`` and ``Estimator(backend=...)``.
        suffixes: suffixes of the files it opens; the first is the one an export writes.
        artifact_keys: manifest artifact keys of its keypoint graph, tried in order.
        artifact_kind: what that artifact is called in messages ("a TensorRT engine").
        find_alone: without a manifest key, take the export folder's only ``suffixes[0]`` file,
            provided that :meth:`pairs_with` the manifest (an artifact the manifest does not list
            is never paired with it on its name alone).
        auto_rank: backend "auto" tries the usable backends with an artifact by ascending rank.
        aux_artifact_keys: refinement graph role ("refine", "memory") -> manifest keys of this
            backend's own builds of it (``runtime/aux_graphs.py``); roles without one run on
            ONNX Runtime.
    """

    name: ClassVar[str] = "base"
    suffixes: ClassVar[tuple[str, ...]] = ()
    artifact_keys: ClassVar[tuple[str, ...]] = ()
    artifact_kind: ClassVar[str] = "model file"
    find_alone: ClassVar[bool] = False
    auto_rank: ClassVar[int] = 100
    aux_artifact_keys: ClassVar[dict[str, tuple[str, ...]]] = {}
    _closed = False
    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    # -- declarations (read by the registry; nothing is opened) ---------------------------------
    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this backend cannot run on this machine, or None when it can (cheap checks only)."""
        return None

    @classmethod
    def options(cls, config: RuntimeConfig, manifest: Manifest) -> dict[str, Any]:
        """The keyword arguments the estimator opens this backend with."""
        return {}

    @classmethod
    def claims(cls, path: Path) -> bool:
        """Whether ``path`` is a file this backend opens (by suffix)."""
        return path.suffix.lower() in cls.suffixes

    @classmethod
    def find_artifact(cls, manifest: Manifest) -> Path | None:
        """This backend's keypoint artifact in an export: by manifest key, else (``find_alone``)
        the folder's only ``suffixes[0]`` file if it :meth:`pairs_with` the manifest; None when
        there is none."""
        for key in cls.artifact_keys:
            path = manifest.artifact_path(key)
            if path is not None and path.exists():
                return path
        if not cls.find_alone:
            return None
        found = sorted(manifest.folder.glob(f"*{cls.suffixes[0]}"))
        return found[0] if len(found) == 1 and cls.pairs_with(found[0], manifest) else None

    @classmethod
    def pairs_with(cls, path: Path, manifest: Manifest) -> bool:
        """Whether an artifact the manifest does not list was made from its model (e.g. a sidecar
        that names the model's digest); False: unlisted files are never used."""
        return False

    @classmethod
    def recorded_sha256(cls, path: Path) -> str | None:
        """The sha256 recorded for an artifact outside any manifest listing (e.g. in a cached
        engine's sidecar), for verification; None when nothing records it."""
        return None

    @classmethod
    def artifact_manifest(cls, path: Path) -> Manifest | None:
        """The manifest that goes with an artifact file when it is not the ``manifest.json``
        beside it (e.g. a cached engine's sidecar); None: the one beside it."""
        return None

    # -- instances ------------------------------------------------------------------------------
    @property
    def batch_range(self) -> tuple[int, int] | None:
        """(min, max) batch the opened graph runs when the graph itself fixes it (a TensorRT
        engine's optimisation profile); None: the manifest's batch limit applies."""
        return None

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
