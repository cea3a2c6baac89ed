"""Preprocessing: letterbox geometry on non-square frames; normalisation = the train transform."""

from __future__ import annotations

import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.preprocess import denormalise, letterbox, normalise, preprocess, resize
from ppl_edge.runtime.manifest import InputSpec

SPEC = InputSpec(
    name="image",
    height=64,
    width=64,
    color="RGB",
    scale=1 / 255,
    mean=(0.5, 0.5, 0.5),
    std=(0.5, 0.5, 0.5),
)
CASES = [  # (frame h, w, box)
    ((360, 640), (0, 0, 640, 360)),  # landscape full frame: pads top and bottom
    ((640, 360), (0, 0, 360, 640)),  # portrait full frame: pads left and right
    ((480, 640), (500, 300, 700, 520)),  # square box partly outside the frame
    ((100, 300), (-40, -20, 60, 80)),  # box over the top-left corner
    ((50, 70), (10, 5, 30, 45)),  # upscaled small box
]


def _blob_frame(h: int, w: int, centre: tuple[float, float], sigma: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    g = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)


def _centroid(img: np.ndarray) -> np.ndarray:
    g = img[..., 0].astype(np.float64)
    g = np.where(g > 0.05 * g.max(), g, 0.0)  # ignore the tails' quantisation
    yy, xx = np.mgrid[0 : g.shape[0], 0 : g.shape[1]]
    return np.array([(g * xx).sum() / g.sum(), (g * yy).sum() / g.sum()])


@pytest.mark.parametrize("shape,box", CASES)
def test_letterbox_map_round_trips(shape, box):
    frame = np.zeros((*shape, 3), np.uint8)
    _, lb = letterbox(frame, box, 64, 64)
    pts = np.random.default_rng(0).uniform(-50, 700, (20, 2)).astype(np.float32)
    np.testing.assert_allclose(lb.to_frame(lb.to_model(pts)), pts, atol=1e-3)


@pytest.mark.parametrize("method", ["fast", "area"])
@pytest.mark.parametrize("shape,box", CASES)
def test_a_frame_point_lands_where_the_map_says(shape, box, method):
    """A blob at a known frame position appears at ``to_model`` of it in the model image."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0)
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, shape[1]), min(y1, shape[0])
    cx, cy = ix0 + 0.4 * (ix1 - ix0), iy0 + 0.6 * (iy1 - iy0)  # inside the visible part
    frame = _blob_frame(*shape, (cx, cy), sigma=side / 12)
    img, lb = letterbox(frame, box, 64, 64, method=method)
    expected = lb.to_model(np.array([cx, cy]))
    np.testing.assert_allclose(_centroid(img), expected, atol=0.35)


def test_landscape_frame_is_centred_with_padding_rows():
    frame = np.full((360, 640, 3), 255, np.uint8)
    img, lb = letterbox(frame, (0, 0, 640, 360), 64, 64, pad_value=7)
    assert lb.offset == (0, 14) and lb.size == (64, 64)
    assert (img[:14] == 7).all() and (img[14 + 36 :] == 7).all() and (img[14:50] == 255).all()
    # The frame's corner pixel centres map inside the model image, symmetric about its centre.
    corners = lb.to_model(np.array([[-0.5, -0.5], [639.5, 359.5]]))
    np.testing.assert_allclose(corners, [[-0.5, 13.5], [63.5, 49.5]], atol=1e-4)


def test_identity_box_is_a_copy_of_the_frame():
    frame = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    img, lb = letterbox(frame, (0, 0, 64, 64), 64, 64)
    np.testing.assert_array_equal(img, frame)
    np.testing.assert_allclose(lb.to_frame(np.array([[3.0, 7.0]])), [[3.0, 7.0]])


def test_empty_or_outside_boxes_are_refused():
    frame = np.zeros((50, 60, 3), np.uint8)
    for box in [(10, 10, 10, 20), (70, 0, 90, 20), (0, -30, 20, -5)]:
        with pytest.raises(PplEdgeError, match="crop box"):
            letterbox(frame, box, 32, 32)


def test_normalise_equals_the_training_transform_and_the_manifest(tiny_export):
    """House style 11: train transform, sidecar and runtime preprocessing agree."""
    pytest.importorskip("torch")
    from ppl_edge.runtime.manifest import load_manifest
    from ppl_edge.train.data.common import image_to_tensor

    spec = load_manifest(tiny_export / "manifest.json").input
    bgr = np.random.default_rng(2).integers(0, 256, (spec.height, spec.width, 3), dtype=np.uint8)
    ours = normalise(bgr[None], spec)[0]
    np.testing.assert_allclose(ours, image_to_tensor(bgr).numpy(), atol=1e-6)
    rgb = bgr[..., ::-1].transpose(2, 0, 1).astype(np.float64)
    contract = (rgb * spec.scale - np.array(spec.mean)[:, None, None]) / np.array(spec.std)[
        :, None, None
    ]
    np.testing.assert_allclose(ours, contract, atol=1e-6)
    np.testing.assert_array_equal(denormalise(ours[None], spec)[0], bgr)


def test_preprocess_batches_one_crop_per_box():
    frame = np.random.default_rng(3).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    x, maps = preprocess(frame, [(0, 0, 160, 120), (10, 10, 50, 90)], SPEC)
    assert x.shape == (2, 3, 64, 64) and x.dtype == np.float32 and x.flags.c_contiguous
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert [m.box for m in maps] == [(0, 0, 160, 120), (10, 10, 50, 90)]


def test_area_resize_is_the_training_transform_and_fast_stays_close():
    pytest.importorskip("torch")
    import cv2

    from ppl_edge.train.data import common

    rng = np.random.default_rng(4)
    frame = cv2.GaussianBlur(rng.integers(0, 256, (480, 480, 3), dtype=np.uint8), (0, 0), 2)
    cv2.circle(frame, (200, 260), 90, (250, 250, 250), 4)
    np.testing.assert_array_equal(resize(frame, 64, 64, "area"), common.resize(frame, 64))
    fast = resize(frame, 64, 64, "fast").astype(int)
    assert np.abs(fast - common.resize(frame, 64)).mean() < 3.0  # grey levels
    small = frame[:100, :100]  # shrinking by < 2: both methods are INTER_AREA
    np.testing.assert_array_equal(resize(small, 64, 64, "fast"), resize(small, 64, 64, "area"))


def test_reused_buffers_give_the_same_input_as_fresh_ones():
    """The estimator's per-frame buffers (model input, letterbox canvas) carry nothing over."""
    spec = InputSpec(height=32, width=32)
    rng = np.random.default_rng(0)
    out = np.full((1, 3, 32, 32), 7.0, np.float32)
    canvas = np.full((32, 32, 3), 200, np.uint8)
    for shape, box in [((48, 64, 3), (0, 0, 64, 48)), ((40, 40, 3), (0, 0, 40, 40))] * 2:
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        want, want_maps = preprocess(frame, [box], spec, 17)
        got, got_maps = preprocess(frame, [box], spec, 17, out=out, canvas=canvas)
        assert got is out and np.array_equal(got, want) and got_maps == want_maps


