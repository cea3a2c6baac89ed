"""The export manifest (``manifest.json``) and model path resolution, for the torch-free runtime.

The manifest carries everything the runtime must not re-declare (house style 11): input size, colour
order and normalisation, keypoint count and names, skeleton edges, memory shape and the distance
scale of the pose plausibility, and the sha256 of every artifact (docs/contracts.md, "Export
artifacts").

A model is given as an export folder, a ``manifest.json``, a ``.onnx`` file, a TensorRT ``.engine``
or a Core ML ``.mlpackage``; :func:`resolve_model` finds the manifest and every artifact that goes
with it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppl_edge.errors import PplEdgeError
from ppl_edge.export_format import FORMAT, FORMAT_VERSION, MANIFEST_NAME, sha256_path

log = logging.getLogger(__name__)


class ManifestError(PplEdgeError):
    """A manifest is missing, unreadable or lacks a field the runtime needs."""


def _get(data: dict, dotted: str, kind: type | tuple[type, ...], where: Path) -> Any:
    """Fetch ``a.b.c`` from nested dicts and check its type; ManifestError names the field."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ManifestError(f"{where}: field '{dotted}' is missing; re-export the model with "
                                "'ppl-edge convert'")
        node = node[part]
    if isinstance(node, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ManifestError(f"{where}: field '{dotted}' must be {_kind_name(kind)}, got {node!r}")
    if not isinstance(node, kind):
        raise ManifestError(f"{where}: field '{dotted}' must be {_kind_name(kind)}, got {node!r}")
    return node


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


@dataclass(frozen=True)
class InputSpec:
    """How a frame becomes the model input: ``(rgb * scale - mean) / std``, NCHW, height x width."""

    name: str
    height: int
    width: int
    color: str  # "RGB" or "BGR": channel order the model expects
    scale: float
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class Manifest:
    """A validated ``manifest.json``.

    Attributes:
        path: the manifest file; artifacts are resolved relative to its folder.
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
    """

    path: Path
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

    @property
    def folder(self) -> Path:
        """The folder the manifest (and its artifacts) live in."""
        return self.path.parent

    def artifact_path(self, key: str) -> Path | None:
        """Path of artifact ``key`` (e.g. "keypoints", "refine"), or None if the export has none."""
        entry = self.artifacts.get(key)
        if not entry:
            return None
        return self.folder / entry["file"]

    def verify(self, key: str) -> None:
        """Check that artifact ``key`` exists and matches its recorded sha256.

        Raises:
            ManifestError: the file is missing or its content differs from the export.
        """
        path = self.artifact_path(key)
        if path is None:
            raise ManifestError(f"{self.path}: no artifact '{key}'; it lists "
                                f"{sorted(self.artifacts)}")
        if not path.exists():
            raise ManifestError(f"artifact '{key}' is missing: {path} (listed in {self.path})")
        expected = self.artifacts[key].get("sha256")
        if not expected:
            log.warning("manifest %s records no sha256 for '%s'; not verified", self.path, key)
            return
        actual = sha256_path(path)
        if actual != expected:
            raise ManifestError(f"artifact {path} has sha256 {actual[:12]}…, the manifest expects "
                                f"{expected[:12]}…; the file was changed after export: "
                                "re-export it")


def parse_manifest(data: dict[str, Any], path: Path) -> Manifest:
    """Validate a manifest document; ``path`` locates it (for messages and artifact paths).

    Raises:
        ManifestError: a field is missing, has the wrong type, or the format is unsupported.
    """
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a JSON object, got {type(data).__name__}")
    fmt = data.get("format")
    if fmt != FORMAT:
        raise ManifestError(f"{path}: 'format' is {fmt!r}, expected {FORMAT!r}; is this a ppl-edge "
                            "export manifest?")
    version = _get(data, "format_version", int, path)
    if version > FORMAT_VERSION:
        raise ManifestError(f"{path}: format_version {version} is newer than this runtime reads "
                            f"({FORMAT_VERSION}); upgrade ppl-edge")
    mean = _get(data, "input.mean", list, path)
    std = _get(data, "input.std", list, path)
    if len(mean) != 3 or len(std) != 3 or any(float(s) == 0 for s in std):
        raise ManifestError(f"{path}: input.mean and input.std need 3 values (std non-zero), got "
                            f"{mean} and {std}")
    color = _get(data, "input.color", str, path).upper()
    layout = _get(data, "input.layout", str, path).upper()
    if color not in ("RGB", "BGR") or layout != "NCHW":
        raise ManifestError(f"{path}: input color/layout {color}/{layout} unsupported; expected "
                            "RGB or BGR, NCHW")
    inp = InputSpec(
        name=_get(data, "input.name", str, path),
        height=_get(data, "input.height", int, path),
        width=_get(data, "input.width", int, path),
        color=color,
        scale=float(_get(data, "input.scale", (int, float), path)),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )
    n = _get(data, "keypoints.count", int, path)
    names = data["keypoints"].get("names") or [f"kp{i:02d}" for i in range(n)]
    coords = data["keypoints"].get("coords", "xy_norm")
    if len(names) != n or coords != "xy_norm":
        raise ManifestError(f"{path}: keypoints need {n} names and coords 'xy_norm', got "
                            f"{len(names)} names and {coords!r}")
    edges = _get(data, "skeleton.edges", list, path)
    try:
        edges_t = tuple((int(i), int(j)) for i, j in edges)
    except (TypeError, ValueError) as err:
        raise ManifestError(f"{path}: skeleton.edges must be [[i, j], ...], got {edges!r}") from err
    if any(not (0 <= i < n and 0 <= j < n) for i, j in edges_t):
        raise ManifestError(f"{path}: skeleton.edges reference keypoints outside 0..{n - 1}")
    weights = tuple(float(w) for w in data["skeleton"].get("weights") or ())
    artifacts = _get(data, "artifacts", dict, path)
    for key, entry in artifacts.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
            raise ManifestError(f"{path}: artifacts.{key} must be {{'file': ..., 'sha256': ...}}, "
                                f"got {entry!r}")
    batch = data.get("batch") or {}
    return Manifest(
        path=path, input=inp, num_keypoints=n, keypoint_names=tuple(str(s) for s in names),
        edges=edges_t, edge_weights=weights,
        banks=_get(data, "memory.banks", int, path),
        entries=_get(data, "memory.entries", int, path),
        dim=_get(data, "memory.dim", int, path),
        distance_reference=float(_get(data, "memory.distance_reference", (int, float), path)),
        dynamic_batch=bool(batch.get("dynamic", False)), max_batch=int(batch.get("max", 1)),
        artifacts=artifacts, raw=data,
    )


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate ``manifest.json``.

    Raises:
        ManifestError: the file does not exist, is not JSON, or fails validation.
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path}; an export folder holds manifest.json "
                            "beside keypoints.onnx ('ppl-edge convert' writes it)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(f"{path} is not valid JSON: {err}") from err
    return parse_manifest(data, path)


