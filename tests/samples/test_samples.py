"""Smoke runs of samples/: the robot control loop and the C++ app's CMake project (the ROS 2
packages: test_ros2_package.py)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"sample_{name}", SAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@pytest.mark.parametrize("name", ["robot_loop"])
def test_samples_are_short_documented_and_use_the_public_api(name):
    text = (SAMPLES / f"{name}.py").read_text()
    assert len(text.splitlines()) < 100
    assert f"python samples/{name}.py" in text  # the exact command in the docstring
    assert "sys.path" not in text and "import torch" not in text


def test_robot_loop_runs_at_its_rate(tiny_export, sample_video):
    proc = _run(
        [
            str(SAMPLES / "robot_loop.py"),
            "--model",
            str(tiny_export),
            "--source",
            str(sample_video),
            "--rate",
            "50",
            "--seconds",
            "3",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    found = re.search(
        r"(\d+) control ticks at 50 Hz, (\d+) acted on a fresh pose, (\d+) poses", proc.stdout
    )
    assert found, proc.stdout
    ticks, acted, poses = (int(v) for v in found.groups())
    assert ticks >= 1 and acted >= 1 and poses == 40  # the clip ends before 3 s


def test_robot_loop_steering_sign(tiny_export, sample_video):
    import numpy as np

    from ppl_edge.runtime import Result

    robot = _load("robot_loop")
    n = 4
    right = Result(
        np.full((n, 2), [90.0, 10.0]),
        np.zeros((n, 2)),
        np.ones(n),
        0.5,
        np.zeros(2),
        np.zeros(2),
        (),
        (0, 0, 100, 100),
    )
    assert robot.steering(right, width=100) > 0.7
    left = Result(
        np.full((n, 2), [5.0, 10.0]),
        np.zeros((n, 2)),
        np.ones(n),
        0.5,
        np.zeros(2),
        np.zeros(2),
        (),
        (0, 0, 100, 100),
    )
    assert robot.steering(left, width=100) < -0.7


def test_cpp_sample_configures_and_names_what_is_missing(tmp_path):
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not installed")
    proc = subprocess.run(
        [cmake, "-S", str(SAMPLES / "cpp_trt"), "-B", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "ppl_trt_app will be built" in proc.stdout
        or "ppl_trt_app will not be built: missing" in proc.stdout
    )
    if "will be built" in proc.stdout:  # TensorRT, CUDA and OpenCV all present: compile it
        build = subprocess.run(
            [cmake, "--build", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert build.returncode == 0, build.stdout + build.stderr
