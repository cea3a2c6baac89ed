"""The export contract: ``manifest.json``, one typed :class:`Manifest` for the exporter and the
runtime.

The manifest carries everything the runtime must not re-declare (house style 11): input size, colour
order and normalisation (:class:`InputSpec`), keypoint count and names, skeleton edges, memory shape
and the distance scale of the pose plausibility, batch range, opset, precision, the sha256 of every
artifact and the versions of the tools that made them (docs/contracts.md, "Export artifacts").

``convert`` builds the document and writes it with :func:`write_manifest`; the runtime reads it with
:meth:`Manifest.load`. Both validate it with :meth:`Manifest.from_dict`, so they cannot disagree.
Torch-free.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppl_edge import manifest_fields as fields
from ppl_edge.fileio import atomic_write_bytes
from ppl_edge.manifest_fields import MAX_COUNT, MAX_INPUT_SIDE, ManifestError
from ppl_edge.named_joints import NamedJoints, parse_section

log = logging.getLogger(__name__)

FORMAT = "ppl-edge-export"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"

# ImageNet-free normalisation of the official code: x = (rgb / 255 - 0.5) / 0.5, in [-1, 1].
INPUT_SCALE = 1.0 / 255.0
INPUT_MEAN = (0.5, 0.5, 0.5)
INPUT_STD = (0.5, 0.5, 0.5)

# Top-level keys every manifest has; the others (model, batch, opset, precision, tools) describe the
# export and default when absent.
_REQUIRED = ("format", "format_version", "input", "keypoints", "skeleton", "memory", "artifacts")
_get = fields.get  # field checks (types, finite numbers, bounds, artifact paths): manifest_fields


def sha256_path(path: str | Path) -> str:
    """Hex sha256 of a file, or of a folder (e.g. an ``.mlpackage``): each file's relative path, a
    NUL byte and its content, in sorted order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class InputSpec:
    """How a frame becomes the model input: ``(rgb * scale - mean) / std``, NCHW, height x width."""

    name: str = "image"
    height: int = 64
    width: int = 64
    color: str = "RGB"  # "RGB" or "BGR": channel order the model expects
    scale: float = INPUT_SCALE
    mean: tuple[float, float, float] = INPUT_MEAN
    std: tuple[float, float, float] = INPUT_STD

    @classmethod
    def square(cls, size: int) -> InputSpec:
        """The contract of a model trained on ``size`` x ``size`` images (the training
        pipeline's)."""
        return cls(height=int(size), width=int(size))

    def to_dict(self) -> dict[str, Any]:
        """The manifest's ``input`` section."""
        return {
            "name": self.name,
            "height": self.height,
            "width": self.width,
            "layout": "NCHW",
            "color": self.color,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
        }


def _where(path: Path | None) -> str:
    return str(path) if path is not None else "manifest"


def _input_spec(data: dict, where: str) -> InputSpec:
    mean_t = fields.numbers(data, "input.mean", where, 3)
    std_t = fields.numbers(data, "input.std", where, 3, " (std non-zero)")
    if 0.0 in std_t:
        raise ManifestError(
            f"{where}: field 'input.std' must be 3 finite numbers (std non-zero), got {list(std_t)}"
        )
    color = _get(data, "input.color", str, where).upper()
    layout = _get(data, "input.layout", str, where).upper()
    if color not in ("RGB", "BGR") or layout != "NCHW":
        raise ManifestError(
            f"{where}: input color/layout {color}/{layout} unsupported; expected RGB or BGR, NCHW"
        )
    return InputSpec(
        name=_get(data, "input.name", str, where),
        height=_get(data, "input.height", int, where, 1, MAX_INPUT_SIDE),
        width=_get(data, "input.width", int, where, 1, MAX_INPUT_SIDE),
        color=color,
        scale=float(_get(data, "input.scale", (int, float), where, 1e-12, 1e6)),
        mean=mean_t,  # type: ignore[arg-type]
        std=std_t,  # type: ignore[arg-type]
    )


def _joints(data: dict, n: int, where: str) -> NamedJoints | None:
    """The optional ``joints`` section (:mod:`ppl_edge.named_joints`)."""
    if "joints" not in data:
        return None
    try:
        return parse_section(data["joints"], n)
    except ValueError as err:
        raise ManifestError(f"{where}: {err}; re-export with 'ppl-edge convert'") from None