def test_one_scratch_serves_every_geometry_and_pad_value():
    """The fused path's padded canvas is redrawn when the letterbox geometry or the pad value
    changes, and reused (padding intact) when they repeat: the same input as fresh buffers."""
    from ppl_edge.preprocess import Scratch

    spec = InputSpec(height=32, width=32)
    rng = np.random.default_rng(5)
    out, scratch = np.full((1, 3, 32, 32), 7.0, np.float32), Scratch(32, 32)
    cases = [
        ((200, 300, 3), (0, 0, 300, 200), 17),
        ((200, 300, 3), (0, 0, 300, 200), 17),  # repeated: padding kept from the call before
        ((200, 300, 3), (-50, 20, 250, 190), 17),  # past the frame: other offsets
        ((300, 200, 3), (0, 0, 200, 300), 17),  # portrait: padding left and right
        ((300, 200, 3), (0, 0, 200, 300), 90),  # same geometry, another pad value
        ((200, 300, 3), (0, 0, 300, 200), 90),
    ]
    for shape, box, pad in cases:
        frame = rng.integers(0, 256, shape, dtype=np.uint8)
        want, want_maps = preprocess(frame, [box], spec, pad)
        got, got_maps = preprocess(frame, [box], spec, pad, out=out, scratch=scratch)
        assert 2 * got_maps[0].visible[0] < got_maps[0].source[0]  # the fused path ran
        assert got is out and np.array_equal(got, want) and got_maps == want_maps
        img, _ = letterbox(frame, box, 32, 32, pad_value=pad)
        np.testing.assert_array_equal(got, normalise(img[None], spec))


