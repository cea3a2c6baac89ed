"""CMake build of convert/plugins/nearest_neighbor: configure, build, CTest (host reference against
brute force), the nvcc compile check of the kernel, and the plugin library where TensorRT exists."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# One architecture keeps the nvcc compile check short (87: Jetson Orin); CI may pass the full list.
CUDA_ARCH = os.environ.get("PPL_EDGE_TEST_CUDA_ARCH", "87")
TARGETS = ["nn_reference_test", "ppl_edge_nn_kernel_check"]

if shutil.which("cmake") is None:
    pytest.skip(
        "cmake is not installed: the plugin build cannot be tested", allow_module_level=True
    )
if not any(shutil.which(cxx) for cxx in (os.environ.get("CXX", "c++"), "g++", "clang++")):
    pytest.skip(
        "no C++ compiler (c++/g++/clang++): the plugin build cannot be tested",
        allow_module_level=True,
    )


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """Configure and build the reference test and kernel object once: (folder, configure log)."""
    folder = tmp_path_factory.mktemp("cmake-build")
    configure = run(
        ["cmake", "-S", str(ROOT), "-B", str(folder), f"-DCMAKE_CUDA_ARCHITECTURES={CUDA_ARCH}"],
        ROOT,
    )
    log = configure.stdout + configure.stderr
    targets = TARGETS if "Looking for a CUDA compiler - NOTFOUND" not in log else TARGETS[:1]
    if "ppl-edge: building" in log:
        targets = targets + ["ppl_edge_plugins"]
    run(["cmake", "--build", str(folder), "-j2", "--target", *targets], ROOT)
    return folder, log


def test_ctest_reference_passes(build):
    folder, _ = build
    result = run(
        ["ctest", "--test-dir", str(folder), "-R", "^nn_reference$", "--output-on-failure"], ROOT
    )
    assert "0 tests failed out of 1" in result.stdout


def test_kernel_compiles_with_nvcc(build):
    folder, log = build
    if shutil.which("nvcc") is None and "Looking for a CUDA compiler - /" not in log:
        pytest.skip("nvcc is not installed: the kernel compile check needs a CUDA compiler")
    objects = list(folder.rglob("memoryNNKernel.cu.o"))
    assert objects, "memoryNNKernel.cu was not compiled although a CUDA compiler was found"
    assert objects[0].stat().st_size > 0


def test_plugin_library_only_with_tensorrt_headers(build):
    folder, log = build
    library = folder / "libppl_edge_plugins.so"
    if "NvInferRuntime.h not found" in log:
        assert "skipping libppl_edge_plugins.so" in log
        assert not library.exists()
    else:
        assert library.is_file()
        symbols = run(["nm", "-D", "--defined-only", str(library)], ROOT).stdout
        assert "getCreators" in symbols and "setLoggerFinder" in symbols
