"""Frames to model inputs (pure NumPy + OpenCV): sanitise, crop + letterbox, normalise.

The pipeline is the manifest's contract (docs/contracts.md): BGR frame -> crop/letterbox to H x W ->
RGB -> ``x * scale`` -> ``(x - mean) / std`` -> (B, 3, H, W) float32. Each crop keeps a
:class:`Letterbox`, the exact affine map between model pixels and frame pixels, so keypoints go back
to the frame without drift. Pixel centres are integer coordinates in both images (OpenCV's
convention, the one ``cv2.resize`` follows).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import InputSpec
from ppl_edge.motion import Box  # (x0, y0, x1, y1) frame pixels, x1 / y1 exclusive
from ppl_edge.resize import RESIZE_METHODS as RESIZE_METHODS  # re-exported for the pipeline's users
from ppl_edge.resize import double_size_samples, resize

MAX_BOXES = 1024  # subjects per frame: one model batch each
MAX_COORDINATE = 1 << 20  # box coordinates, pixels (frames are at most 4096 wide after sanitising)


class BadFrameError(PplEdgeError):
    """Input the estimator cannot use: a frame that cannot be turned into an image (None, empty,
    NaN, unsupported layout), or subject boxes that are not boxes."""


def as_bgr8(frame: object) -> np.ndarray:
    """Convert whatever a capture gave into a (H, W, 3) uint8 BGR image.

    Grayscale (H, W) / (H, W, 1) is expanded, BGRA drops alpha, 16-bit is scaled to 8-bit, finite
    floats are read as [0, 1] when their maximum is <= 1 and as [0, 255] otherwise.

    Raises:
        BadFrameError: None, not an array, empty, not 2-D / 3-D, 2 or > 4 channels, non-finite
            floats, or an unsupported dtype.
    """
    if frame is None:
        raise BadFrameError("frame is None (the source returned no image)")
    if not isinstance(frame, np.ndarray):
        raise BadFrameError(f"frame must be a NumPy array, got {type(frame).__name__}")
    if frame.size == 0 or frame.ndim not in (2, 3) or min(frame.shape[:2]) == 0:
        raise BadFrameError(f"frame has shape {frame.shape}; expected (H, W, 3) with H, W > 0")
    channels = 1 if frame.ndim == 2 else frame.shape[2]
    if channels not in (1, 3, 4):
        raise BadFrameError(
            f"frame has {channels} channels; expected 1 (gray), 3 (BGR) or 4 (BGRA)"
        )
    if frame.dtype == np.uint8:
        img = frame
    elif frame.dtype == np.uint16:
        img = (frame >> 8).astype(np.uint8)
    elif frame.dtype.kind == "f":
        if not np.isfinite(frame).all():
            raise BadFrameError("frame holds NaN or infinite values")
        scale = 255.0 if float(frame.max(initial=0.0)) <= 1.0 else 1.0
        img = np.clip(np.rint(frame * scale), 0, 255).astype(np.uint8)
    elif frame.dtype.kind in "iub":
        img = np.clip(frame, 0, 255).astype(np.uint8)
    else:
        raise BadFrameError(
            f"frame dtype {frame.dtype} unsupported; expected uint8, uint16 or float"
        )
    if channels == 1:
        return cv2.cvtColor(img.reshape(img.shape[:2]), cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(img)


def check_boxes(boxes: object) -> list[Box]:
    """Subject boxes as a list of (x0, y0, x1, y1) tuples of finite numbers, x0 < x1 and y0 < y1.

    Args:
        boxes: a list, tuple or (B, 4) array of boxes, e.g. the ``boxes=`` of an estimator call or
            what a cropper returned.

    Raises:
        BadFrameError: anything else (not a sequence, a box of another length, NaN, infinity,
            None, a string, an empty or inverted box, more than ``MAX_BOXES`` boxes, coordinates
            beyond ``MAX_COORDINATE``), in one line.
    """
    if isinstance(boxes, np.ndarray):
        boxes = boxes.tolist()
    if isinstance(boxes, list) and len(boxes) == 1 and _plain_box(boxes[0]):
        return [boxes[0]]  # the common case (one cropper box), checked in one step
    if not isinstance(boxes, (list, tuple)) or len(boxes) > MAX_BOXES:
        raise BadFrameError(
            f"boxes must be a list of at most {MAX_BOXES} (x0, y0, x1, y1) boxes, got "
            f"{_describe(boxes)}"
        )
    out = []
    for box in boxes:
        values = box.tolist() if isinstance(box, np.ndarray) else box
        ok = isinstance(values, (list, tuple)) and len(values) == 4
        ok = ok and all(
            isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_))
            for v in values
        )
        ok = ok and all(abs(v) <= MAX_COORDINATE for v in values)  # False for NaN and infinity
        if not ok or not (values[0] < values[2] and values[1] < values[3]):
            raise BadFrameError(
                f"a box must be (x0, y0, x1, y1): 4 finite numbers with x0 < x1 and y0 < y1 (at "
                f"most {MAX_COORDINATE} in size), got {_describe(box)}"
            )
        out.append(tuple(values))
    return out


def _plain_box(box: object) -> bool:
    """A tuple of 4 Python ints/floats within MAX_COORDINATE with x0 < x1 and y0 < y1."""
    if type(box) is not tuple or len(box) != 4:
        return False
    x0, y0, x1, y1 = box
    return (
        all(type(v) in (int, float) for v in box)
        and -MAX_COORDINATE <= x0 < x1 <= MAX_COORDINATE
        and -MAX_COORDINATE <= y0 < y1 <= MAX_COORDINATE
    )


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Letterbox:
    """The map between a crop region of the frame and the model image.

    ``model = (frame - origin + 0.5) * scale - 0.5 + offset`` per axis, and its inverse.

    Attributes:
        box: the requested region (x0, y0, x1, y1) in frame pixels; may extend past the frame.
        origin: (x, y) frame pixel of the visible part's top-left corner.
        scale: (sx, sy) model pixels per frame pixel.
        offset: (x, y) model pixel where the visible part starts.
        size: (width, height) of the model image.
        visible: (width, height) of the visible part in the model image (None: not recorded).
        source: (width, height) of the visible part in the frame (None: not recorded).
    """

    box: Box
    origin: tuple[int, int]
    scale: tuple[float, float]
    offset: tuple[int, int]
    size: tuple[int, int]
    visible: tuple[int, int] | None = None
    source: tuple[int, int] | None = None

    def to_frame(self, pts: np.ndarray) -> np.ndarray:
        """(..., 2) xy model pixels -> frame pixels."""
        pts = np.asarray(pts, dtype=np.float32)
        return (pts - self.offset + 0.5) / np.asarray(self.scale, np.float32) - 0.5 + self.origin

    def to_model(self, pts: np.ndarray) -> np.ndarray:
        """(..., 2) xy frame pixels -> model pixels."""
        pts = np.asarray(pts, dtype=np.float32)
        return (pts - self.origin + 0.5) * np.asarray(self.scale, np.float32) - 0.5 + self.offset


def letterbox(
    frame: np.ndarray,
    box: Box,
    width: int,
    height: int,
    pad_value: int = 0,
    method: str = "fast",
    canvas: np.ndarray | None = None,
) -> tuple[np.ndarray, Letterbox]:
    """Crop ``box`` from the frame, scale it to fit width x height keeping its aspect, centre it.

    Args:
        frame: (H, W, 3) uint8 BGR.
        box: (x0, y0, x1, y1) region; parts outside the frame become padding.
        width, height: model input size.
        pad_value: grey level of the padding.
        method: resize method, "fast" or "area" (see :func:`resize`).
        canvas: optional (height, width, 3) uint8 array to draw into (reused between frames).

    Returns:
        (height, width, 3) uint8 BGR model image (``canvas`` when given), and its Letterbox map.

    Raises:
        PplEdgeError: the box is empty or does not overlap the frame.
    """
    lb = letterbox_map(frame.shape, box, width, height)
    (ix0, iy0), (dx, dy) = lb.origin, lb.offset
    nw, nh = lb.visible
    resized = resize(frame[iy0 : iy0 + lb.source[1], ix0 : ix0 + lb.source[0]], nw, nh, method)
    if canvas is None and (dx, dy, nw, nh) == (0, 0, width, height):
        canvas = np.ascontiguousarray(resized)
    else:
        if canvas is None:
            canvas = np.empty((height, width, 3), dtype=np.uint8)
        if (dx, dy, nw, nh) != (0, 0, width, height):
            canvas.fill(pad_value)
        canvas[dy : dy + nh, dx : dx + nw] = resized
    return canvas, lb


def letterbox_map(shape: tuple[int, ...], box: Box, width: int, height: int) -> Letterbox:
    """Where ``box`` of a frame of ``shape`` (H, W, ...) lands in a width x height model image
    (a stream repeats its frame size and, mostly, its boxes: the maps are cached).

    Raises:
        PplEdgeError: the box is empty or does not overlap the frame.
    """
    return _letterbox_map(shape[0], shape[1], tuple(box), width, height)


@functools.lru_cache(maxsize=256)
def _letterbox_map(fh: int, fw: int, box: Box, width: int, height: int) -> Letterbox:
    x0, y0, x1, y1 = (int(v) for v in box)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, fw), min(y1, fh)
    if x1 <= x0 or y1 <= y0 or ix1 <= ix0 or iy1 <= iy0:
        raise PplEdgeError(f"crop box {box} is empty or outside the {fw}x{fh} frame")
    s = min(width / (x1 - x0), height / (y1 - y0))
    # Where the visible part lands: the region is centred, then shifted by its clipped margin.
    dx = int(round((width - (x1 - x0) * s) / 2 + (ix0 - x0) * s))
    dy = int(round((height - (y1 - y0) * s) / 2 + (iy0 - y0) * s))
    nw = min(max(1, int(round((ix1 - ix0) * s))), width - dx)
    nh = min(max(1, int(round((iy1 - iy0) * s))), height - dy)
    return Letterbox(
        box=(x0, y0, x1, y1),
        origin=(ix0, iy0),
        scale=(nw / (ix1 - ix0), nh / (iy1 - iy0)),
        offset=(dx, dy),
        size=(width, height),
        visible=(nw, nh),
        source=(ix1 - ix0, iy1 - iy0),
    )


def normalise(images: np.ndarray, spec: InputSpec, out: np.ndarray | None = None) -> np.ndarray:
    """(B, H, W, 3) uint8 BGR -> (B, 3, H, W) float32: per channel ``(x * scale - mean) / std``,
    in the manifest's colour order.

    Args:
        images: (B, H, W, 3) uint8 BGR.
        spec: the manifest's input contract.
        out: optional (B, 3, H, W) float32 array to write into.
    """
    B, H, W, _ = images.shape
    if B == 1 and images.dtype == np.uint8 and _blob_applies(spec):
        # One OpenCV call: (x - mean / scale) * (scale / std), the same values within 1 ulp.
        return _blob(images[0], spec, (W, H), out)  # (1, 3, H, W) float32
    x = np.empty((B, 3, H, W), np.float32) if out is None else out
    for c in range(3):
        src = 2 - c if spec.color == "RGB" else c  # BGR frame -> the model's channel c
        gain = np.float32(spec.scale / spec.std[c])
        np.multiply(images[..., src], gain, out=x[:, c], dtype=np.float32)
        x[:, c] -= np.float32(spec.mean[c] / spec.std[c])
    return x


def denormalise(x: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Inverse of :func:`normalise` for pictures: (B, 3, H, W) float32 -> (B, H, W, 3) uint8 BGR."""
    std = np.asarray(spec.std, np.float32)
    mean = np.asarray(spec.mean, np.float32)
    img = (x.transpose(0, 2, 3, 1) * std + mean) / np.float32(spec.scale)  # (B, H, W, 3)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(img[..., ::-1] if spec.color == "RGB" else img)


