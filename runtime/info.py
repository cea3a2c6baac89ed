"""What a model is, and whether it can run here: the facts behind ``ppl-edge info MODEL``.

:func:`describe` takes an export folder, a ``manifest.json``, an ONNX graph, a TensorRT engine (with
its ``<engine>.json`` sidecar) or a Core ML package and returns a JSON-ready dict: the manifest's
summary (N, M, K, D, input size and normalisation, names, precision, batch), every listed artifact
with its sha256 status, each graph's inputs and outputs (shapes with None for dynamic dimensions,
dtypes), an engine's precision, batch profile, TensorRT and plugin versions and GPU from its
sidecar, and which backends can run it on this machine (importable, GPU present). Nothing is run
and torch is never imported; a graph is opened only to read its declared inputs and outputs.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any

from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import MANIFEST_NAME, Manifest, ManifestError, sha256_path
from ppl_edge.runtime.aux_graphs import plan
from ppl_edge.runtime.backends import backend_classes, backend_for, open_backend, select_backend
from ppl_edge.runtime.backends.cuda_check import cuda_problem
from ppl_edge.runtime.manifest import ModelFiles, resolve_model

log = logging.getLogger(__name__)

KINDS = {
    "onnxruntime": "ONNX graph",
    "tensorrt": "TensorRT engine",
    "coreml": "Core ML package",
}


def _tensors(specs) -> list[dict[str, Any]]:
    return [{"name": s.name, "shape": list(s.shape), "dtype": str(s.dtype)} for s in specs]


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def manifest_summary(manifest: Manifest) -> dict[str, Any]:
    """The manifest's facts a deployer asks for first."""
    raw, inp = manifest.raw, manifest.input
    model = raw.get("model") or {}
    joints = manifest.joints
    return {
        "path": str(manifest.path),
        "name": model.get("name"),
        "preset": model.get("preset"),
        "checkpoint_sha256": model.get("checkpoint_sha256"),
        "ppl_edge_version": raw.get("ppl_edge_version"),
        "keypoints": manifest.num_keypoints,
        "keypoint_names": list(manifest.keypoint_names),
        "edges": len(manifest.edges),
        "memory": {"banks": manifest.banks, "entries": manifest.entries, "dim": manifest.dim},
        "input": {
            "name": inp.name,
            "height": inp.height,
            "width": inp.width,
            "color": inp.color,
            "scale": inp.scale,
            "mean": list(inp.mean),
            "std": list(inp.std),
        },
        "joint_names": list(joints.names) if joints is not None else None,
        "batch": {"dynamic": manifest.dynamic_batch, "max": manifest.max_batch},
        "precision": raw.get("precision"),
        "opset": raw.get("opset"),
        "tools": raw.get("tools") or {},
    }


def artifact_status(manifest: Manifest) -> list[dict[str, Any]]:
    """Every listed artifact: file, size and sha256 status ("ok", "changed", "missing",
    "not recorded", or "outside the folder")."""
    rows = []
    for key, entry in manifest.artifacts.items():
        row: dict[str, Any] = {"key": key, "file": entry.get("file"), "bytes": None}
        try:
            path = manifest.artifact_path(key)
        except ManifestError:
            rows.append({**row, "sha256": "outside the folder"})
            continue
        if path is None or not path.exists():
            row["sha256"] = "missing"
        elif not entry.get("sha256"):
            row.update(bytes=_size(path), sha256="not recorded")
        else:
            same = sha256_path(path) == entry["sha256"].lower()
            row.update(bytes=_size(path), sha256="ok" if same else "changed")
        rows.append(row)
    return rows


def _sidecar(engine: Path) -> dict[str, Any] | None:
    sidecar = engine.with_name(engine.name + ".json")
    if not sidecar.is_file():
        return None
    try:
        doc = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise PplEdgeError(f"engine sidecar {sidecar} is not valid JSON: {err}") from err
    if not isinstance(doc, dict):
        raise PplEdgeError(f"engine sidecar {sidecar} is not a JSON object")
    return doc


