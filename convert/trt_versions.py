"""What each TensorRT release can build, in one table (:func:`support`) and one decision
(:func:`plan_build`), so the builder never guesses from scattered version checks.

==========  ======================  ==============================  =============================
TensorRT    network creation        precision                       memory lookup
==========  ======================  ==============================  =============================
8.6         EXPLICIT_BATCH flag      builder flags FP16 / INT8       native only (the plugin is an
(JetPack    (implicit batch is the   (INT8: entropy calibrator);     IPluginV3, TensorRT 10+);
6.0)        default); ONNX opset     no strongly typed networks      opset <= 17 graphs
            <= 17
10.0-10.6   explicit batch always;   builder flags, or STRONGLY_     plugin or native; the parser
(JetPack    STRONGLY_TYPED optional  TYPED with the FP16 ONNX        inlines a node's model-local
6.1, 6.2)                                                            function instead of calling
                                                                     the plugin: stripped first
10.7-10.x   as 10.0                  as 10.0                         plugin preferred by the parser
                                                                     (the function is still
                                                                     stripped)
11          explicit batch;          no FP16 / INT8 builder flags:   plugin or native, the lookup
            STRONGLY_TYPED           FP16 = the FP16 ONNX graph      kept FP32 in the FP16 graph
                                     (convert/fp16.py); no INT8
                                     without Q/DQ nodes
==========  ======================  ==============================  =============================

Before 8.6 (JetPack 5.1 ships TensorRT 8.5.2) the ONNX parser has no LayerNormalization, which the
memory's transformer needs (opset 17): those devices run the ONNX graphs with ONNX Runtime.

Everything here is pure Python: tests drive it with a fake ``tensorrt`` module carrying
``__version__``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ppl_edge.errors import PplEdgeError

MIN_VERSION = (8, 6)  # JetPack 6.0; 8.5's parser has no LayerNormalization
PLUGIN_MIN_MAJOR = 10  # IPluginV3
STRONG_TYPING_MIN = (
    10,
    0,
)  # NetworkDefinitionCreationFlag.STRONGLY_TYPED (9.x was never on Jetson)
NO_PRECISION_FLAGS_MAJOR = 11  # BuilderFlag.FP16 / INT8 and calibrators removed
INLINES_FUNCTIONS_UP_TO = (10, 6)  # the ONNX parser expands model-local functions before plugins
MAX_OPSET = {(8, 6): 17}  # the ONNX parser's newest opset, where our default (18) is too new


def parse_version(text: str) -> tuple[int, int]:
    """``"10.3.0.30"`` -> (10, 3).

    Raises:
        PplEdgeError: not a TensorRT version string.
    """
    match = re.match(r"\s*(\d+)\.(\d+)", str(text))
    if not match:
        raise PplEdgeError(f"cannot read the TensorRT version {text!r}; expected e.g. '10.3.0'")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class TrtSupport:
    """What one TensorRT release offers the builder (see the module's table)."""

    version: str
    major: int
    minor: int

    @property
    def plugin(self) -> bool:
        """The IPluginV3 ``NearestNeighborLookup`` plugin loads (TensorRT 10+)."""
        return self.major >= PLUGIN_MIN_MAJOR

    @property
    def explicit_batch_flag(self) -> bool:
        """``create_network`` needs the EXPLICIT_BATCH flag (8.x; implicit batch otherwise)."""
        return self.major < PLUGIN_MIN_MAJOR

    @property
    def strong_typing(self) -> bool:
        """``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` exists."""
        return (self.major, self.minor) >= STRONG_TYPING_MIN

    @property
    def precision_flags(self) -> bool:
        """``BuilderFlag.FP16`` / ``INT8`` and the INT8 calibrator exist."""
        return self.major < NO_PRECISION_FLAGS_MAJOR

    @property
    def inlines_local_functions(self) -> bool:
        """The ONNX parser inlines a node's model-local function instead of calling the plugin."""
        return (self.major, self.minor) <= INLINES_FUNCTIONS_UP_TO

    @property
    def max_opset(self) -> int | None:
        """Newest ONNX opset the parser reads, None where the default export (18) is fine."""
        return MAX_OPSET.get((self.major, self.minor))


def support(trt_or_version) -> TrtSupport:
    """The :class:`TrtSupport` of a ``tensorrt`` module (its ``__version__``) or a version string.

    Raises:
        PplEdgeError: older than TensorRT 8.6.
    """
    version = getattr(trt_or_version, "__version__", trt_or_version)
    major, minor = parse_version(version)
    if (major, minor) < MIN_VERSION:
        raise PplEdgeError(
            f"TensorRT {version} is too old: ppl-edge builds engines with TensorRT "
            f"{MIN_VERSION[0]}.{MIN_VERSION[1]}+ (JetPack 6.0 or newer; older parsers have no "
            "LayerNormalization): run the ONNX graphs with ONNX Runtime there"
        )
    return TrtSupport(str(version), major, minor)


@dataclass(frozen=True)
class BuildPlan:
    """How one engine is built: the network creation flags and builder flags by name (members of
    ``trt.NetworkDefinitionCreationFlag`` / ``trt.BuilderFlag``), whether the network is strongly
    typed and so built from the FP16 ONNX graph, and whether INT8 calibration runs."""

    network_flags: tuple[str, ...]
    builder_flags: tuple[str, ...]
    strongly_typed: bool
    fp16_graph: bool
    calibrate: bool


def plan_build(
    info: TrtSupport,
    precision: str,
    nn: str,
    strongly_typed: bool | None = None,
    opset: int | None = None,
    graph: str = "the graph",
) -> BuildPlan:
    """Decide the flags of one build, or refuse in one line what this TensorRT cannot build.

    Args:
        info: the TensorRT release (:func:`support`).
        precision: "fp32", "fp16" or "int8".
        nn: "plugin" or "native" (the graph's memory lookup).
        strongly_typed: True / False to force, None for the default (strongly typed on TensorRT
            11+, builder flags before).
        opset: the graph's default-domain opset, checked against the parser's newest.
        graph: the graph's file name, for messages.

    Raises:
        PplEdgeError: the plugin before TensorRT 10, INT8 on TensorRT 11 or in a strongly typed
            network, strong typing before TensorRT 10 or refused on 11 for FP16, or an opset the
            parser cannot read.
    """
    where = f"TensorRT {info.version}"
    if nn == "plugin" and not info.plugin:
        raise PplEdgeError(
            f"{where} cannot load the NearestNeighborLookup plugin (an IPluginV3, TensorRT 10+): "
            "build with --nn native"
        )
    if info.max_opset is not None and opset is not None and opset > info.max_opset:
        raise PplEdgeError(
            f"{where}'s ONNX parser reads opsets up to {info.max_opset}, {graph} has opset "
            f"{opset}: re-export with --opset {info.max_opset}"
        )
    strong = (not info.precision_flags) if strongly_typed is None else strongly_typed
    if strong and not info.strong_typing:
        raise PplEdgeError(f"{where} has no strongly typed networks (TensorRT 10+)")
    if not strong and not info.precision_flags and precision == "fp16":
        raise PplEdgeError(
            f"{where} has no FP16 builder flag: an FP16 engine needs a strongly typed network"
        )
    if precision == "int8" and not info.precision_flags:
        raise PplEdgeError(
            f"{where} removed the INT8 calibrator: INT8 needs a graph with Q/DQ nodes, which "
            "ppl-edge does not write; build --fp16 or fp32"
        )
    if precision == "int8" and strong:
        raise PplEdgeError(
            "a strongly typed network takes INT8 only from Q/DQ nodes, which ppl-edge does not "
            "write: build INT8 without strong typing"
        )
    network = (("EXPLICIT_BATCH",) if info.explicit_batch_flag else ()) + (
        ("STRONGLY_TYPED",) if strong else ()
    )
    builder = () if strong else {"fp32": (), "fp16": ("FP16",), "int8": ("FP16", "INT8")}[precision]
    return BuildPlan(network, builder, strong, strong and precision == "fp16", precision == "int8")


def network_flags(trt, plan: BuildPlan) -> int:
    """The ``create_network`` argument of ``plan``: ``sum(1 << int(flag))``."""
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    return flags
