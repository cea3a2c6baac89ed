"""Records a run leaves in its folder beside the checkpoint: metrics logs and the prior's history.

- ``metrics.csv`` / ``metrics.jsonl``: one row per log interval (step, time, epoch, images_per_s,
  lr, every loss term), ready for pandas / a spreadsheet / ``jq``.
- ``prior_history.npz``: ``steps`` (S,) int64, ``priors`` (S, N, 2) float32 xy in [-1, 1] and
  ``connectivity`` (S, N, N) float32 symmetric W, snapshots of T and W over training.

On resume, rows and snapshots newer than the resumed step are dropped, so the files read as one run.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ppl_edge.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

BASE_COLUMNS = ["step", "time", "epoch", "images_per_s", "lr"]


def _read_rows(path: Path, resume_step: int) -> list[dict[str, Any]]:
    """The rows of ``metrics.jsonl`` up to ``resume_step``; a torn or damaged line (e.g. the last
    line of a killed run) is skipped with a warning."""
    rows, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            step = row["step"]
        except (json.JSONDecodeError, TypeError, KeyError):
            bad += 1
            continue
        if isinstance(step, (int, float)) and step <= resume_step:
            rows.append(row)
    if bad:
        log.warning("%s: skipped %d damaged line(s); the other rows are kept", path, bad)
    return rows


class MetricsLog:
    """Append-only CSV + JSONL metrics of one run (rank 0 only).

    Args:
        folder: run folder.
        resume_step: when resuming, rows with ``step`` beyond it are dropped; None starts afresh.
    """

    def __init__(self, folder: str | Path, resume_step: int | None = None):
        folder = Path(folder)
        self.csv_path = folder / "metrics.csv"
        self.jsonl_path = folder / "metrics.jsonl"
        self.rows: list[dict[str, Any]] = []
        if resume_step is not None and self.jsonl_path.is_file():
            self.rows = _read_rows(self.jsonl_path, resume_step)
        self.columns: list[str] | None = None
        self._rewrite()

    def _rewrite(self) -> None:
        """Write every kept row to both files (atomic), fixing the CSV columns."""
        if self.rows:
            self.columns = list(BASE_COLUMNS)
            for row in self.rows:
                self.columns += [k for k in row if k not in self.columns]
        atomic_write_bytes(
            self.jsonl_path, "".join(json.dumps(r) + "\n" for r in self.rows).encode()
        )
        buf = io.StringIO()
        if self.columns:
            writer = csv.DictWriter(buf, fieldnames=self.columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)
        atomic_write_bytes(self.csv_path, buf.getvalue().encode())

    def append(self, row: dict[str, Any]) -> None:
        """Add one row (a flat dict of numbers) to both files."""
        row = {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
        self.rows.append(row)
        with self.jsonl_path.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        if self.columns is None or any(k not in self.columns for k in row):
            self._rewrite()  # first row, or a new column: rewrite the CSV with the wider header
            return
        with self.csv_path.open("a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.columns, extrasaction="ignore").writerow(row)


class PriorHistory:
    """Snapshots of the prior T (N, 2) and connectivity W (N, N), saved atomically as one .npz."""

    def __init__(self, folder: str | Path, resume_step: int | None = None):
        self.path = Path(folder) / "prior_history.npz"
        self.steps: list[int] = []
        self.priors: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        if resume_step is not None and self.path.is_file():
            try:
                self._load(resume_step)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
                log.warning(
                    "%s is damaged (%s): the prior history restarts at step %d; the checkpoint is "
                    "not affected", self.path, err, resume_step,
                )  # fmt: skip
                self.steps, self.priors, self.weights = [], [], []

    def _load(self, resume_step: int) -> None:
        with np.load(self.path, allow_pickle=False) as data:
            for s, p, w in zip(data["steps"], data["priors"], data["connectivity"], strict=True):
                if int(s) <= resume_step:
                    self.steps.append(int(s))
                    self.priors.append(p)
                    self.weights.append(w)

    def add(self, step: int, prior: np.ndarray, connectivity: np.ndarray) -> None:
        """Record T (N, 2) and W (N, N) at ``step`` and rewrite the file."""
        self.steps.append(int(step))
        self.priors.append(np.asarray(prior, dtype=np.float32))
        self.weights.append(np.asarray(connectivity, dtype=np.float32))
        buf = io.BytesIO()
        np.savez(
            buf,
            steps=np.asarray(self.steps, dtype=np.int64),
            priors=np.stack(self.priors),
            connectivity=np.stack(self.weights),
        )
        atomic_write_bytes(self.path, buf.getvalue())