def _plugin_here(engine: Path, lookup: Any) -> str | None:
    """The plugin library the TensorRT backend would load for ``engine`` on this machine (its
    search path: $PPL_EDGE_PLUGIN_LIB, the sidecar's, beside the engine, the build folders), or
    None; not asked for an engine with the native lookup."""
    if lookup != "plugin":
        return None
    from ppl_edge.runtime.backends.tensorrt import plugin_search_path

    found = next((p for p in plugin_search_path(engine) if p.is_file()), None)
    return str(found) if found else "not found"


def engine_facts(engine: Path) -> dict[str, Any]:
    """What an engine's sidecar records: precision, lookup mode, batch profile, input size,
    TensorRT and plugin versions, GPU, and whether the engine still matches its recorded sha256."""
    doc = _sidecar(engine)
    if doc is None:
        return {"sidecar": None}
    key = doc.get("key") if isinstance(doc.get("key"), dict) else {}
    build = doc.get("build") if isinstance(doc.get("build"), dict) else {}
    recorded = doc.get("engine_sha256")
    if isinstance(recorded, str) and engine.is_file():
        sha = "ok" if sha256_path(engine) == recorded.lower() else "changed"
    else:
        sha = "not recorded"
    return {
        "sidecar": str(engine.with_name(engine.name + ".json")),
        "precision": key.get("precision"),
        "lookup": key.get("nn"),
        "batch_profile": [key.get("min_batch"), key.get("opt_batch"), key.get("max_batch")],
        "input_size": [key.get("height"), key.get("width")],
        "tensorrt": key.get("trt_version"),
        "plugin_version": key.get("plugin_version"),
        "plugin_library": build.get("plugin_library"),
        "plugin_library_here": _plugin_here(engine, key.get("nn")),
        "gpu": key.get("gpu_name"),
        "sm": key.get("sm"),
        "engine_sha256": sha,
    }


def _coreml_io(path: Path) -> dict[str, Any]:
    """A Core ML package's inputs and outputs read from its spec (coremltools, any platform)."""
    if importlib.util.find_spec("coremltools") is None:
        return {"error": "not read: coremltools is not installed (pip install 'ppl-edge[coreml]')"}
    import coremltools as ct

    from ppl_edge.runtime.backends.coreml import io_specs

    try:
        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except Exception as err:  # coremltools raises bare Exceptions for unreadable packages
        return {"error": f"not read: {str(err).splitlines()[0] if str(err) else err!r}"}
    inputs, outputs, kinds = io_specs(spec)
    return {"inputs": _tensors(inputs), "outputs": _tensors(outputs), "input_kinds": kinds}


def _opened_io(backend: str, path: Path) -> dict[str, Any]:
    """Inputs and outputs of a graph opened with its backend (ONNX Runtime; TensorRT with a GPU)."""
    options = {"threads": 1} if backend == "onnxruntime" else {}
    try:
        with open_backend(backend, path, **options) as opened:
            io = {"inputs": _tensors(opened.input_spec), "outputs": _tensors(opened.output_spec)}
            if opened.batch_range is not None:
                io["batch_profile"] = list(opened.batch_range)
            return io
    except (PplEdgeError, ModuleNotFoundError) as err:
        return {"error": f"not read: {str(err).splitlines()[0]}"}


def graph_facts(path: Path) -> dict[str, Any]:
    """One graph file: its kind, size and declared inputs / outputs (plus an engine's sidecar)."""
    cls = backend_for(path)
    if cls is None:
        raise PplEdgeError(f"{path.name}: not a graph file ({', '.join(_suffixes())} expected)")
    facts: dict[str, Any] = {"file": str(path), "kind": KINDS.get(cls.name, cls.artifact_kind)}
    if not path.exists():
        return {**facts, "error": "missing"}
    facts["bytes"] = _size(path)
    if cls.name == "tensorrt":
        facts.update(engine_facts(path))
        reason = cls.unavailable_reason()
        io = {"error": f"not read here: {reason}"} if reason else _opened_io(cls.name, path)
    elif cls.name == "coreml":
        io = _coreml_io(path)
    else:
        reason = cls.unavailable_reason()
        io = {"error": f"not read here: {reason}"} if reason else _opened_io(cls.name, path)
    return {**facts, **io}


