"""Faults around ``ppl-edge convert`` publishing an export folder: stale artifacts of an earlier
export, a kill at any moment (SIGKILL), a parent folder that cannot be written. Each case ends in
one line (exit 1) or correct behaviour, never a traceback; the output folder is always a complete
export (the old one or the new one, never a mix) and leftovers of killed exports are removed."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("onnxsim")

from ppl_edge.checkpoint import model_tensors, save_checkpoint
from ppl_edge.cli import main
from ppl_edge.convert import publish
from ppl_edge.convert.manifest import read_manifest, remove_leftovers, staged_output
from ppl_edge.errors import PplEdgeError
from ppl_edge.manifest import sha256_path, write_manifest
from ppl_edge.runtime.manifest import resolve_model

ROOT = Path(__file__).resolve().parents[2]
EXPORT_FILES = {"manifest.json", "keypoints.onnx", "refine.onnx", "memory.onnx"}


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    for needle in needles:
        assert needle in line, line
    return line


def _convert(ckpt: Path, out: Path) -> int:
    return main(["-q", "convert", "--checkpoint", str(ckpt), "--out", str(out), "--nn", "native"])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model) -> Path:
    torch.set_num_threads(1)
    ckpt = tmp_path_factory.mktemp("ckpt") / "tiny.safetensors"
    meta = {"config": {"data": "synthetic:humanoid"}}
    save_checkpoint(ckpt, model_tensors(tiny_model), dataclasses.asdict(tiny_model.cfg), meta)
    return ckpt


def _stale_engine(folder: Path, onnx_sha256: str) -> Path:
    """An engine with the sidecar a build writes, built from the graph with ``onnx_sha256``."""
    engine = folder / "keypoints_trt.fp16.engine"
    engine.write_bytes(b"an engine of another model")
    sidecar = {"format": "ppl-edge-engine", "key": {"onnx_sha256": onnx_sha256},
               "engine_sha256": sha256_path(engine)}  # fmt: skip
    engine.with_name(engine.name + ".json").write_text(json.dumps(sidecar))
    return engine


@pytest.fixture(scope="module")
def converted(tmp_path_factory, tiny_export_memory, checkpoint) -> Path:
    """``convert --out exp`` into an earlier export of another model that also holds a stale
    engine and Core ML package (listed nowhere), a user's notes and a folder of theirs."""
    exp = tmp_path_factory.mktemp("exports") / "exp"
    shutil.copytree(tiny_export_memory, exp)
    _stale_engine(exp, "ab" * 32)
    (exp / "old.mlpackage" / "Data").mkdir(parents=True)
    (exp / "old.mlpackage" / "Data" / "model.mlmodel").write_bytes(b"stale")
    (exp / "notes.txt").write_text("mine")
    (exp / "extras").mkdir()
    (exp / "extras" / "readme.md").write_text("also mine")
    files = resolve_model(exp)  # never paired with the manifest: listed nowhere, another model
    assert files.engine is None and files.mlpackage is None
    assert _convert(checkpoint, exp) == 0
    return exp


def test_convert_into_an_old_export_leaves_no_foreign_artifact(converted):
    assert {p.name for p in converted.iterdir()} == EXPORT_FILES | {"notes.txt", "extras"}
    assert (converted / "notes.txt").read_text() == "mine"
    assert (converted / "extras" / "readme.md").read_text() == "also mine"
    read_manifest(converted)  # every artifact present and matching its sha256
    files = resolve_model(converted)
    assert files.engine is None and files.mlpackage is None
    assert files.onnx == converted / "keypoints.onnx"
    assert [p.name for p in converted.parent.iterdir()] == ["exp"]  # no staging leftovers


def test_an_unlisted_engine_pairs_only_through_a_sidecar_naming_the_model(converted, tmp_path):
    folder = tmp_path / "exp"
    shutil.copytree(converted, folder)
    manifest = read_manifest(folder, check_files=False)
    engine = _stale_engine(folder, "cd" * 32)
    assert resolve_model(folder).engine is None
    _stale_engine(folder, manifest["artifacts"]["keypoints"]["sha256"])  # built from our graph
    assert resolve_model(folder).engine == engine


