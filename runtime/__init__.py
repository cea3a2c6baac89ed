"""ppl_edge.runtime: run an exported PPL model on frames with numpy, OpenCV and one backend.

Never imports torch. Names are imported lazily, so ``import ppl_edge.runtime`` costs nothing until
one is used::

    from ppl_edge.runtime import Estimator

    with Estimator("models/ppl-small-humanoid", refine="image", iterations=2) as est:
        for result in est(frame_bgr):          # one Result per subject
            print(result.keypoints, result.plausibility)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Imported eagerly (NumPy only): the function shares its name with its module, and binding it here
# first keeps ``from ppl_edge.runtime import refine`` the function after the module is imported.
from ppl_edge.runtime.refine import refine

_EXPORTS = {
    "Estimator": "estimator",
    "RuntimeConfig": "config",
    "Result": "result",
    "BadFrameError": "ppl_edge.preprocess",
    "Letterbox": "ppl_edge.preprocess",
    "as_bgr8": "ppl_edge.preprocess",
    "letterbox": "ppl_edge.preprocess",
    "plausibility": "postprocess",
    "RefineTrace": "refine",
    "REFINE_MODES": "refine",
    "FullFrame": "crops",
    "FixedRoi": "crops",
    "MotionCrops": "crops",
    "CROP_MODES": "crops",
    "OneEuroFilter": "smoothing",
    "OneEuroConfig": "smoothing",
    "PoseSmoother": "smoothing",
    "draw_pose": "draw",
    "draw_results": "draw",
    "draw_iterations": "draw",
    "draw_timings": "draw",
    "Manifest": "manifest",
    "ManifestError": "manifest",
    "load_manifest": "manifest",
    "resolve_model": "manifest",
    "BACKENDS": "backends",
    "open_backend": "backends",
    "select_backend": "backends",
}

__all__ = [
    "BACKENDS",
    "BadFrameError",
    "CROP_MODES",
    "Estimator",
    "FixedRoi",
    "FullFrame",
    "Letterbox",
    "Manifest",
    "ManifestError",
    "MotionCrops",
    "OneEuroConfig",
    "OneEuroFilter",
    "PoseSmoother",
    "REFINE_MODES",
    "RefineTrace",
    "Result",
    "RuntimeConfig",
    "as_bgr8",
    "draw_iterations",
    "draw_pose",
    "draw_results",
    "draw_timings",
    "letterbox",
    "load_manifest",
    "open_backend",
    "plausibility",
    "refine",
    "resolve_model",
    "select_backend",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ppl_edge.runtime' has no attribute {name!r}")
    full = module if module.startswith("ppl_edge.") else f"ppl_edge.runtime.{module}"
    value = getattr(importlib.import_module(full), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # for type checkers and IDEs; never executed
    from ppl_edge.preprocess import BadFrameError, Letterbox, as_bgr8, letterbox
    from ppl_edge.runtime.backends import BACKENDS, open_backend, select_backend
    from ppl_edge.runtime.config import RuntimeConfig
    from ppl_edge.runtime.crops import CROP_MODES, FixedRoi, FullFrame, MotionCrops
    from ppl_edge.runtime.draw import draw_iterations, draw_pose, draw_results, draw_timings
    from ppl_edge.runtime.estimator import Estimator
    from ppl_edge.runtime.manifest import Manifest, ManifestError, load_manifest, resolve_model
    from ppl_edge.runtime.postprocess import plausibility
    from ppl_edge.runtime.refine import REFINE_MODES, RefineTrace
    from ppl_edge.runtime.result import Result
    from ppl_edge.runtime.smoothing import OneEuroConfig, OneEuroFilter, PoseSmoother
