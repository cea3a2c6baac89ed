"""Embed ppl-edge in a robot's control loop: poses arrive through a callback, control runs at a
fixed rate on the newest pose, and stops the robot when the pose is stale.

    python samples/robot_loop.py --source 0 --rate 20 --seconds 30
    python samples/robot_loop.py --model models/ppl-small-humanoid --source clip.mp4
"""

from __future__ import annotations

import argparse
import threading
import time

from ppl_edge.runtime import Estimator
from ppl_edge.runtime.live import default_model_path, run_loop
from ppl_edge.runtime.sources import open_source

STALE_S = 0.5  # a pose older than this means "lost": stop


class LatestPose:
    """Callback for run_loop keeping the newest (capture time, first result, frame width)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = None
        self.count = 0

    def __call__(self, frame, results) -> None:
        with self._lock:
            self.value = (frame.capture_mono, results[0] if results else None, frame.image.shape[1])
            self.count += 1

    def get(self):
        with self._lock:
            return self.value


def steering(result, width: int, gain: float = 1.0) -> float:
    """Turn rate in [-1, 1] that centres the subject: the offset of its confident keypoints."""
    weights = result.confidence + 1e-6
    x = float((result.keypoints[:, 0] * weights).sum() / weights.sum())
    return max(-1.0, min(1.0, gain * (x / (width - 1) * 2.0 - 1.0)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="export folder (default: shipped model)")
    parser.add_argument("--source", default="0", help="camera index, video or URL")
    parser.add_argument("--rate", type=float, default=20.0, help="control rate, Hz")
    parser.add_argument("--seconds", type=float, default=10.0, help="run time")
    args = parser.parse_args(argv)

    latest = LatestPose()
    with (
        Estimator(args.model or default_model_path(), refine="memory", iterations=1) as est,
        open_source(args.source) as source,
    ):
        perception = threading.Thread(
            target=run_loop,
            args=(est, source),
            kwargs={"callback": latest, "handle_signals": False},
        )
        perception.start()
        period, ticks, acted, command = 1.0 / args.rate, 0, 0, 0.0
        start = next_tick = time.perf_counter()
        try:
            while perception.is_alive() and time.perf_counter() - start < args.seconds:
                pose, now = latest.get(), time.perf_counter()
                if pose is None or pose[1] is None or now - pose[0] > STALE_S:
                    command = 0.0  # no fresh pose: stop
                else:
                    command, acted = steering(pose[1], pose[2]), acted + 1
                # robot.set_turn_rate(command) would go here
                ticks += 1
                next_tick += period
                time.sleep(max(0.0, next_tick - time.perf_counter()))
        finally:
            source.stop()
            perception.join()
    print(
        f"{ticks} control ticks at {args.rate:g} Hz, {acted} acted on a fresh pose, "
        f"{latest.count} poses received, last command {command:+.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
