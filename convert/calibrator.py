"""INT8 entropy calibration for the TensorRT build: images from a folder, preprocessed exactly as
the runtime preprocesses camera frames (the manifest's input contract, ``ppl_edge.preprocess``).

Three layers, so that everything but the device copy is testable without a GPU:

- :func:`find_calibration_images` and :class:`CalibrationBatches`: discovery, preprocessing and
  batching (NumPy + OpenCV);
- :class:`CalibrationSession`: the calibrator's state (batch cursor, calibration cache read/write),
  with the host-to-device copy injected as a callable;
- :class:`DeviceBuffer` (cuda-python, else pycuda) and :func:`make_calibrator`, the
  ``trt.IInt8EntropyCalibrator2`` subclass TensorRT calls; both need a GPU.

TensorRT 11 removed implicit INT8 calibration (explicit Q/DQ quantisation replaces it), so
:func:`make_calibrator` refuses with a clear message there.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import IMAGE_SUFFIXES, atomic_write_bytes, list_images
from ppl_edge.manifest import Manifest

log = logging.getLogger(__name__)

DEFAULT_MAX_IMAGES = 512  # TensorRT's guidance: about 500 images cover the activation ranges


def find_calibration_images(
    folder: str | Path, limit: int | None = DEFAULT_MAX_IMAGES
) -> list[Path]:
    """Image files under ``folder`` (recursively, sorted), at most ``limit`` spread evenly.

    Raises:
        PplEdgeError: the folder does not exist, is not a folder, or holds no image.
    """
    root = Path(folder).expanduser()
    if not root.exists():
        raise PplEdgeError(f"calibration folder {root} does not exist")
    if not root.is_dir():
        raise PplEdgeError(f"calibration data {root} is a file; expected a folder of images")
    images = sorted(list_images(root))  # by full path
    if not images:
        raise PplEdgeError(
            f"calibration folder {root} holds no images (expected "
            f"{', '.join(IMAGE_SUFFIXES)} files)"
        )
    if limit is not None and len(images) > limit:
        picks = np.linspace(0, len(images) - 1, limit).round().astype(int)
        images = [images[i] for i in picks]
    return images


def images_digest(images: list[Path]) -> str:
    """sha256 over the images' contents (part of an INT8 engine's cache key)."""
    digest = hashlib.sha256()
    for path in images:
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def input_spec(manifest: dict):
    """The manifest's preprocessing contract as the runtime's ``InputSpec``.

    Raises:
        PplEdgeError: the manifest is missing or invalid (INT8 calibration needs it).
    """
    if not isinstance(manifest, dict):
        raise PplEdgeError(
            "INT8 calibration needs the export manifest (input size and normalisation); "
            "build from an export folder or pass manifest="
        )
    return Manifest.from_dict(manifest, Path("manifest.json")).input


def load_image(path: Path, spec) -> np.ndarray:
    """One calibration image as the runtime would feed it: full frame, letterboxed, normalised.

    Returns:
        (3, H, W) float32.

    Raises:
        PplEdgeError: the file cannot be decoded.
    """
    import cv2

    from ppl_edge.preprocess import preprocess

    frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if frame is None:
        raise PplEdgeError(f"cannot decode calibration image {path}")
    height, width = frame.shape[:2]
    x, _ = preprocess(frame, [(0, 0, width, height)], spec)  # (1, 3, H, W)
    return x[0]


class CalibrationBatches:
    """Fixed-size batches of preprocessed calibration images.

    The last partial batch is dropped (TensorRT asks for exactly ``batch_size`` images per batch);
    with fewer images than ``batch_size``, the batch shrinks to the number of images.

    Args:
        images: image files (see :func:`find_calibration_images`).
        spec: the runtime ``InputSpec`` (see :func:`input_spec`).
        batch_size: images per batch, >= 1.
    """

    def __init__(self, images: list[Path], spec, batch_size: int = 8):
        if batch_size < 1:
            raise PplEdgeError(f"calibration batch size must be >= 1, got {batch_size}")
        if not images:
            raise PplEdgeError("no calibration images given")
        self.images = list(images)
        self.spec = spec
        self.batch_size = min(batch_size, len(self.images))
        dropped = len(self.images) % self.batch_size
        if dropped:
            log.info(
                "calibration: %d images in batches of %d; the last %d are not used",
                len(self.images),
                self.batch_size,
                dropped,
            )

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(batch_size, 3, H, W) of every batch."""
        return (self.batch_size, 3, self.spec.height, self.spec.width)

    def __len__(self) -> int:
        return len(self.images) // self.batch_size

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield (batch_size, 3, H, W) float32 C-contiguous batches."""
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            chunk = self.images[start : start + self.batch_size]
            yield np.ascontiguousarray(np.stack([load_image(p, self.spec) for p in chunk]))


class CalibrationSession:
    """What the TensorRT calibrator does, minus TensorRT: serve batches, read/write the cache.

    Args:
        batches: the calibration batches, or None to calibrate from ``cache_path`` alone.
        cache_path: calibration cache file; read when it exists (TensorRT then skips calibration)
            and written after calibration.
        upload: copies one (B, 3, H, W) float32 batch to the device and returns its device pointer.
    """

    def __init__(
        self,
        batches: CalibrationBatches | None,
        cache_path: Path | None,
        upload: Callable[[np.ndarray], int],
    ):
        if batches is None and (cache_path is None or not Path(cache_path).is_file()):
            raise PplEdgeError(
                "INT8 needs calibration images (--calib-data) or an existing calibration cache"
            )
        self.batches = batches
        self.cache_path = Path(cache_path) if cache_path is not None else None
        self.upload = upload
        self._iterator = iter(batches) if batches is not None else iter(())
        self.served = 0

    @property
    def batch_size(self) -> int:
        """Images per batch (1 when only a cache is used)."""
        return self.batches.batch_size if self.batches is not None else 1

    def get_batch(self, names: list[str]) -> list[int] | None:
        """Device pointers of the next batch (one per input name), or None when done."""
        if len(names) != 1:
            raise PplEdgeError(f"calibration supports one network input, the network has {names}")
        batch = next(self._iterator, None)
        if batch is None:
            return None
        self.served += 1
        log.info("calibration batch %d/%d", self.served, len(self.batches))
        return [int(self.upload(batch))]

    def read_cache(self) -> bytes | None:
        """The calibration cache's bytes, or None to make TensorRT calibrate."""
        if self.cache_path is not None and self.cache_path.is_file():
            log.info("calibration: reusing %s", self.cache_path)
            return self.cache_path.read_bytes()
        return None

    def write_cache(self, cache) -> None:
        """Save TensorRT's calibration table (atomically)."""
        if self.cache_path is None:
            return
        self.cache_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.cache_path, bytes(cache))
        log.info("calibration cache written: %s", self.cache_path)


