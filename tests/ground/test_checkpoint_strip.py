"""Release copies of checkpoints keep the model and its provenance, nothing else."""

import pytest

torch = pytest.importorskip("torch")

from ppl_edge.checkpoint import (
    load_model,
    load_tensors,
    model_tensors,
    read_metadata,
    save_checkpoint,
    strip_to_weights,
)
from ppl_edge.config_utils import to_dict
from ppl_edge.model.config import preset
from ppl_edge.model.ppl import PoseModel


def test_strip_keeps_model_and_provenance(tmp_path):
    torch.manual_seed(0)
    model = PoseModel(preset("tiny")).eval()
    tensors = model_tensors(model) | {
        "optim.state.0.exp_avg": torch.ones(3),
        "rng.torch": torch.zeros(5),
    }
    state = {
        "step": 7,
        "epoch": 1,
        "train_config": {"lr": 1e-3},
        "optimizer": {"x": 1},
        "rng": {"y": 2},
    }
    src, dst = tmp_path / "run.safetensors", tmp_path / "release.safetensors"
    save_checkpoint(src, tensors, to_dict(model.cfg), state)

    strip_to_weights(src, dst)

    assert all(k.startswith("model.") for k in load_tensors(dst))
    meta = read_metadata(dst)
    assert meta["train_state"] == {"step": 7, "epoch": 1, "train_config": {"lr": 1e-3}}
    loaded, _ = load_model(dst)
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        a = model.keypoint_path(image)["keypoints"]
        b = loaded.keypoint_path(image)["keypoints"]
    assert torch.equal(a, b)
    assert dst.stat().st_size < src.stat().st_size
