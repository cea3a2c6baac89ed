"""The settings of one export, validated once: :class:`ExportConfig` and its TensorRT part
(:class:`EngineConfig`).

Every setting a user gives (the flags of ``ppl-edge convert``, the keyword arguments of
:func:`~ppl_edge.convert.export_onnx`, :func:`~ppl_edge.convert.export_coreml` and
:func:`~ppl_edge.convert.tensorrt_build.build_engine`) is checked here, when the config is made,
with the one message of :func:`~ppl_edge.errors.check_choice` for choices; the code that exports
trusts a config. What a target adds to the checks (the opset of an ONNX graph, the lookup graph a
TensorRT engine is built from) is asked of its exporter (:mod:`ppl_edge.convert.targets`).

Importing this module is cheap: onnx and torch (for the opset range) and the calibration image
listing are imported when a config is made.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ppl_edge.errors import PplEdgeError, check_choice

FLAVOURS = ("portable", "plugin", "both")  # which keypoint graphs an ONNX export writes
PRECISIONS = ("fp32", "fp16", "int8")  # of a TensorRT engine
NN_MODES = ("plugin", "native")  # the memory lookup in a TensorRT engine
MIN_OPSET = 17  # LayerNormalization (17) is needed; TensorRT 10 parses opsets 17-18 best
DEFAULT_OPSET = 18


def max_opset() -> int:
    """Highest opset both the installed onnx and torch's exporter support."""
    import onnx
    from torch.onnx import _constants

    return min(onnx.defs.onnx_opset_version(), getattr(_constants, "ONNX_MAX_OPSET", 23))


def check_opset(opset: int) -> int:
    """Refuse opsets the exporter can't honour (PplEdgeError)."""
    top = max_opset()
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= top:
        raise PplEdgeError(
            f"opset {opset!r} is not supported: choose {MIN_OPSET}..{top} "
            f"(18 suits TensorRT 10 / 11 and ONNX Runtime; TensorRT 8.6 parses up to 17)"
        )
    return opset


def _path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value).expanduser()


def _store(config, name: str, value) -> None:
    """How ``__post_init__`` of a frozen config keeps a normalised value."""
    object.__setattr__(config, name, value)


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """How a TensorRT engine of the keypoint graph is built (every field has a default).

    Attributes:
        precision: "fp32", "fp16" or "int8" (entropy calibration, which needs calib_data or an
            existing calib_cache file).
        nn: "plugin" (the NearestNeighborLookup plugin, built from ``keypoints_trt.onnx``) or
            "native" (standard ONNX lookup, built from ``keypoints.onnx``).
        plugin_lib: ``libppl_edge_plugins.so``; searched for when None (nn="plugin").
        min_batch, opt_batch, max_batch: the optimisation profile of the batch dimension.
        shapes: ``image:BxCxHxW`` fixes the batch to B (min = opt = max); checked against the
            model's input when the model is known (``ppl-edge convert --shapes``).
        calib_data: folder of calibration images (INT8).
        calib_cache: calibration cache file, reused when it exists, written after calibration
            (default: beside the cached engine).
        calib_batch: images per calibration batch.
        workspace_mb: builder workspace limit in MiB (None: TensorRT's default).
        timing_cache: timing cache file (default: one per GPU architecture and TensorRT version in
            the engine cache).
        force_rebuild: ignore and replace a cached engine.
        device: CUDA device index.
        cache_root: engine cache folder (default ``${XDG_CACHE_HOME:-~/.cache}/ppl-edge/engines``).
        strongly_typed: build a strongly typed network (FP16 from the float16 graph, the lookup
            kept FP32); None: as TensorRT's release requires (11+: yes; 8.6 / 10.x: builder
            flags), see ``trt_versions.py``.

    Raises:
        PplEdgeError: a setting outside its choices or range, INT8 without calibration data, or a
            calibration folder without images.
    """

    precision: str = "fp32"
    nn: str = "plugin"
    plugin_lib: Path | None = None
    min_batch: int = 1
    opt_batch: int = 1
    max_batch: int = 8
    shapes: str | None = None
    calib_data: Path | None = None
    calib_cache: Path | None = None
    calib_batch: int = 8
    workspace_mb: int | None = None
    timing_cache: Path | None = None
    force_rebuild: bool = False
    device: int = 0
    cache_root: Path | None = None
    strongly_typed: bool | None = None

    def __post_init__(self) -> None:
        check_choice(self.precision, PRECISIONS, "precision")
        check_choice(self.nn, NN_MODES, "nn")
        for name in ("plugin_lib", "calib_data", "calib_cache", "timing_cache", "cache_root"):
            _store(self, name, _path(getattr(self, name)))
        if not 1 <= self.min_batch <= self.opt_batch <= self.max_batch:
            raise PplEdgeError(
                "batches must satisfy 1 <= min_batch <= opt_batch <= max_batch "
                f"(--min-batch <= --opt-batch <= --max-batch), got {self.min_batch}, "
                f"{self.opt_batch}, {self.max_batch}"
            )
        if self.workspace_mb is not None and self.workspace_mb < 1:
            raise PplEdgeError(f"workspace must be at least 1 MiB, got {self.workspace_mb}")
        if self.calib_batch < 1:
            raise PplEdgeError(f"calibration batch must be >= 1, got {self.calib_batch}")
        if self.precision == "int8" and self.calib_data is None and not self.has_calib_cache:
            raise PplEdgeError(
                "INT8 needs calibration images (calib_data) or an existing calibration cache"
            )
        if self.calib_data is not None:
            from ppl_edge.convert.calibrator import find_calibration_images

            find_calibration_images(self.calib_data, limit=None)  # raises without images

    @property
    def has_calib_cache(self) -> bool:
        """Whether ``calib_cache`` names an existing file."""
        return self.calib_cache is not None and self.calib_cache.is_file()

    @property
    def batches(self) -> tuple[int, int, int]:
        """(min, opt, max) batch of the optimisation profile."""
        return self.min_batch, self.opt_batch, self.max_batch

    def with_batch(self, batch: int) -> EngineConfig:
        """This config with a fixed batch (min = opt = max = ``batch``) and no ``shapes``."""
        return dataclasses.replace(
            self, min_batch=batch, opt_batch=batch, max_batch=batch, shapes=None
        )


