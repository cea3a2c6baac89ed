"""Core ML export of the keypoint path: ``keypoints.mlpackage`` (mlprogram, iOS 16 / macOS 13+).

The same graph as ``keypoints.onnx`` (:class:`~ppl_edge.convert.onnx_export.KeypointGraph`), traced
with ``torch.jit.trace`` and converted by coremltools (toolchain.md §2):

- the input is an ``ImageType`` (RGB, 8-bit) with the manifest's normalisation baked in;
- the memory lookup is plain ops (squared difference, sum, argmin, gather; ``cdist`` and
  ``take_along_dim`` do not convert);
- the network computes in FP16, the lookup in FP32: in FP16 about 0.4 % of argmins flip on random
  queries (toolchain.md §2), so the ops between the codebook and the gathers are kept out of the
  FP16 pass;
- ``user_defined_metadata`` holds the keypoint names, skeleton edges and the manifest (JSON);
- a named model (:mod:`ppl_edge.convert.joints`) has one more output, ``joints`` (1, J, 2).

The export also writes ``memory.mlpackage`` (:mod:`ppl_edge.convert.coreml_memory`). On Linux
packages are built and inspected, not run; :func:`verify_coreml` adds parity on macOS.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from pathlib import Path

import numpy as np

from ppl_edge.convert.coreml_program import import_coremltools, to_mlprogram
from ppl_edge.convert.onnx_export import KeypointGraph, keypoint_outputs
from ppl_edge.convert.verify import TOLERANCES, Check, compare_keypoints, torch_keypoints
from ppl_edge.errors import PplEdgeError, require
from ppl_edge.manifest import InputSpec

log = logging.getLogger(__name__)

PACKAGE_NAME = "keypoints.mlpackage"
WEIGHTS = Path("Data/com.apple.CoreML/weights/weight.bin")
# FP16 network against the FP32 torch reference (macOS prediction only).
COREML_TOLERANCES = {"keypoints_atol": 2e-2, "id_agreement": 0.95, "distance_rtol": 5e-2}


def convert_model(model, metadata: dict[str, str] | None = None, joint_map=None):
    """Convert a PoseModel's keypoint path to a Core ML mlprogram (batch 1, ImageType input).

    Returns:
        coremltools.models.MLModel with outputs ``KEYPOINT_OUTPUTS`` (float32; ids int32), and
        ``joints`` when ``joint_map`` (2N + 1, 2J) is given.
    """
    import torch

    ct = import_coremltools()
    size = model.cfg.img_size
    graph = KeypointGraph(model.eval(), joint_map).eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit.trace is deprecated in torch 2.13
        traced = torch.jit.trace(graph, torch.zeros(1, 3, size, size))
    spec = InputSpec.square(size)  # Core ML needs one scale for all channels: std is uniform
    image = ct.ImageType(
        name="image",
        shape=(1, 3, size, size),
        scale=spec.scale / spec.std[0],
        bias=[-m / d for m, d in zip(spec.mean, spec.std)],
        color_layout=ct.colorlayout.RGB,
    )
    outputs = [
        ct.TensorType(name=n, dtype=np.int32 if n == "prototype_ids" else np.float32)
        for n in keypoint_outputs(graph.named)
    ]
    mlmodel = to_mlprogram(traced, [image], outputs, model, "the keypoint path")
    mlmodel.short_description = "Pose Prior Learner keypoints (xy in [-1, 1]) and memory prototypes"
    for key, value in (metadata or {}).items():
        mlmodel.user_defined_metadata[key] = value
    return mlmodel


def coreml_metadata(manifest: dict) -> dict[str, str]:
    """user_defined_metadata: keypoint names, skeleton edges, [joint names,] the manifest (JSON)."""
    core = {k: v for k, v in manifest.items() if k != "artifacts"}
    named = {"joint_names": json.dumps(manifest["joints"]["names"])} if "joints" in manifest else {}
    return {
        "keypoint_names": json.dumps(manifest["keypoints"]["names"], allow_nan=False),
        "skeleton_edges": json.dumps(manifest["skeleton"]["edges"], allow_nan=False),
        **named,
        "manifest": json.dumps(core, allow_nan=False),
    }


def export_coreml(
    model_or_source, out_dir: str | Path, name: str | None = None, data: str | None = None
) -> Path:
    """Write ``keypoints.mlpackage``, ``memory.mlpackage`` and ``manifest.json`` into ``out_dir``,
    atomically; a manifest there of the same checkpoint (e.g. an ONNX export's) is extended.

    Args:
        model_or_source: a PoseModel, a checkpoint path or an ExportSource (the model, its name,
            preset, checkpoint digest and category: :class:`~ppl_edge.convert.ExportSource`).

    Returns:
        Path of ``manifest.json``.
    """
    from ppl_edge.convert.config import ExportConfig
    from ppl_edge.convert.source import ExportSource, load_source

    config = ExportConfig(out=out_dir, target="coreml", name=name, data=data)
    import_coremltools()
    source = (
        model_or_source
        if isinstance(model_or_source, ExportSource)
        else load_source(model_or_source, name=name, data=data)
    )
    return write_package(source, config)


def write_package(source, config) -> Path:
    """:func:`export_coreml` of a loaded ``source`` into ``config.out``."""
    from ppl_edge.convert.coreml_memory import write_memory_package
    from ppl_edge.convert.manifest import (
        MANIFEST_NAME,
        build_manifest,
        distance_reference,
        sha256_path,
        staged_output,
        tool_versions,
        write_manifest,
    )
    from ppl_edge.convert.verify import sample_images

    out = config.out
    model = source.model.eval()
    previous = _previous_manifest(out, source.checkpoint_sha256)
    manifest = previous or build_manifest(
        model,
        name=source.name,
        preset=source.preset,
        checkpoint_sha256=source.checkpoint_sha256,
        distance_reference=distance_reference(
            model, sample_images(source.data, model.cfg.img_size)
        ),
        opset=None,
        dynamic_batch=False,
        max_batch=1,
        precision="fp16",
        artifacts={},
        tools={},
        joints=source.joints,
    )
    manifest["tools"] = {**manifest.get("tools", {}), **tool_versions("torch", "coremltools")}
    with staged_output(out) as staging:
        joint_map = source.joints.matrix if source.joints is not None else None
        mlmodel = convert_model(model, coreml_metadata(manifest), joint_map)
        package = staging / PACKAGE_NAME
        mlmodel.save(str(package))
        manifest["artifacts"]["coreml"] = {"file": PACKAGE_NAME, "sha256": sha256_path(package)}
        write_memory_package(model, staging, manifest)  # memory_coreml: memory.mlpackage
        write_manifest(staging / MANIFEST_NAME, manifest)
    return out / MANIFEST_NAME


def _previous_manifest(out: Path, checkpoint_sha256: str) -> dict | None:
    from ppl_edge.convert.manifest import MANIFEST_NAME, previous_artifacts

    kept = previous_artifacts(out, checkpoint_sha256)
    if not kept:
        return None
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    manifest["artifacts"] = {r: e for r, e in kept.items() if r not in ("coreml", "memory_coreml")}
    return manifest


def _spec_shape(feature) -> tuple[int, ...]:
    kind = feature.type.WhichOneof("Type")
    if kind == "imageType":
        return (1, 3, feature.type.imageType.height, feature.type.imageType.width)
    return tuple(int(d) for d in feature.type.multiArrayType.shape)


def _main_operations(spec) -> list:
    block = spec.mlProgram.functions["main"]
    return list(block.block_specializations[block.opset].operations)


def fp32_constants(package: Path, spec) -> dict[str, np.ndarray]:
    """Every FP32 tensor constant stored in the package's weight file, by MIL name."""
    from coremltools.libmilstoragepython import _BlobStorageReader
    from coremltools.proto import MIL_pb2

    reader = _BlobStorageReader(str(package / WEIGHTS))
    out = {}
    for op in _main_operations(spec):
        if op.type != "const" or op.attributes["val"].WhichOneof("value") != "blobFileValue":
            continue
        tensor_type = op.outputs[0].type.tensorType
        if tensor_type.dataType != MIL_pb2.FLOAT32:
            continue
        dims = tuple(d.constant.size for d in tensor_type.dimensions)
        data = np.asarray(reader.read_float_data(op.attributes["val"].blobFileValue.offset))
        out[op.outputs[0].name] = data.reshape(dims)
    return out


def load_spec(package: Path):
    """The spec of a saved package, loaded without compiling it (works on Linux).

    Raises:
        PplEdgeError: the package does not load.
    """
    ct = import_coremltools()
    try:
        return ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    except Exception as err:
        raise PplEdgeError(f"{package} does not load as a Core ML package: {err}") from err


def check_lookup(package: Path, spec, model, problems: list[str]) -> float:
    """The memory lookup of a saved package: a stored FP32 constant equals ``model``'s codebook
    exactly and the argmin runs in FP32; appends what fails to ``problems``.

    Returns:
        the smallest max-abs difference between an FP32 constant and the codebook (0 = exact).
    """
    codebook = model.memory.codebook.detach().cpu().numpy().astype(np.float32)
    errors = [
        float(np.abs(v.reshape(codebook.shape) - codebook).max())
        for v in fp32_constants(package, spec).values()
        if v.size == codebook.size
    ]
    codebook_err = min(errors, default=float("inf"))
    if codebook_err > 0.0:
        problems.append(
            f"no FP32 constant equals the codebook (closest differs by {codebook_err:.3g})"
        )
    argmin = [op for op in _main_operations(spec) if op.type == "reduce_argmin"]
    if len(argmin) != 1 or _input_dtype(argmin[0], spec) != "fp32":
        problems.append("the prototype argmin does not run in FP32")
    return codebook_err


def check_package(package: str | Path, manifest: dict, model) -> Check:
    """The Linux checks of a Core ML package (no prediction).

    - it loads (``skip_model_load``) and is an mlprogram;
    - input ``image`` is an RGB image of the manifest's size; outputs and shapes match the manifest;
    - its metadata names the manifest's keypoints and edges;
    - a stored FP32 constant equals the model's codebook (M, K, D) exactly, and argmin runs in FP32.
    """
    package = Path(package)
    spec = load_spec(package)
    n, m = manifest["keypoints"]["count"], manifest["memory"]["banks"]
    want = {
        "keypoints": (1, n, 2),
        "keypoints_refined": (1, n, 2),
        "prototype_ids": (1, m),
        "prototype_distances": (1, m),
        "confidence": (1, n),
    }
    if "joints" in manifest:
        want["joints"] = (1, manifest["joints"]["count"], 2)
    problems = []
    image = {f.name: f for f in spec.description.input}.get("image")
    size = (manifest["input"]["height"], manifest["input"]["width"])
    if image is None or image.type.WhichOneof("Type") != "imageType":
        problems.append("no image input named 'image'")
    elif _spec_shape(image)[2:] != size or image.type.imageType.colorSpace != 20:  # 20 = RGB
        problems.append(f"image input {_spec_shape(image)}, expected RGB {size}")
    got = {f.name: _spec_shape(f) for f in spec.description.output}
    if got != want:
        problems.append(f"outputs {got}, expected {want}")
    meta = dict(spec.description.metadata.userDefined)
    if json.loads(meta.get("keypoint_names", "null")) != manifest["keypoints"]["names"]:
        problems.append("metadata keypoint_names differ from the manifest")
    if json.loads(meta.get("skeleton_edges", "null")) != manifest["skeleton"]["edges"]:
        problems.append("metadata skeleton_edges differ from the manifest")
    if json.loads(meta.get("joint_names", "null")) != manifest.get("joints", {}).get("names"):
        problems.append("metadata joint_names differ from the manifest")
    codebook_err = check_lookup(package, spec, model, problems)
    for problem in problems:
        log.warning("%s: %s", package.name, problem)
    return Check(
        f"{package.name} (spec)",
        {"outputs": len(got), "codebook_max_error": codebook_err, "problems": len(problems)},
        not problems,
    )


def _input_dtype(op, spec) -> str:
    """'fp32' / 'fp16' of the tensor feeding ``op``'s ``x`` argument."""
    from coremltools.proto import MIL_pb2

    name = op.inputs["x"].arguments[0].name
    for other in _main_operations(spec):
        for out in other.outputs:
            if out.name == name:
                return {MIL_pb2.FLOAT32: "fp32", MIL_pb2.FLOAT16: "fp16"}.get(
                    out.type.tensorType.dataType, "other"
                )
    return "fp32" if any(i.name == name for i in spec.description.input) else "other"


def predict(package: str | Path, images) -> dict[str, np.ndarray]:
    """Run the package on macOS. images: (S, 3, H, W) float32 in [-1, 1] (rounded to 8-bit RGB)."""
    if platform.system() != "Darwin":
        raise PplEdgeError(f"Core ML prediction needs macOS, this is {platform.system()}")
    ct = import_coremltools()
    pil = require("PIL.Image", "coreml", "Core ML prediction")
    mlmodel = ct.models.MLModel(str(package))
    pixels = ((images.numpy() + 1.0) * 127.5).round().clip(0, 255).astype(np.uint8)
    outs: dict[str, list] = {}
    for frame in pixels.transpose(0, 2, 3, 1):
        for k, v in mlmodel.predict({"image": pil.fromarray(frame, "RGB")}).items():
            outs.setdefault(k, []).append(np.asarray(v)[0])
    return {k: np.stack(v) for k, v in outs.items()}


def verify_coreml(model, folder: str | Path, images, joints=None) -> list[Check]:
    """Linux checks of ``folder``'s Core ML package, plus prediction parity on macOS (its
    ``joints`` output too, against ``joints``, the checkpoint's NamedJoints, when given)."""
    from ppl_edge.convert.manifest import read_manifest

    folder = Path(folder)
    manifest = read_manifest(folder)
    if "coreml" not in manifest["artifacts"]:
        raise PplEdgeError(f"{folder} holds no Core ML package (export with --target coreml)")
    package = folder / manifest["artifacts"]["coreml"]["file"]
    checks = [check_package(package, manifest, model)]
    if platform.system() == "Darwin":
        quantised = ((images + 1.0) * 127.5).round().clamp(0, 255) / 127.5 - 1.0  # what 8-bit sees
        checks.append(
            compare_keypoints(
                f"{package.name} vs torch",
                predict(package, images),
                torch_keypoints(model, quantised, joints=joints),
                COREML_TOLERANCES["keypoints_atol"],
                COREML_TOLERANCES["id_agreement"],
                COREML_TOLERANCES["distance_rtol"],
            )
        )
    else:
        log.info(
            "Core ML prediction skipped: it needs macOS (tolerances: %s, ONNX: %s)",
            COREML_TOLERANCES,
            TOLERANCES["keypoints_atol"],
        )
    return checks