def _kill_script(exp: Path, at: str) -> str:
    """Python code that replaces ``exp`` with a copy of it named "new" through staged_output and
    SIGKILLs itself at ``at``: "writing" (staging half written), "swap" (just before the folders
    are exchanged) or "swapped" (just after, before the old folder is removed)."""
    return textwrap.dedent(
        f"""
        import json, os, shutil, signal
        from pathlib import Path
        from ppl_edge.convert import publish
        from ppl_edge.manifest import write_manifest

        exp, at = Path({str(exp)!r}), {at!r}
        die = lambda: os.kill(os.getpid(), signal.SIGKILL)
        exchange = publish._exchange

        def patched(a, b):
            if at == "swap":
                die()
            done = exchange(a, b)
            if at == "swapped":
                die()
            return done

        publish._exchange = patched
        with publish.staged_output(exp) as staging:
            for name in ("keypoints.onnx", "refine.onnx"):
                shutil.copy(exp / name, staging / name)
            if at == "writing":
                die()
            shutil.copy(exp / "memory.onnx", staging / "memory.onnx")
            document = json.loads((exp / "manifest.json").read_text())
            document["model"]["name"] = "new"
            write_manifest(staging / "manifest.json", document)
        """
    )


def _can_exchange(tmp: Path) -> bool:
    a, b = tmp / "a", tmp / "b"
    a.mkdir()
    b.mkdir()
    try:
        return publish._exchange(a, b)
    finally:
        a.rmdir()
        b.rmdir()


@pytest.mark.parametrize("at", ["writing", "swap", "swapped"])
def test_sigkill_during_publication_leaves_a_complete_export(converted, tmp_path, at):
    if at != "writing" and not _can_exchange(tmp_path):
        pytest.skip("no atomic exchange of folders on this system (the fallback renames twice)")
    exp = tmp_path / "exp"
    shutil.copytree(converted, exp)
    old_name = read_manifest(exp)["model"]["name"]
    proc = subprocess.run([sys.executable, "-c", _kill_script(exp, at)], timeout=120)
    assert proc.returncode == -signal.SIGKILL
    document = read_manifest(exp)  # complete: every listed file there and intact
    assert document["model"]["name"] == ("new" if at == "swapped" else old_name)
    assert {p.name for p in exp.iterdir()} == EXPORT_FILES | {"notes.txt", "extras"}
    assert (exp / "notes.txt").read_text() == "mine"
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".exp.staging-")]
    assert len(leftovers) == 1
    with staged_output(tmp_path / "other") as staging:  # any export into the same parent
        (staging / "a.onnx").write_bytes(b"a")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp", "other"]


def _locker(folder: Path) -> subprocess.Popen:
    """A process holding the flock a running export holds on its staging folder."""
    code = (
        "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
        "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"locked"
    return proc


def test_leftovers_of_killed_exports_are_removed_and_running_ones_kept(tmp_path):
    dead = tmp_path / ".exp.staging-999999999-abcd1234"  # a killed export (and its .old backups)
    (dead / ".old.refine.onnx").parent.mkdir()
    (dead / ".old.refine.onnx").write_bytes(b"old")
    legacy = tmp_path / ".exp.staging-k3j4h5g6"  # made before staging folders were locked
    legacy.mkdir()
    replaced = tmp_path / ".other.replaced-123-q1w2e3r4"
    replaced.mkdir()
    running = tmp_path / f".exp.staging-{os.getpid()}-zzzz9999"
    running.mkdir()
    keep = [tmp_path / ".exp.cache", tmp_path / "exp.staging-1-x", tmp_path / "exp"]
    for path in keep:
        path.mkdir()
    locker = _locker(running)
    try:
        removed = remove_leftovers(tmp_path)
    finally:
        locker.kill()
        locker.wait()
    assert sorted(removed) == sorted([dead, legacy, replaced])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [running, *keep])


