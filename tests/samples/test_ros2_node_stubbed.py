"""The ROS 2 node's own code (``ppl_edge_ros/node.py``) run against stand-ins of rclpy, cv_bridge,
rosidl_runtime_py and the message modules (ROS is not installed here): parameters declared with
their descriptions and checked, one image in -> skeletons, markers and overlay out with the image's
stamp, live parameter changes, a bad image skipped. Real ROS behaviour (QoS, executors, the real
set_message_fields) is not exercised; the message fields themselves are checked against ROS 2's
definitions in test_ros2_package.py."""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "samples" / "ros2" / "ppl_edge_ros"
SHIPPED = ROOT / "models" / "ppl-small-humanoid"


class Msg(SimpleNamespace):
    """Any message: fields appear as they are set."""


def set_message_fields(msg, fields: dict) -> None:
    for name, value in fields.items():
        if isinstance(value, dict):
            child = getattr(msg, name, None) or Msg()
            set_message_fields(child, value)
            value = child
        setattr(msg, name, value)


class Publisher:
    def __init__(self, kind, topic):
        self.kind, self.topic, self.sent = kind, topic, []

    def publish(self, msg):
        self.sent.append(msg)


class Logger:
    def __init__(self):
        self.lines = []

    def info(self, text, **kw):
        self.lines.append(("info", text))

    def warning(self, text, **kw):
        self.lines.append(("warning", text, kw))


class Node:
    overrides: dict = {}

    def __init__(self, name):
        self.name, self.declared, self.publishers, self.subscriptions = name, {}, {}, {}
        self.logger, self.callbacks, self.destroyed = Logger(), [], False

    def declare_parameter(self, name, default, descriptor):
        assert descriptor.description, name
        self.declared[name] = self.overrides.get(name, default)

    def get_parameter(self, name):
        return SimpleNamespace(value=self.declared[name])

    def create_publisher(self, kind, topic, depth):
        self.publishers[topic] = Publisher(kind, topic)
        return self.publishers[topic]

    def create_subscription(self, kind, topic, callback, qos):
        self.subscriptions[topic] = callback

    def add_on_set_parameters_callback(self, callback):
        self.callbacks.append(callback)

    def get_logger(self):
        return self.logger

    def destroy_node(self):
        self.destroyed = True


