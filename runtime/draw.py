"""Drawing helpers (OpenCV): skeletons from the learned edges or, for a model that names its joints,
the named skeleton with each joint's name; iterations; FPS / stage-time overlay.

Every function draws in place on a (H, W, 3) uint8 BGR image and returns it. Sizes scale with the
image so a 4K frame and a 64-pixel crop both stay readable.
"""

from __future__ import annotations

import cv2
import numpy as np

from ppl_edge.runtime.result import Result
from ppl_edge.skeleton import edge_colours


def confidence_colour(c: float) -> tuple[int, int, int]:
    """BGR from red (confidence 0) through yellow to green (1)."""
    c = float(np.clip(c, 0.0, 1.0))
    return (0, int(255 * min(1.0, 2 * c)), int(255 * min(1.0, 2 * (1 - c))))


def _scale(image: np.ndarray) -> float:
    return max(image.shape[:2]) / 640.0


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def draw_label(image: np.ndarray, text: str, at: tuple[int, int]) -> np.ndarray:
    """Small white text on a darkened box, its baseline's left end at ``at`` (clipped to the
    image)."""
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.35, 0.4 * _scale(image))
    thick = max(1, int(round(_scale(image))))
    (w, h), base = cv2.getTextSize(text, font, font_scale, thick)
    x, y = at
    x0, y0 = max(0, x - 1), max(0, y - h - 2)
    x1, y1 = min(image.shape[1], x + w + 1), min(image.shape[0], y + base)
    if x1 > x0 and y1 > y0:
        image[y0:y1, x0:x1] = (image[y0:y1, x0:x1] * 0.35).astype(np.uint8)
    cv2.putText(image, text, at, font, font_scale, (255, 255, 255), thick, cv2.LINE_AA)
    return image


def draw_joints(image: np.ndarray, result: Result, names: bool = True) -> np.ndarray:
    """Draw the named skeleton: ``joint_edges`` coloured per edge, white joint dots and, with
    ``names``, each joint's name beside it. Nothing without named joints."""
    if result.joints is None:
        return image
    s = _scale(image)
    thick, radius = max(1, int(round(2 * s))), max(2, int(round(3 * s)))
    pts = result.joints
    ok = np.isfinite(pts).all(axis=1)
    for (i, j), colour in zip(result.joint_edges, edge_colours(len(result.joint_edges))):
        if ok[i] and ok[j]:
            cv2.line(image, _pt(pts[i]), _pt(pts[j]), colour, thick, cv2.LINE_AA)
    for k in np.flatnonzero(ok):
        x, y = _pt(pts[k])
        cv2.circle(image, (x, y), radius, (255, 255, 255), -1, cv2.LINE_AA)
        cv2.circle(image, (x, y), radius, (0, 0, 0), 1, cv2.LINE_AA)
        if names:
            draw_label(image, result.joint_names[k], (x + radius + 2, y + radius))
    return image


def draw_pose(
    image: np.ndarray,
    result: Result,
    refined: bool = False,
    min_confidence: float = 0.0,
    draw_box: bool = False,
    label: bool = False,
    names: bool = True,
) -> np.ndarray:
    """Draw one pose: edges coloured per edge, keypoint dots coloured by confidence; for a model
    that names its joints, the named skeleton instead (:func:`draw_joints`).

    Args:
        image: (H, W, 3) uint8 BGR, the frame the result refers to.
        result: the pose (frame pixels).
        refined: draw ``keypoints_refined`` (the memory's reconstruction) instead of ``keypoints``
            (the learned skeleton: the joints follow ``keypoints``).
        min_confidence: skip keypoints (and their edges) below this confidence (named joints
            have no confidence: all are drawn).
        draw_box: outline the subject's crop box.
        label: write the plausibility above the box.
        names: write each named joint's name.
    """
    s = _scale(image)
    thick = max(1, int(round(2 * s)))
    if result.joints is not None and not refined:
        draw_joints(image, result, names)
    else:
        _draw_keypoints(image, result, refined, min_confidence)
    x0, y0, x1, y1 = result.box
    if draw_box:
        cv2.rectangle(image, (x0, y0), (x1 - 1, y1 - 1), (200, 200, 200), thick)
    if label:
        draw_text(
            image,
            [f"plausibility {result.plausibility:.2f}"],
            (x0, max(y0 - 4, 0)),
            anchor_bottom=True,
        )
    return image


