"""The optional equivariance term: warp geometry, loss value, and its place in a training step."""

import math

import pytest
import torch

from ppl_edge.model.config import preset
from ppl_edge.model.ppl import PoseModel
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.losses import equivariance_loss, pixel_loss
from ppl_edge.train.step import build_optimizer, random_similarity, train_step, warp_images


def _centroid(img: torch.Tensor) -> torch.Tensor:
    """(B, H, W) non-negative maps -> (B, 2) xy centroids in the [-1, 1] pixel-centre grid."""
    size = img.shape[-1]
    axis = torch.linspace(-1.0, 1.0, size)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    m = img / img.sum(dim=(1, 2), keepdim=True)
    return torch.stack([(m * xx).sum((1, 2)), (m * yy).sum((1, 2))], dim=-1)


def test_warp_moves_image_content_where_the_forward_map_sends_points():
    cfg = TrainConfig(w_equivariance=1.0, eq_rotation=30.0, eq_scale=0.2, eq_shift=0.2)
    theta, forward = random_similarity(6, cfg, torch.Generator().manual_seed(3))
    size = 41
    img = torch.zeros(6, 3, size, size)
    img[:, :, 25, 12] = 1.0  # a dot at pixel x=12, y=25
    axis = torch.linspace(-1.0, 1.0, size)
    point = torch.tensor([axis[12], axis[25]])
    moved = point @ forward[:, :, :2].transpose(1, 2) + forward[:, :, 2]  # (6, 2)
    got = _centroid(warp_images(img, theta)[:, 0])
    assert torch.allclose(got, moved, atol=2e-3)


def test_warp_ranges_follow_the_settings():
    cfg = TrainConfig(w_equivariance=1.0, eq_rotation=10.0, eq_scale=0.05, eq_shift=0.1)
    _, forward = random_similarity(2000, cfg, torch.Generator().manual_seed(0))
    lin = forward[:, :, :2]
    scale = lin.det().sqrt()
    angle = torch.atan2(lin[:, 1, 0], lin[:, 0, 0])
    assert scale.min() >= 0.95 - 1e-5 and scale.max() <= 1.05 + 1e-5
    assert angle.abs().max() <= math.radians(10.0) + 1e-5
    assert angle.abs().max() > math.radians(9.0)  # the whole range is drawn
    assert forward[:, :, 2].abs().max() <= 0.1 + 1e-6


def test_equivariance_loss_is_zero_for_equivariant_keypoints_only():
    forward = torch.tensor([[[0.0, -1.1, 0.2], [1.1, 0.0, -0.1]]])  # 90° rotation, scale 1.1
    kpts = torch.rand(1, 5, 2) * 2 - 1
    warped = kpts @ forward[:, :, :2].transpose(1, 2) + forward[:, None, :, 2]
    assert equivariance_loss(kpts, warped, forward).item() < 1e-12
    assert equivariance_loss(kpts, warped + 0.1, forward).item() == pytest.approx(0.01, rel=1e-4)


def test_train_step_adds_the_term_only_when_weighted():
    cfg_off = TrainConfig(preset="tiny", batch_size=4)
    cfg_on = TrainConfig(preset="tiny", batch_size=4, w_equivariance=5.0)
    batch = {"image": torch.rand(4, 3, 32, 32) * 2 - 1}
    for cfg, expect in ((cfg_off, False), (cfg_on, True)):
        torch.manual_seed(0)
        model = PoseModel(preset("tiny"))
        opt = build_optimizer(model, cfg)
        terms = train_step(model, batch, opt, cfg, pixel_loss, torch.Generator().manual_seed(1))
        assert ("equivariance" in terms) is expect
        if expect:
            assert terms["equivariance"].item() > 0
            rest = (
                sum(terms[k] for k in ("reconstruction", "boundary"))
                + 100 * terms["consistency"]
                + terms["commit"]
            )
            assert terms["total"].item() == pytest.approx(
                rest.item() + 5.0 * terms["equivariance"].item(), rel=1e-5
            )


