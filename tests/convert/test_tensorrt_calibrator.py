"""INT8 calibration without a GPU: image discovery, preprocessing identical to the runtime's,
batching, the calibrator's batch cursor and cache handling (device copy injected)."""

from __future__ import annotations

import types

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from ppl_edge.convert import calibrator as calib
from ppl_edge.errors import PplEdgeError


def manifest_document(size: int = 16) -> dict:
    """A minimal valid export manifest (docs/contracts.md)."""
    return {
        "format": "ppl-edge-export",
        "format_version": 1,
        "input": {
            "name": "image",
            "height": size,
            "width": size,
            "layout": "NCHW",
            "color": "RGB",
            "scale": 1 / 255,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
        },
        "keypoints": {"count": 1, "names": ["a"], "coords": "xy_norm"},
        "skeleton": {"edges": [], "weights": []},
        "memory": {"banks": 3, "entries": 5, "dim": 16, "distance_reference": 1.0},
        "artifacts": {},
    }


def write_images(folder, count: int, size=(24, 32)) -> list:
    """PNG files whose pixels are (blue, green, red) = (10 i, 100, 200)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image = np.zeros((*size, 3), np.uint8)
        image[:] = (10 * i, 100, 200)
        path = folder / f"img{i:03d}.png"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


def test_discovery_is_recursive_sorted_and_ignores_other_files(tmp_path):
    write_images(tmp_path / "b", 2)
    write_images(tmp_path / "a", 1)
    (tmp_path / "a" / "labels.csv").write_text("x")
    (tmp_path / "upper.JPG").write_bytes(
        cv2.imencode(".jpg", np.zeros((4, 4, 3), np.uint8))[1].tobytes()
    )
    found = calib.find_calibration_images(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a/img000.png",
        "b/img000.png",
        "b/img001.png",
        "upper.JPG",
    ]


def test_discovery_limit_spreads_evenly(tmp_path):
    paths = write_images(tmp_path, 10, size=(4, 4))
    assert calib.find_calibration_images(tmp_path, limit=4) == [paths[i] for i in (0, 3, 6, 9)]


@pytest.mark.parametrize(
    "kind, message",
    [("missing", "does not exist"), ("file", "is a file"), ("empty", "holds no images")],
)
def test_malformed_calibration_folders_are_refused(tmp_path, kind, message):
    target = tmp_path / "calib"
    if kind == "file":
        target.write_text("x")
    elif kind == "empty":
        target.mkdir()
        (target / "readme.txt").write_text("x")
    with pytest.raises(PplEdgeError, match=message):
        calib.find_calibration_images(target)


def test_batches_match_the_runtime_preprocessing(tmp_path):
    from ppl_edge.preprocess import preprocess

    paths = write_images(tmp_path, 5)
    spec = calib.input_spec(manifest_document(16))
    batches = calib.CalibrationBatches(paths, spec, batch_size=2)
    assert len(batches) == 2 and batches.shape == (2, 3, 16, 16)  # the 5th image is dropped
    got = list(batches)
    assert [b.shape for b in got] == [(2, 3, 16, 16)] * 2
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in got)
    frame = cv2.imread(str(paths[3]))
    expected, _ = preprocess(frame, [(0, 0, 32, 24)], spec)
    np.testing.assert_array_equal(got[1][1], expected[0])
    # Letterboxed 32x24 -> 16x12 centred: the middle row holds RGB (200, 100, 30) normalised.
    np.testing.assert_allclose(
        got[1][1][:, 8, 8], (np.array([200, 100, 30]) / 255 - 0.5) / 0.5, atol=1e-6
    )


def test_batch_size_shrinks_to_the_image_count(tmp_path):
    batches = calib.CalibrationBatches(
        write_images(tmp_path, 3), calib.input_spec(manifest_document()), 8
    )
    assert batches.batch_size == 3 and len(batches) == 1
    with pytest.raises(PplEdgeError, match=">= 1"):
        calib.CalibrationBatches(
            write_images(tmp_path, 1), calib.input_spec(manifest_document()), 0
        )


def test_undecodable_image_and_missing_manifest(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    spec = calib.input_spec(manifest_document())
    with pytest.raises(PplEdgeError, match="cannot decode calibration image"):
        list(calib.CalibrationBatches([bad], spec, 1))
    with pytest.raises(PplEdgeError, match="needs the export manifest"):
        calib.input_spec(None)


def test_session_serves_batches_then_stops_and_writes_the_cache(tmp_path):
    uploaded = []

    def upload(batch):  # stands in for the host-to-device copy: records what TensorRT would read
        uploaded.append(batch.copy())
        return 0x1000 + len(uploaded)

    batches = calib.CalibrationBatches(
        write_images(tmp_path / "img", 4), calib.input_spec(manifest_document()), 2
    )
    cache_file = tmp_path / "cache" / "model.calib"
    session = calib.CalibrationSession(batches, cache_file, upload)
    assert session.batch_size == 2
    assert session.read_cache() is None  # no cache yet: TensorRT calibrates
    assert session.get_batch(["image"]) == [0x1001]
    assert session.get_batch(["image"]) == [0x1002]
    assert session.get_batch(["image"]) is None
    assert [b.shape for b in uploaded] == [(2, 3, 16, 16)] * 2
    with pytest.raises(PplEdgeError, match="one network input"):
        session.get_batch(["image", "other"])
    session.write_cache(memoryview(b"TRT-calibration-table"))
    assert cache_file.read_bytes() == b"TRT-calibration-table"
    assert [p.name for p in cache_file.parent.iterdir()] == [
        "model.calib"
    ]  # atomic, no temporaries
    reused = calib.CalibrationSession(None, cache_file, upload)
    assert reused.read_cache() == b"TRT-calibration-table" and reused.get_batch(["image"]) is None


def test_session_needs_images_or_a_cache(tmp_path):
    with pytest.raises(PplEdgeError, match="calibration images"):
        calib.CalibrationSession(None, tmp_path / "missing.calib", lambda b: 0)


def test_digest_depends_on_content(tmp_path):
    paths = write_images(tmp_path, 2)
    first = calib.images_digest(paths)
    cv2.imwrite(str(paths[1]), np.full((24, 32, 3), 7, np.uint8))
    assert calib.images_digest(paths) != first


def test_tensorrt_without_implicit_int8_is_refused(tmp_path):
    tensorrt_11 = types.SimpleNamespace(__version__="11.0.0")  # the module surface TensorRT 11 has
    session = calib.CalibrationSession(None, write_cache(tmp_path), lambda b: 0)
    with pytest.raises(PplEdgeError, match="removed in TensorRT 11"):
        calib.make_calibrator(tensorrt_11, session)


def write_cache(tmp_path):
    path = tmp_path / "x.calib"
    path.write_bytes(b"table")
    return path
