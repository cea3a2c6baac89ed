"""Keypoint labels for naming a model's joints (``ppl-edge name``): COCO keypoints JSON, the format
annotation tools export (CVAT, Label Studio, makesense.ai, COCO itself), or the ``labels.jsonl`` of
a ``ppl-edge data synth`` folder.

COCO keypoints, as read here::

    {"images": [{"id": 1, "file_name": "a.jpg", ...}, ...],
     "annotations": [{"image_id": 1, "category_id": 1, "bbox": [x, y, w, h],
                      "keypoints": [x1, y1, v1, x2, y2, v2, ...], ...}, ...],
     "categories": [{"id": 1, "name": "person", "keypoints": ["nose", ...],
                     "skeleton": [[16, 14], ...]}]}

Pixel coordinates of the full image, ``v`` = 0 not labelled, 1 labelled but hidden, 2 visible (1
and 2 both count as labelled); ``skeleton`` is 1-based. One category with keypoints is read (the
one named, else the one most annotations label); every annotation of it with at least one
labelled joint is one item, cropped to its ``bbox``. Left/right pairs come from the joint names
(``left_x`` / ``right_x``, ``l_x`` / ``r_x``, ``leftX`` / ``rightX``). Any inconsistency is one
error naming the file and entry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.named_joints import swap_pairs_from_names

MAX_LABEL_BYTES = 1 << 30  # a COCO file beyond 1 GiB is not a labelling job for this command


@dataclass(frozen=True)
class LabelItem:
    """One labelled subject: the image file, its box (x0, y0, x1, y1) in pixels (None: the whole
    image), joints (J, 2) float32 xy pixels and a labelled flag (J,) bool."""

    image: Path
    box: tuple[float, float, float, float] | None
    keypoints: np.ndarray
    labelled: np.ndarray


@dataclass(frozen=True)
class LabelSet:
    """Named joints and their labels."""

    names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    swap_pairs: tuple[tuple[int, int], ...]
    items: list[LabelItem] = field(repr=False)
    source: str = ""


def _fail(path: Path, where: str, what: str) -> PplEdgeError:
    return PplEdgeError(f"{path}: {where}: {what}")


def _read_json(path: Path):
    if not path.is_file():
        raise PplEdgeError(f"labels not found: {path}")
    if path.stat().st_size > MAX_LABEL_BYTES:
        raise PplEdgeError(f"{path} is larger than {MAX_LABEL_BYTES >> 30} GiB")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise PplEdgeError(f"{path} is not valid JSON: {err}") from None


def _category(path: Path, doc: dict, name: str | None) -> dict:
    cats = doc.get("categories")
    if not isinstance(cats, list) or not cats:
        raise _fail(path, "categories", "missing or empty; expected COCO keypoints categories")
    usable = [c for c in cats if isinstance(c, dict) and isinstance(c.get("keypoints"), list)]
    if name is not None:
        usable = [c for c in usable if c.get("name") == name]
    if not usable:
        wanted = f"named {name!r} " if name else ""
        raise _fail(path, "categories", f"no category {wanted}with a 'keypoints' list")
    anns = [a for a in doc.get("annotations") or [] if isinstance(a, dict)]
    counts = [sum(a.get("category_id") == c.get("id") for a in anns) for c in usable]
    cat = usable[int(np.argmax(counts))]  # the category most annotations label
    names = cat["keypoints"]
    distinct = len(set(names)) == len(names)
    if not names or not distinct or not all(isinstance(n, str) and n for n in names):
        raise _fail(path, f"category {cat.get('name')!r}", "keypoints must be distinct names")
    return cat


def _edges(path: Path, cat: dict, count: int) -> tuple[tuple[int, int], ...]:
    edges = []
    for k, edge in enumerate(cat.get("skeleton") or []):
        ok = isinstance(edge, list) and len(edge) == 2 and all(isinstance(v, int) for v in edge)
        if not ok or not all(1 <= v <= count for v in edge) or edge[0] == edge[1]:
            raise _fail(path, f"skeleton[{k}]", f"expected [i, j] in 1..{count}, got {edge!r}")
        i, j = edge[0] - 1, edge[1] - 1
        edges.append((min(i, j), max(i, j)))
    return tuple(sorted(set(edges)))


def _annotation(path: Path, k: int, ann, count: int, images: dict, root: Path):
    where = f"annotations[{k}]"
    if not isinstance(ann, dict):
        raise _fail(path, where, f"expected an object, got {type(ann).__name__}")
    values = ann.get("keypoints")
    if not isinstance(values, list) or len(values) != 3 * count:
        got = len(values) if isinstance(values, list) else repr(values)
        raise _fail(path, where, f"'keypoints' must hold {3 * count} numbers, got {got}")
    try:
        arr = np.asarray(values, dtype=np.float64).reshape(count, 3)
    except (TypeError, ValueError):
        raise _fail(path, where, "'keypoints' must be numbers") from None
    if not np.isfinite(arr).all():
        raise _fail(path, where, "'keypoints' holds NaN or infinity")
    image = images.get(ann.get("image_id"))
    if image is None:
        raise _fail(path, where, f"image_id {ann.get('image_id')!r} is not in 'images'")
    box = ann.get("bbox")
    if box is not None:
        ok = isinstance(box, list) and len(box) == 4
        if not ok or not all(isinstance(v, (int, float)) and np.isfinite(v) for v in box):
            raise _fail(path, where, f"'bbox' must be [x, y, w, h], got {box!r}")
        if box[2] <= 0 or box[3] <= 0:
            raise _fail(path, where, f"'bbox' has no area: {box!r}")
        box = (box[0], box[1], box[0] + box[2], box[1] + box[3])
    return LabelItem(root / image, box, arr[:, :2].astype(np.float32), arr[:, 2] > 0)


def read_coco_keypoints(
    path: str | Path, images_root: str | Path | None = None, category: str | None = None
) -> LabelSet:
    """Read a COCO keypoints JSON file (see the module docstring).

    Args:
        path: the JSON file.
        images_root: folder the ``file_name`` entries are relative to (default: the JSON's).
        category: the category to read (default: the keypoint category with the most
            annotations).

    Raises:
        PplEdgeError: the file is missing, not JSON, or an entry is malformed (named).
    """
    path = Path(path)
    doc = _read_json(path)
    if not isinstance(doc, dict):
        raise _fail(path, "top level", f"expected a COCO object, got {type(doc).__name__}")
    cat = _category(path, doc, category)
    names = tuple(cat["keypoints"])
    images = {}
    for k, img in enumerate(doc.get("images") or []):
        if not isinstance(img, dict) or not isinstance(img.get("file_name"), str):
            raise _fail(path, f"images[{k}]", "expected {'id': ..., 'file_name': ...}")
        images[img.get("id")] = img["file_name"]
    root = Path(images_root) if images_root is not None else path.parent
    items = []
    for k, ann in enumerate(doc.get("annotations") or []):
        if isinstance(ann, dict) and ann.get("category_id", cat.get("id")) != cat.get("id"):
            continue
        item = _annotation(path, k, ann, len(names), images, root)
        if item.labelled.any():
            items.append(item)
    if not items:
        raise _fail(path, "annotations", f"no annotation of {cat.get('name')!r} labels a joint")
    edges = _edges(path, cat, len(names))
    return LabelSet(names, edges, swap_pairs_from_names(names), items, str(path))


def read_synth_labels(folder: str | Path) -> LabelSet:
    """The labels of a ``ppl-edge data synth`` folder (``meta.json`` + ``labels.jsonl``)."""
    folder = Path(folder)
    if folder.name == "labels.jsonl":
        folder = folder.parent
    meta = _read_json(folder / "meta.json")
    if not isinstance(meta, dict) or not isinstance(meta.get("joint_names"), list):
        raise _fail(folder / "meta.json", "joint_names", "missing; expected a synthdir folder")
    names = tuple(meta["joint_names"])
    labels = folder / "labels.jsonl"
    if not labels.is_file():
        raise PplEdgeError(f"labels not found: {labels}")
    items = []
    for k, line in enumerate(labels.read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            kp = np.asarray(row["keypoints"], dtype=np.float32).reshape(len(names), 2)
            image = folder / str(row["image"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise _fail(labels, f"line {k + 1}", f"not a synthdir label ({err})") from None
        # rendered ground truth: every joint's position is known, occluded or not
        items.append(LabelItem(image, None, kp, np.ones(len(names), bool)))
    if not items:
        raise _fail(labels, "labels", "no labelled image")
    edges = tuple(tuple(e) for e in meta.get("edges", []))
    pairs = tuple(tuple(p) for p in meta.get("swap_pairs", [])) or swap_pairs_from_names(names)
    return LabelSet(names, edges, pairs, items, str(labels))


def read_labels(
    path: str | Path, images_root: str | Path | None = None, category: str | None = None
) -> LabelSet:
    """COCO keypoints JSON (a ``.json`` file) or a synthdir folder / its ``labels.jsonl``."""
    path = Path(path)
    if path.is_dir() or path.name == "labels.jsonl":
        return read_synth_labels(path)
    if path.suffix.lower() == ".json":
        return read_coco_keypoints(path, images_root, category)
    raise PplEdgeError(
        f"labels {path}: expected a COCO keypoints .json file or a 'ppl-edge data synth' folder"
    )
