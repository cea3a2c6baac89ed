"""Engine batch limits: the optimisation profile read from the engine (TensorRT 10 and 8.6 query
names), every batch checked before set_input_shape (whose refusal is checked too), and the
estimator splitting a larger batch into chunks of the engine's range. TensorRT is not installed
here: engines, contexts and CUDA are stand-ins with the attributes the code uses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime import Estimator
from ppl_edge.runtime.backends import tensorrt
from ppl_edge.runtime.backends.base import TensorSpec
from ppl_edge.runtime.backends.trt_profile import (
    BatchProfile,
    batch_profile,
    check_batch,
    input_names,
    set_input_shape,
)
from ppl_edge.runtime.batching import batch_limits, run_in_chunks

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "ppl-small-humanoid"
INPUT, OUTPUT = "in", "out"


class Engine10:
    """An engine of TensorRT 10: name-based profile query."""

    def __init__(self, shapes: dict, profiles: dict, outputs: dict | None = None):
        self.shapes, self.profiles, self.outputs = shapes, profiles, outputs or {}
        self.names = [*shapes, *self.outputs]
        self.num_io_tensors = len(self.names)

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return INPUT if name in self.shapes else OUTPUT

    def get_tensor_shape(self, name):
        return self.shapes.get(name) or self.outputs[name]

    def get_tensor_profile_shape(self, name, profile):
        assert profile == 0
        return self.profiles[name]


class Engine86(Engine10):
    """An engine of older 8.x bindings: only ``get_profile_shape(profile, binding)``."""

    get_tensor_profile_shape = None

    def get_profile_shape(self, profile, name):
        assert profile == 0
        return self.profiles[name]


class Context:
    def __init__(self, accept: bool = True):
        self.accept, self.calls = accept, []

    def set_input_shape(self, name, shape):
        self.calls.append((name, shape))
        return self.accept


def _image_engine(cls=Engine10, lo=1, opt=4, hi=8):
    shape = lambda b: (b, 3, 64, 64)
    return cls({"image": (-1, 3, 64, 64)}, {"image": (shape(lo), shape(opt), shape(hi))})


@pytest.mark.parametrize("cls", [Engine10, Engine86])
def test_profile_is_read_from_the_engine_on_trt10_and_trt86(cls):
    engine = _image_engine(cls, 2, 4, 16)
    assert input_names(engine, INPUT) == ["image"]
    assert batch_profile(engine, ["image"], "k.engine") == BatchProfile(2, 4, 16)


def test_profile_of_several_inputs_is_their_common_range_and_fixed_batches_count():
    pts = lambda b: (b, 16, 2)
    img = lambda b: (b, 3, 64, 64)
    engine = Engine10(
        {"image": (-1, 3, 64, 64), "keypoints": (-1, 16, 2)},
        {"image": (img(1), img(4), img(8)), "keypoints": (pts(2), pts(2), pts(6))},
    )
    assert batch_profile(engine, ["image", "keypoints"], "r.engine") == BatchProfile(2, 4, 6)
    fixed = Engine10({"image": (4, 3, 64, 64)}, {})
    assert batch_profile(fixed, ["image"], "f.engine") == BatchProfile(4, 4, 4)
    apart = Engine10(
        {"image": (-1, 3, 64, 64), "keypoints": (-1, 16, 2)},
        {"image": (img(1), img(1), img(2)), "keypoints": (pts(4), pts(4), pts(8))},
    )
    with pytest.raises(PplEdgeError, match="share no batch size") as err:
        batch_profile(apart, ["image", "keypoints"], "bad.engine")
    assert "\n" not in str(err.value)


def test_a_batch_outside_the_profile_is_one_line_before_set_input_shape():
    context, profile = Context(), BatchProfile(1, 4, 8)
    set_input_shape(context, "image", (8, 3, 64, 64), profile, "k.fp16.engine")
    assert context.calls == [("image", (8, 3, 64, 64))]
    for batch in (9, 0):
        with pytest.raises(PplEdgeError) as err:
            set_input_shape(context, "image", (batch, 3, 64, 64), profile, "k.fp16.engine")
        message = str(err.value)
        assert f"batch of {batch}" in message and "1..8" in message and "k.fp16.engine" in message
        assert "\n" not in message
    assert len(context.calls) == 1  # refused batches never reached TensorRT
    with pytest.raises(PplEdgeError, match="takes 2..2"):
        check_batch(BatchProfile(2, 2, 2), "image", (1, 3, 64, 64), "fixed.engine")


def test_set_input_shape_refusal_by_tensorrt_is_reported():
    with pytest.raises(PplEdgeError, match="TensorRT refused input 'image' of shape"):
        set_input_shape(Context(accept=False), "image", (2, 3, 64, 64), BatchProfile(1, 1, 8), "e")


def test_run_in_chunks_keeps_every_call_in_range_and_the_order():
    seen = []

    def run(feeds):
        seen.append(len(feeds["x"]))
        assert len(feeds["x"]) == len(feeds["y"])
        return {"z": feeds["x"] * 10 + feeds["y"]}

    x, y = np.arange(11.0)[:, None], np.ones((11, 1))
    out = run_in_chunks(run, {"x": x, "y": y}, 4, 4)
    assert seen == [4, 4, 4]  # 4 + 4 + 3 padded to 4
    np.testing.assert_array_equal(out["z"], x * 10 + 1)
    seen.clear()
    assert run_in_chunks(run, {"x": x[:3], "y": y[:3]}, 1, 8)["z"].shape == (3, 1)
    assert seen == [3]
    with pytest.raises(PplEdgeError, match="one batch size"):
        run_in_chunks(run, {"x": x, "y": y[:2]}, 1, 4)


class _Cuda:
    """pycuda.driver as far as TensorRTBackend.run uses it."""

    def memcpy_htod_async(self, dev, host, stream):
        dev[: host.size] = host

    def memcpy_dtoh_async(self, host, dev, stream):
        host[:] = dev[: host.size]


class _Stream:
    handle = 0

    def synchronize(self):
        pass


class _Ctx:
    def push(self):
        pass

    def pop(self):
        pass


class _DoublingContext(Context):
    """An execution context whose engine doubles its input."""

    def __init__(self, buffers):
        super().__init__()
        self.buffers, self.shape = buffers, None

    def set_input_shape(self, name, shape):
        self.shape = shape
        return super().set_input_shape(name, shape)

    def get_tensor_shape(self, name):
        return self.shape

    def execute_async_v3(self, handle):
        n = int(np.prod(self.shape))
        self.buffers["out"][1][:n] = 2 * self.buffers["image"][1][:n]
        return True


def _backend(profile: BatchProfile):
    """A TensorRTBackend opened on stand-ins (no GPU): buffers for batch <= profile.max."""
    backend = object.__new__(tensorrt.TensorRTBackend)
    size = profile.max * 3 * 4 * 4
    buffers = {
        n: (np.zeros(size, np.float32), np.zeros(size, np.float32)) for n in ("image", "out")
    }
    spec = (None, 3, 4, 4)
    backend.path = Path("keypoints_trt.fp16.engine")
    backend._inputs = [TensorSpec("image", spec, np.dtype(np.float32))]
    backend._outputs = [TensorSpec("out", spec, np.dtype(np.float32))]
    backend._buffers, backend._cuda, backend._stream = buffers, _Cuda(), _Stream()
    backend._ctx, backend._lock = _Ctx(), __import__("threading").Lock()
    backend._context, backend.batch_profile = _DoublingContext(buffers), profile
    return backend


def test_tensorrt_backend_runs_within_its_profile_and_refuses_outside_it():
    backend = _backend(BatchProfile(1, 2, 4))
    assert backend.batch_range == (1, 4)
    x = np.random.default_rng(0).random((3, 3, 4, 4), dtype=np.float32)
    np.testing.assert_allclose(backend.run({"image": x})["out"], 2 * x)
    with pytest.raises(PplEdgeError, match=r"batch of 5 .* takes 1..4"):
        backend.run({"image": np.zeros((5, 3, 4, 4), np.float32)})
    assert [c[1][0] for c in backend._context.calls] == [3]
    low, high = batch_limits(backend, 64)
    out = run_in_chunks(backend.run, {"image": np.concatenate([x, x, x])}, low, high)
    np.testing.assert_allclose(out["out"], 2 * np.concatenate([x, x, x]))
    assert [c[1][0] for c in backend._context.calls] == [3, 4, 4, 1]


class _Profiled:
    """A backend proxy with an engine's batch range, recording the batches it is given."""

    def __init__(self, inner, low, high):
        self.inner, self.batch_range, self.batches = inner, (low, high), []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def run(self, feeds):
        batch = len(next(iter(feeds.values())))
        assert self.batch_range[0] <= batch <= self.batch_range[1]
        self.batches.append(batch)
        return self.inner.run(feeds)


def test_estimator_splits_many_subjects_into_chunks_of_the_engines_range(monkeypatch):
    from ppl_edge.runtime import estimator as module

    opened = module.open_checked
    monkeypatch.setattr(module, "open_checked", lambda *a, **k: _Profiled(opened(*a, **k), 2, 2))
    frame = np.random.default_rng(1).integers(0, 256, (120, 200, 3), dtype=np.uint8)
    boxes = [(0, 0, 60, 60), (100, 20, 190, 110), (30, 50, 90, 120)]
    with Estimator(SHIPPED, backend="onnxruntime", threads=1, verify=False) as est:
        assert (est.min_batch, est.max_batch) == (2, 2)
        results = est(frame, boxes=boxes)
        assert est.backend.batches == [2, 2]  # 2 + 1 padded to the engine's minimum
        singles = [est(frame, boxes=[b])[0] for b in boxes]
    for many, one in zip(results, singles):
        np.testing.assert_allclose(many.keypoints, one.keypoints, atol=1e-3)
