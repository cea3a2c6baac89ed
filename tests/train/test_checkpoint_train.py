"""Training checkpoints: round trip, refusal of pickles and foreign files, config mismatch."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from ppl_edge.checkpoint import load_model, read_metadata
from ppl_edge.errors import PplEdgeError
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.data import build_dataset
from ppl_edge.train.loop import (
    build_model,
    build_optimizer,
    build_recon_loss,
    resume,
    save_checkpoint,
    step_generator,
    train_step,
)
from ppl_edge.train.train_state import TrainState

CFG = TrainConfig(preset="tiny", batch_size=4, num_workers=0)


pytestmark = pytest.mark.usefixtures("one_thread")


def _trained(steps: int = 2):
    model = build_model(CFG)
    opt = build_optimizer(model, CFG)
    recon, _ = build_recon_loss(CFG)
    ds = build_dataset("synthetic:humanoid", 32, length=8)
    batch = torch.utils.data.default_collate([ds[i] for i in range(4)])
    for step in range(steps):
        train_step(model, batch, opt, CFG, recon, step_generator(0, 0, step))
    return model, opt, batch


def test_round_trip_restores_model_optimizer_rng_and_position(tmp_path):
    model, opt, batch = _trained()
    path = tmp_path / "latest.safetensors"
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    save_checkpoint(path, model, opt, CFG, TrainState(step=2, epoch=1, batch_in_epoch=3))
    expect_torch, expect_py, expect_np = torch.rand(3), random.random(), np.random.rand()

    meta = read_metadata(path)
    assert meta["train_state"]["step"] == 2
    assert meta["train_state"]["train_config"]["preset"] == "tiny"
    assert meta["model_config"]["img_size"] == 32

    other = build_model(TrainConfig(preset="tiny", seed=9))
    other_opt = build_optimizer(other, CFG)
    state = resume(path, other, other_opt)
    assert (state.step, state.epoch, state.batch_in_epoch) == (2, 1, 3)
    for (name, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), name  # weights and buffers (codebook, EMA counts, BN stats)
    saved, restored = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert sorted(saved) == sorted(restored)
    for idx, entry in saved.items():
        for key, value in entry.items():
            assert torch.equal(value, restored[idx][key]), (idx, key)
    assert other_opt.param_groups[0]["betas"] == opt.param_groups[0]["betas"]
    assert torch.equal(torch.rand(3), expect_torch)
    assert random.random() == expect_py and np.random.rand() == expect_np

    loaded, _ = load_model(path)  # the public loader reads the training checkpoint too
    loaded.eval()
    model.eval()
    with torch.no_grad():
        a = model.keypoint_path(batch["image"])["keypoints"]
        b = loaded.keypoint_path(batch["image"])["keypoints"]
    assert torch.equal(a, b)


def test_resume_refuses_another_model_config(tmp_path):
    model, opt, _ = _trained(1)
    path = tmp_path / "latest.safetensors"
    save_checkpoint(path, model, opt, CFG, TrainState(step=1))
    other = build_model(TrainConfig(preset="tiny", model_overrides={"num_keypoints": 10}))
    with pytest.raises(PplEdgeError, match="num_keypoints"):
        resume(path, other, build_optimizer(other, CFG))


def test_malicious_pickle_named_safetensors_is_refused_unexecuted(tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "latest.safetensors"
    path.write_bytes(pickle.dumps({"model": Payload()}))
    model = build_model(CFG)
    with pytest.raises(PplEdgeError, match="not a ppl-edge checkpoint"):
        resume(path, model, build_optimizer(model, CFG))
    with pytest.raises(PplEdgeError):
        load_model(path)
    assert not marker.exists()


def test_torch_save_file_is_refused(tmp_path):
    model = build_model(CFG)
    path = tmp_path / "model.pt"
    torch.save({"model": model.state_dict()}, path)
    with pytest.raises(PplEdgeError, match="not a ppl-edge checkpoint"):
        resume(path, model)
    renamed = tmp_path / "latest.safetensors"
    renamed.write_bytes(path.read_bytes())
    with pytest.raises(PplEdgeError, match="not a ppl-edge checkpoint"):
        resume(renamed, model)
