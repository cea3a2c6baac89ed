"""Iterative refinement (paper §3.4) without torch: one pure loop, three modes.

:func:`refine` is the only loop (house style 12): it applies a step callable an explicit number
of times and keeps every intermediate estimate. An *estimate* is the dict of keypoints.onnx outputs
for a batch: ``keypoints`` (B, N, 2), ``keypoints_refined`` (B, N, 2), ``prototype_ids`` (B, M),
``prototype_distances`` (B, M), ``confidence`` (B, N), all xy in [-1, 1]. The steps mirror
``PoseModel.iterative_inference``:

- ``none``: no step; iteration counts are ignored.
- ``memory``: snap to the memory's reconstruction, no decoder: T'_{i+1} = Mem(T'_i). The keypoint
  graph already returns Mem(T'_0), so one iteration needs nothing more. Further iterations re-run
  the memory on the snapped pose through ``memory.onnx`` (keypoints -> keypoints_refined,
  prototype_ids, prototype_distances) when the export has it; without it, Mem(T'_1) is taken as
  T'_1 (the memory reconstruction of a prototype pose is that pose), so every iteration after the
  first equals the first.
- ``image``: x_{i+1} = φ_dec(I, S(Mem(T'_i))) through ``refine.onnx`` with the original crop I as
  the reference, then a new estimate on x_{i+1} through the keypoint graph.
"""

from __future__ import annotations

import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ppl_edge.errors import PplEdgeError

if TYPE_CHECKING:  # NumPy only in annotations: this module is imported with ppl_edge.runtime
    import numpy as np

    Estimate = dict[str, np.ndarray]
    Step = Callable[[Estimate, int], Estimate]
    RunFn = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]

REFINE_MODES = ("none", "memory", "image")


def check_iterations(iterations: object) -> int:
    """``iterations`` as an int, if it is an integer >= 0 (NumPy integers too, booleans not).

    Raises:
        PplEdgeError: a negative or non-integer count.
    """
    if (
        isinstance(iterations, bool)
        or not isinstance(iterations, numbers.Integral)
        or iterations < 0
    ):
        raise PplEdgeError(f"iterations must be an integer >= 0, got {iterations!r}")
    return int(iterations)


@dataclass(frozen=True)
class RefineTrace:
    """What :func:`refine` returns.

    Attributes:
        final: the last estimate.
        steps: estimates of iteration 0..n (only the final one when ``keep=False``).
        step_ms: wall time of each of the n steps, milliseconds.
    """

    final: Estimate
    steps: tuple[Estimate, ...]
    step_ms: tuple[float, ...]


class GraphClock:
    """The summed wall time of the graph runs it wraps, in milliseconds (``ms``): what a refinement
    spends in backend inference, apart from its own bookkeeping."""

    def __init__(self) -> None:
        self.ms = 0.0

    def timed(self, run: RunFn | None) -> RunFn | None:
        """``run`` with its time added to ``ms`` (None stays None)."""
        if run is None:
            return None

        def timed_run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            start = time.perf_counter()
            try:
                return run(feeds)
            finally:
                self.ms += (time.perf_counter() - start) * 1e3

        return timed_run


def refine(initial: Estimate, iterations: int, step: Step | None, keep: bool = True) -> RefineTrace:
    """Apply ``step`` ``iterations`` times to ``initial``.

    Args:
        initial: the iteration-0 estimate.
        iterations: number of refinement steps (>= 0); 0 returns ``initial``.
        step: ``step(estimate, i) -> estimate`` for i = 0..iterations-1; None means no refinement.
        keep: keep every intermediate estimate in ``steps`` (for visualisation).

    Raises:
        PplEdgeError: a negative or non-integer iteration count.
    """
    count = check_iterations(iterations)
    current, steps, times = initial, [initial], []
    for i in range(count if step is not None else 0):
        start = time.perf_counter()
        current = step(current, i)
        times.append((time.perf_counter() - start) * 1e3)
        if keep:
            steps.append(current)
    return RefineTrace(current, tuple(steps) if keep else (current,), tuple(times))


def memory_step(memory: RunFn | None = None) -> Step:
    """Snap to the memory reconstruction: keypoints <- keypoints_refined.

    Args:
        memory: runs memory.onnx ({"keypoints": (B, N, 2)} -> keypoints_refined, prototype_ids,
            prototype_distances); None when the export has no memory graph (see the module doc).
    """

    def step(est: Estimate, i: int) -> Estimate:
        snapped = {**est, "keypoints": est["keypoints_refined"]}
        if memory is None:
            return snapped
        out = memory({"keypoints": est["keypoints_refined"]})
        return {
            **snapped,
            **{
                k: out[k]
                for k in ("keypoints_refined", "prototype_ids", "prototype_distances")
                if k in out
            },
        }

    return step


def image_step(
    keypoints: RunFn, reconstruct: RunFn, reference: np.ndarray, input_name: str = "image"
) -> Step:
    """Paper §3.4 loop: render Mem(T'_i) with the decoder, re-estimate on the rendering.

    Args:
        keypoints: runs keypoints.onnx ({input_name: (B, 3, H, W)} -> estimate).
        reconstruct: runs refine.onnx ({"image": (B, 3, H, W), "keypoints": (B, N, 2)} ->
            {"reconstruction": (B, 3, H, W)}).
        reference: (B, 3, H, W) the original normalised crops; the reference of every iteration.
        input_name: the keypoint graph's image input name.

    The new estimate carries ``input``: the (B, 3, H, W) image it was made on.
    """

    def step(est: Estimate, i: int) -> Estimate:
        recon = reconstruct({"image": reference, "keypoints": est["keypoints_refined"]})
        image = recon["reconstruction"]
        return {**keypoints({input_name: image}), "input": image}

    return step


def make_step(
    mode: str,
    keypoints: RunFn | None = None,
    reconstruct: RunFn | None = None,
    memory: RunFn | None = None,
    reference: np.ndarray | None = None,
    input_name: str = "image",
) -> Step | None:
    """The step of ``mode``, one of :data:`REFINE_MODES` ("none" -> None); callers pass a checked
    mode (:class:`~ppl_edge.runtime.config.RuntimeConfig` checks it).

    Raises:
        PplEdgeError: image mode without the refine graph.
    """
    if mode == "none":
        return None
    if mode == "memory":
        return memory_step(memory)
    if reconstruct is None or keypoints is None or reference is None:
        raise PplEdgeError(
            "image refinement needs refine.onnx in the export (re-export with "
            "'ppl-edge convert'), or use refine mode 'memory'"
        )
    return image_step(keypoints, reconstruct, reference, input_name)
