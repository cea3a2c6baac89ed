"""bench/bench_train.py times the step that ``ppl-edge train`` runs, recipe included."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.usefixtures("one_thread")


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench_train", ROOT / "bench" / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_train_runs_the_cpu_recipe():
    bench = _bench_module()
    row = bench.bench_preset("tiny", 2, 1, None, "cpu", ROOT / "configs" / "cpu.yaml", [])
    assert row["preset"] == "tiny" and row["batch"] == 2 and row["img_size"] == 32
    assert row["s_per_step"] > 0 and row["images_per_s"] == pytest.approx(2 / row["s_per_step"])
    assert row["recon_loss"].startswith("pixel")


def test_bench_train_refuses_an_unknown_setting():
    from ppl_edge.errors import PplEdgeError

    with pytest.raises(PplEdgeError, match="unknown key"):
        _bench_module().bench_preset("tiny", 2, 1, None, "cpu", None, ["w_equivarance=1"])