class Scratch:
    """Per-stream memory of :func:`preprocess`'s fused path: a uint8 canvas at twice the model
    size, its padding drawn once per letterbox geometry, each frame's samples resized straight into
    its visible part. Not thread-safe: one per estimator (whose calls hold a lock)."""

    def __init__(self, width: int, height: int) -> None:
        self.canvas = np.empty((2 * height, 2 * width, 3), np.uint8)
        self.geometry: tuple | None = None  # (dx, dy, nw, nh, pad value) of the drawn padding

    def visible(self, lb: Letterbox, pad_value: int) -> np.ndarray:
        """The canvas's view where ``lb``'s visible part goes, its padding drawn around it."""
        (dx, dy), (nw, nh) = lb.offset, lb.visible
        geometry = (dx, dy, nw, nh, pad_value)
        if geometry != self.geometry:
            self.canvas.fill(pad_value)
            self.geometry = geometry
        return self.canvas[2 * dy : 2 * (dy + nh), 2 * dx : 2 * (dx + nw)]


def preprocess(
    frame: np.ndarray,
    boxes: list[Box],
    spec: InputSpec,
    pad_value: int = 0,
    method: str = "fast",
    out: np.ndarray | None = None,
    canvas: np.ndarray | None = None,
    scratch: Scratch | None = None,
) -> tuple[np.ndarray, list[Letterbox]]:
    """Crop every box of a sanitised frame into one model batch.

    Args:
        frame: (H, W, 3) uint8 BGR (see :func:`as_bgr8`).
        boxes: one region per subject.
        spec: the manifest's input contract.
        pad_value: grey level of letterbox padding.
        method: resize method, "fast" or "area" (see :func:`resize`).
        out: optional (B, 3, h, w) float32 array to write x into; canvas: optional (h, w, 3)
            uint8 scratch image of the general path; scratch: optional :class:`Scratch` of the
            fused path; all three let a caller reuse its buffers from frame to frame.

    Returns:
        x: (B, 3, h, w) float32 normalised model input, B = len(boxes) (``out`` when given); and
        B Letterbox maps.
    """
    x = np.empty((len(boxes), 3, spec.height, spec.width), np.float32) if out is None else out
    maps = []
    for b, box in enumerate(boxes):
        lb = _shrink_and_normalise(frame, box, spec, pad_value, method, x[b : b + 1], scratch)
        if lb is None:  # the general path: letterbox into a uint8 image, then normalise
            img, lb = letterbox(frame, box, spec.width, spec.height, pad_value, method, canvas)
            normalise(img[None], spec, out=x[b : b + 1])
        maps.append(lb)
    return x, maps