@dataclass(frozen=True, kw_only=True)
class ExportConfig:
    """What one export writes, and how (every field but ``out`` has a default).

    Attributes:
        out: output folder; created if missing, but its parent must exist (stored absolute).
        target: "onnx", "trt", "coreml" or another name of
            :data:`~ppl_edge.convert.targets.EXPORTERS`.
        flavour: keypoint graphs of an ONNX export: "portable" (``keypoints.onnx``, standard ONNX
            lookup), "plugin" (``keypoints_trt.onnx``, one ``NearestNeighborLookup`` node plus its
            model-local function) or "both".
        opset: ONNX opset, 17 up to the highest the installed onnx and torch support (checked for
            the targets that write ONNX).
        dynamic_batch: symbolic batch ``B`` in [1, 64] instead of batch 1.
        simplify: run onnxsim.
        name: model name in the manifest (None: the checkpoint's file stem).
        data: dataset spec of the category, for the manifest's distance scale and ``verify`` (None:
            from the checkpoint, else synthetic:humanoid).
        verify: check the written files against PyTorch after the export.
        verify_images: images of the parity checks.
        engine: the TensorRT build (target "trt").
        fp16_graphs: also write each graph's float16 version (``<graph>.fp16.onnx``, the lookup
            and normalisations kept FP32; convert/fp16.py), listed as ``<role>_fp16``: what a
            strongly typed FP16 engine (TensorRT 11) is built from.
        int8_graphs: also write ``keypoints.int8.onnx`` (target "onnx"): ONNX Runtime static INT8
            for CPUs (convert/ort_int8.py), calibrated on ``engine.calib_data`` through the
            runtime's preprocessing, else on images rendered from the export's
            ``synthetic:<category>`` data; listed as ``keypoints_int8``.

    Raises:
        PplEdgeError: a setting outside its choices or range, or an unusable output folder.
    """

    out: Path
    target: str = "onnx"
    flavour: str = "portable"
    opset: int = DEFAULT_OPSET
    dynamic_batch: bool = True
    simplify: bool = True
    name: str | None = None
    data: str | None = None
    verify: bool = False
    verify_images: int = 256
    engine: EngineConfig = field(default_factory=EngineConfig)
    fp16_graphs: bool = False
    int8_graphs: bool = False

    def __post_init__(self) -> None:
        from ppl_edge.convert.manifest import check_output_folder
        from ppl_edge.convert.targets import EXPORTERS, exporter

        check_choice(self.target, EXPORTERS, "target")
        check_choice(self.flavour, FLAVOURS, "flavour")
        if not isinstance(self.engine, EngineConfig):
            raise PplEdgeError(f"engine must be an EngineConfig, got {type(self.engine).__name__}")
        if self.verify_images < 1:
            raise PplEdgeError(f"--verify-images must be >= 1, got {self.verify_images}")
        _store(self, "out", check_output_folder(self.out))
        if self.int8_graphs and self.flavour == "plugin":
            raise PplEdgeError(
                "INT8 ONNX graphs are made from keypoints.onnx: use flavour 'portable' or 'both'"
            )
        if self.int8_graphs and self.target != "onnx":
            raise PplEdgeError(
                f"INT8 ONNX graphs are written by target 'onnx', not {self.target!r} (a TensorRT "
                "engine's INT8 is its precision)"
            )
        exporter(self.target).check(self)