class CvBridge:
    def imgmsg_to_cv2(self, msg, desired_encoding):
        assert desired_encoding == "bgr8"
        if msg.data is None:
            raise ValueError("image is empty")
        return msg.data

    def cv2_to_imgmsg(self, image, encoding):
        return Msg(header=Msg(), data=image, encoding=encoding)


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def node_module(monkeypatch):
    message = lambda *names: {n: type(n, (Msg,), {}) for n in names}
    stubs = {
        "rclpy": _module("rclpy", init=lambda args=None: None, ok=lambda: True),
        "rclpy.node": _module("rclpy.node", Node=Node),
        "rclpy.qos": _module("rclpy.qos", qos_profile_sensor_data="sensor-data"),
        "cv_bridge": _module("cv_bridge", CvBridge=CvBridge),
        "ppl_edge_msgs": _module("ppl_edge_msgs"),
        "ppl_edge_msgs.msg": _module("ppl_edge_msgs.msg", **message("SkeletonArray")),
        "rcl_interfaces": _module("rcl_interfaces"),
        "rcl_interfaces.msg": _module(
            "rcl_interfaces.msg",
            ParameterDescriptor=lambda description: SimpleNamespace(description=description),
            SetParametersResult=lambda successful, reason="": SimpleNamespace(
                successful=successful, reason=reason
            ),
        ),
        "rosidl_runtime_py": _module("rosidl_runtime_py", set_message_fields=set_message_fields),
        "sensor_msgs": _module("sensor_msgs"),
        "sensor_msgs.msg": _module("sensor_msgs.msg", **message("Image")),
        "visualization_msgs": _module("visualization_msgs"),
        "visualization_msgs.msg": _module("visualization_msgs.msg", **message("MarkerArray")),
    }
    for name, module in stubs.items():
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.syspath_prepend(str(PKG))
    for name in ("ppl_edge_ros.node", "ppl_edge_ros.convert", "ppl_edge_ros"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = importlib.import_module("ppl_edge_ros.node")
    yield module
    for name in ("ppl_edge_ros.node", "ppl_edge_ros.convert", "ppl_edge_ros"):
        sys.modules.pop(name, None)


def _image(frame: np.ndarray | None, sec: int = 1700000000, nanosec: int = 5) -> Msg:
    header = Msg(stamp=Msg(sec=sec, nanosec=nanosec), frame_id="camera_optical")
    height, width = frame.shape[:2] if frame is not None else (0, 0)
    return Msg(header=header, height=height, width=width, data=frame)


def test_one_image_in_everything_out_with_its_stamp(node_module, monkeypatch):
    overrides = {"model": str(SHIPPED), "verify": False, "threads": 1, "overlay_topic": "~/overlay"}
    monkeypatch.setattr(Node, "overrides", overrides)
    node = node_module.PoseNode()
    assert set(node.declared) == set(node_module.convert.PARAMETERS)
    assert set(node.subscriptions) == {"image"}
    frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    node.subscriptions["image"](_image(frame))
    skeletons = node.publishers["~/skeletons"].sent[0]
    assert type(skeletons).__name__ == "SkeletonArray"
    assert (skeletons.header.stamp.sec, skeletons.header.stamp.nanosec) == (1700000000, 5)
    assert skeletons.header.frame_id == "camera_optical" and skeletons.image_width == 160
    assert len(skeletons.skeletons) == 1 and len(skeletons.skeletons[0]["x"]) == 16
    markers = node.publishers["~/markers"].sent[0].markers
    assert markers[0]["action"] == 3 and {m["ns"] for m in markers[1:]} == {"keypoints", "skeleton"}
    overlay = node.publishers["~/overlay"].sent[0]
    assert overlay.header.stamp.sec == 1700000000 and overlay.data.shape == frame.shape
    assert (overlay.data != frame).any()  # the pose is drawn
    node.destroy_node()
    assert node.destroyed and node.estimator.backend._closed


def test_live_parameters_and_a_bad_image(node_module, monkeypatch):
    monkeypatch.setattr(Node, "overrides", {"model": str(SHIPPED), "verify": False, "threads": 1})
    node = node_module.PoseNode()
    assert "~/overlay" not in node.publishers
    change = node.callbacks[0]
    ok = change([SimpleNamespace(name="frame_id", value="base_link")])
    refused = change([SimpleNamespace(name="backend", value="tensorrt")])
    assert ok.successful and node.params.frame_id == "base_link"
    assert not refused.successful and "restart it" in refused.reason
    frame = np.zeros((64, 64, 3), np.uint8)
    node.subscriptions["image"](_image(frame))
    assert node.publishers["~/skeletons"].sent[0].header.frame_id == "base_link"
    node.subscriptions["image"](_image(None))  # cv_bridge fails: skipped, logged, not raised
    assert len(node.publishers["~/skeletons"].sent) == 1
    warning = [line for line in node.logger.lines if line[0] == "warning"][0]
    assert warning[1] == "image skipped: image is empty" and warning[2]["throttle_duration_sec"]
    node.destroy_node()


def test_a_bad_parameter_stops_the_node_in_one_line(node_module, monkeypatch, capsys):
    monkeypatch.setattr(Node, "overrides", {"iterations": -1})
    monkeypatch.setattr(node_module.rclpy, "shutdown", lambda: None, raising=False)
    monkeypatch.setattr(node_module.rclpy, "spin", lambda node: None, raising=False)
    assert node_module.main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "ppl_edge_pose: parameter 'iterations' must be an integer >= 0, got -1"
