"""The TensorRT engine cache: keys, file names, lookup / invalidation, sidecars for the runtime."""

from __future__ import annotations

import ctypes
import dataclasses
import json
import logging

import pytest

from ppl_edge.convert import engine_cache as cache
from ppl_edge.errors import PplEdgeError


def make_key(**changes) -> cache.EngineKey:
    fields = {
        "model_stem": "keypoints_trt",
        "onnx_sha256": "abcdef0123456789" * 4,
        "precision": "fp16",
        "nn": "plugin",
        "plugin_version": "1",
        "plugin_sha256": "11" * 32,
        "min_batch": 1,
        "opt_batch": 2,
        "max_batch": 8,
        "height": 64,
        "width": 64,
        "gpu_name": "Orin",
        "sm": "sm87",
        "trt_version": "10.3.0",
    }
    fields.update(changes)
    return cache.EngineKey(**fields)


def manifest_document(size: int = 64) -> dict:
    """A minimal valid export manifest (docs/contracts.md)."""
    return {
        "format": "ppl-edge-export",
        "format_version": 1,
        "ppl_edge_version": "0.1.0",
        "model": {"name": "toy", "preset": "tiny", "checkpoint_sha256": "0" * 64},
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
        "keypoints": {"count": 2, "names": ["a", "b"], "coords": "xy_norm"},
        "skeleton": {"edges": [[0, 1]], "weights": [1.0]},
        "memory": {"banks": 3, "entries": 5, "dim": 16, "distance_reference": 1.0},
        "batch": {"dynamic": True, "max": 64},
        "opset": 18,
        "precision": "fp32",
        "artifacts": {"keypoints": {"file": "keypoints.onnx", "sha256": ""}},
    }


def test_file_name_carries_the_key():
    assert make_key().file_name == "keypoints_trt-abcdef01.fp16.b1-8.64x64.plugin1.engine"
    native = make_key(
        model_stem="keypoints",
        nn="native",
        plugin_version=None,
        plugin_sha256=None,
        precision="int8",
        height=32,
        width=48,
    )
    assert native.file_name == "keypoints-abcdef01.int8.b1-8.32x48.native.engine"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"precision": "fp8"}, "unknown precision 'fp8'; choose one of fp32, fp16, int8"),
        ({"nn": "cuda"}, "unknown nn 'cuda'; choose one of plugin, native"),
        ({"plugin_version": None}, "plugin_version must be set"),
        ({"nn": "native"}, "plugin_version must be set"),
        ({"min_batch": 4, "opt_batch": 2}, "1 <= min <= opt <= max"),
        ({"height": 0}, "input size must be positive"),
    ],
)
def test_key_rejects_inconsistent_fields(changes, message):
    with pytest.raises(PplEdgeError, match=message):
        make_key(**changes)


def test_cache_root_follows_xdg(tmp_path, monkeypatch):
    assert cache.cache_root({"XDG_CACHE_HOME": str(tmp_path)}) == tmp_path / "ppl-edge" / "engines"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache.cache_root({}) == tmp_path / ".cache" / "ppl-edge" / "engines"
    key = make_key()
    assert cache.engine_path(key, tmp_path) == tmp_path / "sm87" / "10.3.0" / key.file_name
    assert cache.timing_cache_path(key, tmp_path) == tmp_path / "sm87" / "10.3.0" / "timing.cache"


def test_store_then_lookup_hits_and_writes_no_temporaries(tmp_path):
    key = make_key()
    assert cache.lookup(key, tmp_path) is None
    path = cache.store(key, b"engine-bytes", {"build_seconds": 1.0}, manifest_document(), tmp_path)
    assert cache.lookup(key, tmp_path) == path
    assert path.read_bytes() == b"engine-bytes"
    doc = json.loads(cache.sidecar_path(path).read_text())
    assert doc["format"] == cache.FORMAT and doc["key"] == key.as_dict()
    assert doc["manifest"]["format"] == "ppl-edge-export"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, path.name + ".json"]


