"""The prior file, the prior history and ``ppl-edge prior`` (with the trainer's history writer)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.skeleton import edges_from_weights
from ppl_edge.train import plots, prior_io

PNG = b"\x89PNG\r\n\x1a\n"


def _chain(n=5):
    """A prior on a line and a W that links neighbours strongly: the skeleton is the chain."""
    prior = np.stack([np.linspace(-0.8, 0.8, n), np.zeros(n)], axis=1)
    w = np.full((n, n), 0.01)
    for i in range(n - 1):
        w[i, i + 1] = w[i + 1, i] = 1.0
    np.fill_diagonal(w, 0.0)
    return prior, w


def test_prior_record_round_trip(tmp_path):
    prior, w = _chain()
    rec = prior_io.prior_record(prior, w, (34, 16, 128), img_size=64, source="x.safetensors")
    assert rec["edges"] == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert rec["edge_weights"] == [1.0] * 4
    assert rec["memory"] == {"banks": 34, "entries": 16, "dim": 128}
    path = prior_io.write_prior(tmp_path / "prior.json", rec)
    back = prior_io.read_prior(path)
    np.testing.assert_allclose(back["prior"], prior, atol=1e-6)
    np.testing.assert_allclose(back["connectivity"], w, atol=1e-6)
    assert not list(tmp_path.glob("*.tmp"))  # atomic: no temporary left behind


def test_prior_record_skeleton_is_sparse_for_a_dense_w():
    n = 16
    rng = np.random.default_rng(0)
    w = rng.uniform(0.9, 1.1, (n, n))
    w = (w + w.T) / 2
    np.fill_diagonal(w, 0.0)
    rec = prior_io.prior_record(np.zeros((n, 2)), w, (4, 8, 16))
    assert rec["edges"] == [list(e) for e in edges_from_weights(w)]
    assert n - 1 <= len(rec["edges"]) <= 2 * n
    assert rec["edge_weights"] == [round(float(w[i, j]), 6) for i, j in rec["edges"]]


def test_prior_record_and_reader_refuse_bad_input(tmp_path):
    with pytest.raises(PplEdgeError, match="expected prior"):
        prior_io.prior_record(np.zeros((4, 2)), np.zeros((3, 3)), (1, 1, 1))
    (tmp_path / "other.json").write_text(json.dumps({"format": "something"}))
    with pytest.raises(PplEdgeError, match="not a ppl-edge prior"):
        prior_io.read_prior(tmp_path / "other.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PplEdgeError, match="cannot read"):
        prior_io.read_prior(tmp_path / "broken.json")


def test_history_reads_both_key_names_and_sorts(tmp_path):
    assert prior_io.load_prior_history(tmp_path) is None
    prior, w = _chain()
    np.savez(
        tmp_path / "prior_history.npz",
        steps=np.array([20, 10]),
        priors=np.stack([prior, prior * 0.5]),
        connectivity=np.stack([w, w]),
    )
    hist = prior_io.load_prior_history(tmp_path)
    assert hist["steps"].tolist() == [10, 20]
    np.testing.assert_allclose(hist["priors"][0], prior * 0.5)
    np.savez(
        tmp_path / "prior_history.npz", steps=np.array([1]), priors=prior[None], weights=w[None]
    )
    assert prior_io.load_prior_history(tmp_path)["weights"].shape == (1, 5, 5)
    np.savez(
        tmp_path / "prior_history.npz", steps=np.array([1, 2]), priors=prior[None], weights=w[None]
    )
    with pytest.raises(PplEdgeError, match="inconsistent shapes"):
        prior_io.load_prior_history(tmp_path)


def test_pictures_are_pngs(tmp_path):
    prior, w = _chain()
    assert plots.plot_prior(prior, w, tmp_path / "p.png").read_bytes()[:8] == PNG
    hist = {"steps": np.arange(8), "priors": np.stack([prior] * 8), "weights": np.stack([w] * 8)}
    assert plots.plot_prior_evolution(hist, (prior, w), tmp_path / "e.png").read_bytes()[:8] == PNG
    assert plots.plot_prior_evolution(None, (prior, w), tmp_path / "f.png").read_bytes()[:8] == PNG
    images = np.zeros((3, 3, 32, 32), np.float32)
    kpts = np.zeros((3, 5, 2), np.float32)
    out = plots.plot_overlays(images, kpts, edges_from_weights(w), tmp_path / "o.png")
    assert out.read_bytes()[:8] == PNG


def test_cli_prior_with_the_trainers_history(tmp_path):
    torch = pytest.importorskip("torch")
    from ppl_edge.checkpoint import model_tensors, save_checkpoint
    from ppl_edge.cli import main
    from ppl_edge.config_utils import to_dict
    from ppl_edge.model.config import preset
    from ppl_edge.model.ppl import PoseModel
    from ppl_edge.train.run_files import PriorHistory

    torch.manual_seed(0)
    model = PoseModel(preset("tiny")).eval()
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "latest.safetensors", model_tensors(model), to_dict(model.cfg))
    with torch.no_grad():
        prior = model.prior().numpy()
        w = model.connectivity.matrix().numpy()
    history = PriorHistory(run)
    for step in (0, 100, 200):
        history.add(step, prior * (1 + step / 1000), w)

    out = tmp_path / "prior"
    assert main(["prior", "--checkpoint", str(run / "latest.safetensors"), "--out", str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"prior.json", "prior.png", "prior_evolution.png"}
    rec = prior_io.read_prior(out / "prior.json")
    np.testing.assert_allclose(rec["prior"], prior, atol=1e-6)
    np.testing.assert_allclose(rec["connectivity"], w, atol=1e-6)
    assert rec["edges"] == [list(e) for e in edges_from_weights(w)]
    assert len(prior) - 1 <= len(rec["edges"]) <= 2 * len(prior)
    assert rec["memory"] == {"banks": 8, "entries": 8, "dim": 64}
    assert prior_io.load_prior_history(run)["steps"].tolist() == [0, 100, 200]
    # a run folder that does not exist is a user error
    code = main(
        [
            "prior",
            "--checkpoint",
            str(run / "latest.safetensors"),
            "--run",
            str(tmp_path / "nope"),
            "--out",
            str(out),
        ]
    )
    assert code == 1
