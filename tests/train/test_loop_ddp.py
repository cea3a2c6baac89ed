"""DDP: two CPU processes with gloo train together and end with identical weights."""

from __future__ import annotations

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from ppl_edge.checkpoint import read_metadata
from ppl_edge.train.config import TrainConfig


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    """One torchrun-like rank: the environment variables torchrun would set, then train()."""
    os.environ.update(
        {
            "RANK": str(rank),
            "WORLD_SIZE": str(world),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    torch.set_num_threads(1)
    from ppl_edge.train.loop import train

    cfg = TrainConfig(
        preset="tiny",
        max_steps=3,
        batch_size=2,
        num_workers=0,
        data_length=16,
        ckpt_interval=2,
        log_interval=1,
        device="cpu",
        out=out,
    )
    summary = train(cfg)
    state = {k: v.contiguous() for k, v in summary["model"].state_dict().items()}
    save_file(
        state,
        os.path.join(out, f"rank{rank}.safetensors"),
        metadata={"world_size": str(summary["world_size"]), "step": str(summary["step"])},
    )


@pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch built without torch.distributed"
)
def test_two_gloo_processes_keep_identical_weights(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [load_file(str(tmp_path / f"rank{r}.safetensors")) for r in range(2)]
    meta = read_metadata(tmp_path / "latest.safetensors")
    assert meta["train_state"]["step"] == 3
    for key, value in ranks[0].items():
        if "running_" in key or "num_batches_tracked" in key:
            continue  # BatchNorm statistics are per rank (DDP broadcasts rank 0's at each forward)
        assert torch.equal(value, ranks[1][key]), key
    # The memory's EMA statistics are all-reduced, so the codebooks agree too, and they moved.
    assert torch.equal(ranks[0]["memory.codebook"], ranks[1]["memory.codebook"])
    from ppl_edge.checkpoint import load_tensors
    from ppl_edge.train.loop import build_model

    initial = build_model(TrainConfig(preset="tiny")).state_dict()
    assert not torch.equal(initial["memory.codebook"], ranks[0]["memory.codebook"])
    assert not torch.equal(initial["encoder.emb.weight"], ranks[0]["encoder.emb.weight"])
    saved = load_tensors(tmp_path / "latest.safetensors", prefix="model.")
    assert torch.equal(saved["encoder.emb.weight"], ranks[0]["encoder.emb.weight"])
