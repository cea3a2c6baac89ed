"""The training loop's parts and its exact resume (tiny preset, a few steps each)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ppl_edge.checkpoint import read_metadata
from ppl_edge.errors import PplEdgeError
from ppl_edge.train.config import TrainConfig, replace, resolve_config
from ppl_edge.train.data import build_dataset
from ppl_edge.train.distributed import DistInfo, ResumableSampler
from ppl_edge.train.loop import make_reference, step_generator, train
from ppl_edge.train.step import amp_setup, block_mask, random_hflip

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_cfg(out, **kw) -> TrainConfig:
    base = {
        "preset": "tiny",
        "data_length": 20,
        "batch_size": 4,
        "max_steps": 8,
        "num_workers": 0,
        "ckpt_interval": 3,
        "log_interval": 2,
        "prior_interval": 4,
        "out": str(out),
        "device": "cpu",
    }
    return TrainConfig(**{**base, **kw})


def test_config_layers_yaml_then_set_then_flags(tmp_path):
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(
        "preset: small\nlr: 0.001\nbatch_size: 8\nmodel_overrides: {num_keypoints: 10}\n"
    )
    cfg = resolve_config(
        yaml_file, ["lr=0.002", "model.mem_banks=4"], {"batch_size": 16, "seed": None}
    )
    assert (cfg.preset, cfg.lr, cfg.batch_size, cfg.seed) == ("small", 0.002, 16, 0)
    assert cfg.model_overrides == {"num_keypoints": 10, "mem_banks": 4}
    assert cfg.model_config().mem_banks == 4
    with pytest.raises(PplEdgeError, match="did you mean 'batch_size'"):
        resolve_config(overrides=["batch_sise=3"])
    with pytest.raises(PplEdgeError, match="mem_bank"):
        resolve_config(overrides=["model.mem_bank=3"])
    with pytest.raises(PplEdgeError, match="vgg_weights"):
        TrainConfig(recon_loss="perceptual")


def test_block_mask_matches_official_recipe():
    gen = torch.Generator().manual_seed(0)
    mask = block_mask(64, 32, 4, 0.8, gen)
    assert mask.shape == (64, 1, 32, 32)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    blocks = mask[:, :, ::8, ::8]  # 4x4 grid of 8-px patches, each constant
    assert torch.equal(mask, blocks.repeat_interleave(8, -1).repeat_interleave(8, -2))
    assert 0.15 < mask.mean().item() < 0.25  # U(0,1) > 0.8 keeps ~20 %


def test_make_reference_modes():
    cfg = TrainConfig(preset="tiny")
    assert cfg.resolved_mask_block(32) == 4 and cfg.resolved_mask_block(128) == 16  # 8-px patches
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    ref = make_reference(image, None, cfg, step_generator(0, 0, 0))
    kept = ref != 0
    assert torch.equal(ref[kept], image[kept]) and 0 < kept.float().mean() < 0.6
    assert torch.equal(ref, make_reference(image, None, cfg, step_generator(0, 0, 0)))  # same step
    other = torch.rand(2, 3, 32, 32)
    frame_cfg = replace(cfg, reference="frame")
    assert make_reference(image, other, frame_cfg, step_generator(0, 0, 0)) is other
    with pytest.raises(PplEdgeError, match="reference=frame"):
        make_reference(image, None, frame_cfg, step_generator(0, 0, 0))


def test_hflip_flips_image_and_reference_together():
    image = torch.arange(16 * 3 * 4 * 4, dtype=torch.float32).view(16, 3, 4, 4)
    img, ref = random_hflip(image, image.clone(), gen=step_generator(1, 0, 5))
    assert torch.equal(img, ref)
    flipped = [not torch.equal(img[i], image[i]) for i in range(16)]
    assert 0 < sum(flipped) < 16
    for i in range(16):
        assert torch.equal(img[i], image[i].flip(-1) if flipped[i] else image[i])


def test_sampler_resumes_mid_epoch_and_shards_by_rank():
    ds = list(range(20))
    full = ResumableSampler(ds, DistInfo(), seed=3)
    full.set_position(2, 0)
    order = list(full)
    full.set_position(2, 8)
    assert list(full) == order[8:] and len(full) == 12
    ranks = [ResumableSampler(ds, DistInfo(rank=r, world_size=2), seed=3) for r in range(2)]
    for s in ranks:
        s.set_position(0, 0)
    a, b = list(ranks[0]), list(ranks[1])
    assert len(a) == len(b) == 10 and not set(a) & set(b)


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """8 uninterrupted steps (2 epochs of 5 batches are touched)."""
    out = tmp_path_factory.mktemp("straight")
    return train(tiny_cfg(out)), out


def test_straight_run_writes_checkpoint_logs_and_prior_history(straight_run):
    summary, out = straight_run
    assert (summary["step"], summary["epoch"]) == (8, 1)  # max_steps honoured mid-epoch
    meta = read_metadata(out / "latest.safetensors")
    assert meta["train_state"]["step"] == 8 and meta["train_state"]["batch_in_epoch"] == 3
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4, 6, 8]
    assert all(np.isfinite(r["total"]) and r["images_per_s"] > 0 for r in rows)
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["step", "time", "epoch", "images_per_s", "lr"] and "consistency" in header
    with np.load(out / "prior_history.npz") as hist:
        assert hist["steps"].tolist() == [0, 4, 8]
        assert hist["priors"].shape == (3, 16, 2) and hist["connectivity"].shape == (3, 16, 16)
        assert not np.allclose(hist["priors"][0], hist["priors"][-1])  # the prior learns
    assert (out / "config.yaml").is_file()


def test_resume_is_exact(straight_run, tmp_path):
    summary, _ = straight_run
    first = train(tiny_cfg(tmp_path, max_steps=5))
    assert first["step"] == 5
    resumed = train(tiny_cfg(tmp_path), resume_run=True)
    assert resumed["step"] == 8 and resumed["steps_run"] == 3
    _assert_same_weights(resumed["model"], summary["model"])
    steps = [
        json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()
    ]
    assert steps == [2, 4, 5, 6, 8]
    with np.load(tmp_path / "prior_history.npz") as hist:
        assert hist["steps"].tolist() == [0, 4, 5, 8]  # every prior_interval and each run's end


def test_existing_run_needs_resume(straight_run):
    _, out = straight_run
    with pytest.raises(PplEdgeError, match="--resume"):
        train(tiny_cfg(out))


def test_too_small_dataset_and_wrong_image_size_fail_clearly(tmp_path):
    with pytest.raises(PplEdgeError, match="fewer than one batch"):
        train(tiny_cfg(tmp_path / "a", data_length=3))
    ds = build_dataset("synthetic:humanoid", 64, length=8)
    with pytest.raises(PplEdgeError, match=r"expects \(3, 32, 32\)"):
        train(tiny_cfg(tmp_path / "b"), dataset=ds)


def test_frame_reference_trains_on_clips(tmp_path):
    summary = train(tiny_cfg(tmp_path, reference="frame", max_steps=2, prior_interval=0))
    assert summary["step"] == 2 and np.isfinite(summary["losses"]["total"])


def test_amp_is_cuda_only():
    assert amp_setup(TrainConfig(amp="bf16"), "cpu") == (None, None)
    assert amp_setup(TrainConfig(amp="off"), "cuda") == (None, None)
    assert amp_setup(TrainConfig(amp="bf16"), "cuda") == (torch.bfloat16, None)


def test_data_options_reach_the_loader_from_yaml_set_and_flags(tmp_path):
    cfg = resolve_config(overrides=["data_options.max_gap=3", "data_options.crops=motion"])
    assert cfg.data_options == {"max_gap": 3, "crops": "motion"}
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("data_options: {min_gap: 2}\n")
    cfg = resolve_config(yaml_file, ["data_options.max_gap=5"])
    assert cfg.data_options == {"min_gap": 2, "max_gap": 5}
    from ppl_edge.train.loop import build_train_dataset

    ds = build_train_dataset(
        tiny_cfg(tmp_path, data_options={"clip_length": 12, "video": True}), 32
    )
    assert ds.clip_length == 12 and "reference" in ds[0]
    with pytest.raises(PplEdgeError, match="unknown option"):
        build_train_dataset(tiny_cfg(tmp_path, data_options={"bogus": 1}), 32)
    with pytest.raises(PplEdgeError, match="data_options must be a mapping"):
        TrainConfig(data_options=[1])
