"""Bookkeeping of the live loop and the benchmarks: per-stage latencies (:class:`StageStats`) and
the report of a run (:class:`LiveSummary`)."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class StageStats:
    """Per-stage latencies in ms: exact count and mean, percentiles over the last ``keep`` samples
    (bounded memory for endless runs)."""

    def __init__(self, keep: int = 4096):
        self.keep = keep
        self._recent: dict[str, deque] = {}
        self._sum: Counter = Counter()
        self._count: Counter = Counter()

    def add(self, stage: str, ms: float) -> None:
        """Record one sample of ``stage``."""
        if stage not in self._recent:
            self._recent[stage] = deque(maxlen=self.keep)
        self._recent[stage].append(ms)
        self._sum[stage] += ms
        self._count[stage] += 1

    def recent(self, stage: str, count: int) -> list[float]:
        """The last ``count`` samples of ``stage`` (at least one value: 0.0 when none)."""
        samples = self._recent.get(stage)
        return list(samples)[-count:] if samples else [0.0]

    def mean(self, stage: str) -> float:
        """Mean over every sample of ``stage`` (0.0 if none)."""
        return self._sum[stage] / self._count[stage] if self._count[stage] else 0.0

    def summary(self) -> dict[str, dict[str, float]]:
        """stage -> {count, mean, p50, p90, p99} in ms, in first-seen stage order."""
        out = {}
        for stage, recent in self._recent.items():
            p50, p90, p99 = np.percentile(np.fromiter(recent, float), [50, 90, 99])
            out[stage] = {
                "count": self._count[stage],
                "mean": round(self.mean(stage), 4),
                "p50": round(float(p50), 4),
                "p90": round(float(p90), 4),
                "p99": round(float(p99), 4),
            }
        return out


@dataclass
class LiveSummary:
    """What a run of the loop did; ``format()`` is the report printed on exit."""

    frames: int = 0  # frames the estimator ran on
    bad_frames: int = 0  # frames skipped: unusable image or estimator error
    bad_reasons: Counter = field(default_factory=Counter)
    dropped: int = 0  # frames the latest-frame capture replaced before they were used
    reconnects: int = 0
    subjects: int = 0  # poses returned over all frames
    seconds: float = 0.0
    stopped_by: str = "end of source"
    stages: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def fps(self) -> float:
        """Processed frames per second of wall time."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "frames": self.frames,
            "bad_frames": self.bad_frames,
            "bad_reasons": dict(self.bad_reasons),
            "dropped": self.dropped,
            "reconnects": self.reconnects,
            "subjects": self.subjects,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "stopped_by": self.stopped_by,
            "stages_ms": self.stages,
        }

    def format(self) -> str:
        """Human-readable multi-line report."""
        bad = ", ".join(f"{k}: {v}" for k, v in self.bad_reasons.items())
        head = (
            f"{self.frames} frames in {self.seconds:.1f} s = {self.fps:.1f} FPS "
            f"(stopped by {self.stopped_by}); {self.subjects} poses; "
            f"{self.bad_frames} bad frames skipped{f' ({bad})' if bad else ''}; "
            f"{self.dropped} dropped by latest-frame capture; {self.reconnects} reconnects"
        )
        lines = [head, f"{'stage':<12} {'mean':>8} {'p50':>8} {'p90':>8} {'p99':>8}  (ms)"]
        for stage, s in self.stages.items():
            lines.append(
                f"{stage:<12} {s['mean']:8.2f} {s['p50']:8.2f} {s['p90']:8.2f} {s['p99']:8.2f}"
            )
        return "\n".join(lines)
