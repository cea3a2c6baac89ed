"""The estimator's settings, validated once: :class:`RuntimeConfig`.

Every setting a user gives (the keyword arguments of ``Estimator``, the flags of ``ppl-edge live``,
``demo`` and ``bench``) is checked here, when the config is made, with the one message of
:func:`~ppl_edge.errors.check_choice`; the code that runs the model trusts a config. The vocabulary
(backend names, refinement modes, crop modes) is importable without NumPy or OpenCV, so the CLI can
offer it as flag choices without slowing ``ppl-edge --help``.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.runtime.backends import backend_choices
from ppl_edge.runtime.refine import REFINE_MODES, check_iterations

if TYPE_CHECKING:
    from ppl_edge.runtime.smoothing import OneEuroConfig

CROP_MODES = ("full", "roi", "motion")
PRECISIONS = ("fp32", "fp16", "int8")  # of the ONNX Runtime keypoint graph


@dataclass(frozen=True, kw_only=True)
class RuntimeConfig:
    """How an :class:`~ppl_edge.runtime.Estimator` runs (every field has a default).

    Attributes:
        backend: "auto" or a name of :data:`~ppl_edge.runtime.backends.BACKENDS` (auto: TensorRT
            when an engine and a GPU are there, Core ML on macOS for a package, else ONNX Runtime).
        refine: default refinement mode, "none", "memory" or "image" (per-call override).
        iterations: default refinement iteration count, an integer >= 0 (per-call override).
        crops: "full", "roi", "motion", or any callable frame -> list of boxes.
        roi: (x, y, w, h) for ``crops="roi"``; given with ``crops="full"`` it makes the mode "roi".
        smooth: None / False (off), True (One Euro defaults), a dict of OneEuroConfig fields or an
            OneEuroConfig; stored as an OneEuroConfig or None.
        threads: CPU threads of the ONNX Runtime sessions, >= 1 (None: its default).
        precision: the ONNX Runtime keypoint graph: "fp32" (``keypoints.onnx``), "fp16"
            (``keypoints.fp16.onnx``) or "int8" (``keypoints.int8.onnx``: static INT8 for CPUs),
            as ``ppl-edge convert --target onnx --fp16 / --int8`` wrote them. Other backends run
            the precision their artifact was built with, so they take only "fp32" here.
        device: "cpu" / "cuda" / "cuda:N" / "tensorrt" for ONNX Runtime; "cuda:N" for TensorRT.
        motion: keyword arguments of MotionCrops (method, min_area, max_subjects, ...).
        keep_reconstructions: attach the image-mode refinement images to each Result.
        verify: check every artifact's sha256 against the manifest before loading, and load
            only files the manifest lists (default); False skips the hashing for a faster start.
        pad_value: grey level of letterbox padding.
        resize: "fast" (default; two-stage anti-aliased shrink, ~10x cheaper on camera frames) or
            "area" (exactly the training transform, INTER_AREA); see preprocess.resize.

    Raises:
        PplEdgeError: a setting outside its choices or range.
    """

    backend: str = "auto"
    refine: str = "none"
    iterations: int = 0
    crops: str | Callable = "full"
    roi: tuple[int, int, int, int] | None = None
    smooth: bool | dict | OneEuroConfig | None = None
    threads: int | None = None
    precision: str = "fp32"
    device: str | None = None
    motion: dict | None = None
    keep_reconstructions: bool = False
    verify: bool = True
    pad_value: int = 0
    resize: str = "fast"

    def __post_init__(self) -> None:
        # OpenCV and NumPy are imported when a config is made, not with this module.
        from ppl_edge.preprocess import RESIZE_METHODS

        check_choice(self.backend, backend_choices(), "backend")
        check_choice(self.refine, REFINE_MODES, "refinement mode")
        check_choice(self.resize, RESIZE_METHODS, "resize method")
        check_choice(self.precision, PRECISIONS, "precision")
        self._set("iterations", check_iterations(self.iterations))
        roi = None if self.roi is None else _check_roi(self.roi)
        self._set("roi", roi)
        self._set("crops", _check_crops(self.crops, roi))
        self._set("smooth", _one_euro(self.smooth))
        if self.threads is not None and not (_is_int(self.threads) and self.threads >= 1):
            raise PplEdgeError(f"threads must be >= 1, got {self.threads!r}")
        self._set("motion", None if self.motion is None else dict(self.motion))
        self._set("pad_value", int(self.pad_value))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)  # normalising a frozen dataclass in __post_init__

    def refinement(self, mode: str | None = None, iterations: int | None = None) -> tuple[str, int]:
        """(mode, iterations) of one call: the given overrides, checked, else this config's.

        Raises:
            PplEdgeError: an unknown mode or a negative / non-integer count.
        """
        if mode is not None:
            check_choice(mode, REFINE_MODES, "refinement mode")
        return (
            self.refine if mode is None else mode,
            self.iterations if iterations is None else check_iterations(iterations),
        )

    def replace(self, **changes: Any) -> RuntimeConfig:
        """A copy with ``changes`` (checked like a new config)."""
        return dataclasses.replace(self, **changes)


def runtime_settings(config: RuntimeConfig) -> dict[str, Any]:
    """The :class:`RuntimeConfig` fields of ``config`` (of a subclass too) as keyword arguments."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(RuntimeConfig)}


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_roi(roi: object) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(v) for v in roi)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        values = ()
    if len(values) != 4 or min(values[:2]) < 0 or min(values[2:]) <= 0:
        raise PplEdgeError(f"roi must be (x, y, w, h) with x, y >= 0 and w, h > 0, got {roi!r}")
    return values  # type: ignore[return-value]


def _check_crops(crops: str | Callable, roi: tuple | None) -> str | Callable:
    """The crop mode (a roi with "full" makes it "roi"), or the given cropper callable."""
    if callable(crops):
        return crops
    check_choice(crops, CROP_MODES, "crop mode")
    if crops == "roi" and roi is None:
        raise PplEdgeError("crop mode 'roi' needs roi=(x, y, w, h), got None")
    return "roi" if crops == "full" and roi is not None else crops


def _one_euro(smooth: object) -> OneEuroConfig | None:
    from ppl_edge.runtime.smoothing import OneEuroConfig

    if smooth is None or smooth is False:
        return None
    if smooth is True:
        return OneEuroConfig()
    if isinstance(smooth, OneEuroConfig):
        return smooth
    if isinstance(smooth, dict):
        return OneEuroConfig(**smooth)
    raise PplEdgeError(
        f"smooth must be None, True, a dict of One Euro parameters or an "
        f"OneEuroConfig, got {smooth!r}"
    )
