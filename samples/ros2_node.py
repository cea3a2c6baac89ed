"""A ROS 2 node publishing ppl-edge keypoints (Humble / Jazzy).

Topics: ``/ppl/keypoints`` geometry_msgs/PoseArray (one pose per keypoint of the first subject:
position.x, position.y in frame pixels, position.z its confidence) and ``/ppl/result``
std_msgs/String (every subject's ``Result.to_dict()`` as JSON: edges, plausibility, named joints).

    source /opt/ros/humble/setup.bash
    python samples/ros2_node.py --source 0 --ros-args -p frame_id:=camera

The conversion functions need no ROS, so they are tested anywhere.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import threading

from ppl_edge.runtime import Estimator
from ppl_edge.runtime.live import default_model_path, run_loop
from ppl_edge.runtime.sources import open_source


def keypoint_positions(result) -> list[tuple[float, float, float]]:
    """(x px, y px, confidence) per keypoint: the fields of each PoseArray pose position."""
    pairs = zip(result.keypoints, result.confidence)
    return [(float(x), float(y), float(c)) for (x, y), c in pairs]


def result_message(frame, results) -> str:
    """The /ppl/result payload: frame index, capture time and every subject's to_dict()."""
    payload = {"frame": frame.index, "capture_time": frame.capture_time}
    payload["subjects"] = [r.to_dict() for r in results]
    return json.dumps(payload, separators=(",", ":"))


def stamp(capture_time: float) -> tuple[int, int]:
    """A wall-clock time in seconds -> (sec, nanosec) of builtin_interfaces/Time."""
    sec = math.floor(capture_time)
    carry, nanosec = divmod(round((capture_time - sec) * 1e9), 1_000_000_000)
    return sec + carry, nanosec


def main(argv: list[str] | None = None) -> int:
    try:
        import rclpy
        from geometry_msgs.msg import Pose, PoseArray
        from std_msgs.msg import String
    except ImportError:
        print("this sample needs ROS 2: source /opt/ros/<distro>/setup.bash", file=sys.stderr)
        return 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--source", default="0")
    args, ros_args = parser.parse_known_args(argv)

    rclpy.init(args=ros_args)
    node = rclpy.create_node("ppl_edge")
    frame_id = node.declare_parameter("frame_id", "camera").value
    pub_kp = node.create_publisher(PoseArray, "/ppl/keypoints", 10)
    pub_res = node.create_publisher(String, "/ppl/result", 10)

    def publish(frame, results) -> bool:
        msg = PoseArray()
        msg.header.frame_id = frame_id
        msg.header.stamp.sec, msg.header.stamp.nanosec = stamp(frame.capture_time)
        for x, y, c in keypoint_positions(results[0]) if results else []:
            pose = Pose()
            pose.position.x, pose.position.y, pose.position.z = x, y, c
            msg.poses.append(pose)
        pub_kp.publish(msg)
        pub_res.publish(String(data=result_message(frame, results)))
        return rclpy.ok()

    with (
        Estimator(args.model or default_model_path(), refine="memory", iterations=1) as est,
        open_source(args.source) as source,
    ):
        options = {"callback": publish, "handle_signals": False}
        worker = threading.Thread(target=run_loop, args=(est, source), kwargs=options)
        worker.start()
        try:
            while rclpy.ok() and worker.is_alive():
                rclpy.spin_once(node, timeout_sec=0.1)
        except KeyboardInterrupt:
            pass
        finally:
            source.stop()
            worker.join()
            node.destroy_node()
            if rclpy.ok():
                rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
