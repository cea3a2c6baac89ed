"""Launch the ppl-edge pose node with a parameter file (default: this package's
config/params.yaml); launch arguments that are given override the file.

    ros2 launch ppl_edge_ros pose.launch.py image_topic:=/camera/image_raw backend:=tensorrt \
        model:=/opt/models/small use_sim_time:=true
"""

from pathlib import Path

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

# launch arguments that override a parameter when given -> the parameter's type
OVERRIDES = {
    "model": str,
    "backend": str,
    "refine": str,
    "iterations": int,
    "crops": str,
    "image_topic": str,
    "overlay_topic": str,
    "confidence_threshold": float,
    "frame_id": str,
}
TRUE = ("true", "1", "yes")


def _node(context) -> list[Node]:
    given = {name: LaunchConfiguration(name).perform(context) for name in OVERRIDES}
    overrides = {name: OVERRIDES[name](text) for name, text in given.items() if text != ""}
    sim_time = LaunchConfiguration("use_sim_time").perform(context).lower() in TRUE
    overrides["use_sim_time"] = sim_time
    params_file = LaunchConfiguration("params_file").perform(context)
    return [
        Node(
            package="ppl_edge_ros",
            executable="pose_node",
            name="ppl_edge_pose",
            parameters=[params_file, overrides],
            output="screen",
        )
    ]


def generate_launch_description() -> LaunchDescription:
    default_params = Path(get_package_share_directory("ppl_edge_ros")) / "config" / "params.yaml"
    arguments = [
        DeclareLaunchArgument("params_file", default_value=str(default_params)),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        *(
            DeclareLaunchArgument(name, default_value="", description="overrides the file")
            for name in OVERRIDES
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
