"""The ppl-edge pose node: sensor_msgs/Image in, every subject's pose out.

Subscribes to ``image_topic`` (sensor_msgs/Image, converted with cv_bridge, sensor-data QoS: the
newest image wins when inference is slower than the camera) and publishes, each with the image's
header stamp (so ``use_sim_time`` and rosbag replays keep their time):

- ``skeletons_topic``: ppl_edge_msgs/SkeletonArray, every subject's keypoint names, x, y (pixels),
  confidence, skeleton edges, plausibility and named joints;
- ``markers_topic``: visualization_msgs/MarkerArray for RViz (keypoint spheres, skeleton LINE_LIST);
- ``overlay_topic`` (when set): the image with the poses drawn, sensor_msgs/Image bgr8.

    ros2 launch ppl_edge_ros pose.launch.py image_topic:=/camera/image_raw

Parameters: ``config/params.yaml``; they are checked by ``convert.check_params`` (one line each).
"""

from __future__ import annotations

import sys

try:
    import rclpy
    from cv_bridge import CvBridge
    from ppl_edge_msgs.msg import SkeletonArray
    from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
    from rclpy.node import Node
    from rclpy.qos import qos_profile_sensor_data
    from rosidl_runtime_py import set_message_fields
    from sensor_msgs.msg import Image
    from visualization_msgs.msg import MarkerArray
except ImportError as err:  # no ROS 2 here: main() says so in one line
    rclpy, _ROS_MISSING = None, err
    Node = object
else:
    _ROS_MISSING = None

from ppl_edge_ros import convert


def _message(cls, fields: dict):
    """A message of type ``cls`` filled from the nested field dict of ``convert``."""
    msg = cls()
    set_message_fields(msg, fields)
    return msg


class PoseNode(Node):
    """Estimates every subject's pose on each image and publishes skeletons, markers, overlay."""

    def __init__(self):
        super().__init__("ppl_edge_pose")
        for name, (default, description) in convert.PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        values = {n: self.get_parameter(n).value for n in convert.PARAMETERS}
        self.params = p = convert.check_params(values)
        from ppl_edge.runtime import Estimator, draw_results
        from ppl_edge.runtime.manifest import default_model_path

        self._draw = draw_results
        self.estimator = Estimator(p.model or default_model_path(), **p.estimator_settings())
        self.bridge = CvBridge()
        self.pub_skeletons = self.create_publisher(SkeletonArray, p.skeletons_topic, 10)
        self.pub_markers = self.create_publisher(MarkerArray, p.markers_topic, 10)
        self.pub_overlay = (
            self.create_publisher(Image, p.overlay_topic, 2) if p.overlay_topic else None
        )
        self.create_subscription(Image, p.image_topic, self.on_image, qos_profile_sensor_data)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.get_logger().info(
            f"{self.estimator!r}: {p.image_topic} -> {p.skeletons_topic}, {p.markers_topic}"
        )

    def on_set_parameters(self, parameters) -> SetParametersResult:
        """``ros2 param set``: refinement, threshold, frame and markers change live; the rest
        is refused with the reason."""
        try:
            self.params = convert.updated(self.params, {q.name: q.value for q in parameters})
        except ValueError as err:
            return SetParametersResult(successful=False, reason=str(err))
        return SetParametersResult(successful=True)

    def on_image(self, msg: Image) -> None:
        """Estimate, then publish everything with the image's stamp."""
        p = self.params
        try:
            frame = self.bridge.imgmsg_to_cv2(msg, desired_encoding="bgr8")
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
            results = self.estimator(
                frame,
                refine=p.refine,
                iterations=p.iterations,
                timestamp=convert.stamp_seconds(*stamp),
            )
        except Exception as err:  # a bad image must not stop the node
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            self.get_logger().warning(f"image skipped: {reason}", throttle_duration_sec=5.0)
            return
        header = convert.output_header(stamp, msg.header.frame_id, p.frame_id)
        fields = convert.skeleton_array_fields(results, header, msg.width, msg.height)
        self.pub_skeletons.publish(_message(SkeletonArray, fields))
        markers = convert.marker_array_fields(results, p, header)
        self.pub_markers.publish(_message(MarkerArray, markers))
        if self.pub_overlay is not None:
            drawn = self._draw(frame.copy(), results, min_confidence=p.confidence_threshold)
            overlay = self.bridge.cv2_to_imgmsg(drawn, encoding="bgr8")
            set_message_fields(overlay.header, header)
            self.pub_overlay.publish(overlay)

    def destroy_node(self) -> None:
        self.estimator.close()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Console script ``pose_node``."""
    if rclpy is None:
        print(
            f"ppl_edge_ros needs ROS 2 (rclpy, cv_bridge, ppl_edge_msgs): {_ROS_MISSING}; "
            "source /opt/ros/<distro>/setup.bash and your workspace's install/setup.bash",
            file=sys.stderr,
        )
        return 1
    from ppl_edge.errors import PplEdgeError

    rclpy.init(args=args)
    node = None
    try:
        node = PoseNode()
        rclpy.spin(node)
    except (ValueError, PplEdgeError) as err:  # a bad parameter or model: one line
        print(f"ppl_edge_pose: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
