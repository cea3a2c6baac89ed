"""Kinematic trees of the synthetic figures: joints, bone lengths, joint-angle limits, widths,
colours.

NumPy only (the torch-free runtime demo renders clips with it). Each category is a tree of joints;
every non-root joint hangs off its parent at a *relative* angle (degrees, added to the parent bone's
direction) drawn within ``[lo, hi]``. Angles are in image space: x right, y down, so 0 deg points
right and -90 deg points up. Lengths and widths are in figure units (a humanoid is ~0.9 tall); the
renderer scales the figure to the crop.

Left limbs are listed once (``l_`` prefix) and their ``r_`` twins are generated:
- front-view categories (humanoid) mirror the twin (negated angles), so the figure's left limbs
  appear on the image's right;
- side-view categories (quadruped, bird) copy the twin and draw it behind the body, slightly offset
  (the far side).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Joint:
    """One joint and the bone from its parent to it.

    Attributes:
        name: joint name; ``l_``/``r_`` prefixes mark sides.
        parent: parent joint name ("" for the root).
        length: bone length in figure units.
        lo, hi: relative-angle limits in degrees.
        rest: typical relative angle (centre of the pose distribution), in [lo, hi].
        width0, width1: bone radius at the parent / child end (figure units).
        group: colour group ("torso", "head", "arm", ...).
        depth: drawing order of the bone (larger is nearer the camera).
    """

    name: str
    parent: str
    length: float = 0.0
    lo: float = 0.0
    hi: float = 0.0
    rest: float = 0.0
    width0: float = 0.0
    width1: float = 0.0
    group: str = "torso"
    depth: float = 0.0


@dataclass(frozen=True)
class Category:
    """A figure category: its joints (root first, parents before children) and view.

    Attributes:
        name: category name used in dataset specs (``synthetic:<name>``).
        joints: the full joint list, left/right twins included.
        root_angle: direction of the root's "forward" axis in degrees (-90 = up for upright
        figures).
        is_side_view: far-side limbs are offset and drawn behind (see module docstring).
        far_offset: (along, across) offset of far-side limbs in figure units (side views only).
    """

    name: str
    joints: tuple[Joint, ...]
    root_angle: float
    is_side_view: bool
    far_offset: tuple[float, float] = (0.0, 0.0)

    @property
    def joint_names(self) -> tuple[str, ...]:
        return tuple(j.name for j in self.joints)

    @property
    def parents(self) -> np.ndarray:
        """(J,) int parent index, -1 for the root."""
        index = {n: i for i, n in enumerate(self.joint_names)}
        return np.array([index.get(j.parent, -1) for j in self.joints], dtype=np.int64)

    @property
    def edges(self) -> tuple[tuple[int, int], ...]:
        """Ground-truth skeleton edges (parent, child), one per bone."""
        return tuple((int(p), i) for i, p in enumerate(self.parents) if p >= 0)

    @property
    def swap_pairs(self) -> tuple[tuple[int, int], ...]:
        """Left/right joint index pairs (l, r), for flip-invariant evaluation."""
        names = self.joint_names
        return tuple(
            (i, names.index("r_" + n[2:])) for i, n in enumerate(names) if n.startswith("l_")
        )

    @property
    def sides(self) -> np.ndarray:
        """(J,) int: 0 centre, 1 left, 2 right."""
        return np.array(
            [1 if n.startswith("l_") else 2 if n.startswith("r_") else 0 for n in self.joint_names],
            dtype=np.int64,
        )


def _with_right_twins(joints: list[Joint], mirror: bool) -> tuple[Joint, ...]:
    """Append an ``r_`` twin of every ``l_`` joint; mirrored twins get negated angles."""
    twins = []
    for j in joints:
        if not j.name.startswith("l_"):
            continue
        parent = "r_" + j.parent[2:] if j.parent.startswith("l_") else j.parent
        lo, hi, rest = (-j.hi, -j.lo, -j.rest) if mirror else (j.lo, j.hi, j.rest)
        twins.append(
            Joint(
                "r_" + j.name[2:],
                parent,
                j.length,
                lo,
                hi,
                rest,
                j.width0,
                j.width1,
                j.group,
                j.depth,
            )
        )
    return tuple(joints) + tuple(twins)


# Front view, upright. Arms are drawn in front of the torso, legs behind it.
_HUMANOID = [
    #     name         parent        len    lo    hi  rest   w0     w1    group   depth
    Joint("pelvis", ""),
    Joint("spine", "pelvis", 0.11, -15, 15, 0, 0.085, 0.080, "torso", 1.0),
    Joint("thorax", "spine", 0.13, -12, 12, 0, 0.080, 0.095, "torso", 1.0),
    Joint("neck", "thorax", 0.05, -20, 20, 0, 0.035, 0.030, "head", 1.5),
    Joint("head", "neck", 0.07, -30, 30, 0, 0.030, 0.062, "head", 1.6),
    Joint("l_shoulder", "thorax", 0.10, 80, 110, 95, 0.050, 0.042, "arm", 1.2),
    Joint("l_elbow", "l_shoulder", 0.16, -90, 160, 75, 0.040, 0.032, "arm", 3.0),
    Joint("l_wrist", "l_elbow", 0.14, -130, 60, -10, 0.032, 0.024, "forearm", 3.1),
    Joint("l_hip", "pelvis", 0.07, 95, 108, 100, 0.075, 0.060, "torso", 0.9),
    Joint("l_knee", "l_hip", 0.23, 25, 130, 82, 0.058, 0.042, "leg", 0.5),
    Joint("l_ankle", "l_knee", 0.22, -55, 55, 0, 0.042, 0.030, "shin", 0.4),
    Joint("l_foot", "l_ankle", 0.07, -105, -35, -70, 0.030, 0.024, "foot", 0.3),
]

# Side view facing +x. Body pelvis -> withers, far legs behind it, near legs in front.
_QUADRUPED = [
    Joint("pelvis", ""),
    Joint("withers", "pelvis", 0.45, -10, 10, 0, 0.13, 0.14, "torso", 1.0),
    Joint("neck", "withers", 0.18, -75, 10, -45, 0.075, 0.060, "head", 1.4),
    Joint("head", "neck", 0.10, 15, 85, 50, 0.065, 0.058, "head", 1.5),
    Joint("nose", "head", 0.10, -5, 45, 20, 0.050, 0.028, "muzzle", 1.6),
    Joint("tail_base", "pelvis", 0.08, 155, 205, 170, 0.045, 0.035, "torso", 0.9),
    Joint("tail_tip", "tail_base", 0.22, -70, 60, -15, 0.030, 0.012, "tail", 0.8),
    Joint("l_elbow", "withers", 0.17, 60, 125, 95, 0.055, 0.042, "arm", 2.0),
    Joint("l_front_knee", "l_elbow", 0.15, -30, 85, 0, 0.038, 0.030, "forearm", 2.1),
    Joint("l_front_paw", "l_front_knee", 0.08, -60, 30, 0, 0.030, 0.026, "foot", 2.2),
    Joint("l_stifle", "pelvis", 0.18, 40, 120, 80, 0.070, 0.045, "leg", 2.0),
    Joint("l_hock", "l_stifle", 0.16, -30, 80, 25, 0.038, 0.030, "shin", 2.1),
    Joint("l_hind_paw", "l_hock", 0.10, -60, 30, -20, 0.030, 0.026, "foot", 2.2),
]

# Side view facing +x. Wings fold back over the body and flap up and down.
_BIRD = [
    Joint("body", ""),
    Joint("neck", "body", 0.18, -85, -20, -50, 0.14, 0.075, "torso", 1.0),
    Joint("head", "neck", 0.08, 0, 60, 30, 0.070, 0.065, "head", 1.2),
    Joint("beak", "head", 0.10, -10, 50, 20, 0.032, 0.006, "muzzle", 1.3),
    Joint("tail_base", "body", 0.20, 160, 200, 172, 0.13, 0.070, "torso", 0.95),
    Joint("tail_tip", "tail_base", 0.20, -40, 30, -8, 0.060, 0.030, "tail", 0.9),
    Joint("l_wing_elbow", "body", 0.18, -200, -95, -155, 0.070, 0.050, "arm", 2.0),
    Joint("l_wing_wrist", "l_wing_elbow", 0.16, -40, 60, 20, 0.050, 0.035, "forearm", 2.1),
    Joint("l_wing_tip", "l_wing_wrist", 0.20, -30, 40, 10, 0.035, 0.010, "hand", 2.2),
    Joint("l_knee", "body", 0.12, 70, 130, 100, 0.035, 0.025, "leg", 1.8),
    Joint("l_foot", "l_knee", 0.12, -50, 30, -20, 0.020, 0.015, "foot", 1.8),
]

CATEGORIES: dict[str, Category] = {
    "humanoid": Category("humanoid", _with_right_twins(_HUMANOID, mirror=True), -90.0, False),
    "quadruped": Category(
        "quadruped",
        _with_right_twins(_QUADRUPED, mirror=False),
        0.0,
        True,
        far_offset=(-0.03, 0.025),
    ),
    "bird": Category(
        "bird", _with_right_twins(_BIRD, mirror=False), 0.0, True, far_offset=(-0.02, 0.03)
    ),
}

HUMANOID_JOINTS = CATEGORIES["humanoid"].joint_names
HUMANOID_EDGES = CATEGORIES["humanoid"].edges
HUMANOID_SWAP_PAIRS = CATEGORIES["humanoid"].swap_pairs
QUADRUPED_JOINTS = CATEGORIES["quadruped"].joint_names
QUADRUPED_EDGES = CATEGORIES["quadruped"].edges
QUADRUPED_SWAP_PAIRS = CATEGORIES["quadruped"].swap_pairs
BIRD_JOINTS = CATEGORIES["bird"].joint_names
BIRD_EDGES = CATEGORIES["bird"].edges
BIRD_SWAP_PAIRS = CATEGORIES["bird"].swap_pairs
