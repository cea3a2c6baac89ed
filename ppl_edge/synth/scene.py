"""A synthetic fixed-camera recording: one figure moving across a static scene, with ground truth.

NumPy + OpenCV only (no torch). Each frame composites one frame of a synthetic figure
(:class:`ppl_edge.synth.render.ClipRenderer`, its coverage mask as the alpha) onto one
static background, its centre moving smoothly across the frame and back, so background
subtraction finds the figure as a fixed camera would (the ``video:PATH`` dataset with
``crops="motion"``). ``write_fixed_camera_scene`` writes the video (``mp4v``) and, beside it,
``<video>.labels.npz``:

==============  ===============================================================================
``keypoints``   (T, J, 2) float32 xy, full-frame pixels (pixel centres at integers)
``visible``     (T, J) bool: inside the frame and not covered by a nearer bone
``boxes``       (T, 4) float32 the figure's bounding box (x0, y0, x1, y1), x1 / y1 exclusive
``mask_bits``   (T, ceil(H * W / 8)) uint8: np.packbits of the (H, W) figure masks (coverage > 0.5)
``size``        (2,) int (W, H); ``fps`` () float
``category``    () str; ``joint_names`` (J,) str; ``edges`` (E, 2), ``swap_pairs`` (P, 2) int
==============  ===============================================================================

Read it back with :func:`read_scene_labels`.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import atomic_write_bytes

LABELS_SUFFIX = ".labels.npz"
_SCENE_SEED_KEY = 0x5CE4E  # seed stream of the scene (background, path), apart from the figure's
CLIP_FRAMES = 48  # the figure's own clip, played back and forth (longer clips shrink the figure)


def labels_path(video: str | Path) -> Path:
    """The ground-truth file beside a video: ``<video>.labels.npz`` (``scene.mp4.labels.npz``)."""
    return Path(f"{video}{LABELS_SUFFIX}")


@dataclass(frozen=True)
class SceneLabels:
    """Ground truth of a fixed-camera recording, full-frame pixels (see the module docstring).

    Attributes:
        keypoints: (T, J, 2) float32 xy pixels.
        visible: (T, J) bool.
        boxes: (T, 4) float32 (x0, y0, x1, y1) of the figure; NaN where it is not in view.
        mask_bits: (T, ceil(H * W / 8)) uint8 packed (H, W) figure masks.
        size: (W, H) of the frames.
        fps: frames per second of the video.
        category: synthetic category of the figure.
        joint_names: J names; edges: skeleton (parent, child) pairs; swap_pairs: left/right pairs.
    """

    keypoints: np.ndarray
    visible: np.ndarray
    boxes: np.ndarray
    mask_bits: np.ndarray
    size: tuple[int, int]
    fps: float
    category: str
    joint_names: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    swap_pairs: tuple[tuple[int, int], ...]

    @property
    def count(self) -> int:
        """Frames T."""
        return len(self.keypoints)

    def mask(self, frame: int) -> np.ndarray:
        """(H, W) bool figure mask of one frame."""
        w, h = self.size
        return np.unpackbits(self.mask_bits[frame], count=h * w).reshape(h, w).astype(bool)


def read_scene_labels(path: str | Path) -> SceneLabels:
    """Read a ``.labels.npz`` file (or the one beside a video path).

    Raises:
        PplEdgeError: the file is missing, unreadable or lacks a field.
    """
    path = Path(path)
    if not str(path).endswith(LABELS_SUFFIX):
        path = labels_path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except (OSError, ValueError) as err:
        raise PplEdgeError(f"cannot read scene labels {path}: {err}") from err
    need = (
        "keypoints",
        "visible",
        "boxes",
        "mask_bits",
        "size",
        "fps",
        "category",
        "joint_names",
        "edges",
        "swap_pairs",
    )
    missing = [k for k in need if k not in data]
    if missing:
        raise PplEdgeError(f"scene labels {path} lack {missing}; expected the fields {list(need)}")

    def pairs(a) -> tuple[tuple[int, int], ...]:
        return tuple((int(p), int(q)) for p, q in np.asarray(a).reshape(-1, 2))

    return SceneLabels(
        keypoints=data["keypoints"].astype(np.float32),
        visible=data["visible"].astype(bool),
        boxes=data["boxes"].astype(np.float32),
        mask_bits=data["mask_bits"],
        size=(int(data["size"][0]), int(data["size"][1])),
        fps=float(data["fps"]),
        category=str(data["category"]),
        joint_names=tuple(str(n) for n in data["joint_names"]),
        edges=pairs(data["edges"]),
        swap_pairs=pairs(data["swap_pairs"]),
    )


def _background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """(H, W, 3) float32 BGR static scene: a procedural background cut to the frame's aspect."""
    from ppl_edge.synth.backgrounds import render_background

    side = max(width, height)
    wide = render_background(rng, side)
    x0, y0 = (side - width) // 2, (side - height) // 2
    return np.ascontiguousarray(wide[y0 : y0 + height, x0 : x0 + width])


