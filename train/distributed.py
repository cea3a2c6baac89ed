"""DDP plumbing: one command runs single-process or under ``torchrun`` (detected from ``RANK``).

    ppl-edge train ...                                     # one process (CPU or one GPU)
    torchrun --nproc_per_node 4 -m ppl_edge.cli train ...  # 4 processes, one GPU each (nccl)
    torchrun --nproc_per_node 2 -m ppl_edge.cli train --device cpu ...  # 2 CPU processes (gloo)

Only rank 0 writes files or logs progress; the memory's EMA statistics are all-reduced inside
``HierarchicalMemory.update_ema``, and DDP averages the gradients.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: rank among world_size, its local GPU index and device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes files and shows progress."""
        return self.rank == 0


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available else ``cpu``; other names pass through."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def setup(device: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun (``RANK`` and ``WORLD_SIZE`` set).

    Uses nccl for CUDA and gloo for CPU; each CUDA rank takes GPU ``LOCAL_RANK``.
    """
    device = resolve_device(device)
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return DistInfo(device=device)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo")
    log.debug("rank %d/%d on %s", rank, world, device)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=device)


def teardown() -> None:
    """Destroy the process group if one is up."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, info: DistInfo) -> bool:
    """True on every rank when ``flag`` is true on any rank (used for stop requests)."""
    if not info.is_distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=info.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (shuffle by seed + epoch, sharded by rank) that can start mid-epoch.

    ``set_position(epoch, skip)`` makes the next iteration yield this rank's indices of ``epoch``
    from position ``skip`` on, so a resumed run sees exactly the batches the interrupted run would
    have seen.
    """

    def __init__(self, dataset, info: DistInfo, seed: int, shuffle: bool = True):
        super().__init__(
            dataset,
            num_replicas=info.world_size,
            rank=info.rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=True,
        )
        self.skip = 0

    def set_position(self, epoch: int, skip: int) -> None:
        """Start the next iteration at sample ``skip`` of this rank's share of ``epoch``."""
        self.set_epoch(epoch)
        self.skip = skip

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.skip :])

    def __len__(self) -> int:
        return max(0, self.num_samples - self.skip)


def batches_per_epoch(dataset_len: int, batch_size: int, world_size: int) -> int:
    """Full batches each rank draws per epoch (drop_last everywhere, official)."""
    return math.floor(dataset_len / world_size) // batch_size
