"""The estimator's answer for one subject in one frame."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

import numpy as np


def _frozen(a: np.ndarray, dtype) -> np.ndarray:
    arr = np.array(a, dtype=dtype, copy=True)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class Result:
    """One pose: keypoints in frame pixels plus what the memory says about it.

    All coordinates are (x, y) pixels of the frame given to the estimator, x to the right, y down,
    pixel centres at integers. Arrays are read-only.

    Attributes:
        keypoints: (N, 2) float32, the final estimate (after refinement when refinement ran).
        keypoints_refined: (N, 2) float32, the memory's reconstruction of that estimate (Mem(T')):
            the nearest stored prototype pose, decoded.
        confidence: (N,) float32 in [0, 1], per keypoint: 1 - normalised entropy of its attention
            map (1 = one sharp peak).
        plausibility: float in (0, 1]: exp(-mean prototype distance / reference · ln 2); 1 = a
            stored prototype, 0.5 = a typical training pose, near 0 = unlike anything seen.
        prototype_ids: (M,) int64, the memory entry chosen in each of the M banks.
        prototype_distances: (M,) float32, squared distance of the pose's code to that entry.
        edges: skeleton edges (i, j) from the learned connectivity W.
        box: (x0, y0, x1, y1) the crop region of this subject in the frame (may extend past it).
        iterations: per-iteration (N, 2) float32 keypoints, iteration 0 first (one entry when no
            refinement ran).
        timings: milliseconds per stage for the frame ("preprocess", "inference", "refine",
            "postprocess", "total"); shared by every subject of the frame.
        keypoint_names: N names from the manifest.
        reconstructions: image-mode refinement inputs x_1..x_n as (H, W, 3) uint8 BGR model-size
            images, only when the estimator keeps them (``keep_reconstructions=True``).
        joints: (J, 2) float32 frame pixels of the named joints, the manifest's joint map applied
            to the final ``keypoints`` (after refinement and smoothing); None when the model names
            no joints.
        joint_names: J names (empty without joints); joint_edges: the named skeleton (i, j).
    """

    keypoints: np.ndarray
    keypoints_refined: np.ndarray
    confidence: np.ndarray
    plausibility: float
    prototype_ids: np.ndarray
    prototype_distances: np.ndarray
    edges: tuple[tuple[int, int], ...]
    box: tuple[int, int, int, int]
    iterations: tuple[np.ndarray, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    keypoint_names: tuple[str, ...] = ()
    reconstructions: tuple[np.ndarray, ...] = field(default=(), repr=False)
    joints: np.ndarray | None = None
    joint_names: tuple[str, ...] = ()
    joint_edges: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise dtypes once, at construction
        set_(self, "keypoints", _frozen(self.keypoints, np.float32))
        set_(self, "keypoints_refined", _frozen(self.keypoints_refined, np.float32))
        set_(self, "confidence", _frozen(self.confidence, np.float32))
        set_(self, "prototype_ids", _frozen(self.prototype_ids, np.int64))
        set_(self, "prototype_distances", _frozen(self.prototype_distances, np.float32))
        set_(self, "iterations", tuple(_frozen(k, np.float32) for k in self.iterations))
        set_(self, "reconstructions", tuple(self.reconstructions))
        set_(self, "plausibility", float(self.plausibility))
        set_(self, "box", tuple(int(v) for v in self.box))
        if not isinstance(self.edges, tuple):  # the manifest's edges are already int tuples
            set_(self, "edges", tuple((int(i), int(j)) for i, j in self.edges))
        if self.joints is not None:
            set_(self, "joints", _frozen(self.joints, np.float32))
            set_(self, "joint_names", tuple(str(n) for n in self.joint_names))
            set_(self, "joint_edges", tuple((int(i), int(j)) for i, j in self.joint_edges))

    @classmethod
    def owned(cls, **values: Any) -> Result:
        """A Result from values already in their final form, without the copies and conversions of
        the constructor: the hot path of the estimator's postprocess, which makes every array new,
        with the field's dtype, and read-only. Fields not given take their defaults.

        Raises:
            TypeError: a field without a default is missing, or a name is not a field.
        """
        if not _REQUIRED <= values.keys() or not values.keys() <= _FIELD_NAMES:
            missing = sorted(_REQUIRED - values.keys())
            unknown = sorted(values.keys() - _FIELD_NAMES)
            raise TypeError(f"Result.owned(): missing fields {missing}, unknown fields {unknown}")
        res = object.__new__(cls)
        state = res.__dict__  # frozen blocks __setattr__, not the instance dict
        state.update(_DEFAULTS)
        state.update({name: make() for name, make in _FACTORIES.items()})  # new per Result
        state.update(values)
        return res

    @property
    def named_joints(self) -> dict[str, tuple[float, float]]:
        """Joint name -> (x, y) frame pixels; empty when the model names no joints."""
        if self.joints is None:
            return {}
        return {n: (float(x), float(y)) for n, (x, y) in zip(self.joint_names, self.joints)}

    @property
    def num_keypoints(self) -> int:
        """N."""
        return int(self.keypoints.shape[0])

    def to_dict(self, digits: int | None = 2) -> dict[str, Any]:
        """JSON-ready dict (lists and floats); pixel values rounded to ``digits`` (None: exact).

        With named joints it also holds ``joints`` ([[x, y], ...] frame pixels), ``joint_names``
        and ``joint_edges``; without, those keys are absent.
        """

        def r(a: np.ndarray) -> list:
            a = np.asarray(a, dtype=np.float64)  # float32 -> float64 first: 91.43, not 91.4300003
            return (np.round(a, digits) if digits is not None else a).tolist()

        out = {
            "keypoints": r(self.keypoints),
            "keypoints_refined": r(self.keypoints_refined),
            "confidence": np.round(self.confidence.astype(np.float64), 4).tolist(),
            "plausibility": round(self.plausibility, 4),
            "prototype_ids": self.prototype_ids.tolist(),
            "edges": [list(e) for e in self.edges],
            "box": list(self.box),
            "iterations": [r(k) for k in self.iterations],
            "timings": {k: round(float(v), 3) for k, v in self.timings.items()},
        }
        if self.joints is not None:
            out["joints"] = r(self.joints)
            out["joint_names"] = list(self.joint_names)
            out["joint_edges"] = [list(e) for e in self.joint_edges]
        return out


_REQUIRED = frozenset(
    f.name for f in fields(Result) if f.default is MISSING and f.default_factory is MISSING
)
_DEFAULTS = {f.name: f.default for f in fields(Result) if f.default is not MISSING}
_FACTORIES = {f.name: f.default_factory for f in fields(Result) if f.default_factory is not MISSING}
_FIELD_NAMES = frozenset(f.name for f in fields(Result))
