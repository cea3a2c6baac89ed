"""File I/O every part shares: atomic writes and the file suffixes ppl-edge reads.

Every file ppl-edge writes goes through :func:`atomic_write_bytes` (a temporary name in the same
folder, fsync, rename), so an interrupted write never leaves a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Still images read by training (folder:PATH), calibration and the runtime (image files, folders,
# globs): every format OpenCV decodes without extra codecs.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
# Video files read by training (video:PATH) and the runtime.
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def is_image_file(path: str | Path) -> bool:
    """Whether ``path`` names a still image by its suffix (case-insensitive)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(root: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (recursively by default), sorted by folder, then by name."""
    root = Path(root)
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        (p for p in found if is_image_file(p) and p.is_file()),
        key=lambda p: (p.parent.parts, p.name),
    )


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_stale_temporaries(
    folder: str | Path, names: tuple[str, ...] | None = None
) -> list[Path]:
    """Delete what killed :func:`atomic_write_bytes` calls left in ``folder``: ``.<name>.*.tmp``.

    Call it when nothing else writes into ``folder`` (e.g. when a run starts).

    Args:
        folder: the folder to clean (not recursive).
        names: only the temporaries of these file names; None: every ``.*.tmp``.

    Returns:
        The files removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.glob(".*.tmp"):
        target = path.name[1:].rsplit(".", 2)[0]  # .latest.safetensors.ab12cd.tmp -> latest...
        if path.is_file() and (names is None or target in names):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