def test_fused_path_allocates_no_arrays_once_its_buffers_exist():
    """With the estimator's buffers the fused path writes the samples and the model input in
    place: a stream's frames allocate no sample or input arrays."""
    import tracemalloc

    from ppl_edge.preprocess import Scratch

    spec = InputSpec(height=64, width=64)
    frame = np.random.default_rng(6).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    out, scratch = np.empty((1, 3, 64, 64), np.float32), Scratch(64, 64)
    box = [(0, 0, 640, 480)]
    preprocess(frame, box, spec, out=out, scratch=scratch)  # caches and padding drawn once
    tracemalloc.start()
    try:
        preprocess(frame, box, spec, out=out, scratch=scratch)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # OpenCV's own 64 x 64 uint8 resize inside the blob call (12 KiB) is the one transient array;
    # the 128 x 96 samples would add 36 KiB, a new model input 48 KiB
    assert peak < 16384, peak


@pytest.mark.parametrize(
    "boxes",
    [[(0, 0, 5, 5)], [(0.0, 1.5, 5, 5.5)], [[0, 0, 5, 5]], np.array([[0, 0, 5, 5]])],
)
def test_one_plain_box_is_accepted(boxes):
    from ppl_edge.preprocess import check_boxes

    assert [tuple(float(v) for v in b) for b in check_boxes(boxes)] == [
        tuple(float(v) for v in boxes[0])
    ]


@pytest.mark.parametrize(
    "box", [(0, 0, True, 5), (0, 0, float("nan"), 5), (5, 0, 0, 5), (0, 0, 1e9, 5), (0, 0, 5)]
)
def test_one_bad_box_is_refused(box):
    from ppl_edge.preprocess import BadFrameError, check_boxes

    with pytest.raises(BadFrameError):
        check_boxes([box])


@pytest.mark.parametrize("std", [(0.25,) * 3, (0.229, 0.224, 0.225)])
@pytest.mark.parametrize("color", ["RGB", "BGR"])
def test_one_image_fast_path_equals_the_per_channel_form(color, std):
    """normalise of one uint8 image (one OpenCV call) equals the per-channel NumPy form of a
    batch, with distinct channel means (and stds), within 1e-6."""
    spec = InputSpec(height=16, width=24, color=color, mean=(0.2, 0.5, 0.7), std=std)
    imgs = np.random.default_rng(1).integers(0, 256, (2, 16, 24, 3), dtype=np.uint8)
    batch = normalise(imgs, spec)  # B = 2: the per-channel form
    for b in range(2):
        np.testing.assert_allclose(normalise(imgs[b : b + 1], spec)[0], batch[b], atol=1e-6)


@pytest.mark.parametrize("ratio", [3, 5, 7])
def test_fast_resize_at_an_odd_ratio_equals_the_bilinear_first_stage(ratio):
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(ratio)
    width, height = 16, 12
    img = rng.integers(0, 256, (2 * height * ratio, 2 * width * ratio, 3), dtype=np.uint8)
    half = cv2.resize(img, (2 * width, 2 * height), interpolation=cv2.INTER_LINEAR)
    expected = cv2.resize(half, (width, height), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(resize(img, width, height, "fast"), expected)


@pytest.mark.parametrize(
    "shape,box",
    [
        ((480, 640), (0, 0, 640, 480)),  # odd ratio: nearest-exact first stage, padded
        ((720, 1280), (0, 0, 1280, 720)),  # even ratio: bilinear first stage
        ((480, 640), (-100, 50, 500, 600)),  # past the frame, padded on three sides
        ((400, 400), (0, 0, 400, 400)),  # no padding at all
    ],
)
@pytest.mark.parametrize("color", ["RGB", "BGR"])
def test_shrink_and_normalise_in_one_step_is_letterbox_then_normalise(shape, box, color):
    """The fused path of preprocess gives the same bits as the general letterbox + normalise."""
    spec = InputSpec(height=64, width=64, color=color, mean=(0.4, 0.5, 0.6), std=(0.25,) * 3)
    frame = np.random.default_rng(3).integers(0, 256, (*shape, 3), dtype=np.uint8)
    x, (lb,) = preprocess(frame, [box], spec, pad_value=17)
    assert lb.visible[0] * 2 < lb.source[0]  # the fused path applies
    img, ref_lb = letterbox(frame, box, 64, 64, pad_value=17)
    np.testing.assert_array_equal(x, normalise(img[None], spec))
    assert lb == ref_lb


def test_opencv_threads_are_set_for_the_block_and_restored():
    import cv2

    from ppl_edge.resize import opencv_threads

    before = cv2.getNumThreads()
    with opencv_threads(1):
        assert cv2.getNumThreads() == 1
    assert cv2.getNumThreads() == before
    with opencv_threads(None):
        assert cv2.getNumThreads() == before
    with pytest.raises(PplEdgeError, match="threads must be >= 1, got 0"), opencv_threads(0):
        pass
