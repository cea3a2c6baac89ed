"""What the ppl-edge ROS 2 node computes that is not ROS: its parameters (checked), and the
messages it publishes as nested dicts of their fields (``ppl_edge_msgs/SkeletonArray`` and
``visualization_msgs/MarkerArray``: keypoint spheres, skeleton LINE_LIST), stamped with the image's
header.

No rclpy here: the node (``node.py``) fills messages from these dicts with
``rosidl_runtime_py.set_message_fields``, so everything below is unit-tested without ROS, down to
serialising the dicts against the message definitions (``tests/samples/test_ros2_package.py``).
Coordinates are pixels of the image (x right, y down), as ``ppl_edge.runtime.Result`` gives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ppl_edge.runtime import CROP_MODES, REFINE_MODES
from ppl_edge.runtime.backends import backend_choices
from ppl_edge.skeleton import edge_colours

# name -> (default, description); the type of the default is the parameter's ROS type.
PARAMETERS: dict[str, tuple[Any, str]] = {
    "model": ("", "export folder, .onnx, .engine or .mlpackage ('' = the shipped model)"),
    "backend": ("auto", "auto, onnxruntime, tensorrt or coreml"),
    "refine": ("none", "refinement: none, memory or image"),
    "iterations": (0, "refinement iterations (>= 0)"),
    "crops": ("full", "full: one subject per image; motion: every moving subject (fixed camera)"),
    "smooth": (False, "One Euro smoothing, timed by the image stamps"),
    "verify": (True, "check the model files' sha256 before loading"),
    "threads": (0, "ONNX Runtime CPU threads (0 = its default)"),
    "image_topic": ("image", "sensor_msgs/Image input"),
    "skeletons_topic": ("~/skeletons", "ppl_edge_msgs/SkeletonArray output"),
    "markers_topic": ("~/markers", "visualization_msgs/MarkerArray output, for RViz"),
    "overlay_topic": ("", "annotated sensor_msgs/Image output ('' = off)"),
    "confidence_threshold": (0.0, "keypoints below it are left out of markers and overlay"),
    "frame_id": ("", "frame_id of the outputs ('' = the image's)"),
    "marker_scale": (0.001, "metres per pixel of the marker plane (z = 0 of frame_id)"),
    "marker_lifetime": (0.5, "seconds RViz keeps markers that are not refreshed (0 = forever)"),
}

# parameters a running node takes (``ros2 param set``); the others are read at start
LIVE_PARAMETERS = (
    "refine",
    "iterations",
    "confidence_threshold",
    "frame_id",
    "marker_scale",
    "marker_lifetime",
)
SPHERE_LIST, LINE_LIST, ADD, DELETEALL = 7, 5, 0, 3  # visualization_msgs/Marker constants


@dataclass(frozen=True)
class NodeParams:
    """The node's parameters, checked (see :data:`PARAMETERS`)."""

    model: str
    backend: str
    refine: str
    iterations: int
    crops: str
    smooth: bool
    verify: bool
    threads: int
    image_topic: str
    skeletons_topic: str
    markers_topic: str
    overlay_topic: str
    confidence_threshold: float
    frame_id: str
    marker_scale: float
    marker_lifetime: float

    def estimator_settings(self) -> dict[str, Any]:
        """Keyword arguments of ``ppl_edge.runtime.Estimator`` (besides the model)."""
        return {
            "backend": self.backend,
            "refine": self.refine,
            "iterations": self.iterations,
            "crops": self.crops,
            "smooth": self.smooth or None,
            "verify": self.verify,
            "threads": self.threads or None,
        }


_KINDS = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}


def _bad(name: str, value: Any, expected: str) -> ValueError:
    return ValueError(f"parameter '{name}' must be {expected}, got {value!r}")


