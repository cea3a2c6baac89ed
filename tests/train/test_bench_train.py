"""bench/bench_train.py times the step that ``ppl-edge train`` runs, recipe included."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


def test_bench_train_runs_the_cpu_recipe(bench_script):
    bench = bench_script("bench_train")
    row = bench.bench_preset("tiny", 2, 1, None, "cpu", ROOT / "configs" / "cpu.yaml", [])
    assert row["preset"] == "tiny" and row["batch"] == 2 and row["img_size"] == 32
    assert row["s_per_step"] > 0 and row["images_per_s"] == pytest.approx(2 / row["s_per_step"])
    assert row["recon_loss"].startswith("pixel")


def test_bench_train_refuses_an_unknown_setting(bench_script):
    from ppl_edge.errors import PplEdgeError

    with pytest.raises(PplEdgeError, match="unknown key"):
        bench_script("bench_train").bench_preset(
            "tiny", 2, 1, None, "cpu", None, ["w_equivarance=1"]
        )