def _centres(
    t: np.ndarray, width: int, height: int, sprite: int, period: float, phase: float
) -> np.ndarray:
    """(T, 2) float where the figure's centre is: across the frame and back once per ``period``
    frames, with a slow vertical sway, keeping the figure mostly in view."""
    margin_x = min(0.3 * sprite, 0.45 * width)
    sway = 0.4 * max(0.0, (height - 0.85 * sprite) / 2.0)
    x = margin_x + (width - 1 - 2 * margin_x) * (0.5 - 0.5 * np.cos(2 * np.pi * t / period + phase))
    y = (height - 1) / 2.0 + sway * np.sin(2 * np.pi * t / (0.61 * period) + 2 * phase)
    return np.stack([x, y], axis=1)


def _ping_pong(t: int, length: int) -> int:
    """Frame time of the figure's clip at scene frame ``t``: 0, 1, ..., length - 1, ..., 1, 0, 1,
    ... (its own walk then runs back and forth, and never leaves its sprite)."""
    if length < 2:
        return 0
    k = t % (2 * (length - 1))
    return k if k < length else 2 * (length - 1) - k


def _paste(frame: np.ndarray, mask: np.ndarray, sample, x: int, y: int) -> None:
    """Composite a sprite (``sample.image`` with ``sample.mask`` as alpha) with its top-left
    corner at (x, y) of ``frame`` (H, W, 3) float32, clipped to the frame; ``mask`` (H, W) bool
    gets the sprite's coverage > 0.5."""
    h, w = frame.shape[:2]
    side = sample.mask.shape[0]
    fx0, fy0, fx1, fy1 = max(x, 0), max(y, 0), min(x + side, w), min(y + side, h)
    if fx1 <= fx0 or fy1 <= fy0:
        return
    sx0, sy0 = fx0 - x, fy0 - y
    cov = sample.mask[sy0 : sy0 + fy1 - fy0, sx0 : sx0 + fx1 - fx0]
    fig = sample.image[sy0 : sy0 + fy1 - fy0, sx0 : sx0 + fx1 - fx0].astype(np.float32)
    window = frame[fy0:fy1, fx0:fx1]
    window[:] = cov[..., None] * fig + (1.0 - cov[..., None]) * window
    mask[fy0:fy1, fx0:fx1] = cov > 0.5


