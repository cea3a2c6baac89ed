"""Interrupted runs: SIGKILL then --resume ends exactly like an uninterrupted run; Ctrl-C saves."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from ppl_edge.checkpoint import read_metadata
from ppl_edge.cli import main
from ppl_edge.errors import PplEdgeError
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.data import build_dataset
from ppl_edge.train.loop import train

STEPS, INTERVAL = 9, 3
FLAGS = [
    "--preset",
    "tiny",
    "--data",
    "synthetic:humanoid",
    "--steps",
    str(STEPS),
    "--batch-size",
    "4",
    "--num-workers",
    "0",
    "--ckpt-interval",
    str(INTERVAL),
    "--log-interval",
    "1",
    "--device",
    "cpu",
    "--set",
    "data_length=20",
]
# The CLI in a child process, one intra-op thread like the in-process runs (bitwise-equal results).
CHILD = (
    "import sys, torch; torch.set_num_threads(1); from ppl_edge.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


pytestmark = pytest.mark.usefixtures("one_thread")


def _cfg(out) -> TrainConfig:
    return TrainConfig(
        preset="tiny",
        max_steps=STEPS,
        batch_size=4,
        num_workers=0,
        ckpt_interval=INTERVAL,
        log_interval=1,
        device="cpu",
        data_length=20,
        out=str(out),
    )


def _checkpoint_step(path) -> int | None:
    try:
        return read_metadata(path)["train_state"]["step"]
    except PplEdgeError:
        return None  # not written yet


def test_sigkill_then_resume_ends_like_uninterrupted_run(tmp_path):
    killed = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, "train", *FLAGS, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    ckpt, seen, deadline = killed / "latest.safetensors", None, time.monotonic() + 120
    try:
        while seen is None and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
            if ckpt.exists():
                seen = _checkpoint_step(ckpt)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert seen is not None, f"no checkpoint before the child ended: {err[-2000:]}"
    assert proc.returncode == -signal.SIGKILL
    at_kill = _checkpoint_step(ckpt)
    assert INTERVAL <= at_kill < STEPS and at_kill % INTERVAL == 0

    resumed = train(_cfg(killed), resume_run=True)
    assert resumed["step"] == STEPS and resumed["steps_run"] == STEPS - at_kill
    straight = train(_cfg(tmp_path / "straight"))
    a, b = resumed["model"].state_dict(), straight["model"].state_dict()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [
        json.loads(line)["step"] for line in (killed / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, STEPS + 1))  # rows after the last checkpoint were dropped, redone


class SignalAt(torch.utils.data.Dataset):
    """Synthetic data that sends ``sig`` to this process when item ``at`` is fetched (mid-step)."""

    def __init__(self, sig: int, at: int):
        self.data = build_dataset("synthetic:humanoid", 32, length=20)
        self.sig, self.at, self.fetched = sig, at, 0

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int):
        self.fetched += 1
        if self.fetched == self.at:
            os.kill(os.getpid(), self.sig)
        return self.data[index]


def test_sigterm_saves_after_the_current_step(tmp_path):
    # The signal arrives while batch 3 is loaded (item 10 of 4-item batches): step 3 completes, is
    # saved, and the loop returns.
    summary = train(_cfg(tmp_path), dataset=SignalAt(signal.SIGTERM, at=10))
    assert summary["stopped_by"] == "SIGTERM" and summary["step"] == 3
    assert _checkpoint_step(tmp_path / "latest.safetensors") == 3
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored


class SignalRunFrom(SignalAt):
    """Data whose loader worker sends ``sig`` to itself and to the main process when it fetches
    item ``at``: what ``pkill -f``, ``kill -- -PGID`` or a batch scheduler does to every process of
    a run."""

    def __getitem__(self, index: int):
        self.fetched += 1
        if self.fetched == self.at and torch.utils.data.get_worker_info() is not None:
            os.kill(os.getppid(), self.sig)
            os.kill(os.getpid(), self.sig)
        return self.data[index]


def test_sigterm_to_the_loader_workers_too_still_saves(tmp_path):
    cfg = dataclasses.replace(_cfg(tmp_path), num_workers=1)
    summary = train(cfg, dataset=SignalRunFrom(signal.SIGTERM, at=10))
    assert summary["stopped_by"] == "SIGTERM" and 1 <= summary["step"] < STEPS  # it prefetches
    assert _checkpoint_step(tmp_path / "latest.safetensors") == summary["step"]


def test_ctrl_c_exits_130_and_resume_continues_with_stored_config(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    from ppl_edge.train import loop

    real = loop.build_train_dataset
    monkeypatch.setattr(
        loop, "build_train_dataset", lambda cfg, size: SignalAt(signal.SIGINT, at=6)
    )
    assert main(["train", *FLAGS, "--out", str(out)]) == 130
    assert "--resume" in capsys.readouterr().out
    assert _checkpoint_step(out / "latest.safetensors") == 2
    monkeypatch.setattr(loop, "build_train_dataset", real)
    # Only --out, --resume and a new step target: preset, batch size, data come from the checkpoint.
    assert main(["train", "--out", str(out), "--resume", "--steps", "4"]) == 0
    meta = read_metadata(out / "latest.safetensors")["train_state"]
    assert meta["step"] == 4 and meta["train_config"]["preset"] == "tiny"
    assert meta["train_config"]["batch_size"] == 4