def _draw_keypoints(
    image: np.ndarray, result: Result, refined: bool, min_confidence: float
) -> None:
    """The learned skeleton of :func:`draw_pose`."""
    s = _scale(image)
    thick, radius = max(1, int(round(2 * s))), max(2, int(round(4 * s)))
    pts = result.keypoints_refined if refined else result.keypoints
    finite = np.isfinite(pts).all(axis=1)
    ok = (result.confidence >= min_confidence) & finite
    for (i, j), colour in zip(result.edges, edge_colours(len(result.edges))):
        if ok[i] and ok[j]:
            cv2.line(image, _pt(pts[i]), _pt(pts[j]), colour, thick, cv2.LINE_AA)
    for k in np.flatnonzero(ok):
        cv2.circle(
            image, _pt(pts[k]), radius, confidence_colour(result.confidence[k]), -1, cv2.LINE_AA
        )
        cv2.circle(image, _pt(pts[k]), radius, (0, 0, 0), 1, cv2.LINE_AA)


def draw_iterations(image: np.ndarray, result: Result) -> np.ndarray:
    """Draw each refinement iteration's keypoints, faint (iteration 0) to solid (last), joined."""
    s = _scale(image)
    n = len(result.iterations)
    for it, pts in enumerate(result.iterations):
        shade = int(80 + 175 * (it + 1) / n)
        for p in pts:
            cv2.circle(image, _pt(p), max(1, int(round(2 * s))), (shade, shade, 255), -1)
    for a, b in zip(result.iterations[:-1], result.iterations[1:]):
        for p, q in zip(a, b):
            cv2.line(image, _pt(p), _pt(q), (180, 180, 255), 1, cv2.LINE_AA)
    return image


def draw_text(
    image: np.ndarray,
    lines: list[str],
    origin: tuple[int, int] = (8, 8),
    anchor_bottom: bool = False,
) -> np.ndarray:
    """Write lines of text on a dark box, top-left at ``origin`` (bottom-left when anchored)."""
    s = _scale(image)
    font_scale, thick = 0.5 * max(s, 0.5), max(1, int(round(s)))
    sizes = [cv2.getTextSize(t, cv2.FONT_HERSHEY_SIMPLEX, font_scale, thick)[0] for t in lines]
    if not sizes:
        return image
    line_h = max(h for _, h in sizes) + int(6 * max(s, 0.5))
    width = max(w for w, _ in sizes) + 8
    x, y = origin
    if anchor_bottom:
        y -= line_h * len(lines)
    x, y = max(0, x), max(0, y)
    x1, y1 = min(image.shape[1], x + width), min(image.shape[0], y + line_h * len(lines) + 4)
    if x1 > x and y1 > y:
        image[y:y1, x:x1] = (image[y:y1, x:x1] * 0.4).astype(np.uint8)
    for k, text in enumerate(lines):
        cv2.putText(
            image,
            text,
            (x + 4, y + line_h * (k + 1)),
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 255),
            thick,
            cv2.LINE_AA,
        )
    return image


def draw_timings(image: np.ndarray, fps: float | None, timings: dict[str, float]) -> np.ndarray:
    """Overlay FPS and per-stage milliseconds in the top-left corner."""
    lines = [f"{fps:.1f} FPS"] if fps is not None else []
    lines += [f"{stage} {ms:.1f} ms" for stage, ms in timings.items()]
    return draw_text(image, lines)


def draw_results(
    image: np.ndarray,
    results: list[Result],
    fps: float | None = None,
    refined: bool = False,
    min_confidence: float = 0.0,
    timings: dict[str, float] | None = None,
) -> np.ndarray:
    """Draw every pose of a frame, their boxes when there are several, and the overlay."""
    for res in results:
        draw_pose(
            image, res, refined=refined, min_confidence=min_confidence, draw_box=len(results) > 1
        )
    stage = timings if timings is not None else (results[0].timings if results else {})
    if fps is not None or stage:
        draw_timings(image, fps, stage)
    return image