def check_params(values: dict[str, Any]) -> NodeParams:
    """The parameters of ``values`` (missing ones take their defaults), checked.

    Raises:
        ValueError: one line naming the parameter, the value received and what is expected.
    """
    unknown = sorted(set(values) - set(PARAMETERS))
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; the node takes {sorted(PARAMETERS)}")
    p = {name: values.get(name, default) for name, (default, _) in PARAMETERS.items()}
    for name, (default, _) in PARAMETERS.items():
        kind = type(default)
        value = p[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            p[name] = value = float(value)
        if type(value) is not kind:
            raise _bad(name, value, _KINDS[kind])
    choices = {
        "backend": backend_choices(),
        "refine": REFINE_MODES,
        "crops": tuple(c for c in CROP_MODES if c != "roi"),
    }
    for name, allowed in choices.items():
        if p[name] not in allowed:
            raise _bad(name, p[name], "one of " + ", ".join(allowed))
    for name in ("iterations", "threads"):
        if p[name] < 0:
            raise _bad(name, p[name], "an integer >= 0")
    if not 0.0 <= p["confidence_threshold"] <= 1.0:
        raise _bad("confidence_threshold", p["confidence_threshold"], "a number in [0, 1]")
    if not (math.isfinite(p["marker_scale"]) and p["marker_scale"] > 0):
        raise _bad("marker_scale", p["marker_scale"], "a number > 0 (metres per pixel)")
    if not (math.isfinite(p["marker_lifetime"]) and p["marker_lifetime"] >= 0):
        raise _bad("marker_lifetime", p["marker_lifetime"], "a number of seconds >= 0")
    for name in ("image_topic", "skeletons_topic", "markers_topic"):
        if not p[name]:
            raise _bad(name, p[name], "a topic name")
    return NodeParams(**{f.name: p[f.name] for f in fields(NodeParams)})


def updated(params: NodeParams, changes: dict[str, Any]) -> NodeParams:
    """``params`` with the node's parameters among ``changes`` applied, checked (names that are
    not the node's, such as ``use_sim_time``, are rclpy's and left alone).

    Raises:
        ValueError: one line: a change of a parameter read at start, or a bad value.
    """
    ours = {k: v for k, v in changes.items() if k in PARAMETERS}
    fixed = sorted(k for k, v in ours.items() if k not in LIVE_PARAMETERS)
    if fixed:
        raise ValueError(
            f"parameters {fixed} are read when the node starts; restart it to change them "
            f"(a running node takes {', '.join(LIVE_PARAMETERS)})"
        )
    values = {f.name: getattr(params, f.name) for f in fields(NodeParams)}
    return check_params({**values, **ours})


# -- stamps -------------------------------------------------------------------------------------
def stamp_seconds(sec: int, nanosec: int) -> float:
    """builtin_interfaces/Time -> seconds (the estimator's smoothing clock)."""
    return int(sec) + int(nanosec) * 1e-9


def seconds_stamp(seconds: float) -> tuple[int, int]:
    """Seconds -> (sec, nanosec) of builtin_interfaces/Time, nanosec in [0, 1e9)."""
    sec = math.floor(seconds)
    carry, nanosec = divmod(round((seconds - sec) * 1e9), 1_000_000_000)
    return sec + carry, nanosec


def output_header(stamp: tuple[int, int], image_frame_id: str, frame_id: str) -> dict[str, Any]:
    """The std_msgs/Header of every output: the image's own stamp, and its frame unless
    ``frame_id`` is set (use_sim_time and message_filters then pair outputs with their image)."""
    return {
        "stamp": {"sec": int(stamp[0]), "nanosec": int(stamp[1])},
        "frame_id": frame_id or image_frame_id,
    }


# -- Skeleton / SkeletonArray ---------------------------------------------------------------------
def _flat(edges) -> list[int]:
    return [int(v) for edge in edges for v in edge]


def skeleton_fields(result) -> dict[str, Any]:
    """The ``ppl_edge_msgs/Skeleton`` fields of one Result (every keypoint, in model order;
    a non-finite confidence is sent as 0)."""
    kp = np.asarray(result.keypoints, np.float64)
    conf = np.nan_to_num(np.asarray(result.confidence, np.float64), nan=0.0, posinf=0.0)
    names = list(result.keypoint_names) or [f"kp{i:02d}" for i in range(len(kp))]
    joints = result.joints
    named = joints is not None
    return {
        "names": names,
        "x": kp[:, 0].tolist(),
        "y": kp[:, 1].tolist(),
        "confidence": np.clip(conf, 0.0, 1.0).tolist(),
        "edges": _flat(result.edges),
        "plausibility": float(result.plausibility),
        "box": [int(v) for v in result.box],
        "prototype_ids": [int(v) for v in result.prototype_ids],
        "joint_names": list(result.joint_names) if named else [],
        "joint_x": np.asarray(joints, np.float64)[:, 0].tolist() if named else [],
        "joint_y": np.asarray(joints, np.float64)[:, 1].tolist() if named else [],
        "joint_edges": _flat(result.joint_edges) if named else [],
    }


def skeleton_array_fields(
    results: list, header: dict[str, Any], width: int, height: int
) -> dict[str, Any]:
    """The ``ppl_edge_msgs/SkeletonArray`` fields of a frame: every subject, the image's size."""
    return {
        "header": header,
        "image_width": int(width),
        "image_height": int(height),
        "skeletons": [skeleton_fields(r) for r in results],
    }


# -- RViz markers ---------------------------------------------------------------------------------
def _rgba(bgr: tuple[int, int, int], alpha: float = 1.0) -> tuple[float, float, float, float]:
    return (bgr[2] / 255.0, bgr[1] / 255.0, bgr[0] / 255.0, alpha)


def confidence_rgba(c: float) -> tuple[float, float, float, float]:
    """Red (0) through yellow to green (1)."""
    c = min(max(float(c), 0.0), 1.0) if math.isfinite(c) else 0.0
    return (min(1.0, 2.0 * (1.0 - c)), min(1.0, 2.0 * c), 0.0, 1.0)


def _marker(
    ns: str, mid: int, kind: int, size: float, params: NodeParams, header: dict
) -> dict[str, Any]:
    sec, nanosec = seconds_stamp(params.marker_lifetime)
    return {
        "header": header,
        "ns": ns,
        "id": mid,
        "type": kind,
        "action": ADD,
        "pose": {"orientation": {"w": 1.0}},
        "scale": {"x": size, "y": size, "z": size},
        "color": {"r": 1.0, "g": 1.0, "b": 1.0, "a": 1.0},
        "lifetime": {"sec": sec, "nanosec": nanosec},
        "points": [],
        "colors": [],
    }


def _point(xy, scale: float) -> dict[str, float]:
    return {"x": float(xy[0]) * scale, "y": float(xy[1]) * scale, "z": 0.0}


def _colour(rgba: tuple[float, float, float, float]) -> dict[str, float]:
    return dict(zip("rgba", (float(v) for v in rgba)))


def subject_markers(result, index: int, params: NodeParams, header: dict) -> list[dict[str, Any]]:
    """Keypoint spheres (coloured by confidence) and the skeleton LINE_LIST of one subject, on
    the z = 0 plane of the frame, ``marker_scale`` metres per pixel, the image's top-left corner
    at the origin; keypoints below ``confidence_threshold`` (or not finite) and their edges are
    left out. A model with named joints adds its named skeleton (namespaces "joints" and
    "joint_skeleton")."""
    s, kp = params.marker_scale, np.asarray(result.keypoints, np.float64)
    conf = np.asarray(result.confidence, np.float64)
    keep = np.isfinite(conf) & np.isfinite(kp).all(axis=1)
    keep[keep] = conf[keep] >= params.confidence_threshold
    points = _marker("keypoints", index, SPHERE_LIST, 6 * s, params, header)
    for k in np.flatnonzero(keep):
        points["points"].append(_point(kp[k], s))
        points["colors"].append(_colour(confidence_rgba(conf[k])))
    lines = _marker("skeleton", index, LINE_LIST, 2 * s, params, header)
    for (i, j), bgr in zip(result.edges, edge_colours(len(result.edges))):
        if keep[i] and keep[j]:
            lines["points"] += [_point(kp[i], s), _point(kp[j], s)]
            lines["colors"] += [_colour(_rgba(bgr))] * 2
    markers = [points, lines]
    if result.joints is not None:
        joints = np.asarray(result.joints, np.float64)
        named = _marker("joints", index, SPHERE_LIST, 8 * s, params, header)
        named["points"] = [_point(p, s) for p in joints]
        bones = _marker("joint_skeleton", index, LINE_LIST, 3 * s, params, header)
        bones["points"] = [_point(joints[v], s) for edge in result.joint_edges for v in edge]
        markers += [named, bones]
    return markers


def marker_array_fields(results: list, params: NodeParams, header: dict) -> dict[str, Any]:
    """The visualization_msgs/MarkerArray of a frame: DELETEALL first (subjects that left the
    image disappear), then :func:`subject_markers` of every subject."""
    clear = {"header": header, "ns": "", "id": 0, "action": DELETEALL}
    subjects = (m for i, r in enumerate(results) for m in subject_markers(r, i, params, header))
    return {"markers": [clear, *subjects]}
