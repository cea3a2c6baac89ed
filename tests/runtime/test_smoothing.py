"""One Euro filter and per-subject pose smoothing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime import OneEuroFilter, PoseSmoother, Result
from ppl_edge.runtime.smoothing import OneEuroConfig

FPS = 30.0


def _scalar_one_euro(xs, ts, min_cutoff, beta, d_cutoff):
    """Casiez et al.'s published pseudo-code, one scalar at a time (the reference)."""

    def alpha(cutoff, dt):
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    out, x_prev, dx_prev, t_prev = [], None, 0.0, None
    for x, t in zip(xs, ts):
        if x_prev is None:
            x_prev, t_prev = x, t
            out.append(x)
            continue
        dt = t - t_prev
        dx = (x - x_prev) / dt
        dx_hat = dx_prev + alpha(d_cutoff, dt) * (dx - dx_prev)
        cutoff = min_cutoff + beta * abs(dx_hat)
        x_hat = x_prev + alpha(cutoff, dt) * (x - x_prev)
        out.append(x_hat)
        x_prev, dx_prev, t_prev = x_hat, dx_hat, t
    return np.array(out)


def test_matches_the_scalar_reference_elementwise():
    rng = np.random.default_rng(0)
    ts = np.cumsum(rng.uniform(0.02, 0.05, 60))  # irregular frame times
    xs = np.cumsum(rng.normal(0, 3, (60, 4, 2)), axis=0)
    filt = OneEuroFilter(min_cutoff=0.8, beta=0.1, d_cutoff=1.2)
    got = np.stack([filt(x, t) for x, t in zip(xs, ts)])
    for k in range(4):
        for c in range(2):
            want = _scalar_one_euro(xs[:, k, c], ts, 0.8, 0.1, 1.2)
            np.testing.assert_allclose(got[:, k, c], want, rtol=1e-10, atol=1e-10)


def test_a_constant_signal_stays_constant():
    filt = OneEuroFilter()
    x = np.array([[12.5, -3.0], [400.0, 7.25]])
    for i in range(100):
        out = filt(x, i / FPS)
    np.testing.assert_allclose(out, x, atol=1e-12)


def test_noise_variance_drops():
    rng = np.random.default_rng(1)
    noisy = 100.0 + rng.normal(0, 2.0, (300, 16, 2))
    filt = OneEuroFilter(min_cutoff=1.0, beta=0.01)
    smooth = np.stack([filt(x, i / FPS) for i, x in enumerate(noisy)])
    assert smooth[30:].var() < 0.2 * noisy[30:].var()
    assert abs(smooth[30:].mean() - 100.0) < 0.2


def test_a_step_is_followed():
    filt = OneEuroFilter()
    for i in range(30):
        filt(np.zeros(2), i / FPS)
    outs = [filt(np.full(2, 100.0), 1.0 + i / FPS) for i in range(1, 31)]
    assert 0 < outs[0][0] < 100  # smoothed, not a jump...
    assert outs[-1][0] > 99.0  # ...but caught up within one second


def test_reset_and_repeated_timestamps():
    filt = OneEuroFilter()
    filt(np.zeros(3), 0.0)
    out = filt(np.ones(3), 0.0)  # same timestamp: treated as 1 ms later, no division by zero
    assert np.isfinite(out).all()
    filt.reset()
    np.testing.assert_array_equal(filt(np.full(3, 5.0), 1.0), 5.0)


def test_invalid_parameters_are_refused():
    with pytest.raises(PplEdgeError, match="min_cutoff"):
        OneEuroConfig(min_cutoff=0)
    with pytest.raises(PplEdgeError, match="beta"):
        OneEuroFilter(beta=-1)


def _result(kpts, box):
    n = len(kpts)
    return Result(
        keypoints=kpts,
        keypoints_refined=kpts,
        confidence=np.ones(n),
        plausibility=1.0,
        prototype_ids=np.zeros(2),
        prototype_distances=np.zeros(2),
        edges=(),
        box=box,
    )


def test_pose_smoother_tracks_subjects_and_resets_lost_ones():
    smoother = PoseSmoother(OneEuroConfig(min_cutoff=0.5, beta=0.0))
    left, right = (0, 0, 100, 100), (300, 0, 400, 100)
    a0, b0 = np.full((3, 2), 50.0), np.full((3, 2), 350.0)
    smoother([_result(a0, left), _result(b0, right)], 0.0)
    # Next frame: subjects listed in the other order and both moved by 10 px.
    out = smoother([_result(b0 + 10, right), _result(a0 + 10, left)], 1 / FPS)
    assert 350 < out[0].keypoints[0, 0] < 360 and 50 < out[1].keypoints[0, 0] < 60
    # A subject far from every track starts fresh (no pull towards an old pose).
    far = smoother([_result(np.full((3, 2), 900.0), (850, 850, 950, 950))], 2 / FPS)
    np.testing.assert_array_equal(far[0].keypoints, 900.0)


def test_estimator_smoothing_keeps_a_still_frame_still(tiny_export):
    from ppl_edge.runtime import Estimator

    frame = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    with (
        Estimator(tiny_export, backend="onnxruntime") as raw,
        Estimator(tiny_export, backend="onnxruntime", smooth={"beta": 0.0}) as smooth,
    ):
        want = raw.estimate(frame).keypoints
        for i in range(5):
            got = smooth.estimate(frame, timestamp=i / FPS).keypoints
    np.testing.assert_allclose(got, want, atol=1e-4)
