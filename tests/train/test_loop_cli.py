"""The ``ppl-edge train`` verb: --dry-run, flag layering, and a torch-free import."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ppl_edge.cli import build_parser, main
from ppl_edge.cli.train import _resolve

pytestmark = pytest.mark.usefixtures("one_thread")


def test_dry_run_prints_params_and_macs(capsys):
    assert main(["train", "--preset", "tiny", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "preset tiny: 32x32 px, 16 keypoints, memory 8x8x64" in out
    assert "parameters: 452,820 (453 k)" in out
    assert "keypoint path 4.95 M, training forward 27.5 M" in out
    assert "reconstruction loss: pixel" in out


def test_dry_run_with_model_override_changes_the_count(capsys):
    assert main(["train", "--preset", "tiny", "--set", "model.num_keypoints=8", "--dry-run"]) == 0
    assert "8 keypoints" in capsys.readouterr().out


def test_flags_override_set_and_yaml(tmp_path):
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("preset: small\nbatch_size: 8\nlr: 0.001\n")
    args = build_parser().parse_args(
        [
            "train",
            "--config",
            str(cfg_file),
            "--set",
            "batch_size=16",
            "--set",
            "lr=0.002",
            "--lr",
            "0.003",
            "--hflip",
            "false",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    cfg = _resolve(args)
    assert (cfg.preset, cfg.batch_size, cfg.lr, cfg.hflip) == ("small", 16, 0.003, False)


def test_bad_value_is_one_line_error(capsys):
    assert main(["train", "--preset", "huge", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "error: unknown preset 'huge'; choose one of base, small, tiny" in err


def test_verb_module_imports_without_torch():
    code = "import sys, ppl_edge.cli.train; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
