"""The plugin's host sources compiled against the public headers of several TensorRT releases.

Set ``PPL_EDGE_TRT_HEADERS`` to TensorRT prefixes (each holding ``include/NvInferVersion.h``),
separated by ``os.pathsep``, or to one folder whose sub-folders are such prefixes, e.g. headers
taken from NVIDIA's public TensorRT repository per release tag::

    git -C TensorRT show v10.3.0:include/NvInfer.h > /tmp/trt/10.3.0/include/NvInfer.h   # etc.
    PPL_EDGE_TRT_HEADERS=/tmp/trt pytest tests/convert/test_plugin_headers.py

Releases from 10.0 must compile without a warning (``-Wall -Wextra``); releases before 10 have no
``IPluginV3`` and must fail exactly there, which is why TensorRT 8.6 builds engines with the native
lookup (convert/trt_versions.py). The slow test configures the top-level CMake project against each
release and builds ``libppl_edge_plugins.so`` where TensorRT and this nvcc's CUDA major suit each
other (or checks the configure log says why it skipped the library).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ENV = "PPL_EDGE_TRT_HEADERS"
NN_DIR = Path(__file__).resolve().parents[2] / "convert" / "plugins" / "nearest_neighbor"
SOURCES = ("memoryNNPlugin.cpp", "memoryNNPluginCreator.cpp")


def prefixes() -> list[Path]:
    """The TensorRT prefixes named by $PPL_EDGE_TRT_HEADERS."""
    found = []
    for entry in filter(None, os.environ.get(ENV, "").split(os.pathsep)):
        root = Path(entry)
        if (root / "include" / "NvInferVersion.h").is_file():
            found.append(root)
        elif root.is_dir():
            found += sorted(p for p in root.iterdir() if (p / "include/NvInferVersion.h").is_file())
    return found


def version(prefix: Path) -> tuple[int, int]:
    """(major, minor) from NvInferVersion.h (TRT_*_ENTERPRISE in newer releases)."""
    text = (prefix / "include" / "NvInferVersion.h").read_text(errors="replace")

    def part(name: str) -> int:
        match = re.search(rf"#define TRT_{name}_ENTERPRISE (\d+)", text) or re.search(
            rf"#define NV_TENSORRT_{name} (\d+)", text
        )
        assert match, f"no {name} version in {prefix}"
        return int(match.group(1))

    return part("MAJOR"), part("MINOR")


def cuda_include() -> Path | None:
    for root in (os.environ.get("CUDA_HOME"), "/usr/local/cuda"):
        if root and (Path(root) / "include" / "cuda_runtime_api.h").is_file():
            return Path(root) / "include"
    nvcc = shutil.which("nvcc")
    if nvcc and (Path(nvcc).resolve().parents[1] / "include/cuda_runtime_api.h").is_file():
        return Path(nvcc).resolve().parents[1] / "include"
    return None


PREFIXES = prefixes()
CXX = shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++")
pytestmark = [
    pytest.mark.skipif(
        not PREFIXES,
        reason=f"set {ENV} to TensorRT header prefixes to compile the plugin against them",
    ),
    pytest.mark.skipif(CXX is None, reason="no C++ compiler"),
    pytest.mark.skipif(cuda_include() is None, reason="no CUDA headers (set CUDA_HOME)"),
]


def compile_source(prefix: Path, source: str) -> subprocess.CompletedProcess:
    command = [
        CXX,
        "-std=c++17",
        "-fsyntax-only",
        "-Wall",
        "-Wextra",
        "-Wno-deprecated-declarations",
    ]
    command += [f"-I{NN_DIR}", "-isystem", str(prefix / "include"), "-isystem", str(cuda_include())]
    return subprocess.run(
        [*command, str(NN_DIR / source)], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.mark.parametrize("prefix", PREFIXES, ids=[p.name for p in PREFIXES])
def test_plugin_compiles_against_release_headers(prefix):
    major, minor = version(prefix)
    for source in SOURCES:
        result = compile_source(prefix, source)
        if major >= 10:
            assert result.returncode == 0 and not result.stderr, (
                f"TensorRT {major}.{minor}: {source}\n{result.stderr[-3000:]}"
            )
        else:  # no IPluginV3: the native lookup is the only engine mode there
            assert result.returncode != 0
            assert "memoryNNPlugin.h:41" in result.stderr and "IPluginV3" in result.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("nvcc") is None, reason="no cmake / nvcc"
)
@pytest.mark.parametrize("prefix", PREFIXES, ids=[p.name for p in PREFIXES])
def test_cmake_builds_the_library_or_says_why_not(prefix, tmp_path):
    """The top-level CMake project against each release: libppl_edge_plugins.so is built and
    linked (``--no-undefined``, no libnvinfer) where TensorRT and this nvcc's CUDA major suit each
    other; otherwise the configure log says why it is skipped."""
    root = NN_DIR.parents[2]
    configure = subprocess.run(
        ["cmake", "-S", str(root), "-B", str(tmp_path), f"-DTENSORRT_ROOT={prefix}"]
        + ["-DCMAKE_CUDA_ARCHITECTURES=87", "-DPPL_EDGE_BUILD_TESTS=OFF"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    log = " ".join((configure.stdout + configure.stderr).split())
    assert configure.returncode == 0, log[-3000:]
    if "ppl-edge: building" not in log:
        major, _ = version(prefix)
        reason = "too old for the IPluginV3 plugin" if major < 10 else "is built for CUDA"
        assert "skipping libppl_edge_plugins.so" in log and reason in log
        return
    build = subprocess.run(
        ["cmake", "--build", str(tmp_path), "-j2", "--target", "ppl_edge_plugins"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert (tmp_path / "libppl_edge_plugins.so").stat().st_size > 0
