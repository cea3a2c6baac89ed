"""The optimiser: one Adam group (official), or a separate lr for the connectivity logits."""

import dataclasses

import pytest

torch = pytest.importorskip("torch")

from ppl_edge.model.config import preset
from ppl_edge.model.ppl import PoseModel
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.step import build_optimizer


def test_single_group_by_default():
    model = PoseModel(preset("tiny"))
    opt = build_optimizer(model, TrainConfig(preset="tiny", lr=1e-3))
    assert len(opt.param_groups) == 1 and opt.param_groups[0]["lr"] == 1e-3
    n = sum(p.numel() for g in opt.param_groups for p in g["params"])
    assert n == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_link_lr_gets_its_own_group():
    model = PoseModel(preset("tiny"))
    cfg = dataclasses.replace(TrainConfig(preset="tiny", lr=1e-3), link_lr=1e-4)
    opt = build_optimizer(model, cfg)
    main, links = opt.param_groups
    assert main["lr"] == 1e-3 and links["lr"] == 1e-4
    assert [p is model.connectivity.theta for p in links["params"]] == [True]
    assert all(p is not model.connectivity.theta for p in main["params"])


def test_link_lr_must_be_positive():
    from ppl_edge.errors import PplEdgeError

    with pytest.raises(PplEdgeError, match="link_lr"):
        TrainConfig(preset="tiny", link_lr=0.0)
