"""The named joints an export bakes in (docs/contracts.md, "Export artifacts").

A model names its joints in one of two ways:

- ``ppl-edge name`` stored a linear map in the checkpoint (tensor ``joints.map``, metadata
  ``joints``): ``joints = [keypoints_flat (2N), 1] @ M``, M of shape (2N + 1, 2J);
- the model has a template prior (``ModelConfig.prior == "template:<name>"``): keypoint k *is* the
  template's joint k, so M is the identity (J = N) and the keypoints take the template's names.

A stored map wins over a template. Either way the export bakes M into every keypoint graph as one
MatMul + Add (an extra output ``joints`` (B, J, 2)) and lists it in the manifest's ``joints``
section (:class:`ppl_edge.named_joints.NamedJoints`), from where the runtime applies it to its final
keypoints. A model with neither exports as before: no ``joints`` output, no ``joints`` section,
keypoints named ``kp00``...
"""

from __future__ import annotations

from pathlib import Path

from ppl_edge.errors import PplEdgeError
from ppl_edge.named_joints import NamedJoints


def _checked(joints: NamedJoints, num_keypoints: int, where: str) -> NamedJoints:
    try:
        return joints.check(num_keypoints)
    except ValueError as err:
        raise PplEdgeError(f"{where}: {err}; re-run 'ppl-edge name'") from None


def template_joints(model) -> NamedJoints | None:
    """The identity joints of a template-prior model (keypoint k = joint k), or None."""
    from ppl_edge.templates import template_of

    template = template_of(model.cfg.prior)
    if template is None:
        return None
    joints = NamedJoints.identity(template.names, template.edges, template.swap_pairs)
    return _checked(joints, model.cfg.num_keypoints, f"prior {model.cfg.prior}")


def checkpoint_joints(path: str | Path, model) -> NamedJoints | None:
    """The joints of a checkpoint: its stored map, else its template prior's, else None.

    Raises:
        PplEdgeError: a malformed map (wrong shape, non-finite, pairs out of range).
    """
    from ppl_edge import checkpoint as ckpt

    meta = ckpt.read_metadata(path).get("joints")
    if not meta:
        return template_joints(model)
    tensors = ckpt.load_tensors(path, prefix="joints.")
    if "map" not in tensors:
        raise PplEdgeError(f"{path}: joints metadata without the joints.map tensor")
    try:
        joints = NamedJoints(
            names=tuple(str(n) for n in meta["names"]),
            edges=tuple((int(i), int(j)) for i, j in meta.get("edges", ())),
            swap_pairs=tuple((int(i), int(j)) for i, j in meta.get("swap_pairs", ())),
            matrix=tensors["map"].detach().cpu().float().numpy(),
            source="map",
        )
    except (KeyError, TypeError, ValueError) as err:
        raise PplEdgeError(
            f"{path}: malformed joints metadata ({err}); re-run 'ppl-edge name'"
        ) from None
    return _checked(joints, model.cfg.num_keypoints, str(path))


def keypoint_names(model) -> list[str]:
    """The manifest's keypoint names: a template prior's joint names, else ``kp00``..."""
    from ppl_edge.templates import template_of

    template = template_of(model.cfg.prior)
    if template is not None:
        return list(template.names)
    return [f"kp{i:02d}" for i in range(model.cfg.num_keypoints)]
