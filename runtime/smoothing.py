"""Temporal smoothing of keypoints: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012).

A low-pass filter whose cutoff rises with speed: slow motion is smoothed hard (no jitter), fast
motion passes with little lag. Per coordinate:

    dx_t   = lowpass((x_t - x̂_{t-1}) / Δt, cutoff = d_cutoff)
    fc     = min_cutoff + beta · |dx_t|
    x̂_t    = lowpass(x_t, cutoff = fc)
    lowpass(a, fc) = x̂ + α (a - x̂),  α = 1 / (1 + 1 / (2π fc Δt))

:class:`PoseSmoother` keeps one filter per tracked subject and resets it when the track is lost.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.result import Result


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    return 1.0 / (1.0 + 1.0 / (2.0 * math.pi * cutoff * dt))


@dataclass(frozen=True)
class OneEuroConfig:
    """One Euro parameters; coordinates are frame pixels and time is seconds.

    Attributes:
        min_cutoff: Hz, the cutoff at rest (lower: less jitter, more lag). Casiez et al. start at 1.
        beta: cutoff increase per pixel/s of speed (higher: less lag on fast motion).
        d_cutoff: Hz, the cutoff of the speed estimate (Casiez et al.: 1).
    """

    min_cutoff: float = 1.0
    beta: float = 0.05
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise PplEdgeError(
                f"One Euro needs min_cutoff > 0, d_cutoff > 0, beta >= 0, got "
                f"{self.min_cutoff}, {self.d_cutoff}, {self.beta}"
            )


class OneEuroFilter:
    """One Euro filter over arrays of any fixed shape (every element filtered independently).

    Args:
        min_cutoff, beta, d_cutoff: see :class:`OneEuroConfig`.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0):
        self.config = OneEuroConfig(min_cutoff, beta, d_cutoff)
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next sample passes unchanged."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Filter one sample.

        Args:
            x: the new sample, any shape (same every call), e.g. (N, 2) pixels.
            t: its timestamp in seconds (monotonic; a repeated or earlier time is treated as 1 ms
                later than the previous sample).

        Returns:
            The filtered sample, same shape, float64.
        """
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            return x.copy()
        cfg = self.config
        dt = max(float(t) - self._t, 1e-3)
        dx = (x - self._x) / dt
        self._dx = self._dx + _alpha(cfg.d_cutoff, dt) * (dx - self._dx)
        cutoff = cfg.min_cutoff + cfg.beta * np.abs(self._dx)
        self._x = self._x + _alpha(cutoff, dt) * (x - self._x)
        self._t = float(t)
        return self._x.copy()


class PoseSmoother:
    """One Euro filtering of every subject's keypoints across frames.

    Subjects are matched to tracks by the nearest box centre (within ``max_jump`` box sizes); an
    unmatched track is dropped, so a lost and re-found subject starts with a fresh filter.

    Args:
        config: filter parameters.
        max_jump: largest centre move between frames, in units of the box's longer side.
    """

    def __init__(self, config: OneEuroConfig | None = None, max_jump: float = 0.5):
        self.config = config or OneEuroConfig()
        self.max_jump = max_jump
        self._tracks: list[tuple[np.ndarray, OneEuroFilter]] = []

    def reset(self) -> None:
        """Drop every track."""
        self._tracks = []

    def _filter(self) -> OneEuroFilter:
        c = self.config
        return OneEuroFilter(c.min_cutoff, c.beta, c.d_cutoff)

    def __call__(self, results: list[Result], t: float) -> list[Result]:
        """Smooth ``keypoints`` and ``keypoints_refined`` of each Result of one frame at time t."""
        free = list(range(len(self._tracks)))
        tracks, out = [], []
        for res in results:
            x0, y0, x1, y1 = res.box
            centre = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
            limit = self.max_jump * max(x1 - x0, y1 - y0)
            dist = {i: float(np.linalg.norm(self._tracks[i][0] - centre)) for i in free}
            best = min(dist, key=dist.get, default=None)
            if best is not None and dist[best] <= limit:
                free.remove(best)
                filt = self._tracks[best][1]
            else:
                filt = self._filter()
            both = filt(np.stack([res.keypoints, res.keypoints_refined]), t)  # (2, N, 2)
            tracks.append((centre, filt))
            out.append(dataclasses.replace(res, keypoints=both[0], keypoints_refined=both[1]))
        self._tracks = tracks
        return out
