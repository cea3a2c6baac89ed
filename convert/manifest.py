"""The export folder: a model's ``manifest.json`` document (the contract and its validation are
:class:`ppl_edge.manifest.Manifest`) and the folder's atomic publication.

Exports are written into a staging folder beside the output folder, which replaces the output
folder as a whole only when every file is complete (:func:`staged_output`, in :mod:`.publish`), so
a failed export leaves nothing behind and a new one nothing of the old one it does not list.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ppl_edge.convert.publish import (  # noqa: F401  (re-exported: the exporter's writing API)
    check_output_folder,
    remove_leftovers,
    staged_output,
)
from ppl_edge.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_NAME,
    InputSpec,
    Manifest,
    ManifestError,
    dumps,  # noqa: F401  (re-exported: the exporter's writing API)
    sha256_path,
    write_manifest,  # noqa: F401
)

log = logging.getLogger(__name__)


def tool_versions(*modules: str) -> dict[str, str]:
    """Installed versions of ``modules`` (import names) that are importable."""
    from importlib import metadata

    dists = {
        "onnxsim": "onnxsim",
        "onnxruntime": "onnxruntime",
        "coremltools": "coremltools",
        "tensorrt": "tensorrt",
        "onnx": "onnx",
        "torch": "torch",
        "onnxscript": "onnxscript",
    }
    out = {}
    for name in modules:
        try:
            out[name] = metadata.version(dists.get(name, name))
        except metadata.PackageNotFoundError:
            continue
    return out


def skeleton_from_model(model) -> dict[str, list]:
    """Skeleton edges derived from the learned connectivity W, with their weights.

    Returns:
        {"edges": [[i, j], ...] with i < j, "weights": [W_ij, ...]} (plain lists, JSON-ready).
    """
    from ppl_edge.skeleton import edges_from_weights

    weights = model.connectivity.matrix().detach().cpu().double().numpy()  # (N, N)
    edges = edges_from_weights(weights)
    return {
        "edges": [[int(i), int(j)] for i, j in edges],
        "weights": [round(float(weights[i, j]), 6) for i, j in edges],
    }


def distance_reference(model, images) -> float:
    """Scale of the runtime's pose plausibility ``exp(-mean_distance / reference * ln 2)``.

    Args:
        model: PoseModel in eval mode.
        images: (S, 3, H, W) float32 in [-1, 1], typically 256 synthetic images of the category.

    Returns:
        Median over images of the mean prototype distance over banks (> 0).
    """
    import torch

    means = []
    with torch.no_grad():
        for chunk in images.split(64):
            means.append(model.keypoint_path(chunk)["prototype_distances"].mean(dim=1))  # (b,)
    value = float(torch.cat(means).median())
    return max(value, 1e-12)


def build_manifest(
    model,
    *,
    name: str,
    preset: str,
    checkpoint_sha256: str,
    distance_reference: float,
    opset: int | None,
    dynamic_batch: bool,
    max_batch: int,
    precision: str,
    artifacts: dict[str, Path],
    tools: dict[str, str],
    joints=None,
) -> dict[str, Any]:
    """Assemble the manifest of an export.

    Args:
        model: the exported PoseModel (for sizes, W and the memory shape).
        name: model name, e.g. "ppl-small-humanoid".
        preset: preset the config equals ("tiny" / "small" / "base") or "custom".
        checkpoint_sha256: sha256 of the source checkpoint (or of its serialised state dict).
        distance_reference: median per-image mean prototype distance (:func:`distance_reference`).
        opset: ONNX opset of the graphs (None when there is no ONNX artifact).
        dynamic_batch: whether the batch dimension is dynamic; max_batch its upper bound.
        precision: "fp32", "fp16" or "int8".
        artifacts: role ("keypoints", "refine", "keypoints_trt", "coreml", ...) -> file in the
            staging folder; each gets its file name and sha256.
        tools: tool -> version.
        joints: the named joints (:class:`~ppl_edge.named_joints.NamedJoints`), listed as the
            ``joints`` section; None: no section. A template prior names the keypoints too.

    Returns:
        The manifest as a JSON-ready dict.
    """
    from ppl_edge import __version__
    from ppl_edge.convert.joints import keypoint_names

    cfg = model.cfg
    n = cfg.num_keypoints
    banks, entries, dim = (int(s) for s in model.memory.codebook.shape)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "ppl_edge_version": __version__,
        "model": {"name": name, "preset": preset, "checkpoint_sha256": checkpoint_sha256},
        "input": InputSpec.square(cfg.img_size).to_dict(),
        "keypoints": {"count": n, "names": keypoint_names(model), "coords": "xy_norm"},
        "skeleton": skeleton_from_model(model),
        **({"joints": joints.section()} if joints is not None else {}),
        "memory": {
            "banks": banks,
            "entries": entries,
            "dim": dim,
            "distance_reference": float(distance_reference),
        },
        "batch": {"dynamic": bool(dynamic_batch), "max": int(max_batch)},
        "opset": opset,
        "precision": precision,
        "artifacts": {
            role: {"file": Path(p).name, "sha256": sha256_path(p)} for role, p in artifacts.items()
        },
        "tools": dict(tools),
    }


def validate_manifest(manifest: dict[str, Any], folder: str | Path | None = None) -> None:
    """Check a manifest document (:meth:`Manifest.from_dict`) and, given its folder, every
    artifact's presence and sha256.

    Raises:
        ManifestError: naming the first problem found.
    """
    path = Path(folder) / MANIFEST_NAME if folder is not None else None
    checked = Manifest.from_dict(manifest, path)
    if folder is not None:
        checked.verify_all()


def read_manifest(path: str | Path, check_files: bool = True) -> dict[str, Any]:
    """Read ``manifest.json`` (or the folder holding it), validate it and return the document.

    Args:
        path: the manifest file or its folder.
        check_files: also check every artifact's presence and sha256.
    """
    manifest = Manifest.load(path)
    if check_files:
        manifest.verify_all()
    return manifest.to_dict()


def previous_artifacts(out_dir: Path, checkpoint_sha256: str) -> dict[str, dict]:
    """Artifacts listed by an existing manifest in ``out_dir`` made from the same checkpoint.

    Lets a Core ML export and an ONNX export of one checkpoint share one folder and one manifest.
    Only a valid manifest counts (:meth:`Manifest.load`), and only artifacts that exist inside its
    folder and match their sha256 (the publication links them into the new folder).
    """
    path = Path(out_dir) / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        old = Manifest.load(path)
        model = old.raw.get("model")
        if not isinstance(model, dict) or model.get("checkpoint_sha256") != checkpoint_sha256:
            return {}
        return {r: e for r, e in old.artifacts.items() if _intact(old, r)}
    except ManifestError as err:
        log.warning("not keeping anything of the previous export in %s: %s", out_dir, err)
        return {}


def _intact(manifest: Manifest, key: str) -> bool:
    """Artifact ``key`` exists and matches its sha256."""
    try:
        manifest.verify(key)
    except ManifestError:
        return False
    return True
