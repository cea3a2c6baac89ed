"""Which protocol scores a dataset, and what its ground truth needs: left/right swap pairs, limbs
for BPLP-C and the torso for PDJ (:func:`layout_for`)."""

from __future__ import annotations

from dataclasses import dataclass

from ppl_edge.errors import PplEdgeError
from ppl_edge.train import evaluate as ev


@dataclass(frozen=True)
class Layout:
    """What a dataset's ground truth needs for scoring.

    protocol: h36m / taichi / cub; swap_pairs: left/right joint pairs; limbs: joint pairs for
    BPLP-C (None: not reported); torso: joint pair for PDJ (None: bounding-box diagonal).
    """

    protocol: str
    swap_pairs: tuple = ()
    limbs: tuple | None = None
    torso: tuple | None = None


_NO_LABELS = ("folder",)


def video_labelled(spec: str, dataset=None) -> bool:
    """True when ``video:PATH`` has ground truth: a ``<video>.labels.npz`` beside every video
    (:mod:`ppl_edge.synth.scene`), or, given the dataset, items that carry keypoints."""
    if dataset is not None:
        return bool(getattr(dataset, "has_labels", False))
    from ppl_edge.synth.scene import labels_path
    from ppl_edge.train.data.video import list_videos

    videos = list_videos(spec.partition(":")[2])
    return bool(videos) and all(labels_path(v).is_file() for v in videos)


def layout_for(spec: str, protocol: str = "auto", dataset=None) -> Layout:
    """The scoring layout of a dataset spec (``synthetic:humanoid``, ``h36m:PATH``, ...).

    A dataset object that exposes ``swap_pairs``, ``edges`` and ``joint_names`` (synthetic data,
    labelled videos) supplies its own layout; Human3.6M falls back to the official 32-joint
    constants; ``video:PATH`` without a dataset reads it from its ``.labels.npz`` files.
    """
    kind = spec.partition(":")[0]
    if kind in _NO_LABELS or (kind == "video" and not video_labelled(spec, dataset)):
        raise PplEdgeError(
            f"dataset {spec!r} has no ground-truth keypoints; evaluation needs "
            "synthetic:<category>, "
            "synthdir:PATH, h36m:PATH, taichi:PATH, cub:PATH or video:PATH with a "
            "<video>.labels.npz beside each video (ppl-edge data scene writes one)"
        )
    if dataset is None and kind == "synthetic":
        from ppl_edge.synth.render import get_category

        cat = get_category(spec.partition(":")[2] or "humanoid")
        pairs, limbs, names = cat.swap_pairs, cat.edges, cat.joint_names
    elif dataset is None and kind == "video":
        from ppl_edge.synth.scene import labels_path, read_scene_labels
        from ppl_edge.train.data.video import list_videos

        labels = read_scene_labels(labels_path(list_videos(spec.partition(":")[2])[0]))
        pairs, limbs, names = labels.swap_pairs, labels.edges, labels.joint_names
    elif dataset is not None and hasattr(dataset, "swap_pairs"):
        pairs = tuple(map(tuple, dataset.swap_pairs))
        limbs = tuple(map(tuple, getattr(dataset, "edges", ()))) or None
        names = tuple(getattr(dataset, "joint_names", ()))
    elif kind == "h36m":
        pairs, limbs, names = ev.H36M_SWAP_PAIRS, ev.H36M_LIMBS, ()
    else:
        pairs, limbs, names = (), None, ()
    if {"l_shoulder", "r_hip"} <= set(names):
        torso = (names.index("l_shoulder"), names.index("r_hip"))
    else:
        torso = ev.H36M_TORSO if kind == "h36m" else None
    auto = kind if kind in ("taichi", "cub") else "h36m"
    if protocol != "auto" and protocol not in ev.PROTOCOLS:
        raise PplEdgeError(f"unknown protocol {protocol!r}; expected auto or one of {ev.PROTOCOLS}")
    return Layout(auto if protocol == "auto" else protocol, tuple(pairs), limbs, torso)
