"""The ROS 2 packages of samples/ros2 (ppl_edge_msgs, ppl_edge_ros) without ROS: package
manifests, entry point, launch file and parameter file; the node's ROS-free logic (parameters,
message fields in step with the .msg files, markers, stamps) on real Results of the shipped model,
down to CDR serialisation against ROS 2 Humble's message definitions (rosbags, pure Python). ROS
itself is not installed here."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import math
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROS2 = ROOT / "samples" / "ros2"
PKG = ROS2 / "ppl_edge_ros"
MSGS = ROS2 / "ppl_edge_msgs"
SHIPPED = ROOT / "models" / "ppl-small-humanoid"
NEEDED = {"rclpy", "sensor_msgs", "std_msgs", "visualization_msgs", "geometry_msgs", "cv_bridge"}


@pytest.fixture(scope="module")
def convert():
    sys.path.insert(0, str(PKG))
    try:
        yield importlib.import_module("ppl_edge_ros.convert")
    finally:
        sys.path.remove(str(PKG))


@pytest.fixture(scope="module")
def results():
    from ppl_edge.runtime import Estimator

    frame = np.random.default_rng(0).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    with Estimator(SHIPPED, backend="onnxruntime", threads=1, verify=False) as est:
        return est(frame, boxes=[(0, 0, 64, 64), (100, 20, 190, 110)])


def _msg_fields(name: str) -> dict[str, str]:
    """field name -> type of a .msg file (comments and constants left out)."""
    found = {}
    for line in (MSGS / "msg" / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and "=" not in line:
            kind, field = line.split()
            found[field] = kind
    return found


def test_packages_declare_what_colcon_and_ros_need():
    xml = ET.parse(PKG / "package.xml").getroot()
    assert xml.findtext("name") == "ppl_edge_ros"
    assert xml.find("export").findtext("build_type") == "ament_python"
    depends = {e.text for e in xml.iter() if e.tag in ("depend", "exec_depend")}
    assert NEEDED | {"ppl_edge_msgs", "launch_ros"} <= depends
    assert (PKG / "resource" / "ppl_edge_ros").is_file()
    assert "script_dir=$base/lib/ppl_edge_ros" in (PKG / "setup.cfg").read_text()
    setup = (PKG / "setup.py").read_text()
    assert '"pose_node = ppl_edge_ros.node:main"' in setup and "launch/*.launch.py" in setup
    launch = (PKG / "launch" / "pose.launch.py").read_text()
    ast.parse(launch)
    assert 'executable="pose_node"' in launch and "params.yaml" in launch
    msgs = ET.parse(MSGS / "package.xml").getroot()
    assert msgs.findtext("member_of_group") == "rosidl_interface_packages"
    assert msgs.find("export").findtext("build_type") == "ament_cmake"
    cmake = (MSGS / "CMakeLists.txt").read_text()
    assert all(f'"msg/{m.name}"' in cmake for m in (MSGS / "msg").glob("*.msg"))


def test_the_logic_module_imports_no_ros():
    tree = ast.parse((PKG / "ppl_edge_ros" / "convert.py").read_text())
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, (ast.Import, ast.ImportFrom))
        for a in n.names
    }
    assert not imported & (NEEDED | {"ppl_edge_msgs", "rcl_interfaces"}), imported


def test_params_yaml_holds_every_parameter_with_its_type(convert):
    doc = yaml.safe_load((PKG / "config" / "params.yaml").read_text())
    values = doc["ppl_edge_pose"]["ros__parameters"]
    assert set(values) == set(convert.PARAMETERS)
    for name, (default, _) in convert.PARAMETERS.items():
        assert type(values[name]) is type(default), name  # ROS refuses a changed type
    params = convert.check_params(values)
    assert params.estimator_settings()["backend"] == "auto" and params.marker_scale == 0.001
    launch = (PKG / "launch" / "pose.launch.py").read_text()
    for name in re.findall(r'^    "(\w+)": (?:str|int|float),$', launch, flags=re.M):
        assert name in convert.PARAMETERS


@pytest.mark.parametrize(
    "values, message",
    [
        ({"iterations": -1}, "parameter 'iterations' must be an integer >= 0, got -1"),
        ({"backend": "cuda"}, "parameter 'backend' must be one of auto, onnxruntime"),
        ({"refine": "images"}, "parameter 'refine' must be one of none, memory, image"),
        ({"crops": "roi"}, "parameter 'crops' must be one of full, motion"),
        ({"confidence_threshold": 1.5}, "must be a number in [0, 1], got 1.5"),
        ({"marker_scale": 0.0}, "parameter 'marker_scale' must be a number > 0"),
        ({"iterations": "2"}, "parameter 'iterations' must be an integer, got '2'"),
        ({"smooth": 1}, "parameter 'smooth' must be true or false, got 1"),
        ({"image_topic": ""}, "parameter 'image_topic' must be a topic name"),
        ({"modle": "x"}, "unknown parameters ['modle']"),
    ],
)
def test_bad_parameters_are_one_line(convert, values, message):
    with pytest.raises(ValueError) as err:
        convert.check_params(values)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_running_node_takes_some_parameters_and_refuses_the_rest(convert):
    params = convert.check_params({})
    changed = convert.updated(params, {"confidence_threshold": 0.3, "refine": "memory"})
    assert (changed.confidence_threshold, changed.refine, changed.model) == (0.3, "memory", "")
    assert convert.updated(params, {"use_sim_time": True}) == params  # rclpy's own
    with pytest.raises(ValueError, match=r"\['backend', 'model'\] are read when the node starts"):
        convert.updated(params, {"model": "/x", "backend": "tensorrt"})
    with pytest.raises(ValueError, match="parameter 'iterations' must be an integer >= 0"):
        convert.updated(params, {"iterations": -2})
    assert set(convert.LIVE_PARAMETERS) <= set(convert.PARAMETERS)


def test_outputs_carry_the_image_stamp_and_frame(convert):
    header = convert.output_header((1700000000, 250_000_000), "camera_optical", "")
    stamp = {"sec": 1700000000, "nanosec": 250_000_000}
    assert header == {"stamp": stamp, "frame_id": "camera_optical"}
    assert convert.output_header((3, 4), "camera_optical", "base")["frame_id"] == "base"
    assert convert.stamp_seconds(1700000000, 250_000_000) == pytest.approx(1700000000.25)
    assert convert.seconds_stamp(1700000000.25) == (1700000000, 250_000_000)
    assert convert.seconds_stamp(5.9999999999) == (6, 0)


def test_skeleton_fields_match_the_msg_files_for_every_subject(convert, results):
    assert len(results) == 2
    header = convert.output_header((12, 5), "cam", "")
    array = convert.skeleton_array_fields(results, header, 200, 120)
    assert set(array) == set(_msg_fields("SkeletonArray.msg"))
    assert len(array["skeletons"]) == 2 and array["header"]["stamp"] == {"sec": 12, "nanosec": 5}
    declared = _msg_fields("Skeleton.msg")
    for skeleton, result in zip(array["skeletons"], results):
        assert set(skeleton) == set(declared)
        n = result.num_keypoints
        assert len(skeleton["names"]) == len(skeleton["x"]) == len(skeleton["confidence"]) == n
        np.testing.assert_allclose(skeleton["x"], result.keypoints[:, 0], rtol=1e-6)
        np.testing.assert_allclose(skeleton["y"], result.keypoints[:, 1], rtol=1e-6)
        pairs = list(zip(skeleton["edges"][::2], skeleton["edges"][1::2]))
        assert pairs == [tuple(e) for e in result.edges]
        assert all(0 <= v < 2**16 for v in skeleton["edges"])  # uint16[]
        assert len(skeleton["box"]) == 4 and skeleton["box"] == list(result.box)  # int32[4]
        assert all(0.0 <= c <= 1.0 for c in skeleton["confidence"])
        assert skeleton["joint_names"] == [] and skeleton["joint_x"] == []


def _result(joints: bool = False, confidence=(0.9, 0.2, 0.8, float("nan"))):
    from ppl_edge.runtime import Result

    kp = np.array([[10.0, 20.0], [30.0, 40.0], [50.0, 60.0], [70.0, 80.0]])
    extra = {}
    if joints:
        extra = {
            "joints": np.array([[1.0, 2.0], [3.0, 4.0]]),
            "joint_names": ("head", "pelvis"),
            "joint_edges": ((0, 1),),
        }
    return Result(
        kp, kp, np.array(confidence), 0.5, np.zeros(3), np.zeros(3),
        ((0, 1), (0, 2), (2, 3)), (0, 0, 100, 100), keypoint_names=("a", "b", "c", "d"), **extra,
    )  # fmt: skip


HEADER = {"stamp": {"sec": 7, "nanosec": 9}, "frame_id": "cam"}


def _xyz(x: float, y: float) -> dict:
    return {"x": pytest.approx(x), "y": pytest.approx(y), "z": 0.0}


def test_markers_are_points_and_a_line_list_above_the_threshold(convert):
    params = convert.check_params({"confidence_threshold": 0.5, "marker_scale": 0.01})
    markers = convert.marker_array_fields([_result(), _result()], params, HEADER)["markers"]
    assert markers[0]["action"] == convert.DELETEALL and len(markers) == 5
    assert all(m["header"] == HEADER for m in markers)  # the image's stamp on every marker
    points, lines = markers[1], markers[2]
    assert (points["type"], points["ns"], lines["type"], lines["ns"], lines["id"]) == (
        convert.SPHERE_LIST,
        "keypoints",
        convert.LINE_LIST,
        "skeleton",
        0,
    )
    assert points["points"] == [_xyz(0.1, 0.2), _xyz(0.5, 0.6)]  # 0.2 and NaN are left out
    assert lines["points"] == [_xyz(0.1, 0.2), _xyz(0.5, 0.6)]  # only edge (0, 2) survives
    assert len(lines["colors"]) == len(lines["points"]) and markers[4]["id"] == 1
    assert points["lifetime"] == {"sec": 0, "nanosec": 500_000_000}
    assert points["scale"]["x"] == pytest.approx(0.06)  # 6 px spheres
    everything = convert.marker_array_fields([_result()], convert.check_params({}), HEADER)
    everything = everything["markers"]
    assert len(everything[1]["points"]) == 3 and len(everything[2]["points"]) == 4
    assert all(math.isfinite(v) for c in everything[1]["colors"] for v in c.values())


def test_named_joints_reach_the_message_and_the_markers(convert):
    skeleton = convert.skeleton_fields(_result(joints=True))
    assert skeleton["joint_names"] == ["head", "pelvis"] and skeleton["joint_edges"] == [0, 1]
    assert skeleton["joint_x"] == [1.0, 3.0] and skeleton["confidence"][3] == 0.0  # NaN -> 0
    params = convert.check_params({})
    markers = convert.marker_array_fields([_result(joints=True)], params, HEADER)["markers"]
    named = {m["ns"]: m for m in markers}
    assert len(named["joints"]["points"]) == 2 and len(named["joint_skeleton"]["points"]) == 2


def _build(store, typename: str, values: dict):
    """A rosbags message of ``typename`` from a nested field dict, as rosidl_runtime_py's
    set_message_fields reads it: missing fields take their defaults, unknown ones fail."""
    from rosbags.typesys.store import Nodetype

    fields = dict(store.fielddefs[typename][1])
    unknown = set(values) - set(fields)
    assert not unknown, f"{typename} has no fields {unknown}"
    numbers = {"string": str, "bool": bool, "float32": float, "float64": float}
    kwargs = {}
    for name, (kind, detail) in fields.items():
        given = values.get(name)
        if kind == Nodetype.BASE:
            kwargs[name] = numbers.get(detail[0], int)(given if given is not None else 0)
        elif kind == Nodetype.NAME:
            kwargs[name] = _build(store, detail, given or {})
        else:  # ARRAY (fixed length) or SEQUENCE
            (item_kind, item), length = detail
            items = list(given if given is not None else [0] * length)
            assert kind != Nodetype.ARRAY or len(items) == length, f"{name}: {len(items)} items"
            if item_kind == Nodetype.NAME:
                kwargs[name] = [_build(store, item, v) for v in items]
            elif item[0] == "string":
                kwargs[name] = [str(v) for v in items]
            else:  # numpy refuses values outside the type (a uint16 edge of 70000)
                kwargs[name] = np.array(items, dtype=np.dtype(item[0]))
    return store.types[typename](**kwargs)


def test_messages_serialise_against_the_ros2_definitions(convert, results):
    """The field dicts as messages of ROS 2 Humble's definitions (rosbags' type store, with
    ppl_edge_msgs read from its .msg files), serialised to CDR and read back."""
    typesys = pytest.importorskip("rosbags.typesys", reason="needs rosbags (pip install rosbags)")
    store = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    types = {}
    for name in ("Skeleton", "SkeletonArray"):
        text = (MSGS / "msg" / f"{name}.msg").read_text()
        types.update(typesys.get_types_from_msg(text, f"ppl_edge_msgs/msg/{name}"))
    store.register(types)
    constants = {c[0]: c[2] for c in store.fielddefs["visualization_msgs/msg/Marker"][0]}
    assert (constants["SPHERE_LIST"], constants["LINE_LIST"]) == (
        convert.SPHERE_LIST,
        convert.LINE_LIST,
    )
    assert (constants["ADD"], constants["DELETEALL"]) == (convert.ADD, convert.DELETEALL)
    header = convert.output_header((12, 5), "cam", "")
    cases = {
        "ppl_edge_msgs/msg/SkeletonArray": convert.skeleton_array_fields(results, header, 200, 120),
        "visualization_msgs/msg/MarkerArray": convert.marker_array_fields(
            [*results, _result(joints=True)], convert.check_params({}), header
        ),
    }
    decoded = {}
    for typename, fields in cases.items():
        message = _build(store, typename, fields)
        data = store.serialize_cdr(message, typename)
        decoded[typename] = store.deserialize_cdr(data, typename)
        assert store.serialize_cdr(decoded[typename], typename) == data
    array = decoded["ppl_edge_msgs/msg/SkeletonArray"]
    assert (array.header.stamp.sec, array.header.stamp.nanosec, array.image_width) == (12, 5, 200)
    markers = decoded["visualization_msgs/msg/MarkerArray"].markers
    assert markers[0].action == convert.DELETEALL and markers[-1].ns == "joint_skeleton"
    first = array.skeletons[0]
    np.testing.assert_allclose(first.x, results[0].keypoints[:, 0], rtol=1e-6)
    assert list(first.edges[:2]) == list(results[0].edges[0]) and first.box.dtype == np.int32
    with pytest.raises(OverflowError):
        _build(store, "ppl_edge_msgs/msg/Skeleton", {"edges": [70000, 1]})


def test_node_without_ros_says_what_it_needs_in_one_line():
    if importlib.util.find_spec("rclpy") is not None:
        pytest.skip("ROS 2 is installed; the missing-ROS message cannot be shown")
    code = "from ppl_edge_ros.node import main; raise SystemExit(main())"
    env = {**os.environ, "PYTHONPATH": str(PKG), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 1 and "needs ROS 2" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
