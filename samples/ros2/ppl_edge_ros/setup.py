"""ament_python package of the ppl-edge pose node (colcon build; ppl-edge itself comes from pip)."""

from glob import glob

from setuptools import setup

PACKAGE = "ppl_edge_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=[PACKAGE],
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="ppl-edge maintainers",
    maintainer_email="maintainers@ppl-edge.invalid",
    description="ppl-edge pose estimation node for ROS 2",
    license="Apache-2.0",
    entry_points={"console_scripts": ["pose_node = ppl_edge_ros.node:main"]},
)
