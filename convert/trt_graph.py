"""The ONNX graph as TensorRT will parse it (:func:`prepare_graph`): the lookup's model-local
function stripped for the plugin, an FP16 version for strongly typed networks, and the inputs'
shapes for the optimisation profile. Needs onnx, not torch or TensorRT."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ppl_edge.convert.fp16 import fp16_name, to_float16
from ppl_edge.errors import PplEdgeError, require
from ppl_edge.manifest import sha256_path

ONNX_FILES = {"plugin": "keypoints_trt.onnx", "native": "keypoints.onnx"}


@dataclass(frozen=True)
class PreparedGraph:
    """The ONNX graph as TensorRT will parse it.

    path: the file given; sha256: of that file; model_bytes: the serialised graph to parse (lookup
    function stripped for the plugin, float16 for a strongly typed FP16 build); inputs: (name,
    shape after the batch dimension) of each input, e.g. (("image", (3, 64, 64)),); batch: the
    static batch, or None when dynamic; opset: the default-domain opset.
    """

    path: Path
    sha256: str
    model_bytes: bytes
    inputs: tuple[tuple[str, tuple[int, ...]], ...]
    batch: int | None
    opset: int | None = None

    @property
    def input_name(self) -> str:
        """The first input's name ("image" for a keypoint graph)."""
        return self.inputs[0][0]

    @property
    def height(self) -> int:
        """The first input's second-to-last dimension (the image height)."""
        return self.inputs[0][1][-2]

    @property
    def width(self) -> int:
        """The first input's last dimension (the image width)."""
        return self.inputs[0][1][-1]


def resolve_onnx(onnx_path: str | Path, nn: str) -> Path:
    """An ONNX file, or the keypoint file of ``nn`` inside an export folder."""
    path = Path(onnx_path).expanduser()
    if path.is_dir():
        path = path / ONNX_FILES[nn]
    if not path.is_file():
        raise PplEdgeError(
            f"ONNX graph {path} not found (export it with 'ppl-edge convert --target onnx')"
        )
    return path


def _dims(value) -> list[int | None]:
    return [
        d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim
    ]


def graph_inputs(model, name: str) -> tuple[tuple[tuple[str, tuple[int, ...]], ...], int | None]:
    """(name, shape after the batch) of each input, and the static batch (None: dynamic).

    Raises:
        PplEdgeError: no input, a 4-D input that is not (B, 3, H, W) with static H and W, another
            input with a dynamic dimension after the batch, or inputs whose static batches differ.
    """
    initializers = {init.name for init in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise PplEdgeError(f"{name} has no inputs; expected an image (B, 3, H, W)")
    shapes, batches = [], set()
    for value in inputs:
        dims = _dims(value)
        if len(dims) == 4 and (dims[1] != 3 or None in dims[2:]):
            raise PplEdgeError(
                f"{name} input {value.name!r} has shape {dims}; expected (B, 3, H, W) with "
                "static H and W"
            )
        if len(dims) < 2 or None in dims[1:]:
            raise PplEdgeError(
                f"{name} input {value.name!r} has shape {dims}; expected a batch dimension "
                "followed by static ones"
            )
        shapes.append((value.name, tuple(dims[1:])))
        batches.add(dims[0])
    if len(batches) > 1:
        raise PplEdgeError(
            f"{name} inputs have different batch dimensions {sorted(map(str, batches))}"
        )
    return tuple(shapes), batches.pop()


def _is_float16(model) -> bool:
    return any(t.data_type == 10 for t in model.graph.initializer)  # TensorProto.FLOAT16


def prepare_graph(
    path: Path, nn: str, lookup_required: bool = True, float16: bool = False
) -> PreparedGraph:
    """Load the graph, check it suits ``nn``, make it float16 if asked (keeping the lookup and
    the normalisations float32, convert/fp16.py), strip the plugin's lookup function, read shapes.

    Args:
        path: the ONNX file.
        nn: "plugin" or "native".
        lookup_required: the graph must hold the ``NearestNeighborLookup`` node for
            nn="plugin" (a keypoint graph; refine and memory graphs have none).
        float16: build from the float16 version (strongly typed FP16): the exported
            ``<stem>.fp16.onnx`` beside ``path`` when it exists, else ``path`` converted here (a
            graph that is already float16 is used as it is).
    """
    onnx = require("onnx", "convert", "reading ONNX graphs for TensorRT")
    from ppl_edge.convert.nn_plugin import OP_TYPE, lookup_nodes, strip_lookup_function

    if float16 and path.with_name(fp16_name(path.name)).is_file():
        path = path.with_name(fp16_name(path.name))
    model = onnx.load(str(path))
    nodes = lookup_nodes(model)
    has_function = any(f.name == OP_TYPE for f in model.functions)
    if nn == "plugin" and lookup_required and not nodes:
        raise PplEdgeError(
            f"{path.name} has no {OP_TYPE} node: --nn plugin builds "
            f"{ONNX_FILES['plugin']} (export with --nn plugin), or use --nn native"
        )
    if nn == "native" and nodes and not has_function:
        raise PplEdgeError(
            f"{path.name} holds {OP_TYPE} nodes without their ONNX function: build it "
            f"with --nn plugin, or use {ONNX_FILES['native']} for --nn native"
        )
    if float16 and not _is_float16(model):
        model = to_float16(model)  # needs the function to type the custom node's outputs
    if nn == "plugin":
        strip_lookup_function(model)  # else the parser may inline the function (TensorRT <= 10.6)
    inputs, batch = graph_inputs(model, path.name)
    opset = next((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), None)
    return PreparedGraph(path, sha256_path(path), model.SerializeToString(), inputs, batch, opset)