def _shrink_and_normalise(
    frame: np.ndarray,
    box: Box,
    spec: InputSpec,
    pad_value: int,
    method: str,
    target: np.ndarray,
    scratch: Scratch | None,
) -> Letterbox | None:
    """The common case of :func:`preprocess` in two OpenCV calls: a crop shrunk by more than 2x
    with the fast resize. Its first stage samples the crop at twice the model size into the
    visible part of a padded double-size canvas; the 2x2 area step is bilinear at exactly half
    size, which is what ``blobFromImage``'s own resize does, so one blob call shrinks, pads and
    normalises (a 2x2 block never straddles image and padding: the offsets are doubled). The
    result is identical to :func:`letterbox` then :func:`normalise`. None when the case does not
    apply.

    Args:
        target: (1, 3, H, W) float32, this subject's slice of the model batch.
    """
    if method != "fast" or not _blob_applies(spec):
        return None
    lb = letterbox_map(frame.shape, box, spec.width, spec.height)
    (nw, nh), (sw, sh) = lb.visible, lb.source
    if sw <= 2 * nw or sh <= 2 * nh:
        return None
    (ix0, iy0) = lb.origin
    scratch = scratch or Scratch(spec.width, spec.height)
    view = scratch.visible(lb, pad_value)
    double_size_samples(frame[iy0 : iy0 + sh, ix0 : ix0 + sw], nw, nh, out=view)
    _blob(scratch.canvas, spec, (spec.width, spec.height), target)
    return lb


