"""Model path resolution for the torch-free runtime: from an export folder, a ``manifest.json``, a
``.onnx`` file, a TensorRT ``.engine`` or a Core ML ``.mlpackage`` to the validated
:class:`ppl_edge.manifest.Manifest` and every artifact that goes with it (:func:`resolve_model`).
Which file belongs to which backend, and where a backend finds its artifact in an export, is the
backend classes' declaration (``runtime/backends``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import (  # noqa: F401  (InputSpec: re-exported)
    MANIFEST_NAME,
    InputSpec,
    Manifest,
    ManifestError,
    sha256_path,
)
from ppl_edge.runtime.backends import backend_class, backend_classes, backend_for

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
        graphs: backend name -> its keypoint-graph artifact (keypoints.onnx, an engine, a Core ML
            package; the file given for its own backend), for every backend with one.
        refine: refine.onnx ((image, keypoints) -> reconstruction), for image-space refinement.
        memory: memory.onnx (keypoints -> memory reconstruction), for memory refinement beyond 1
            iteration; optional.
    """

    manifest: Manifest
    given: Path
    graphs: dict[str, Path]
    refine: Path | None
    memory: Path | None

    @property
    def onnx(self) -> Path | None:
        """The keypoint graph for ONNX Runtime."""
        return self.graphs.get("onnxruntime")

    @property
    def engine(self) -> Path | None:
        """The TensorRT engine of the keypoint path."""
        return self.graphs.get("tensorrt")

    @property
    def mlpackage(self) -> Path | None:
        """The Core ML package of the keypoint path."""
        return self.graphs.get("coreml")


def _existing(manifest: Manifest, key: str) -> Path | None:
    path = manifest.artifact_path(key)
    return path if path is not None and path.exists() else None


def _forms() -> str:
    """The model path forms, for messages: "an export folder, manifest.json, .onnx, ..."."""
    suffixes = [cls.suffixes[0] for cls in backend_classes()]
    return f"an export folder, {MANIFEST_NAME}, {', '.join(suffixes[:-1])} or {suffixes[-1]}"


def resolve_model(path: str | Path) -> ModelFiles:
    """Find the manifest and artifacts for a model path.

    Args:
        path: an export folder, its manifest.json, or a file of a backend (``suffixes`` of the
            backend classes: a .onnx, a TensorRT .engine, a .mlpackage) with the manifest beside it
            or, for an engine, in its cache sidecar.

    Raises:
        PplEdgeError: the path does not exist or is not one of the forms above.
        ManifestError: no valid manifest goes with it.
    """
    given = Path(path).expanduser()
    if not given.exists():
        raise PplEdgeError(f"model not found: {given}; expected {_forms()}")
    owner = backend_for(given)
    if given.is_dir() and owner is None:
        manifest = load_manifest(given / MANIFEST_NAME)
    elif given.name == MANIFEST_NAME or given.suffix.lower() == ".json":
        manifest = load_manifest(given)
    elif owner is not None:
        manifest = owner.artifact_manifest(given) or load_manifest(given.parent / MANIFEST_NAME)
    else:
        raise PplEdgeError(f"unsupported model file {given.name!r}; expected {_forms()}")
    graphs = {}
    for cls in backend_classes():
        found = given if cls is owner else cls.find_artifact(manifest)
        if found is not None:
            graphs[cls.name] = found
    return ModelFiles(
        manifest=manifest,
        given=given,
        graphs=graphs,
        refine=_existing(manifest, "refine"),
        memory=_existing(manifest, "memory"),
    )


def verify_model(files: ModelFiles, graph: Path, backend: str) -> None:
    """Check, before anything is loaded, every artifact the export lists and holds against its
    sha256, and that ``graph`` (what ``backend`` will open) is one of them, or a file whose
    backend records its digest elsewhere (a cached engine's sidecar).

    Raises:
        ManifestError: a changed or unlisted file; the message names it, never a digest.
    """
    manifest = files.manifest
    listed = set()
    for key in manifest.artifacts:
        path = manifest.artifact_path(key)
        if path.exists():
            manifest.verify(key)
            listed.add(path.resolve())
    if graph.resolve() in listed:
        return
    recorded = backend_class(backend).recorded_sha256(graph)
    if recorded is None:
        raise ManifestError(
            f"{graph} is not an artifact of its manifest {manifest.path} (it lists "
            f"{sorted(manifest.artifacts)}), so its content cannot be checked; pass the export "
            "folder or a file it lists, or turn verification off (verify=False, --no-verify)"
        )
    if sha256_path(graph) != recorded.lower():
        raise ManifestError(
            f"{graph} does not match the sha256 its sidecar records: the file was changed after it "
            "was built; rebuild it with 'ppl-edge convert --target trt'"
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
