"""``--verify`` for TensorRT engines: each engine an export folder lists against ONNX Runtime (CPU)
running the ONNX graph it was built from, on 256 synthetic images of the model's category.

Bounds (``[-1, 1]`` units): keypoints and confidence within :data:`TOLERANCE` of the precision
(FP32 1e-3, FP16 1e-2, INT8 5e-2), prototype ids equal for at least 99 % of (image, bank) pairs,
memory-refined keypoints within the same bound on the images whose ids all agree (a different
prototype is a different pose, not an error of size), refinement images within the bound. The
comparison (:func:`compare_outputs`) is pure NumPy; running an engine needs a GPU, so
:func:`verify_engines` says in one line that it skipped when there is none. Torch-free: it runs
after ``ppl-edge convert --from DIR --target trt`` on the device.

The engine runner is passed in (``runner(engine_path, feeds_batches) -> outputs_batches``): the
runtime's TensorRT backend, which ``ppl_edge.convert`` may not import (docs/contracts.md, layers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ppl_edge.convert.verify import Check
from ppl_edge.errors import PplEdgeError

log = logging.getLogger(__name__)

TOLERANCE = {"fp32": 1e-3, "fp16": 1e-2, "int8": 5e-2}  # max abs error, [-1, 1] units
MIN_ID_AGREEMENT = 0.99
# engine artifact key -> the ONNX graph it is compared with (per the sidecar's lookup mode)
REFERENCE_GRAPHS = {
    "engine": {"plugin": "keypoints_trt", "native": "keypoints"},
    "refine_engine": {"plugin": "refine", "native": "refine"},
    "memory_engine": {"plugin": "memory", "native": "memory"},
}
Runner = Callable[[Path, list[dict]], list[dict]]


def _max_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()) if a.size else 0.0


def compare_outputs(
    name: str, reference: dict[str, np.ndarray], got: dict[str, np.ndarray], precision: str
) -> Check:
    """One :class:`Check` of an engine's outputs against ONNX Runtime's.

    Args:
        name: the check's label, e.g. "keypoints_trt.fp16.engine vs onnxruntime".
        reference, got: output name -> array of the same images; compared where both have it:
            ``keypoints``, ``confidence``, ``reconstruction`` (max abs error),
            ``prototype_ids`` (share equal), ``keypoints_refined`` (on images whose ids agree).
        precision: "fp32", "fp16" or "int8": the bound of :data:`TOLERANCE`.

    Raises:
        PplEdgeError: an output the engine lacks, or of another shape.
    """
    bound = TOLERANCE[precision]
    for key, value in reference.items():
        if key not in got:
            raise PplEdgeError(f"{name}: the engine has no output {key!r} (it has {sorted(got)})")
        if np.shape(got[key]) != np.shape(value):
            raise PplEdgeError(
                f"{name}: output {key!r} has shape {np.shape(got[key])}, ONNX Runtime's "
                f"{np.shape(value)}"
            )
    metrics: dict[str, float] = {}
    passed = True
    for key, label in (
        ("keypoints", "max_keypoint_error"),
        ("confidence", "max_confidence_error"),
        ("reconstruction", "max_pixel_error"),
    ):
        if key in reference:
            metrics[label] = _max_error(reference[key], got[key])
            passed &= metrics[label] <= bound
    if "prototype_ids" in reference:
        same = reference["prototype_ids"] == got["prototype_ids"]  # (S, M)
        metrics["id_agreement"] = float(same.mean())
        passed &= metrics["id_agreement"] >= MIN_ID_AGREEMENT
        if "keypoints_refined" in reference:
            agree = same.all(axis=1)
            metrics["max_refined_error"] = _max_error(
                reference["keypoints_refined"][agree], got["keypoints_refined"][agree]
            )
            passed &= metrics["max_refined_error"] <= bound
    metrics["bound"] = bound
    return Check(name, metrics, bool(passed))


def synthetic_images(manifest, count: int = 256, seed: int = 0) -> np.ndarray:
    """(count, 3, H, W) float32: synthetic figures of the model's input size, preprocessed with
    the manifest's input contract (torch-free). Humanoids unless the manifest's name says
    quadruped / bird."""
    from ppl_edge.preprocess import normalise
    from ppl_edge.synth.render import render_images

    name = str(manifest.raw.get("model", {}).get("name", ""))
    category = next((c for c in ("quadruped", "bird") if c in name), "humanoid")
    images = render_images(category, manifest.input.height, count, seed=seed)
    return normalise(images, manifest.input)


def _batches(feeds: dict[str, np.ndarray], size: int) -> list[dict[str, np.ndarray]]:
    total = len(next(iter(feeds.values())))
    return [{k: v[i : i + size] for k, v in feeds.items()} for i in range(0, total, size)]


def _concat(outputs: list[dict]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([o[k] for o in outputs]) for k in outputs[0]}


def verify_engines(
    folder: str | Path,
    runner: Runner,
    count: int = 256,
    echo: Callable[[str], None] | None = None,
) -> list[Check]:
    """Check every engine the export folder's manifest lists against ONNX Runtime.

    Returns:
        One :class:`Check` per engine; empty, after one line through ``echo``, without a GPU.

    Raises:
        PplEdgeError: an engine's sidecar is missing or unreadable, or its outputs differ in
            names or shapes.
    """
    from ppl_edge.convert import engine_cache as cache
    from ppl_edge.convert.verify import ort_session, run_batched
    from ppl_edge.manifest import Manifest

    say = echo or (lambda line: None)
    try:
        cache.probe_gpu()
    except PplEdgeError as err:
        say(f"engine check skipped: {err}")
        return []
    manifest = Manifest.load(folder)
    images = synthetic_images(manifest, count)
    keypoint_graph = next(
        manifest.artifact_path(r) for r in ("keypoints", "keypoints_trt") if r in manifest.artifacts
    )
    feeds_all = {
        "image": images,
        "keypoints": run_batched(ort_session(keypoint_graph), {"image": images})["keypoints"],
    }
    checks = []
    for key in REFERENCE_GRAPHS:
        engine = manifest.artifact_path(key) if key in manifest.artifacts else None
        if engine is None:
            continue
        sidecar = cache.sidecar_path(engine)
        try:
            meta = json.loads(sidecar.read_text(encoding="utf-8"))["key"]
        except (OSError, ValueError, KeyError) as err:
            raise PplEdgeError(f"cannot read the engine sidecar {sidecar}: {err}") from err
        graph = manifest.artifact_path(REFERENCE_GRAPHS[key][meta["nn"]])
        session = ort_session(graph)
        feeds = {i.name: feeds_all[i.name] for i in session.get_inputs()}
        reference = run_batched(session, feeds)
        got = _concat(runner(engine, _batches(feeds, int(meta["max_batch"]))))
        checks.append(
            compare_outputs(f"{engine.name} vs onnxruntime", reference, got, meta["precision"])
        )
        say(checks[-1].line())
    return checks
