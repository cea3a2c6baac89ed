"""Procedural renderer of articulated figures with ground truth: the built-in default dataset.

NumPy + OpenCV only (no torch), so the torch-free runtime demo can render clips. A figure is a
kinematic tree (``skeletons.py``) posed by smooth joint-angle trajectories (``poses.py``), drawn as
tapered, shaded, textured capsules in depth order over a procedural background
(``backgrounds.py``), rendered at 2x and downsampled with ``cv2.INTER_AREA`` for anti-aliasing.

Every group of limbs has its own colour and left limbs are lighter than right ones, so the pose is
recoverable from the image. The world is built like Human3.6M crops: a finite cast of subjects
(``SUBJECTS``), each with its own body shape and appearance (palette, stripes, grain, light), filmed
in a few scenes (``SCENES``, each one large background seen through crops); each figure fills
75-95 % of the crop (its larger side), at a random position, tilt and facing; limbs may point out
of the image plane (foreshortened); nearer bones cover farther ones. A keypoint is not visible when
it leaves the frame or when a nearer bone covers it. Everything is decided by the seed: the same
seed always gives the same image.

Public API: :func:`render_sample` (one still image), :func:`render_pair` (two frames of one clip),
:func:`render_pair_near` (the same two and a third frame near the first), :func:`render_clip` (a
video), and :class:`ClipRenderer` for frame-by-frame access.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

from ppl_edge.errors import PplEdgeError, check_choice
from ppl_edge.synth.backgrounds import render_background
from ppl_edge.synth.draw import FIXED, SHIFT, capsules, fill_capsule
from ppl_edge.synth.poses import far_side_mask, forward_kinematics, sample_motion, sample_shape
from ppl_edge.synth.skeletons import (  # noqa: F401  (re-exported constants)
    BIRD_EDGES,
    BIRD_JOINTS,
    BIRD_SWAP_PAIRS,
    CATEGORIES,
    HUMANOID_EDGES,
    HUMANOID_JOINTS,
    HUMANOID_SWAP_PAIRS,
    QUADRUPED_EDGES,
    QUADRUPED_JOINTS,
    QUADRUPED_SWAP_PAIRS,
    Category,
)

SUPERSAMPLE = 2  # render at 2x, downsample with INTER_AREA
Seed = int | Sequence[int]
SUBJECTS = 8  # the cast: subjects with a fixed appearance each (Human3.6M has 7 with labels)
SCENES = 4  # backgrounds the subjects are filmed in
FILL = (0.75, 0.95)  # the figure's larger side, as a fraction of the crop side
_LOOK_KEY, _SCENE_KEY = 0x5B1EC7, 0x5CE7E  # seed streams of subjects and scenes


class Sample(NamedTuple):
    """One rendered frame.

    Attributes:
        image: (H, W, 3) uint8 BGR.
        keypoints: (J, 2) float32 xy pixels (pixel centres at integers; may lie outside the frame).
        visible: (J,) bool, False when out of frame or covered by a nearer bone.
        mask: (H, W) float32 foreground coverage in [0, 1].
    """

    image: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    mask: np.ndarray


def get_category(name: str) -> Category:
    """The :class:`Category` named ``name``, or a PplEdgeError listing the valid names."""
    check_choice(name, sorted(CATEGORIES), "synthetic category")
    return CATEGORIES[name]


SPLIT_CODES = {"train": 0, "train_reg": 1, "test": 2}  # disjoint random streams per split


def item_seed(category: str, split: str, seed: int, index: int) -> list[int]:
    """Seed entropy of item ``index`` of ``synthetic:<category>`` (shared by the dataset and
    writer)."""
    check_choice(split, SPLIT_CODES, "split")
    category_code = sum((i + 1) * ord(c) for i, c in enumerate(category))
    return [int(seed), SPLIT_CODES[split], category_code, int(index)]


def _palette(cat: Category, rng: np.random.Generator, far: np.ndarray) -> np.ndarray:
    """Per-bone BGR colours (J, 3) float32: one hue per limb group, left lighter than right."""
    groups = sorted({j.group for j in cat.joints})
    hue0 = rng.random()
    offsets = rng.permutation(len(groups)) / len(groups)
    sat = rng.uniform(0.45, 0.9)
    colors = np.zeros((len(cat.joints), 3), dtype=np.float32)
    for i, j in enumerate(cat.joints):
        g = groups.index(j.group)
        h, v = hue0 + offsets[g] + rng.normal(0, 0.01), rng.uniform(0.65, 0.9)
        if j.name.startswith("l_"):
            h, v = h + 0.04, min(1.0, v * 1.15)
        elif j.name.startswith("r_"):
            h, v = h - 0.04, v * 0.75
        if far[i]:
            v *= 0.8  # depth cue for the far side
        r, gr, b = colorsys.hsv_to_rgb(h % 1.0, sat, v)
        colors[i] = (b * 255, gr * 255, r * 255)
    return colors


class ClipRenderer:
    """One figure with one appearance on one background, rendered at any frame time.

    Args:
        category: ``humanoid``, ``quadruped`` or ``bird``.
        size: output side in pixels.
        seed: int or sequence of ints for ``np.random.default_rng``.
        num_frames: frames the clip spans; placement keeps the whole clip in view (1 = a still).
        subjects: size of the cast the subject is drawn from (0: a new subject for every seed).
        scenes: number of scenes the background is drawn from (0: a new background every seed).
        view: frame times whose union is placed to fill the crop (default: every frame of the
            clip); frames outside them may be smaller or leave the crop.
    """

    def __init__(
        self,
        category: str,
        size: int,
        seed: Seed,
        num_frames: int = 1,
        subjects: int = SUBJECTS,
        scenes: int = SCENES,
        view: Sequence[float] | None = None,
    ) -> None:
        if size < 8:
            raise PplEdgeError(f"synthetic image size must be >= 8 pixels, got {size}")
        if subjects < 0 or scenes < 0:
            raise PplEdgeError(f"subjects and scenes must be >= 0, got {subjects} and {scenes}")
        self.cat = get_category(category)
        self.size = int(size)
        rng = np.random.default_rng(seed)
        code = sum((i + 1) * ord(c) for i, c in enumerate(self.cat.name))
        self.subject = int(rng.integers(subjects)) if subjects else None
        self.scene = int(rng.integers(scenes)) if scenes else None
        # the subject's look: body shape, palette, texture and light, the same in every image
        look = rng if subjects == 0 else np.random.default_rng([_LOOK_KEY, code, self.subject])
        shape = sample_shape(self.cat, look)
        is_video = num_frames > 1
        self.motion = sample_motion(self.cat, rng, is_video, shape)
        far = far_side_mask(self.cat, self.motion)
        self.colors = _palette(self.cat, look, far)
        depth = np.array([j.depth for j in self.cat.joints]) - 3.0 * far
        if self.cat.name == "humanoid" and rng.random() < 0.2:  # arms behind the back
            arm = np.array([j.group in ("arm", "forearm") for j in self.cat.joints])
            depth[arm] = 0.2
        self.order = [int(i) for i in np.argsort(depth, kind="stable") if i > 0]  # bones by depth
        self.depth = depth
        self.light = look.normal(size=2)
        self.light /= np.linalg.norm(self.light)
        self.bands = look.random() < 0.35  # banded (striped) limbs
        self.band_count = int(look.integers(2, 5))
        self.grain = look.uniform(0.0, 0.08)
        # The background is drawn at the output size (its shapes are anti-aliased by cv2 already)
        # and upsampled with nearest, which INTER_AREA maps back exactly. A scene is drawn at
        # twice the crop side and seen through a random window of it.
        if scenes:
            wide = render_background(np.random.default_rng([_SCENE_KEY, self.scene]), 2 * self.size)
            x0, y0 = rng.integers(0, self.size + 1, 2)
            background = np.ascontiguousarray(wide[y0 : y0 + self.size, x0 : x0 + self.size])
        else:
            background = render_background(rng, self.size)
        hi_size = (self.size * SUPERSAMPLE, self.size * SUPERSAMPLE)
        self.background = cv2.resize(background, hi_size, interpolation=cv2.INTER_NEAREST)
        # placement: the union of the viewed frames' extents fills `fill` of the crop
        times = np.arange(num_frames, dtype=np.float64) if view is None else np.asarray(view, float)
        pos = forward_kinematics(self.cat, self.motion, times)  # (T, J, 2)
        # radius of the disc drawn at each joint: its own bone's end and its children's starts
        radius = self.motion.widths1.copy()
        for j, p in enumerate(self.cat.parents):
            if p >= 0:
                radius[p] = max(radius[p], self.motion.widths0[j])
        lo = (pos - radius[None, :, None]).reshape(-1, 2).min(0)
        hi = (pos + radius[None, :, None]).reshape(-1, 2).max(0)
        fill = rng.uniform(*FILL)
        self.scale = fill * self.size / float(max(hi - lo))
        # mostly inside the crop; one figure in ten may be cut by the frame border
        overflow = 0.25 if rng.random() < 0.1 else 0.03
        slack = ((1.0 - fill) / 2.0 + overflow) * self.size
        self.offset = (
            (self.size - 1) / 2.0 + rng.uniform(-1, 1, 2) * slack - self.scale * (lo + hi) / 2
        )
        self.noise_seed = int(rng.integers(2**31))

    def keypoints(self, t: float) -> np.ndarray:
        """(J, 2) float64 xy pixels of the joints at frame time ``t``."""
        return (
            forward_kinematics(self.cat, self.motion, np.array([t]))[0] * self.scale + self.offset
        )

    def render(self, t: float = 0.0) -> Sample:
        """Render frame ``t`` (deterministic for a given renderer and t)."""
        S = SUPERSAMPLE
        kp = self.keypoints(t)  # (J, 2) output pixels
        q = kp * S + (S - 1) / 2.0  # render pixels: output pixel i spans render [S*i, S*i + S)
        r0 = self.motion.widths0 * self.scale * S
        r1 = self.motion.widths1 * self.scale * S
        img = self.background.copy()
        ids = np.zeros(img.shape[:2], dtype=np.uint8)
        bones = np.array(self.order)
        p0, p1 = q[self.cat.parents[bones]], q[bones]  # (B, 2) each
        r0, r1 = r0[bones], r1[bones]
        shift = self.light * 0.3  # shading layers move toward the light
        outline = capsules(p0, p1, r0, r1)
        body = capsules(p0 + shift * r0[:, None], p1 + shift * r1[:, None], r0 * 0.72, r1 * 0.72)
        glint = capsules(
            p0 + 2 * shift * r0[:, None], p1 + 2 * shift * r1[:, None], r0 * 0.3, r1 * 0.3
        )
        for k, j in enumerate(bones.tolist()):
            base = self.colors[j]
            fill_capsule(ids, outline[k], j, aa=False)
            fill_capsule(img, outline[k], (base * 0.55).tolist(), aa=True)
            fill_capsule(img, body[k], base.tolist(), aa=True)
            fill_capsule(img, glint[k], np.minimum(base * 1.2 + 25.0, 255.0).tolist(), aa=True)
            if self.bands:
                self._draw_bands(img, p0[k], p1[k], r0[k], r1[k], (base * 0.45).tolist())
        mask_hi = (ids > 0).astype(np.float32)
        if self.grain > 0:
            noise = np.random.default_rng(self.noise_seed).standard_normal(  # fixed per clip
                (self.size, self.size), dtype=np.float32
            ) * (255.0 * self.grain)
            noise = cv2.resize(noise, img.shape[1::-1], interpolation=cv2.INTER_NEAREST)
            img += (noise * mask_hi)[..., None]
        out = (self.size, self.size)
        image = cv2.resize(np.clip(img, 0, 255), out, interpolation=cv2.INTER_AREA)
        mask = cv2.resize(mask_hi, out, interpolation=cv2.INTER_AREA)
        visible = self._visible(kp, q, ids)
        return Sample(np.round(image).astype(np.uint8), kp.astype(np.float32), visible, mask)

    def _draw_bands(self, img, p0, p1, r0, r1, color) -> None:
        """Stripes across the bone, inside its outline (they move with the limb)."""
        d = p1 - p0
        n = np.array([-d[1], d[0]]) / max(float(np.hypot(*d)), 1e-6)
        thickness = max(1, round(0.35 * (r0 + r1) / 2))
        for k in range(self.band_count):
            u = (k + 0.5) / self.band_count
            c, r = p0 + u * d, (1 - u) * r0 + u * r1
            a = np.round((c - 0.8 * r * n) * FIXED).astype(np.int32)
            b = np.round((c + 0.8 * r * n) * FIXED).astype(np.int32)
            cv2.line(img, a.tolist(), b.tolist(), color, thickness, cv2.LINE_AA, SHIFT)

    def _visible(self, kp: np.ndarray, q: np.ndarray, ids: np.ndarray) -> np.ndarray:
        """(J,) bool: in frame, and not covered by a nearer bone that does not touch the joint."""
        parents = self.cat.parents
        in_frame = np.all((kp >= -0.5) & (kp <= self.size - 0.5), axis=1)
        visible = in_frame.copy()
        H, W = ids.shape
        for j in np.flatnonzero(in_frame):
            incident = {int(j)} | {int(c) for c in np.flatnonzero(parents == j)}
            if parents[j] >= 0:  # a joint on the surface of a sibling bone (a hip on the torso)
                incident |= {int(c) for c in np.flatnonzero(parents == parents[j])}
            x, y = np.clip(np.round(q[j]).astype(int), 0, [W - 1, H - 1])
            top = int(ids[y, x])
            if top == 0 or top in incident:
                continue
            bones = [b for b in incident if b > 0]  # bone b ends at joint b; the root has none
            own_depth = max(self.depth[b] for b in bones) if bones else -np.inf
            visible[j] = self.depth[top] <= own_depth
        return visible


def render_sample(category: str, size: int, seed: Seed, **world) -> Sample:
    """Render one still image of a random figure (deterministic by ``seed``).

    ``world``: ``subjects`` / ``scenes`` of :class:`ClipRenderer`.
    """
    return ClipRenderer(category, size, seed, num_frames=1, **world).render(0.0)


def render_pair(
    category: str,
    size: int,
    seed: Seed,
    clip_length: int = 32,
    max_gap: int = 16,
    min_gap: int = 1,
    fit: str = "clip",
    **world,
) -> tuple[Sample, Sample]:
    """Two frames of one clip (same background and figure, different pose), deterministic by seed.

    ``fit``: what fills the crop, as one pose fills a still's: the whole clip (``clip``: each
    frame's figure is smaller than a still's, about 0.85 of its size for the humanoid) or the two
    frames (``pair``: figures as large as the stills', the camera still fixed between them).

    Returns:
        (frame, reference): frames t1 and t2 with min_gap <= |t1 - t2| <= max_gap.
    """
    clip, t1, t2 = _pair_clip(category, size, seed, clip_length, max_gap, min_gap, fit, world)
    return clip.render(t1), clip.render(t2)


def render_pair_near(
    category: str,
    size: int,
    seed: Seed,
    clip_length: int = 32,
    max_gap: int = 16,
    min_gap: int = 1,
    fit: str = "clip",
    near_gap: float = 2.0,
    **world,
) -> tuple[Sample, Sample, Sample]:
    """:func:`render_pair` (the same two frames for the same seed) and a third frame ``near_gap``
    frames from the first (after it, or before it at the end of the clip), for optical flow.

    Returns:
        (frame, reference, near).
    """
    if not 0 < near_gap < clip_length - 1:
        raise PplEdgeError(f"near_gap must be in (0, {clip_length - 1}), got {near_gap}")
    clip, t1, t2 = _pair_clip(category, size, seed, clip_length, max_gap, min_gap, fit, world)
    t3 = t1 + near_gap if t1 + near_gap <= clip_length - 1 else t1 - near_gap
    return clip.render(t1), clip.render(t2), clip.render(t3)


def _pair_clip(category, size, seed, clip_length, max_gap, min_gap, fit, world):
    """(ClipRenderer, t1, t2) of :func:`render_pair`."""
    if not 1 <= min_gap <= max_gap:
        raise PplEdgeError(
            f"need 1 <= min_gap <= max_gap, got min_gap={min_gap}, max_gap={max_gap}"
        )
    if clip_length <= min_gap:
        raise PplEdgeError(f"clip_length {clip_length} leaves no frame pair {min_gap} frames apart")
    if fit not in ("clip", "pair"):
        raise PplEdgeError(f"fit must be 'clip' or 'pair', got {fit!r}")
    rng = np.random.default_rng(seed)
    clip_seed = [int(rng.integers(2**31))]
    max_gap = max(1, min(max_gap, clip_length - 1))
    t1 = int(rng.integers(clip_length))
    gaps = [
        g for g in range(-max_gap, max_gap + 1) if abs(g) >= min_gap and 0 <= t1 + g < clip_length
    ]
    if not gaps:  # t1 in the middle of a short clip: take the farthest frame instead
        gaps = [-t1 if t1 >= clip_length - 1 - t1 else clip_length - 1 - t1]
    t2 = t1 + int(rng.choice(gaps))
    view = (t1, t2) if fit == "pair" else None
    clip = ClipRenderer(category, size, clip_seed, num_frames=clip_length, view=view, **world)
    return clip, t1, t2


def render_clip(category: str, num_frames: int, size: int, seed: Seed, **world):
    """Render a video clip: fixed background and figure, smoothly moving pose.

    Args:
        category: ``humanoid``, ``quadruped`` or ``bird``.
        num_frames: T >= 1.
        size: H = W in pixels.
        seed: int or sequence of ints.

    Returns:
        frames (T, H, W, 3) uint8 BGR, keypoints (T, J, 2) float32 xy pixels, visible (T, J) bool.
    """
    if num_frames < 1:
        raise PplEdgeError(f"num_frames must be >= 1, got {num_frames}")
    clip = ClipRenderer(category, size, seed, num_frames=num_frames, **world)
    samples = [clip.render(float(t)) for t in range(num_frames)]
    return (
        np.stack([s.image for s in samples]),
        np.stack([s.keypoints for s in samples]),
        np.stack([s.visible for s in samples]),
    )


def render_images(
    category: str, size: int, count: int, split: str = "test", seed: int = 0, **world
) -> np.ndarray:
    """Items 0..count-1 of ``synthetic:<category>`` (split, seed) as images.

    The same pixels as the training dataset's items, e.g. the exporter's reference images.

    Returns:
        (count, size, size, 3) uint8 BGR.
    """
    get_category(category)
    return np.stack(
        [
            render_sample(category, size, item_seed(category, split, seed, i), **world).image
            for i in range(count)
        ]
    )
