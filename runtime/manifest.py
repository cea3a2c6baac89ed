"""Model path resolution for the torch-free runtime: from an export folder, a ``manifest.json``, a
``.onnx`` file, a TensorRT ``.engine`` or a Core ML ``.mlpackage`` to the validated
:class:`ppl_edge.manifest.Manifest` and every artifact that goes with it (:func:`resolve_model`).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import (  # noqa: F401  (InputSpec, ManifestError: re-exported)
    MANIFEST_NAME,
    InputSpec,
    Manifest,
    ManifestError,
)

log = logging.getLogger(__name__)

SHIPPED_MODEL = "ppl-small-humanoid"


def parse_manifest(data: dict[str, Any], path: Path) -> Manifest:
    """Validate a manifest document (:meth:`Manifest.from_dict`)."""
    return Manifest.from_dict(data, path)


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate ``manifest.json`` (:meth:`Manifest.load`)."""
    return Manifest.load(path)


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
        raise PplEdgeError(
            f"model not found: {given}; expected an export folder, manifest.json, "
            ".onnx, .engine or .mlpackage"
        )
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
        raise PplEdgeError(
            f"unsupported model file {given.name!r}; expected an export folder, "
            "manifest.json, .onnx, .engine or .mlpackage"
        )
    onnx = given if suffix == ".onnx" else _existing(manifest, "keypoints")
    engine = (
        given
        if suffix in (".engine", ".plan", ".trt")
        else _find(manifest, _ENGINE_KEYS, ".engine")
    )
    mlpackage = given if suffix == ".mlpackage" else _find(manifest, _COREML_KEYS, ".mlpackage")
    return ModelFiles(
        manifest=manifest,
        given=given,
        onnx=onnx,
        engine=engine,
        mlpackage=mlpackage,
        refine=_existing(manifest, "refine"),
        memory=_existing(manifest, "memory"),
    )


def default_model_path() -> Path:
    """The shipped export: ``$PPL_EDGE_MODEL``, else ``models/ppl-small-humanoid`` of the source
    tree, else of the working directory.

    Raises:
        PplEdgeError: none of them exists.
    """
    env = os.environ.get("PPL_EDGE_MODEL")
    candidates = [Path(env)] if env else []
    candidates += [
        Path(__file__).resolve().parents[1] / "models" / SHIPPED_MODEL,
        Path.cwd() / "models" / SHIPPED_MODEL,
    ]
    for path in candidates:
        if path.exists():
            return path
    raise PplEdgeError(
        f"no --model given and the shipped model is not at "
        f"{' or '.join(str(p) for p in candidates)}; pass --model EXPORT_DIR "
        "(written by 'ppl-edge convert')"
    )
