"""Publishing an export folder in one step (:func:`staged_output`), and cleaning what killed
exports left behind (:func:`remove_leftovers`).

An export is written into a staging folder beside the output folder, ``.<name>.staging-<pid>-<x>``
in the same parent (the same file system, so publishing is a rename). When every file is complete
the staging folder replaces the output folder as a whole: on Linux by one atomic exchange of the
two names (``renameat2(RENAME_EXCHANGE)``), elsewhere by two renames (the old folder is first
renamed to ``.<name>.replaced-<pid>-<x>``). A reader therefore sees the old export or the new one,
never a mix; with two renames a crash between them leaves no output folder, the old one under its
``.replaced-`` name. Nothing of an earlier export that the new manifest does not list survives (no
stale engine or package beside the new manifest); files that are not export products (notes, a
README) are carried over as hard links, and so are the artifacts the new manifest keeps from the
previous export (a Core ML package beside a new ONNX export of the same checkpoint).

Leftovers: a running export holds an exclusive ``flock`` on its staging folder for its whole
life, and the kernel drops the lock when the process dies, SIGKILL included. Every export first
removes, in its output folder's parent, each ``.<name>.staging-*`` / ``.<name>.replaced-*`` folder
that no process holds locked (those of killed exports; ``.replaced-`` folders are never locked).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import MANIFEST_NAME, Manifest, sha256_path

log = logging.getLogger(__name__)

# What an export writes (and so what an earlier export left that must not outlive it): graphs,
# engines, packages, their sidecars (<file>.json) and the manifest.
PRODUCT_SUFFIXES = (".onnx", ".engine", ".plan", ".trt", ".mlpackage", ".mlmodel")
LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?P<kind>staging|replaced)-(?:\d+-)?[A-Za-z0-9_]+")
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def check_output_folder(out_dir: str | Path) -> Path:
    """The output folder may exist or be created, but its parent must exist and be writable (the
    export is staged there). A symbolic link to a folder stands for the folder it points to."""
    out = Path(out_dir).expanduser().absolute()
    if out.is_symlink() and out.resolve().is_dir():
        out = out.resolve()
    if out.exists() and not out.is_dir():
        raise PplEdgeError(f"--out {out} is a file, expected a folder")
    if not out.parent.is_dir():
        raise PplEdgeError(
            f"the parent of the output folder does not exist: {out.parent} "
            f"(create it first; only the last path component is created)"
        )
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise PplEdgeError(_unwritable(out, "Permission denied"))
    return out


def _unwritable(out: Path, why: str) -> str:
    return (
        f"cannot write beside the output folder in {out.parent} ({why}): an export is staged "
        f"next to {out.name} and swapped in with one rename; choose --out in a writable folder"
    )


def _lock(folder: Path, blocking: bool) -> int | None:
    """An exclusive flock on ``folder``: its descriptor, or None when another process holds it."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return fd


