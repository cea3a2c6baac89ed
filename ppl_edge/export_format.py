"""What the exporter writes and the runtime reads alike: the export manifest's format name, version and
file name, and the content hash recorded for every artifact (docs/contracts.md, "Export artifacts").

Torch-free: both ``ppl_edge.convert.manifest`` (writing) and ``ppl_edge.runtime.manifest`` (reading)
import it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FORMAT = "ppl-edge-export"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"


def sha256_path(path: str | Path) -> str:
    """Hex sha256 of a file, or of a folder (e.g. an ``.mlpackage``): each file's relative path, a NUL
    byte and its content, in sorted order."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
