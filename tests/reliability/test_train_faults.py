"""Hostile inputs and faults around training runs and checkpoints: each case ends in one line
(exit 1) or correct behaviour, never a traceback or a hang, and no good checkpoint is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ppl_edge.checkpoint import FORMAT, load_model, read_metadata, save_checkpoint
from ppl_edge.cli import main
from ppl_edge.errors import PplEdgeError

TINY = ["--preset", "tiny", "--batch-size", "4", "--num-workers", "0", "--threads", "1",
        "--prior-interval", "0", "--log-interval", "1"]  # fmt: skip


def _train(out: Path, steps: int, *extra: str) -> int:
    return main(["train", "--steps", str(steps), "--out", str(out), *TINY, *extra])


def _one_line_error(capsys, *needles: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if x.startswith("error: "))
    for needle in needles:
        assert needle in line, line
    return line


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A tiny run of 6 steps on 16 items (4 batches per epoch): it stops at epoch 1, batch 2."""
    out = tmp_path_factory.mktemp("run") / "run"
    assert _train(out, 6, "--set", "data_length=16", "--ckpt-interval", "3") == 0
    return out


def _copy_run(run: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(run, dst)
    return dst


def test_resume_past_the_end_of_the_data_is_refused_not_hung(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    cmd = [sys.executable, "-m", "ppl_edge.cli", "train", "--out", str(run), "--resume",
           "--steps", "10", "--threads", "1", "--set", "data_length=4"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "resumes at batch 2 of epoch 1" in proc.stderr and "gives 1 batches" in proc.stderr
    assert read_metadata(run / "latest.safetensors")["train_state"]["step"] == 6


def test_an_empty_loader_ends_in_one_line_instead_of_spinning(tmp_path, monkeypatch):
    """Whatever the loader yields, the loop advances or stops: a loader that yields nothing."""
    from ppl_edge.train import loop
    from ppl_edge.train.config import TrainConfig

    class Empty(torch.utils.data.DataLoader):
        def __iter__(self):
            return iter(())

    monkeypatch.setattr(loop.torch.utils.data, "DataLoader", Empty)
    cfg = TrainConfig(preset="tiny", data_length=8, batch_size=4, max_steps=3, num_workers=0,
                      prior_interval=0, out=str(tmp_path / "run"), device="cpu")  # fmt: skip
    with pytest.raises(PplEdgeError, match="yielded no batch"):
        loop.train(cfg)


def test_a_diverging_run_stops_and_never_saves_nan_weights(tmp_path, capsys):
    out = tmp_path / "run"
    code = _train(out, 30, "--ckpt-interval", "1", "--lr", "1e4")
    assert code == 1
    line = _one_line_error(capsys)
    assert "became nan" in line or "NaN or infinity" in line
    for name in ("latest.safetensors", "previous.safetensors"):
        if (out / name).exists():
            model, meta = load_model(out / name)  # refuses non-finite weights
            assert all(torch.isfinite(p).all() for p in model.parameters())


def test_the_previous_checkpoint_is_kept_beside_the_latest(small_run):
    latest = read_metadata(small_run / "latest.safetensors")["train_state"]["step"]
    previous = read_metadata(small_run / "previous.safetensors")["train_state"]["step"]
    assert (latest, previous) == (6, 3)


def _nan_checkpoint(src: Path, dst: Path) -> Path:
    from safetensors.torch import load_file

    tensors = load_file(str(src))
    meta = read_metadata(src)
    key = next(k for k in tensors if k.startswith("model.") and tensors[k].is_floating_point())
    tensors[key] = torch.full_like(tensors[key], float("nan"))
    save_checkpoint(dst, tensors, meta["model_config"], meta["train_state"])
    return dst


@pytest.mark.parametrize("verb", ["eval", "prior", "convert"])
def test_nan_weights_are_refused_by_every_verb(small_run, tmp_path, capsys, verb):
    ckpt = _nan_checkpoint(small_run / "latest.safetensors", tmp_path / "nan.safetensors")
    out = tmp_path / "out"
    args = {
        "eval": ["eval", "--checkpoint", str(ckpt), "--n-fit", "8", "--out", str(out)],
        "prior": ["prior", "--checkpoint", str(ckpt), "--out", str(out)],
        "convert": ["convert", "--checkpoint", str(ckpt), "--out", str(out)],
    }[verb]  # fmt: skip
    assert main(args) == 1
    _one_line_error(capsys, "NaN or infinite weights")
    assert not out.exists()


def _forged(path: Path, metadata: dict, tensors: dict | None = None) -> Path:
    from safetensors.torch import save

    tensors = tensors if tensors is not None else {"model.x": torch.zeros(1)}
    path.write_bytes(save(tensors, metadata=metadata))
    return path


def _metadata(small_run: Path) -> tuple[dict, dict]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(small_run / "latest.safetensors"), framework="pt") as fh:
        meta = dict(fh.metadata())
    return meta, load_file(str(small_run / "latest.safetensors"))


BAD_METADATA = {
    "version not a number": ({"format_version": "abc"}, "format_version 'abc' is not a number"),
    "no model_config": ({"model_config": None}, "lacks 'model_config'"),
    "bad JSON": ({"model_config": "{not json"}, "'model_config' is not valid JSON"),
    "a list as config": ({"model_config": "[1, 2]"}, "must be a JSON object, got list"),
    "deep nesting": ({"model_config": "[" * 100000 + "]" * 100000}, "model_config"),
    "unknown key": ({"model_config": json.dumps({"num_keypoint": 16})}, "did you mean"),
    "huge image": ({"model_config": json.dumps({"img_size": 100000})}, "img_size must be at most"),
    "wrong type": ({"model_config": json.dumps({"img_size": "big"})}, "img_size: expected int"),
}


@pytest.mark.parametrize("case", sorted(BAD_METADATA))
def test_malformed_checkpoint_metadata_is_one_line(small_run, tmp_path, capsys, case):
    meta, tensors = _metadata(small_run)
    edit, needle = BAD_METADATA[case]
    for key, value in edit.items():
        if value is None:
            meta.pop(key)
        else:
            meta[key] = value
    ckpt = _forged(tmp_path / "bad.safetensors", meta, tensors)
    for args in (["prior", "--checkpoint", str(ckpt), "--out", str(tmp_path / "p")],
                 ["convert", "--checkpoint", str(ckpt), "--out", str(tmp_path / "c")]):  # fmt: skip
        assert main(args) == 1
        _one_line_error(capsys, needle)
    assert not (tmp_path / "p").exists() and not (tmp_path / "c").exists()


def test_a_wrong_shape_tensor_is_one_line(small_run, tmp_path, capsys):
    meta, tensors = _metadata(small_run)
    key = next(k for k in tensors if k.startswith("model.") and tensors[k].ndim == 4)
    tensors[key] = torch.zeros(1, 1, 1, 1)
    ckpt = _forged(tmp_path / "shape.safetensors", meta, tensors)
    assert main(["prior", "--checkpoint", str(ckpt), "--out", str(tmp_path / "p")]) == 1
    _one_line_error(capsys, "does not match its model_config", "size mismatch")


@pytest.mark.parametrize("edit, needle", [
    (lambda ts: ts.update(step="abc"), "train_state.step must be a non-negative integer"),
    (lambda ts: ts.update(step=-50), "train_state.step must be a non-negative integer"),
    (lambda ts: ts.update(optimizer={"param_groups": "garbage"}), "optimiser or RNG state"),
    (lambda ts: ts.update(rng={"numpy": [1, 2]}), "optimiser or RNG state"),
    (lambda ts: ts.pop("train_config"), "holds no training config"),
])  # fmt: skip
def test_damaged_training_state_refuses_resume_in_one_line(
    small_run, tmp_path, capsys, edit, needle
):
    run = _copy_run(small_run, tmp_path / "run")
    meta, tensors = _metadata(run)
    state = json.loads(meta["train_state"])
    edit(state)
    meta["train_state"] = json.dumps(state)
    _forged(run / "latest.safetensors", meta, tensors)
    assert main(["train", "--out", str(run), "--resume", "--steps", "8", "--threads", "1"]) == 1
    _one_line_error(capsys, needle)
    assert load_model(run / "latest.safetensors")[0] is not None  # weights still usable


def test_torn_metrics_line_and_corrupt_history_do_not_block_resume(tmp_path, caplog):
    out = tmp_path / "run"
    assert _train(out, 4, "--set", "data_length=16", "--prior-interval", "2") == 0
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 5, "tot')  # a line torn by a kill
    (out / "prior_history.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert _train(out, 6, "--resume", "--prior-interval", "2") == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    with np.load(out / "prior_history.npz") as data:
        assert list(data["steps"]) == [6]
    assert "damaged" in caplog.text


def test_an_unwritable_run_folder_is_retried_and_reported(tmp_path, monkeypatch, caplog):
    """Checkpoint writes fail for a while (e.g. a read-only or full disk): one line per attempt,
    training goes on, the next writable interval saves; a final save that fails is one error."""
    from ppl_edge.train import train_state
    from ppl_edge.train.config import TrainConfig
    from ppl_edge.train.loop import train

    real = train_state.save_checkpoint
    calls = {"n": 0}

    def flaky(path, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] in (1, 2):
            raise PermissionError(13, "Permission denied")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(train_state, "save_checkpoint", flaky)
    cfg = TrainConfig(preset="tiny", data_length=16, batch_size=4, max_steps=4, num_workers=0,
                      ckpt_interval=1, prior_interval=0, out=str(tmp_path / "run"),
                      device="cpu")  # fmt: skip
    summary = train(cfg)
    assert summary["step"] == 4 and calls["n"] == 4
    assert caplog.text.count("cannot write the checkpoint") == 2
    assert read_metadata(tmp_path / "run" / "latest.safetensors")["train_state"]["step"] == 4

    monkeypatch.setattr(train_state, "save_checkpoint", lambda *a, **k: (_ for _ in ()).throw(
        PermissionError(13, "Permission denied")))  # fmt: skip
    with pytest.raises(PplEdgeError, match="newest checkpoint on disk is from step 4"):
        train(TrainConfig(**{**cfg.__dict__, "max_steps": 6}), resume_run=True)


def test_leftovers_of_killed_writes_are_removed_at_start(small_run, tmp_path):
    run = _copy_run(small_run, tmp_path / "run")
    stale = [run / ".latest.safetensors.k1ll3d.tmp", run / ".metrics.jsonl.abc.tmp"]
    for path in stale:
        path.write_bytes(b"half")
    assert _train(run, 7, "--resume") == 0
    assert not any(p.exists() for p in stale)


def test_prior_out_a_file_is_one_line(small_run, tmp_path, capsys):
    target = tmp_path / "file.txt"
    target.write_text("x")
    assert main(["prior", "--checkpoint", str(small_run / "latest.safetensors"),
                 "--out", str(target)]) == 1  # fmt: skip
    _one_line_error(capsys, "is a file")
    missing = tmp_path / "nope.safetensors"
    assert main(["prior", "--checkpoint", str(missing), "--out", str(tmp_path / "o")]) == 1
    _one_line_error(capsys, "checkpoint not found")
    assert not (tmp_path / "o").exists()


def test_foreign_safetensors_files_are_refused(tmp_path, capsys):
    ckpt = _forged(tmp_path / "other.safetensors", {"format": "something"})
    assert main(["prior", "--checkpoint", str(ckpt), "--out", str(tmp_path / "o")]) == 1
    _one_line_error(capsys, "not a ppl-edge checkpoint", FORMAT)


def test_output_piped_into_a_closed_reader_is_not_a_traceback(tmp_path):
    """`ppl-edge ... | head -1`: the reader closes the pipe early."""
    code = ("import sys; from ppl_edge.cli import main; sys.exit(main(['data', 'show', "
            "'--help']))")  # fmt: skip
    proc = subprocess.run(f"{sys.executable} -c \"{code}\" | head -c 10", shell=True,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


def test_a_missing_optional_package_names_its_extra(tmp_path):
    code = ("import sys; sys.modules['cv2'] = None; from ppl_edge.cli import main; "
            "sys.exit(main(['live', '--source', 'x.mp4']))")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "pip install 'ppl-edge[opencv]'" in proc.stderr and "python3-opencv" in proc.stderr