def test_equivariance_gradients_reach_the_encoder_only():
    torch.manual_seed(0)
    model = PoseModel(preset("tiny"))
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    cfg = TrainConfig(preset="tiny", w_equivariance=1.0)
    theta, forward = random_similarity(2, cfg, torch.Generator().manual_seed(0))
    out = model(image, image, warp_images(image, theta))
    equivariance_loss(out["keypoints"], out["keypoints_warped"], forward).backward()
    assert model.encoder.pred_prob.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.decoder.parameters())
    assert all(p.grad is None for p in model.memory.parameters())


def test_the_shipped_cpu_recipe_loads_and_enables_the_term():
    from pathlib import Path

    from ppl_edge.train.config import resolve_config

    recipe = Path(__file__).resolve().parents[2] / "configs" / "cpu.yaml"
    cfg = resolve_config(recipe, ["preset=small"])
    assert cfg.w_equivariance > 0 and cfg.link_lr < cfg.lr and cfg.batch_size == 16
    assert cfg.w_separation > 0


def test_training_losses_refuse_a_weighted_term_without_its_warp():
    from ppl_edge.train.losses import training_losses

    torch.manual_seed(0)
    model = PoseModel(preset("tiny"))
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(image, image)
    with pytest.raises(ValueError, match="w_equivariance"):
        training_losses(out, image, TrainConfig(preset="tiny", w_equivariance=1.0), pixel_loss)


def test_mirrored_warps_move_content_as_the_forward_map_says_and_swap_the_sides():
    from ppl_edge.templates import load_template
    from ppl_edge.train.step import mirror_warps

    cfg = TrainConfig(w_equivariance=1.0, eq_rotation=20.0, eq_scale=0.1, eq_shift=0.1)
    gen = torch.Generator().manual_seed(5)
    theta, forward = random_similarity(8, cfg, gen)
    order = load_template("humanoid").swap_permutation()
    theta, forward, per_sample = mirror_warps(theta, forward, gen, order)
    flipped = torch.linalg.det(forward[:, :, :2]) < 0
    assert 0 < int(flipped.sum()) < 8  # about half are mirrored
    size = 41
    img = torch.zeros(8, 3, size, size)
    img[:, :, 23, 15] = 1.0  # a dot that stays inside the frame under every warp
    axis = torch.linspace(-1.0, 1.0, size)
    point = torch.tensor([axis[15], axis[23]])
    moved = point @ forward[:, :, :2].transpose(1, 2) + forward[:, :, 2]
    # within a fifth of a pixel (0.05 here): a wrong mirror would be off by ~0.5
    assert torch.allclose(_centroid(warp_images(img, theta)[:, 0]), moved, atol=1e-2)
    assert per_sample[flipped].tolist() == [order] * int(flipped.sum())
    assert per_sample[~flipped].tolist() == [list(range(16))] * int((~flipped).sum())
    # an exact mirror-equivariant pose: left and right swap under the mirror
    kpts = torch.tensor(load_template("humanoid").points).expand(8, -1, -1)
    mirrored = kpts @ forward[:, :, :2].transpose(1, 2) + forward[:, None, :, 2]
    target = torch.gather(mirrored, 1, per_sample.unsqueeze(-1).expand(-1, -1, 2))
    assert float(equivariance_loss(kpts, target, forward, per_sample)) < 1e-10
    assert float(equivariance_loss(kpts, mirrored, forward, per_sample)) > 1e-3


def test_eq_flip_needs_a_template_prior():
    from ppl_edge.errors import PplEdgeError

    with pytest.raises(PplEdgeError, match="model.prior=template"):
        TrainConfig(eq_flip=True, w_equivariance=1.0)
    cfg = TrainConfig(preset="tiny", eq_flip=True, w_equivariance=1.0,
                      model_overrides={"prior": "template:humanoid"})  # fmt: skip
    assert cfg.model_config().prior == "template:humanoid"
