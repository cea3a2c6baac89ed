"""Faults during training, met without losing a good checkpoint: a non-finite loss stops the run
before anything is saved, an unwritable run folder is retried at the next interval, and a resume at
a data position the data no longer has is refused (it would never advance)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.train import distributed
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.distributed import DistInfo
from ppl_edge.train.train_state import TrainState, save_rotating

log = logging.getLogger(__name__)


class Saver:
    """Writes the rotating checkpoint; an unwritable folder is reported in one line and retried
    at the next interval, and only the final save (end of run or stop) must succeed."""

    def __init__(self, path: Path, step: int):
        self.path = path
        self.saved_step = step  # the step the newest checkpoint on disk holds

    def save(self, model, optimizer, cfg, state: TrainState, scaler, final: bool) -> None:
        try:
            save_rotating(self.path, model, optimizer, cfg, state, scaler)
        except OSError as err:
            what = f"cannot write the checkpoint {self.path} at step {state.step}: {err.strerror}"
            if final:
                raise PplEdgeError(
                    f"{what}; the newest checkpoint on disk is from step {self.saved_step}"
                ) from None
            log.error("%s; training goes on and retries at the next checkpoint", what)
            return
        self.saved_step = state.step


def check_finite(terms: dict[str, torch.Tensor], step: int, info: DistInfo, saver: Saver):
    """Stop on a NaN / infinite loss term before anything is saved (every rank agrees)."""
    values = torch.stack([v.detach().float().reshape(()) for v in terms.values()])
    finite = torch.isfinite(values)
    if not distributed.any_rank(not bool(finite.all()), info):
        return
    bad = [(k, float(v)) for (k, v), ok in zip(terms.items(), finite.tolist()) if not ok]
    name, value = ([b for b in bad if b[0] != "total"] or bad or [("total", float("nan"))])[0]
    kept = (
        f"{saver.path} keeps step {saver.saved_step}"
        if saver.path.is_file()
        else "no checkpoint had been written yet"
    )
    raise PplEdgeError(
        f"the loss term {name!r} became {value} at step {step}; training stopped before saving "
        f"({kept}): lower --lr or check the data"
    )


def check_position(state: TrainState, per_epoch: int, cfg: TrainConfig) -> None:
    """Refuse to resume at a data position the data no longer has (it would never advance)."""
    if state.batch_in_epoch >= per_epoch:
        raise PplEdgeError(
            f"the checkpoint resumes at batch {state.batch_in_epoch} of epoch {state.epoch}, but "
            f"{cfg.data!r} now gives {per_epoch} batches of {cfg.batch_size} per epoch: the data "
            "shrank or data_length / batch_size changed since the checkpoint; restore the data "
            "or start a new run"
        )
