"""Datasets for training and evaluation, opened from a spec string with :func:`build_dataset`.

Specs (docs/contracts.md):

==========================  ==============================================================
``synthetic:<category>``    rendered figures with ground truth (humanoid, quadruped, bird)
``synthdir:PATH``           a folder written by ``ppl-edge data synth`` (images + labels)
``folder:PATH``             any nested folder of jpg/png/bmp/webp images (no labels)
``video:PATH``              a video file or a folder of videos; pairs of frames of one clip
                            (``crops=motion``: a fixed camera, crops around the moving subject)
``h36m:PATH``               Human3.6M in the processed (Zhang et al. 2018) layout
``taichi:PATH``             Tai-Chi-HD (Siarohin et al.) frames and landmark tables
``cub:PATH``                CUB-200-2011 as AutoLink's ``cub.h5``
==========================  ==============================================================

Importing this package is cheap (no torch); each loader is imported when a spec asks for it.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from ppl_edge.errors import PplEdgeError

# spec kind -> (module under ppl_edge.train.data, class name)
LOADERS: dict[str, tuple[str, str]] = {
    "synthetic": ("synthetic", "SyntheticDataset"),
    "synthdir": ("synthdir", "SynthDirDataset"),
    "folder": ("folder", "ImageFolderDataset"),
    "video": ("video", "VideoDataset"),
    "h36m": ("h36m", "H36MDataset"),
    "taichi": ("taichi", "TaichiDataset"),
    "cub": ("cub", "CUBDataset"),
}


def parse_spec(spec: str) -> tuple[str, str]:
    """Split ``kind:argument`` and check the kind.

    Raises:
        PplEdgeError: no ``:`` or an unknown kind.
    """
    kind, sep, arg = str(spec).partition(":")
    if not sep or not arg:
        raise PplEdgeError(
            f"dataset spec {spec!r} is not of the form KIND:ARGUMENT, e.g. synthetic:humanoid or "
            f"folder:/data/images; kinds: {sorted(LOADERS)}"
        )
    if kind not in LOADERS:
        raise PplEdgeError(
            f"unknown dataset kind {kind!r} in {spec!r}; expected one of {sorted(LOADERS)}"
        )
    return kind, arg


def loader_class(kind: str) -> type:
    """The dataset class for a spec kind (imports its module, and torch, now)."""
    module, name = LOADERS[kind]
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def build_dataset(spec: str, img_size: int, split: str = "train", seed: int = 0, **kw: Any):
    """Open a dataset from a spec string.

    Args:
        spec: ``synthetic:humanoid``, ``folder:PATH``, ... (see the module docstring).
        img_size: H = W of the returned images.
        split: ``train``, ``train_reg`` or ``test``.
        seed: base seed (synthetic data, frame sampling of videos).
        **kw: loader options, e.g. ``length`` and ``video`` for synthetic data, ``flip`` for
        folders.

    Returns:
        A ``torch.utils.data.Dataset`` whose items follow docs/contracts.md, with a ``skipped``
        counter of unreadable files.

    Raises:
        PplEdgeError: malformed spec, unknown option, or a root that does not have the layout.
    """
    kind, arg = parse_spec(spec)
    cls = loader_class(kind)
    params = inspect.signature(cls).parameters
    unknown = sorted(set(kw) - set(params))
    if unknown:
        valid = sorted(
            p for p in params if p not in ("root", "category", "img_size", "split", "seed")
        )
        raise PplEdgeError(
            f"unknown option(s) {unknown} for {kind!r} datasets; expected some of {valid}"
        )
    first = "category" if kind == "synthetic" else "root"
    return cls(**{first: arg}, img_size=img_size, split=split, seed=seed, **kw)
