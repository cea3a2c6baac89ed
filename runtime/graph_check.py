"""The manifest checked against the graphs it describes, when they are opened: input size, keypoint
count N, memory banks M and dtypes must be what the opened graph declares, so that a manifest that
disagrees with its graph fails in one line at open instead of at every frame (or silently).

Only what a graph declares is compared: dynamic dimensions (the batch, any symbolic one) and
graphs that declare no shape (some Core ML outputs) pass.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ppl_edge.manifest import ManifestError
from ppl_edge.runtime.backends import open_backend

if TYPE_CHECKING:
    from ppl_edge.manifest import Manifest
    from ppl_edge.runtime.backends.base import Backend, TensorSpec

FLOAT = "f"  # dtype kinds: float; "n" any number
NUMBER = "n"


def expected_io(manifest: Manifest, role: str) -> tuple[dict, dict]:
    """(inputs, outputs) a graph of ``role`` ("keypoints", "refine", "memory") must declare:
    name -> (shape with None for the batch, dtype kind, what the manifest field is); the keypoint
    graph's image input is its first input, whatever its name."""
    h, w, n, m = manifest.input.height, manifest.input.width, manifest.num_keypoints, manifest.banks
    image = ((None, 3, h, w), FLOAT, f"input.height x input.width {h}x{w}")
    points = ((None, n, 2), FLOAT, f"keypoints.count {n}")
    ids = ((None, m), NUMBER, f"memory.banks {m}")
    distances = ((None, m), FLOAT, f"memory.banks {m}")
    if role == "refine":
        return {"image": image, "keypoints": points}, {"reconstruction": image}
    lookup = {"keypoints_refined": points, "prototype_ids": ids, "prototype_distances": distances}
    if role == "memory":
        return {"keypoints": points}, lookup
    outputs = {"keypoints": points, **lookup, "confidence": ((None, n), FLOAT, points[2])}
    return {0: image}, outputs


def _shape(dims: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _problem(spec: TensorSpec, want: tuple[tuple, str, str], kind: str) -> str | None:
    shape, dtype_kind, field = want
    known = tuple(spec.shape)
    fixed = len(known) == len(shape) and all(
        g is None or e is None or g == e for g, e in zip(known, shape)
    )
    if known and not fixed:
        return (
            f"{kind} '{spec.name}' has shape {_shape(known)}, the manifest says {_shape(shape)} "
            f"({field})"
        )
    got = spec.dtype.kind
    if (dtype_kind == FLOAT and got != "f") or (dtype_kind == NUMBER and got not in "fiu"):
        expected = "floating-point" if dtype_kind == FLOAT else "numeric"
        return f"{kind} '{spec.name}' is {spec.dtype}, the runtime needs a {expected} tensor"
    return None


def check_graph(inputs: list, outputs: list, manifest: Manifest, role: str, label: str) -> None:
    """Compare a graph's declared inputs and outputs (lists of TensorSpec) with the manifest.

    Raises:
        ManifestError: one line naming the tensor, its declared shape or dtype, and the manifest
            field it contradicts.
    """
    want_in, want_out = expected_io(manifest, role)
    by_name = {s.name: s for s in outputs}
    problems = []
    for key, want in want_in.items():
        spec = inputs[key] if isinstance(key, int) and len(inputs) > key else None
        spec = spec or next((s for s in inputs if s.name == key), None)
        problems.append(
            f"it has no input '{key}'" if spec is None else _problem(spec, want, "input")
        )
    for name, want in want_out.items():
        spec = by_name.get(name)
        problems.append(
            f"it has no output '{name}'" if spec is None else _problem(spec, want, "output")
        )
    found = [p for p in problems if p]
    if found:
        raise ManifestError(
            f"{label} does not match its manifest {manifest.path}: {found[0]}; re-export the model "
            "with 'ppl-edge convert' (or correct the manifest)"
        )


def open_checked(
    name: str, path: Path, manifest: Manifest, role: str = "keypoints", **options: Any
) -> Backend:
    """Open backend ``name`` on ``path`` and :func:`check_graph` it; closed again on a mismatch."""
    backend = open_backend(name, path, **options)
    try:
        check_graph(backend.input_spec, backend.output_spec, manifest, role, Path(path).name)
    except BaseException:
        backend.close()
        raise
    return backend