def _suffixes() -> list[str]:
    return [s for cls in backend_classes() for s in cls.suffixes]


def runs_here(files: ModelFiles | None) -> dict[str, Any]:
    """Each backend: its artifact in this model and why it cannot run here (None: it can); the
    GPU; what backend "auto" would pick; and, per backend with a keypoint graph, where each
    refinement graph would run (its own build, or ONNX Runtime)."""
    gpu = cuda_problem()
    backends = {}
    for cls in backend_classes():
        artifact = files.graphs.get(cls.name) if files is not None else None
        backends[cls.name] = {
            "artifact": str(artifact) if artifact else None,
            "unavailable": cls.unavailable_reason(),
        }
    report: dict[str, Any] = {"gpu": gpu is None, "gpu_problem": gpu, "backends": backends}
    if files is not None:
        try:
            name, path = select_backend(files, "auto")
            report["auto"] = {"backend": name, "file": str(path)}
        except PplEdgeError as err:
            report["auto"] = {"error": str(err)}
        report["refinement"] = {
            backend: {
                role: None if where is None else {"backend": where[0], "file": str(where[1])}
                for role, where in plan(files, backend).items()
            }
            for backend in files.graphs
        }
    return report


def _kind(given: Path) -> str:
    cls = backend_for(given)
    if cls is not None:
        return KINDS.get(cls.name, cls.artifact_kind)
    return "export folder" if given.is_dir() else "manifest"


def describe(model: str | Path) -> dict[str, Any]:
    """Everything :mod:`ppl_edge.runtime.info` knows about ``model`` (see the module doc).

    Raises:
        PplEdgeError: the path does not exist or is not a model form (one line).
        ManifestError: an export folder or manifest whose manifest is missing or invalid.
    """
    given = Path(model).expanduser()
    if not given.exists():
        raise PplEdgeError(
            f"model not found: {given}; expected an export folder, {MANIFEST_NAME}, "
            f"or a {', '.join(_suffixes())} file"
        )
    owner = backend_for(given)
    if owner is None and given.is_file() and given.suffix.lower() != ".json":
        raise PplEdgeError(
            f"{given.name} is not a model: expected an export folder, {MANIFEST_NAME}, "
            f"or a {', '.join(_suffixes())} file"
        )
    report: dict[str, Any] = {"model": str(given), "kind": _kind(given)}
    files, manifest = None, None
    try:
        files = resolve_model(given)
        manifest = files.manifest
    except ManifestError as err:
        if owner is None:
            raise
        report["manifest_problem"] = str(err)
    if manifest is not None:
        report["manifest"] = manifest_summary(manifest)
        report["artifacts"] = artifact_status(manifest)
    paths = [given] if owner is not None else []
    if manifest is not None and owner is None:
        for key in manifest.artifacts:
            try:
                path = manifest.artifact_path(key)
            except ManifestError:
                continue
            if path is not None and backend_for(path) is not None:
                paths.append(path)
    report["graphs"] = [graph_facts(p) for p in dict.fromkeys(paths)]
    report["runs_here"] = runs_here(files)
    return report


def problems(report: dict[str, Any]) -> list[str]:
    """What is wrong with a described model: changed or missing artifacts, an engine that no
    longer matches its sidecar, unreadable graphs, no usable backend."""
    found = [
        f"artifact {a['key']} ({a['file']}): {a['sha256']}"
        for a in report.get("artifacts", [])
        if a["sha256"] in ("changed", "missing", "outside the folder")
    ]
    for graph in report.get("graphs", []):
        if graph.get("engine_sha256") == "changed":
            found.append(f"{Path(graph['file']).name}: changed since its sidecar was written")
        if graph.get("error") == "missing":
            found.append(f"{Path(graph['file']).name}: missing")
    if "manifest_problem" in report:
        found.append(report["manifest_problem"])
    return found