def _labels_bytes(**arrays) -> bytes:
    """The ``.npz`` (compressed) bytes of ``arrays``."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def _check_scene(frames: int, width: int, height: int, fps: float, figure: float, period: int):
    if frames < 2 or min(width, height) < 32:
        raise PplEdgeError(
            f"a scene needs frames >= 2 and size >= 32x32, got frames={frames} "
            f"and size={width}x{height}"
        )
    if not 0 < figure <= 1 or period < 2 or fps <= 0:
        raise PplEdgeError(
            f"need 0 < figure <= 1, period >= 2 and fps > 0, got figure={figure}, "
            f"period={period}, fps={fps}"
        )


def _compose(background: np.ndarray, sample, centre: np.ndarray, mask: np.ndarray):
    """One frame: the sprite pasted with its figure centred on ``centre`` (the figure's own drift
    inside its sprite is cancelled, so its centre follows the path). Fills ``mask`` (H, W) bool.

    Returns:
        (frame (H, W, 3) uint8, keypoints (J, 2) frame pixels, visible (J,), box (4,) or NaN).
    """
    kp = np.asarray(sample.keypoints, np.float32)
    x, y = np.round(centre - (kp.min(0) + kp.max(0)) / 2.0).astype(int)
    frame = background.copy()
    _paste(frame, mask, sample, int(x), int(y))
    keypoints = kp + np.array([x, y], np.float32)
    limit = np.array([mask.shape[1] - 0.5, mask.shape[0] - 0.5], np.float32)
    inside = np.all((keypoints >= -0.5) & (keypoints <= limit), axis=1)
    visible = np.asarray(sample.visible, bool) & inside
    box = np.full(4, np.nan, np.float32)
    ys, xs = np.nonzero(mask)
    if len(xs):
        box[:] = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
    return np.round(np.clip(frame, 0, 255)).astype(np.uint8), keypoints, visible, box


def write_fixed_camera_scene(
    path: str | Path,
    frames: int = 600,
    size: tuple[int, int] = (256, 192),
    category: str = "humanoid",
    seed: int = 0,
    fps: float = 25.0,
    figure: float = 0.7,
    period: int = 240,
) -> Path:
    """Write a synthetic fixed-camera video of one moving figure and its ground truth.

    Args:
        path: the video file to write (``.mp4``; the container follows the suffix).
        frames: T >= 2 frames.
        size: (W, H) of the frames, each >= 32.
        category: synthetic category (``humanoid``, ``quadruped``, ``bird``).
        seed: decides the background, the figure, its motion and its path.
        fps: frame rate stored in the video.
        figure: side of the figure's square sprite as a fraction of H, in (0, 1]; the figure
            is about 0.6-0.8 of it tall.
        period: frames for one walk across the frame and back (>= 2).

    Returns:
        The video path; the labels are at :func:`labels_path` of it. Both files are written
        atomically (temporary names, then renamed).

    Raises:
        PplEdgeError: bad arguments, or no video writer for the suffix.
    """
    from ppl_edge.synth.render import ClipRenderer, get_category

    width, height = (int(v) for v in size)
    _check_scene(frames, width, height, fps, figure, period)
    cat = get_category(category)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([_SCENE_SEED_KEY, int(seed)])
    background = _background(rng, width, height)
    sprite = max(8, int(round(figure * height)))
    renderer = ClipRenderer(category, sprite, [int(seed)], num_frames=CLIP_FRAMES)
    centres = _centres(
        np.arange(frames), width, height, sprite, float(period), float(rng.uniform(-0.3, 0.3))
    )

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (width, height))
    if not writer.isOpened():
        raise PplEdgeError(f"cannot open a video writer for {path} (expected a .mp4 or .avi name)")
    joints = len(cat.joint_names)
    keypoints = np.zeros((frames, joints, 2), np.float32)
    visible = np.zeros((frames, joints), bool)
    boxes = np.full((frames, 4), np.nan, np.float32)
    masks = np.zeros((frames, height, width), bool)
    try:
        for t in range(frames):
            sample = renderer.render(float(_ping_pong(t, CLIP_FRAMES)))
            frame, keypoints[t], visible[t], boxes[t] = _compose(
                background, sample, centres[t], masks[t]
            )
            writer.write(frame)
        writer.release()
        labels = _labels_bytes(
            keypoints=keypoints,
            visible=visible,
            boxes=boxes,
            mask_bits=np.packbits(masks.reshape(frames, -1), axis=1),
            size=np.array([width, height]),
            fps=np.array(float(fps)),
            category=np.array(category),
            joint_names=np.array(cat.joint_names),
            edges=np.array(cat.edges, np.int64).reshape(-1, 2),
            swap_pairs=np.array(cat.swap_pairs, np.int64).reshape(-1, 2),
        )
        atomic_write_bytes(labels_path(path), labels)
        os.replace(tmp, path)
    finally:
        writer.release()
        tmp.unlink(missing_ok=True)
    return path
