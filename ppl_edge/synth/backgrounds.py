"""Procedural backgrounds for the synthetic renderer: gradients, smooth noise, shapes, stripes.

NumPy + OpenCV only. Backgrounds are kept a little less saturated and less contrasted than the
figures (blended toward their mean), so that the figure is the most salient thing in the crop, as in
the subject-centred crops PPL is trained on.
"""

from __future__ import annotations

import colorsys

import cv2
import numpy as np


def random_color(
    rng: np.random.Generator,
    sat: tuple[float, float] = (0.1, 0.7),
    val: tuple[float, float] = (0.25, 0.95),
) -> np.ndarray:
    """A random BGR colour (3,) float32 in [0, 255] from a uniform hue."""
    r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(*sat), rng.uniform(*val))
    return np.array([b, g, r], dtype=np.float32) * 255.0


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """Linear gradient between two colours along a random direction: (size, size, 3) float32."""
    a, b = random_color(rng), random_color(rng)
    theta = rng.uniform(0, 2 * np.pi)
    t = np.linspace(-0.5, 0.5, size, dtype=np.float32)
    ramp = np.cos(theta) * t[None, :] + np.sin(theta) * t[:, None] + 0.5  # (size, size)
    ramp = np.clip(ramp, 0.0, 1.0)[..., None]
    return a * (1.0 - ramp) + b * ramp


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """Value noise: a cells x cells random grid upsampled bicubically, (size, size, channels) in
    ~[-1, 1]."""
    grid = rng.uniform(-1.0, 1.0, size=(cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return out.reshape(size, size, channels)


def _stripes(rng: np.random.Generator, size: int) -> np.ndarray:
    """Soft stripes or a checkerboard of random period, (size, size, 1) in [-1, 1]."""
    period = rng.uniform(0.05, 0.25) * size
    theta = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    u = (np.cos(theta) * x + np.sin(theta) * y) * (2 * np.pi / period)
    if rng.random() < 0.4:
        v = (-np.sin(theta) * x + np.cos(theta) * y) * (2 * np.pi / period)
        return np.sign(np.sin(u) * np.sin(v))[..., None] * 0.6
    return np.sin(u)[..., None]


def _draw_shapes(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Random filled circles, rectangles, polygons and thick lines, in place (BGR float32)."""
    size = img.shape[0]
    for _ in range(count):
        color = tuple(float(c) for c in random_color(rng))
        kind = rng.integers(4)
        cx, cy = rng.uniform(-0.1, 1.1, size=2) * size
        r = rng.uniform(0.04, 0.35) * size
        if kind == 0:
            cv2.circle(img, (int(cx), int(cy)), int(r), color, -1, cv2.LINE_AA)
        elif kind == 1:
            box = (
                (float(cx), float(cy)),
                (float(r * 2), float(r * rng.uniform(0.3, 2))),
                float(rng.uniform(0, 180)),
            )
            cv2.fillConvexPoly(img, cv2.boxPoints(box).astype(np.int32), color, cv2.LINE_AA)
        elif kind == 2:
            angles = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(3, 7))))
            radii = r * rng.uniform(0.5, 1.0, size=angles.shape)
            pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
            cv2.fillPoly(img, [pts.astype(np.int32)], color, cv2.LINE_AA)
        else:
            x2, y2 = rng.uniform(0, 1, size=2) * size
            thickness = max(1, int(rng.uniform(0.005, 0.04) * size))
            cv2.line(img, (int(cx), int(cy)), (int(x2), int(y2)), color, thickness, cv2.LINE_AA)


def render_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """One random background.

    Args:
        rng: the generator that decides everything (deterministic by its seed).
        size: side in pixels.

    Returns:
        (size, size, 3) float32 BGR in [0, 255].
    """
    img = _gradient(rng, size)
    style = rng.random()
    if style < 0.35:  # large soft blobs of colour
        img += _smooth_noise(rng, size, int(rng.integers(2, 6)), 3) * rng.uniform(20, 60)
    elif style < 0.55:  # a textured surface (stripes / checker) in a second colour
        tint = random_color(rng) - img.mean(axis=(0, 1))
        img += _stripes(rng, size) * tint * rng.uniform(0.15, 0.4)
    if rng.random() < 0.6:
        _draw_shapes(rng, img, int(rng.integers(1, 8)))
        if rng.random() < 0.5:  # out-of-focus clutter
            k = 2 * int(rng.integers(1, max(2, size // 32))) + 1
            img = cv2.GaussianBlur(img, (k, k), 0)
    # fine grain (sensor-like) noise at a random scale
    grain = _smooth_noise(rng, size, int(rng.integers(size // 8, size // 2 + 1)), 1)
    img += grain * rng.uniform(2, 14)
    # keep the background less contrasted than the figure
    mean = img.mean(axis=(0, 1), keepdims=True)
    img = mean + (img - mean) * rng.uniform(0.5, 0.9)
    return np.clip(img, 0.0, 255.0)