def remove_leftovers(parent: str | Path) -> list[Path]:
    """Delete the staging / replaced folders of killed exports in ``parent``: every
    ``.<name>.staging-*`` or ``.<name>.replaced-*`` folder no running export holds locked.

    Returns:
        The folders removed.
    """
    removed = []
    for path in sorted(Path(parent).glob(".*.*-*")):
        if not LEFTOVER.fullmatch(path.name) or path.is_symlink() or not path.is_dir():
            continue
        try:
            fd = _lock(path, blocking=False)
        except OSError:
            continue  # vanished meanwhile, or not lockable: leave it
        if fd is None:
            continue  # a running export's
        try:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)
        log.info("removed %s, left by an interrupted export", path)
        removed.append(path)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2``); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    rename = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if rename is None:  # glibc before 2.28
        return False
    rename.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if rename(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link ``src`` (a file, folder or symbolic link) to ``dst``, copying where links fail."""

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d, follow_symlinks=False)
        except OSError:
            shutil.copy2(s, d, follow_symlinks=False)

    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=link)
    else:
        link(str(src), str(dst))


def is_product(name: str) -> bool:
    """Whether a file name is one an export writes: a graph, engine, package, sidecar, the
    manifest, or a temporary of an atomic write."""
    low = name.lower()
    low = low[: -len(".json")] if low.endswith(".json") else low
    return (
        low + ".json" == MANIFEST_NAME
        or low.endswith(PRODUCT_SUFFIXES)
        or (name.startswith(".") and name.endswith(".tmp"))
    )


def _carry_listed(out: Path, staging: Path) -> None:
    """Link into ``staging`` the artifacts its manifest lists but the export did not write: those
    kept from the previous export in ``out`` (e.g. its Core ML package), with their sidecars, each
    only if it still matches its sha256."""
    if not (staging / MANIFEST_NAME).is_file():
        return
    manifest = Manifest.load(staging)
    for key, entry in manifest.artifacts.items():
        src, dst = out / entry["file"], manifest.artifact_path(key)
        inside = src.resolve().is_relative_to(out.resolve()) and not src.is_symlink()
        if os.path.lexists(dst) or not src.exists() or not inside:
            continue
        sha = entry.get("sha256")
        if sha and sha256_path(src) != sha.lower():
            log.warning("%s changed since the previous export; the new one lacks it", src)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        _link_tree(src, dst)
        sidecar = src.with_name(src.name + ".json")
        if sidecar.is_file() and not os.path.lexists(dst.with_name(sidecar.name)):
            _link_tree(sidecar, dst.with_name(sidecar.name))


def _carry_other_files(out: Path, staging: Path) -> None:
    """Link what the old folder holds besides export products into ``staging`` (all of it when
    the old folder was no export, i.e. has no manifest, except names the new export writes)."""
    export = (out / MANIFEST_NAME).is_file()
    dropped = []
    for entry in sorted(out.iterdir()):
        if os.path.lexists(staging / entry.name):
            continue
        if export and is_product(entry.name):
            dropped.append(entry.name)
            continue
        _link_tree(entry, staging / entry.name)
    if dropped:
        log.info("the new export replaces %s of the previous one in %s", ", ".join(dropped), out)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish(staging: Path, out: Path) -> None:
    """Make ``staging`` the folder ``out`` in one step (see the module docstring); the previous
    ``out`` is removed. On failure ``out`` is as it was."""
    if not out.exists():
        os.rename(staging, out)
    else:
        _carry_listed(out, staging)
        _carry_other_files(out, staging)
        if _exchange(staging, out):
            shutil.rmtree(staging, ignore_errors=True)  # now the previous export
        else:
            old = Path(
                tempfile.mkdtemp(prefix=f".{out.name}.replaced-{os.getpid()}-", dir=out.parent)
            )
            os.rename(out, old)  # replaces the empty folder mkdtemp made
            try:
                os.rename(staging, out)
            except BaseException:
                os.rename(old, out)
                raise
            shutil.rmtree(old, ignore_errors=True)
    _fsync_folder(out.parent)


@contextlib.contextmanager
def staged_output(out_dir: str | Path) -> Iterator[Path]:
    """Write an export into a staging folder, then publish it as ``out_dir`` in one step.

    Leftovers of killed exports beside ``out_dir`` are removed first (:func:`remove_leftovers`).
    On any exception the staging folder is removed and ``out_dir`` is left as it was.

    Yields:
        The staging folder; write every artifact and the manifest there.

    Raises:
        PplEdgeError: the staging folder cannot be made or published (a read-only parent, a full
            disk), in one line.
    """
    out = check_output_folder(out_dir)
    remove_leftovers(out.parent)
    try:
        staging = Path(
            tempfile.mkdtemp(prefix=f".{out.name}.staging-{os.getpid()}-", dir=out.parent)
        )
    except OSError as err:
        raise PplEdgeError(_unwritable(out, err.strerror or str(err))) from err
    fd = _lock(staging, blocking=True)
    try:
        try:
            yield staging
        except OSError as err:
            raise PplEdgeError(
                f"writing the export for {out} failed: {err.strerror or err}"
                + (f" ({err.filename})" if err.filename else "")
            ) from err
        try:
            publish(staging, out)
        except OSError as err:
            raise PplEdgeError(
                f"could not publish the export as {out}: {err.strerror or err}; the previous "
                "folder is unchanged"
            ) from err
        log.info("wrote %s", out)
    finally:
        if fd is not None:
            os.close(fd)
        shutil.rmtree(staging, ignore_errors=True)
