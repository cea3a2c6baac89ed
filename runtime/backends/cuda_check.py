"""Is there a usable NVIDIA GPU? Asked of the driver through ctypes, before TensorRT is touched.

TensorRT's runtime created without a working CUDA device returns an object whose
``deserialize_cuda_engine`` segfaults (toolchain.md §3), so the TensorRT backend calls
:func:`cuda_problem` first and turns any problem into a clear error instead of a crash.
"""

from __future__ import annotations

import ctypes
import functools
import sys

# CUDA driver API error codes worth naming (cuda.h, CUresult).
_CU_ERRORS = {
    3: "CUDA_ERROR_NOT_INITIALIZED",
    35: "CUDA_ERROR_INSUFFICIENT_DRIVER (the driver is older than this CUDA)",
    100: "CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)",
    101: "CUDA_ERROR_INVALID_DEVICE",
    999: "CUDA_ERROR_UNKNOWN",
}
_LIBCUDA = ("nvcuda.dll",) if sys.platform == "win32" else ("libcuda.so.1", "libcuda.so")


def _load_libcuda() -> ctypes.CDLL | None:
    for name in _LIBCUDA:
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    return None


@functools.lru_cache(maxsize=1)
def cuda_problem() -> str | None:
    """None when the CUDA driver initialises and sees at least one device, else why not.

    Returns:
        A one-line reason such as "no NVIDIA driver: libcuda.so.1 not found", or None.
    """
    lib = _load_libcuda()
    if lib is None:
        return f"no NVIDIA driver: {_LIBCUDA[0]} not found"
    rc = lib.cuInit(0)
    if rc != 0:
        return f"the CUDA driver failed to initialise: cuInit returned {_CU_ERRORS.get(rc, rc)}"
    count = ctypes.c_int(0)
    rc = lib.cuDeviceGetCount(ctypes.byref(count))
    if rc != 0:
        return f"cuDeviceGetCount returned {_CU_ERRORS.get(rc, rc)}"
    if count.value == 0:
        return "the CUDA driver sees no GPU"
    return None