@dataclass(frozen=True)
class Manifest:
    """A validated ``manifest.json``.

    Attributes:
        path: the manifest file (None for a document not yet written); artifacts are resolved
            relative to its folder.
        input: preprocessing contract.
        num_keypoints: N.
        keypoint_names: N names.
        edges: skeleton edges (i, j), i < j, from the learned connectivity W.
        edge_weights: one weight per edge (empty when the export gave none).
        banks, entries, dim: memory shape M, K, D.
        distance_reference: the mean prototype distance of a typical pose (plausibility 0.5).
        dynamic_batch, max_batch: whether the graphs accept a batch dimension > 1, and its limit.
        artifacts: key -> {"file": ..., "sha256": ...} as written by the exporter.
        raw: the whole JSON document.
        joints: the named joints (names, edges, swap pairs, the map from the keypoints), or None.
    """

    path: Path | None
    input: InputSpec
    num_keypoints: int
    keypoint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    edge_weights: tuple[float, ...]
    banks: int
    entries: int
    dim: int
    distance_reference: float
    dynamic_batch: bool
    max_batch: int
    artifacts: dict[str, dict[str, str]] = field(repr=False)
    raw: dict[str, Any] = field(repr=False)
    joints: NamedJoints | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, data: Any, path: str | Path | None = None) -> Manifest:
        """Validate a manifest document; ``path`` locates it (for messages and artifact paths).

        Raises:
            ManifestError: a key is missing, has the wrong type, or the format is unsupported.
        """
        path = Path(path) if path is not None else None
        where = _where(path)
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: expected a JSON object, got {type(data).__name__}")
        fmt = data.get("format")
        if fmt != FORMAT:
            raise ManifestError(
                f"{where}: not a ppl-edge export manifest: 'format' is {fmt!r}, expected {FORMAT!r}"
            )
        version = _get(data, "format_version", int, where)
        if version > FORMAT_VERSION:
            raise ManifestError(
                f"{where}: format_version {version} is newer than this ppl-edge "
                f"reads ({FORMAT_VERSION}); upgrade ppl-edge"
            )
        missing = [key for key in _REQUIRED if key not in data]
        if missing:
            raise ManifestError(f"{where}: the manifest lacks the keys {missing}")
        inp = _input_spec(data, where)
        n, names = fields.keypoints(data, where)
        edges = fields.edges(data, n, where)
        has_weights = bool(data["skeleton"].get("weights"))
        weights = fields.numbers(data, "skeleton.weights", where, len(edges)) if has_weights else ()
        artifacts = fields.artifacts(data, where)
        reference = _get(data, "memory.distance_reference", (int, float), where, 1e-12, 1e12)
        memory = [_get(data, f"memory.{k}", int, where, 1, MAX_COUNT) for k in fields.MEMORY_FIELDS]
        dynamic_batch, max_batch = fields.batch(data, where)
        return cls(
            path=path,
            input=inp,
            num_keypoints=n,
            keypoint_names=names,
            edges=edges,
            edge_weights=weights,
            banks=memory[0],
            entries=memory[1],
            dim=memory[2],
            distance_reference=float(reference),
            dynamic_batch=dynamic_batch,
            max_batch=max_batch,
            artifacts=artifacts,
            raw=data,
            joints=_joints(data, n, where),
        )

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read and validate ``manifest.json`` (or the folder holding it).

        Raises:
            ManifestError: the file does not exist, is not JSON, or fails validation.
        """
        path = Path(path).expanduser()
        if path.is_dir():
            path = path / MANIFEST_NAME
        if not path.is_file():
            raise ManifestError(
                f"manifest not found: {path}; an export folder holds manifest.json "
                "beside keypoints.onnx ('ppl-edge convert' writes it)"
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestError(f"{path} is not valid JSON: {err}") from err
        return cls.from_dict(data, path)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (a copy)."""
        return copy.deepcopy(self.raw)

    @property
    def folder(self) -> Path:
        """The folder the manifest (and its artifacts) live in."""
        if self.path is None:
            raise ManifestError("this manifest has not been written to a folder yet")
        return self.path.parent

    def artifact_path(self, key: str) -> Path | None:
        """Path of artifact ``key`` (e.g. "keypoints", "refine"), or None if the export has none.

        Raises:
            ManifestError: the path leads out of the export folder (through a symbolic link).
        """
        entry = self.artifacts.get(key)
        if not entry:
            return None
        path = self.folder / entry["file"]
        if not path.resolve().is_relative_to(self.folder.resolve()):
            raise ManifestError(
                f"{self.path}: artifact '{key}' ({entry['file']}) leads out of the export folder "
                f"{self.folder} through a symbolic link; artifacts must lie inside it"
            )
        return path

    def verify(self, key: str) -> None:
        """Check that artifact ``key`` exists and matches its recorded sha256.

        Raises:
            ManifestError: the file is missing or its content differs from the export.
        """
        path = self.artifact_path(key)
        if path is None:
            raise ManifestError(
                f"{self.path}: no artifact '{key}'; it lists {sorted(self.artifacts)}"
            )
        if not path.exists():
            raise ManifestError(
                f"manifest artifact '{key}' is missing: {path} (listed in {self.path})"
            )
        expected = self.artifacts[key].get("sha256")
        if not expected:
            log.warning("manifest %s records no sha256 for '%s'; not verified", self.path, key)
            return
        if sha256_path(path) != expected.lower():
            raise ManifestError(
                f"artifact {path} does not match the sha256 in its manifest: the "
                "file was changed after export; re-export it"
            )

    def verify_all(self) -> None:
        """:meth:`verify` every artifact the manifest lists."""
        for key in self.artifacts:
            self.verify(key)


def dumps(document: dict[str, Any]) -> str:
    """Indented JSON with lists of numbers or short strings kept on one line; NaN is refused."""
    text = json.dumps(document, indent=2, allow_nan=False)
    return re.sub(
        r"\[\s*([^\[\]{}:]*?)\s*\]", lambda m: "[" + re.sub(r",\s+", ", ", m.group(1)) + "]", text
    )


def write_manifest(path: str | Path, document: dict[str, Any]) -> Path:
    """Validate and write a manifest document as indented JSON, atomically."""
    path = Path(path)
    Manifest.from_dict(document, path)
    try:
        text = dumps(document)
    except ValueError as err:
        raise ManifestError(
            f"{path}: the manifest holds a non-finite number ({err}); the model "
            "or its export is broken"
        ) from err
    atomic_write_bytes(path, (text + "\n").encode())
    return path
