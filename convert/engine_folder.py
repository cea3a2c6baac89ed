"""TensorRT engines of an export's graphs: the keypoint graph, and the refine and memory graphs
that iterative refinement runs (:func:`build_role_engines`), either inside a fresh export (target
"trt") or from an existing export folder with TensorRT alone (:func:`build_folder`, what
``ppl-edge convert --from DIR --target trt`` runs on a Jetson: no torch, no onnxscript, no
onnxsim; onnx, NumPy and TensorRT only).

Manifest artifact keys of the engines (docs/contracts.md): ``engine`` (keypoint graph),
``refine_engine``, ``memory_engine``; each ``<graph>.<precision>.engine`` with its ``.json``
sidecar beside it. The folder is republished as a whole (``publish.staged_output``): the engines,
their sidecars and the new manifest appear together, or nothing changes.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from ppl_edge.convert.config import EngineConfig
from ppl_edge.errors import PplEdgeError

log = logging.getLogger(__name__)

# engine artifact key -> (graph role it is built from, per lookup mode)
ENGINE_SOURCES = {
    "engine": {"plugin": "keypoints_trt", "native": "keypoints"},
    "refine_engine": {"plugin": "refine", "native": "refine"},
    "memory_engine": {"plugin": "memory", "native": "memory"},
}
ENGINE_KEYS = tuple(ENGINE_SOURCES)


def role_settings(settings: EngineConfig, key: str) -> EngineConfig:
    """The build settings of engine ``key``: the keypoint engine's as given; the refine and memory
    graphs have no plugin node and no calibration set, so they build with the native lookup and,
    for INT8, in FP16."""
    if key == "engine":
        return settings
    precision = "fp16" if settings.precision == "int8" else settings.precision
    return dataclasses.replace(
        settings, nn="native", precision=precision, calib_data=None, calib_cache=None
    )


def engine_name(onnx_file: Path, precision: str) -> str:
    """``keypoints_trt.onnx`` -> ``keypoints_trt.fp16.engine`` (also from ``*.fp16.onnx``)."""
    stem = onnx_file.name[: -len(".onnx")]
    stem = stem[: -len(".fp16")] if stem.endswith(".fp16") else stem
    return f"{stem}.{precision}.engine"


def build_role_engines(
    out_dir: Path,
    graphs: dict[str, Path],
    settings: EngineConfig,
    manifest: dict,
    say: Callable[[str], None] = lambda line: None,
) -> dict[str, Path]:
    """Build the engines of the graphs in ``graphs`` (role -> ONNX file) into ``out_dir``.

    Args:
        graphs: at least the keypoint graph of ``settings.nn`` (``keypoints_trt`` / ``keypoints``);
            ``refine`` and ``memory`` when present.
        manifest: the export's manifest document, recorded in each engine's sidecar.
        say: called with one line per engine built.

    Returns:
        engine artifact key -> engine path.

    Raises:
        PplEdgeError: the keypoint graph is missing, or a build fails.
    """
    from ppl_edge.convert.tensorrt_build import build_engine_from

    built = {}
    for key, sources in ENGINE_SOURCES.items():
        role = sources[settings.nn]
        if role not in graphs:
            if key == "engine":
                raise PplEdgeError(
                    f"the export lists no {role} graph, which --nn {settings.nn} builds: export "
                    f"with --nn {'plugin' if settings.nn == 'plugin' else 'native'}"
                )
            log.info("no %s graph in the export: no %s", role, key)
            continue
        chosen = role_settings(settings, key)
        onnx_file = Path(graphs[role])
        built[key] = build_engine_from(
            onnx_file,
            out_dir,
            chosen,
            manifest=manifest,
            name=engine_name(onnx_file, chosen.precision),
            lookup_required=key == "engine",
        )
        say(f"{key}: {built[key].name} ({chosen.precision}, from {onnx_file.name})")
    return built


def build_folder(
    folder: str | Path, settings: EngineConfig, echo: Callable[[str], None] | None = None
) -> Path:
    """Build the engines of an export folder in place, and list them in its manifest.

    Reads ``manifest.json`` and checks every listed file's sha256, then checks the GPU, TensorRT
    and (``nn="plugin"``) the plugin library, all before anything is written; then builds the
    keypoint, refine and memory engines (as the manifest lists their graphs) and republishes the
    folder with them in one step.

    Returns:
        The manifest's path.

    Raises:
        PplEdgeError: not an export folder (or a file changed since the export), no GPU /
            TensorRT / plugin library, a graph this TensorRT cannot build; nothing is written then.
    """
    from ppl_edge.convert.publish import staged_output
    from ppl_edge.convert.tensorrt_build import check_prerequisites
    from ppl_edge.manifest import MANIFEST_NAME, Manifest, sha256_path, write_manifest

    say = echo or (lambda line: None)
    path = Path(folder).expanduser()
    if not (path / MANIFEST_NAME).is_file():
        raise PplEdgeError(
            f"--from {path}: no {MANIFEST_NAME} there; expected an export folder written by "
            "'ppl-edge convert --target onnx'"
        )
    manifest = Manifest.load(path)
    manifest.verify_all()
    keypoints_role = ENGINE_SOURCES["engine"][settings.nn]
    if keypoints_role not in manifest.artifacts:
        raise PplEdgeError(
            f"{path / MANIFEST_NAME} lists no {keypoints_role} graph, which --nn {settings.nn} "
            f"builds; listed: {', '.join(sorted(manifest.artifacts))}"
        )
    keypoint_graph = manifest.artifact_path(keypoints_role)  # the plugin library may lie beside it
    _, trt, _ = check_prerequisites(
        settings.nn, settings.plugin_lib, keypoint_graph, settings.device
    )
    document = manifest.to_dict()
    graphs = {
        role: manifest.artifact_path(role)
        for sources in ENGINE_SOURCES.values()
        for role in sources.values()
        if role in manifest.artifacts
    }
    with staged_output(path) as staging:
        engines = build_role_engines(staging, graphs, settings, document, say)
        artifacts = {k: v for k, v in document["artifacts"].items() if k not in ENGINE_KEYS}
        for key, engine in engines.items():
            artifacts[key] = {"file": engine.name, "sha256": sha256_path(engine)}
        document["artifacts"] = artifacts
        document["precision"] = settings.precision
        document["tools"] = {**document.get("tools", {}), "tensorrt": str(trt.__version__)}
        write_manifest(staging / MANIFEST_NAME, document)
    say(f"wrote {path / MANIFEST_NAME}")
    return path / MANIFEST_NAME