def _blob_applies(spec: InputSpec) -> bool:
    """Whether OpenCV can normalise for ``spec``: ``blobFromImageWithParams`` (OpenCV >= 4.8,
    per-channel std), else ``blobFromImage`` with one std for all channels."""
    if not hasattr(cv2, "dnn"):
        return False
    return hasattr(cv2.dnn, "blobFromImageWithParams") or len(set(spec.std)) == 1


@functools.lru_cache(maxsize=16)
def _blob_params(spec: InputSpec, size: tuple[int, int]):
    """``cv2.dnn.Image2BlobParams`` of ``spec`` at ``size`` (w, h): ``(x - mean / scale) *
    (scale / std)`` per channel, in the model's channel order."""
    params = cv2.dnn.Image2BlobParams()
    params.scalefactor = (*(spec.scale / s for s in spec.std), 1.0)
    params.mean = (*(m / spec.scale for m in spec.mean), 0.0)
    params.size = size
    params.swapRB = spec.color == "RGB"
    return params


def _blob(
    image: np.ndarray, spec: InputSpec, size: tuple[int, int], out: np.ndarray | None = None
) -> np.ndarray:
    """(1, 3, h, w) float32 (``out`` when given): ``image`` (uint8 BGR) resized to ``size`` (w, h)
    by OpenCV's bilinear resize and normalised for ``spec`` (see :func:`_blob_applies`)."""
    if hasattr(cv2.dnn, "blobFromImageWithParams"):
        params = _blob_params(spec, size)
        if out is not None:
            blob = cv2.dnn.blobFromImageWithParams(image, out, params)
        else:
            blob = cv2.dnn.blobFromImageWithParams(image, params)
    else:
        mean = tuple(m / spec.scale for m in spec.mean)  # in the model's channel order
        blob = cv2.dnn.blobFromImage(
            image, spec.scale / spec.std[0], size, mean, swapRB=spec.color == "RGB", crop=False
        )
    if out is not None and blob is not out and not np.may_share_memory(blob, out):
        out[...] = blob  # an OpenCV that allocated its own output
        return out
    return blob
