"""Pose trajectories and forward kinematics of the synthetic figures (NumPy only).

A clip's motion is one smooth trajectory per joint angle: ``angle(t) = clip(c + a sin(2π f t + φ),
lo, hi)`` with a centre ``c`` near the joint's rest angle, an amplitude ``a``, a frequency ``f`` in
cycles per frame and a phase ``φ``. A still image is frame 0 of a one-frame clip, so its angles are
spread over the joint's range by the random centre and phase. The whole figure also tilts, drifts
and may face either way (a horizontal mirror).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ppl_edge.synth.skeletons import Category

MAX_AMPLITUDE_DEG = 60.0  # caps per-frame angle change at 2π·f·a <= ~19 deg for f <= 0.05
MAX_TILT_DEG = {"humanoid": 15.0, "quadruped": 20.0, "bird": 25.0}


@dataclass(frozen=True)
class Motion:
    """Per-clip motion parameters (all arrays over joints J, angles in degrees).

    Attributes:
        centre, amplitude, freq, phase: (J,) angle trajectory parameters.
        lengths: (J,) bone lengths of this figure (figure units; body-shape variation applied).
        widths0, widths1: (J,) bone radii at the parent / child end.
        tilt: (4,) centre, amplitude, freq, phase of the global tilt in degrees.
        drift: (2,) figure translation per frame, in figure units.
        is_mirrored: the figure faces the other way (x negated).
        out_of_plane: (J, 4) centre, amplitude, frequency and phase of each bone's angle out of
            the image plane (degrees): its projected length is ``length · cos(angle)``, the
            foreshortening of a 3-D limb that points towards or away from the camera.
    """

    centre: np.ndarray
    amplitude: np.ndarray
    freq: np.ndarray
    phase: np.ndarray
    lengths: np.ndarray
    widths0: np.ndarray
    widths1: np.ndarray
    tilt: np.ndarray
    drift: np.ndarray
    is_mirrored: bool
    out_of_plane: np.ndarray | None = None


def sample_shape(cat: Category, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Body shape of one subject: (lengths, widths0, widths1), each (J,) in figure units."""
    J = len(cat.joints)
    lengths = np.array([j.length for j in cat.joints]) * rng.uniform(0.85, 1.1, J)
    lengths = lengths * rng.uniform(0.9, 1.1)
    build = rng.uniform(0.95, 1.3)
    widths0 = np.array([j.width0 for j in cat.joints]) * build
    widths1 = np.array([j.width1 for j in cat.joints]) * build
    return lengths, widths0, widths1


# Bones that may point out of the image plane (foreshortened): limbs, not torso or head.
_FORESHORTENED = ("arm", "forearm", "leg", "shin", "hand")
MAX_OUT_OF_PLANE_DEG = 55.0


def sample_motion(
    cat: Category,
    rng: np.random.Generator,
    is_video: bool,
    shape: tuple[np.ndarray, ...] | None = None,
) -> Motion:
    """Draw the motion of one clip (or one still pose when ``is_video`` is False).

    Args:
        shape: the subject's (lengths, widths0, widths1) from :func:`sample_shape`; drawn from
            ``rng`` when None (every clip a new body).
    """
    J = len(cat.joints)
    lo = np.array([j.lo for j in cat.joints], dtype=np.float64)
    hi = np.array([j.hi for j in cat.joints], dtype=np.float64)
    rest = np.array([j.rest for j in cat.joints], dtype=np.float64)
    span = hi - lo
    centre = np.clip(rest + rng.normal(0.0, 0.3, J) * span, lo, hi)
    amplitude = np.minimum(rng.uniform(0.15, 0.55, J) * span, MAX_AMPLITUDE_DEG)
    if not is_video:  # a still pose may use the full range
        amplitude = rng.uniform(0.2, 0.6, J) * span
    freq = rng.uniform(0.01, 0.05, J)
    phase = rng.uniform(0.0, 2 * np.pi, J)
    lengths, widths0, widths1 = sample_shape(cat, rng) if shape is None else shape
    max_tilt = MAX_TILT_DEG.get(cat.name, 20.0)
    tilt = np.array(
        [
            rng.uniform(-max_tilt, max_tilt),
            rng.uniform(0, max_tilt / 3),
            rng.uniform(0.005, 0.03),
            rng.uniform(0, 2 * np.pi),
        ]
    )
    drift = rng.normal(0.0, 0.004, 2) if is_video else np.zeros(2)
    mirrored = bool(rng.random() < 0.5)
    limb = np.array([j.group in _FORESHORTENED for j in cat.joints])
    top = MAX_OUT_OF_PLANE_DEG * limb
    oop = np.stack(
        [
            rng.uniform(0, 1, J) * top * 0.6,
            rng.uniform(0, 0.4, J) * top,
            rng.uniform(0.01, 0.04, J),
            rng.uniform(0, 2 * np.pi, J),
        ],
        axis=1,
    )
    if not is_video:
        oop[:, 0] = rng.uniform(0, 1, J) * top
    return Motion(
        centre, amplitude, freq, phase, lengths, widths0, widths1, tilt, drift, mirrored, oop
    )