class DeviceBuffer:
    """One device allocation for calibration batches, through cuda-python or else pycuda.

    Args:
        nbytes: size of one batch in bytes.

    Raises:
        PplEdgeError: neither cuda-python nor pycuda is importable, or the allocation fails.
    """

    def __init__(self, nbytes: int):
        self.nbytes = int(nbytes)
        self.pointer, self._allocation, self._driver = 0, None, None
        try:
            from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
        except ImportError:
            try:
                from cuda import cudart  # older cuda-python
            except ImportError:
                cudart = None
        self._cudart = cudart
        if cudart is not None:
            err, self.pointer = cudart.cudaMalloc(self.nbytes)
            self._check(err, "cudaMalloc")
            return
        try:
            import pycuda.autoinit  # noqa: F401  (creates the CUDA context)
            from pycuda import driver
        except ImportError as err:
            raise PplEdgeError(
                "INT8 calibration needs cuda-python or pycuda to copy batches to the GPU: "
                "pip install cuda-python (or JetPack's python3-pycuda)"
            ) from err
        self._driver = driver
        self._allocation = driver.mem_alloc(self.nbytes)
        self.pointer = int(self._allocation)

    def _check(self, err, what: str) -> None:
        if int(err) != 0:
            raise PplEdgeError(f"{what} failed during INT8 calibration: CUDA error {int(err)}")

    def upload(self, batch: np.ndarray) -> int:
        """Copy ``batch`` (C-contiguous float32, at most ``nbytes``) to the device; its pointer."""
        if batch.nbytes > self.nbytes or not batch.flags.c_contiguous:
            raise PplEdgeError(
                f"calibration batch of {batch.nbytes} bytes does not fit {self.nbytes}"
            )
        if self._cudart is not None:
            (err,) = self._cudart.cudaMemcpy(
                self.pointer,
                batch.ctypes.data,
                batch.nbytes,
                self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
            )
            self._check(err, "cudaMemcpy")
        else:
            self._driver.memcpy_htod(self._allocation, batch)
        return self.pointer

    def free(self) -> None:
        """Release the allocation (idempotent)."""
        if self._cudart is not None and self.pointer:
            self._cudart.cudaFree(self.pointer)
        self.pointer = 0
        self._allocation = None


def make_calibrator(trt, session: CalibrationSession):
    """A ``trt.IInt8EntropyCalibrator2`` that forwards TensorRT's calls to ``session``.

    Raises:
        PplEdgeError: this TensorRT has no implicit INT8 calibration (TensorRT 11+).
    """
    if not hasattr(trt, "IInt8EntropyCalibrator2"):
        raise PplEdgeError(
            f"TensorRT {trt.__version__} has no INT8 calibrator (removed in TensorRT 11): "
            "use --precision fp16, or quantise the ONNX with explicit Q/DQ nodes"
        )

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self):
            return session.batch_size

        def get_batch(self, names):
            return session.get_batch(list(names))

        def read_calibration_cache(self):
            return session.read_cache()

        def write_calibration_cache(self, cache):
            session.write_cache(cache)

    return EntropyCalibrator()