@pytest.mark.parametrize(
    "field, value",
    [
        ("opt_batch", 4),
        ("trt_version", "10.7.0"),
        ("plugin_sha256", "22" * 32),
        ("sm", "sm86"),
        ("gpu_name", "RTX 4090"),
        ("calibration", "33" * 32),
    ],
)
def test_any_key_change_is_a_miss(tmp_path, field, value, caplog):
    cache.store(make_key(), b"engine", {}, None, tmp_path)
    changed = dataclasses.replace(make_key(), **{field: value})
    with caplog.at_level(logging.INFO, logger="ppl_edge.convert.engine_cache"):
        assert cache.lookup(changed, tmp_path) is None
    if cache.engine_path(changed, tmp_path) == cache.engine_path(make_key(), tmp_path):
        assert f"built with different {field}" in caplog.text  # same file, stale sidecar
    else:
        assert "not built yet" in caplog.text  # another folder (sm, TensorRT version)


def test_modified_or_orphaned_engine_is_stale(tmp_path):
    key = make_key()
    path = cache.store(key, b"engine", {}, None, tmp_path)
    path.write_bytes(b"tampered")
    assert cache.lookup(key, tmp_path) is None
    cache.sidecar_path(path).unlink()  # an engine without its sidecar (interrupted write)
    path.write_bytes(b"engine")
    assert cache.lookup(key, tmp_path) is None
    for text in ("{not json", "[]"):
        cache.sidecar_path(path).write_text(text)
        assert cache.lookup(key, tmp_path) is None


def test_invalidate_removes_engine_and_sidecar(tmp_path):
    key = make_key()
    path = cache.store(key, b"engine", {}, None, tmp_path)
    assert cache.invalidate(key, tmp_path) is True
    assert not path.exists() and not cache.sidecar_path(path).exists()
    assert cache.invalidate(key, tmp_path) is False
    assert cache.lookup(key, tmp_path) is None


def test_entries_lists_cached_engines(tmp_path):
    first = cache.store(make_key(), b"a", {}, None, tmp_path)
    second = cache.store(make_key(precision="fp32"), b"b", {}, None, tmp_path)
    (tmp_path / "sm87" / "10.3.0" / "junk.engine.json").write_text("[]")
    assert sorted(e["path"] for e in cache.entries(tmp_path)) == sorted([str(first), str(second)])


def test_published_engine_resolves_in_the_runtime(tmp_path):
    from ppl_edge.runtime.manifest import resolve_model

    key = make_key()
    cached = cache.store(key, b"engine", {}, manifest_document(), tmp_path / "cache")
    copy = cache.publish(cached, tmp_path / "out", "keypoints_trt.fp16.engine", manifest_document())
    assert copy.read_bytes() == b"engine"
    files = resolve_model(copy)  # the runtime reads the sidecar's manifest to preprocess frames
    assert files.engine == copy and files.manifest.input.height == 64
    # Built without a manifest at hand, but with manifest.json beside the copy: a relative path.
    (tmp_path / "out" / "manifest.json").write_text(json.dumps(manifest_document(32)))
    relative = cache.publish(cached, tmp_path / "out", "k.engine", "manifest.json")
    assert json.loads(cache.sidecar_path(relative).read_text())["manifest"] == "manifest.json"
    assert resolve_model(relative).manifest.input.height == 32


def test_probe_gpu_without_driver_names_what_is_missing():
    try:
        ctypes.CDLL("libcuda.so.1")
    except OSError:
        with pytest.raises(PplEdgeError) as err:
            cache.probe_gpu()
        assert str(err.value) == (
            "no NVIDIA GPU/driver found (libcuda.so.1 missing): TensorRT engines "
            "must be built on the target device"
        )
        return
    pytest.skip("libcuda.so.1 is present: the no-driver message cannot be checked here")