def projected_lengths(motion: Motion, t: np.ndarray) -> np.ndarray:
    """(T, J) bone lengths in the image plane at frames ``t`` (foreshortened by the out-of-plane
    angle of each bone, clipped to [0, MAX_OUT_OF_PLANE_DEG])."""
    t = np.asarray(t, dtype=np.float64)[:, None]
    if motion.out_of_plane is None:
        return np.broadcast_to(motion.lengths, (t.shape[0], motion.lengths.shape[0]))
    c, a, f, p = motion.out_of_plane.T
    angle = np.clip(c + a * np.sin(2 * np.pi * f * t + p), 0.0, MAX_OUT_OF_PLANE_DEG)
    return motion.lengths * np.cos(np.deg2rad(angle))


def joint_angles(cat: Category, motion: Motion, t: np.ndarray) -> np.ndarray:
    """Relative joint angles at frames ``t``.

    Args:
        t: (T,) frame times (float).

    Returns:
        (T, J) float64 degrees, within each joint's limits (the root's entry is the global angle).
    """
    t = np.asarray(t, dtype=np.float64)[:, None]  # (T, 1)
    lo = np.array([j.lo for j in cat.joints])
    hi = np.array([j.hi for j in cat.joints])
    angles = motion.centre + motion.amplitude * np.sin(2 * np.pi * motion.freq * t + motion.phase)
    angles = np.clip(angles, lo, hi)  # (T, J)
    c, a, f, p = motion.tilt
    angles[:, 0] = cat.root_angle + c + a * np.sin(2 * np.pi * f * t[:, 0] + p)
    return angles


def far_side_mask(cat: Category, motion: Motion) -> np.ndarray:
    """(J,) bool: joints on the side facing away from the camera (side views only).

    A figure facing +x shows its right side; a mirrored one faces -x and shows its left side.
    """
    if not cat.is_side_view:
        return np.zeros(len(cat.joints), dtype=bool)
    return cat.sides == (1 if motion.is_mirrored else 2)


def forward_kinematics(cat: Category, motion: Motion, t: np.ndarray) -> np.ndarray:
    """Joint positions of the figure at frames ``t``, root at the origin plus drift.

    Args:
        t: (T,) frame times.

    Returns:
        (T, J, 2) float64 xy in figure units (x right, y down), mirrored if the clip is.
    """
    t = np.asarray(t, dtype=np.float64)
    angles = np.deg2rad(joint_angles(cat, motion, t))  # (T, J)
    parents = cat.parents
    T, J = angles.shape
    pos = np.zeros((T, J, 2))
    direction = np.zeros((T, J))  # absolute bone direction in radians
    direction[:, 0] = angles[:, 0]
    lengths = projected_lengths(motion, t)  # (T, J)
    for j in range(1, J):
        p = parents[j]
        direction[:, j] = direction[:, p] + angles[:, j]
        step = np.stack([np.cos(direction[:, j]), np.sin(direction[:, j])], axis=-1)  # (T, 2)
        pos[:, j] = pos[:, p] + lengths[:, j, None] * step
    if cat.is_side_view:
        # far-side limbs sit slightly back and up, so that both sides stay visible
        along, across = cat.far_offset
        far = far_side_mask(cat, motion)
        root_dir = np.stack([np.cos(direction[:, 0]), np.sin(direction[:, 0])], axis=-1)  # (T, 2)
        normal = np.stack([root_dir[:, 1], -root_dir[:, 0]], axis=-1)  # (T, 2), "up" for side views
        pos[:, far] += (along * root_dir + across * normal)[:, None, :]
    pos += motion.drift * t[:, None, None]
    if motion.is_mirrored:
        pos[..., 0] = -pos[..., 0]
    return pos