def test_a_killed_convert_is_cleaned_by_the_next_one_which_keeps_listed_artifacts(
    converted, checkpoint, tmp_path
):
    """SIGKILL a real ``convert`` while it writes its graphs, then convert again into the same
    parent: the leftover goes, and a Core ML package the previous export (same checkpoint) lists
    is kept, linked into the new folder."""
    exp = tmp_path / "exp"
    shutil.copytree(converted, exp)
    package = exp / "keypoints.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Data" / "weights.bin").write_bytes(b"weights")
    document = read_manifest(exp)
    document["artifacts"]["coreml"] = {"file": package.name, "sha256": sha256_path(package)}
    write_manifest(exp / "manifest.json", document)
    kill = textwrap.dedent(
        f"""
        import os, signal, sys
        import ppl_edge.convert.onnx_export as onnx_export
        from ppl_edge.cli import main

        onnx_export.export_graphs = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
        main(["convert", "--checkpoint", {str(checkpoint)!r}, "--out", {str(exp)!r}])
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", kill], timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == -signal.SIGKILL
    assert any(p.name.startswith(".exp.staging-") for p in tmp_path.iterdir())
    assert read_manifest(exp)["artifacts"].keys() == document["artifacts"].keys()  # untouched
    assert _convert(checkpoint, exp) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]
    after = read_manifest(exp)  # and every listed file matches its sha256
    assert after["artifacts"]["coreml"] == document["artifacts"]["coreml"]
    assert (exp / "keypoints.mlpackage" / "Data" / "weights.bin").read_bytes() == b"weights"


class _NoAccess:
    """``os`` for the publishing module, in a folder it may not write into."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def access(*args, **kwargs) -> bool:
        return False


def _unwritable_mkdtemp(real):
    def mkdtemp(*args, prefix=None, **kwargs):
        if prefix and ".staging-" in prefix:
            raise PermissionError(13, "Permission denied", kwargs.get("dir"))
        return real(*args, prefix=prefix, **kwargs)

    return mkdtemp


def test_a_read_only_parent_is_one_line_and_touches_nothing(
    converted, checkpoint, tmp_path, capsys, monkeypatch
):
    """``--out P/exp`` where P cannot be written (simulated: chmod has no effect for root)."""
    parent = tmp_path / "P"
    exp = parent / "exp"
    shutil.copytree(converted, exp)
    before = {p.name: p.stat().st_mtime_ns for p in exp.iterdir()}
    monkeypatch.setattr(publish.tempfile, "mkdtemp", _unwritable_mkdtemp(publish.tempfile.mkdtemp))
    t0 = time.perf_counter()
    assert _convert(checkpoint, exp) == 1
    _one_line_error(capsys, "cannot write beside the output folder", "Permission denied")
    assert {p.name: p.stat().st_mtime_ns for p in exp.iterdir()} == before
    assert [p.name for p in parent.iterdir()] == ["exp"]
    monkeypatch.setattr(publish, "os", _NoAccess())  # found before any work
    assert _convert(checkpoint, exp) == 1
    _one_line_error(capsys, "cannot write beside the output folder")
    assert time.perf_counter() - t0 < 120


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_parent_really_is_one_line(converted, checkpoint, tmp_path, capsys):
    parent = tmp_path / "P"
    shutil.copytree(converted, parent / "exp")
    parent.chmod(0o555)
    try:
        assert _convert(checkpoint, parent / "exp") == 1
        _one_line_error(capsys, "cannot write beside the output folder")
    finally:
        parent.chmod(0o755)
    assert [p.name for p in parent.iterdir()] == ["exp"]


def test_a_failed_publication_keeps_the_old_export(converted, tmp_path, capsys, monkeypatch):
    exp = tmp_path / "exp"
    shutil.copytree(converted, exp)

    def broken(a, b):
        raise OSError(28, "No space left on device", str(b))

    monkeypatch.setattr(publish, "_exchange", broken)
    with pytest.raises(PplEdgeError) as caught, staged_output(exp) as staging:
        (staging / "keypoints.onnx").write_bytes(b"new")
    assert "No space left on device" in str(caught.value) and "unchanged" in str(caught.value)
    read_manifest(exp)
    assert [p.name for p in tmp_path.iterdir()] == ["exp"]