@dataclass(frozen=True)
class ModelFiles:
    """Everything found for one model: the manifest and the artifacts each backend can use.

    Attributes:
        manifest: the validated manifest.
        given: the path the user passed.
        onnx: keypoint graph for ONNX Runtime (keypoints.onnx, or the .onnx file given).
        engine: TensorRT engine of the keypoint path, if any.
        mlpackage: Core ML package of the keypoint path, if any.
        refine: refine.onnx ((image, keypoints) -> reconstruction), for image-space refinement.
        memory: memory.onnx (keypoints -> memory reconstruction), for memory refinement beyond 1
            iteration; optional.
    """

    manifest: Manifest
    given: Path
    onnx: Path | None
    engine: Path | None
    mlpackage: Path | None
    refine: Path | None
    memory: Path | None


_ENGINE_KEYS = ("keypoints_engine", "engine", "tensorrt")
_COREML_KEYS = ("keypoints_coreml", "coreml", "mlpackage")


def _sidecar_manifest(engine: Path) -> Manifest | None:
    """The manifest of a cached engine: a JSON sidecar ``<engine>.json`` or ``<stem>.json`` holding
    either a manifest or ``{"manifest": <path relative to the sidecar, or a manifest object>}``."""
    for sidecar in (engine.with_name(engine.name + ".json"), engine.with_suffix(".json")):
        if not sidecar.is_file():
            continue
        try:
            data = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ManifestError(f"engine sidecar {sidecar} is not valid JSON: {err}") from err
        ref = data.get("manifest", data) if isinstance(data, dict) else data
        if isinstance(ref, str):
            return load_manifest((sidecar.parent / ref).resolve())
        return parse_manifest(ref, sidecar)
    return None


def _find(manifest: Manifest, keys: tuple[str, ...], suffix: str) -> Path | None:
    """An artifact by manifest key, else the only file with ``suffix`` in the export folder."""
    for key in keys:
        path = manifest.artifact_path(key)
        if path is not None and path.exists():
            return path
    found = sorted(manifest.folder.glob(f"*{suffix}"))
    return found[0] if len(found) == 1 else None


def _existing(manifest: Manifest, key: str) -> Path | None:
    path = manifest.artifact_path(key)
    return path if path is not None and path.exists() else None


def resolve_model(path: str | Path) -> ModelFiles:
    """Find the manifest and artifacts for a model path.

    Args:
        path: an export folder, its manifest.json, a .onnx file (manifest beside it), a TensorRT
            .engine (manifest beside it or in its cache sidecar) or a .mlpackage (manifest beside
            it).

    Raises:
        PplEdgeError: the path does not exist or is not one of the forms above.
        ManifestError: no valid manifest goes with it.
    """
    given = Path(path).expanduser()
    if not given.exists():
        raise PplEdgeError(f"model not found: {given}; expected an export folder, manifest.json, "
                           ".onnx, .engine or .mlpackage")
    suffix = given.suffix.lower()
    if given.is_dir() and suffix != ".mlpackage":
        manifest = load_manifest(given / MANIFEST_NAME)
    elif given.name == MANIFEST_NAME or suffix == ".json":
        manifest = load_manifest(given)
    elif suffix in (".onnx", ".mlpackage"):
        manifest = load_manifest(given.parent / MANIFEST_NAME)
    elif suffix in (".engine", ".plan", ".trt"):
        manifest = _sidecar_manifest(given)
        if manifest is None:
            manifest = load_manifest(given.parent / MANIFEST_NAME)
    else:
        raise PplEdgeError(f"unsupported model file {given.name!r}; expected an export folder, "
                           "manifest.json, .onnx, .engine or .mlpackage")
    onnx = given if suffix == ".onnx" else _existing(manifest, "keypoints")
    engine = given if suffix in (".engine", ".plan", ".trt") else _find(manifest, _ENGINE_KEYS,
                                                                         ".engine")
    mlpackage = given if suffix == ".mlpackage" else _find(manifest, _COREML_KEYS, ".mlpackage")
    return ModelFiles(manifest=manifest, given=given, onnx=onnx, engine=engine,
                      mlpackage=mlpackage, refine=_existing(manifest, "refine"),
                      memory=_existing(manifest, "memory"))
