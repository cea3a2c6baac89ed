"""Loss functions on inputs with known answers, and the VGG perceptual loss's weight loading."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.losses import (
    boundary_loss,
    link_reg_loss,
    memory_losses,
    pixel_loss,
    separation_loss,
    ssim,
    training_losses,
)
from ppl_edge.train.perceptual import SLICES, PerceptualLoss, vgg_features

pytestmark = pytest.mark.usefixtures("one_thread")


def test_boundary_loss_value():
    # |p| counts only where |p| > 1: Σ_N per coordinate = (1.5 + 2.0, 0) -> mean over (B, 2) = 1.75
    kpts = torch.tensor([[[1.5, -0.2], [-2.0, 0.5]]])
    assert boundary_loss(kpts).item() == pytest.approx(1.75)
    assert boundary_loss(torch.tensor([[[1.0, -1.0], [0.3, 0.9]]])).item() == 0.0


def test_boundary_loss_sums_keypoints_and_averages_batch():
    kpts = torch.full((3, 4, 2), 1.5)
    assert boundary_loss(kpts).item() == pytest.approx(4 * 1.5)


def test_ssim_identical_is_one_and_drops_with_noise():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=gen)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5)
    noisy = (x + 0.15 * torch.randn(x.shape, generator=gen)).clamp(0, 1)
    s_noisy = ssim(x, noisy).item()
    assert 0.0 < s_noisy < 0.95
    assert ssim(noisy, x).item() == pytest.approx(s_noisy, abs=1e-6)  # symmetric
    assert ssim(x, 1 - x).item() < 0.0  # inverted structure: negative correlation


def test_ssim_of_constant_shift_matches_luminance_formula():
    # Two flat images: SSIM = (2 μx μy + C1) / (μx² + μy² + C1); contrast/structure terms are 1.
    x, y = torch.full((1, 1, 16, 16), 0.2), torch.full((1, 1, 16, 16), 0.7)
    c1 = 0.01**2
    expected = (2 * 0.2 * 0.7 + c1) / (0.2**2 + 0.7**2 + c1)
    assert ssim(x, y).item() == pytest.approx(expected, rel=1e-3)  # fp32 E[x²] - μ² cancellation


def test_pixel_loss_zero_for_perfect_reconstruction():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    terms = pixel_loss(x.clone(), x)
    assert terms["reconstruction"].item() == pytest.approx(0.0, abs=1e-5)
    assert terms["l1"].item() == 0.0
    worse = pixel_loss(torch.zeros_like(x), x)
    assert worse["reconstruction"].item() > 0.3


def _link_reg_reference(prior, kpts, w, pairs):
    """Loop-by-loop NumPy version of the official compute_edge_reg_loss."""

    def norm(p):
        return (p - p.min(0)) / (p.max(0) - p.min(0))

    t = norm(prior)
    total, count = 0.0, 0
    for b in range(kpts.shape[0]):
        p = norm(kpts[b])
        for k, (i, j) in enumerate(pairs):
            lp, lt = np.linalg.norm(p[i] - p[j]), np.linalg.norm(t[i] - t[j])
            valid = 0.3 < lp < 0.7
            total += abs((10 * abs(lt - lp) + np.log(w[k])) * valid)
            count += 1
    return total / count


def test_link_reg_matches_reference_loop():
    gen = torch.Generator().manual_seed(3)
    prior = torch.rand(6, 2, generator=gen) * 2 - 1
    kpts = torch.rand(4, 6, 2, generator=gen) * 2 - 1
    pairs = torch.triu_indices(6, 6, 1).T
    w = torch.rand(len(pairs), generator=gen) * 0.5 + 0.01
    got = link_reg_loss(prior, kpts, w, pairs).item()
    want = _link_reg_reference(prior.numpy(), kpts.numpy(), w.numpy(), pairs.numpy())
    assert got == pytest.approx(want, rel=1e-5)


def test_link_reg_weakens_links_whose_length_changes():
    # Link 0-1 keeps its length (0.5), link 2-3 changes length (0.5 -> 0.6): minimising eq. 6
    # drives w -> exp(-10 Δℓ), so the stable link ends stronger than the changing one.
    prior = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 1.0], [0.5, 1.0], [1.0, 0.5]])
    kpts = torch.tensor([[[0.0, 0.0], [0.5, 0.0], [0.0, 1.0], [0.6, 1.0], [1.0, 0.5]]])
    pairs = torch.tensor([[0, 1], [2, 3]])
    theta = torch.zeros(2, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.1)
    for _ in range(120):
        opt.zero_grad()
        link_reg_loss(prior, kpts, torch.nn.functional.softplus(theta), pairs).backward()
        opt.step()
    w = torch.nn.functional.softplus(theta).detach()
    assert w[0].item() == pytest.approx(1.0, abs=0.05)
    assert w[1].item() == pytest.approx(math.exp(-10 * 0.1), abs=0.05)
    assert kpts.grad is None and prior.grad is None


def test_memory_losses_values():
    t = torch.zeros(2, 3, 2, requires_grad=True)
    m = torch.ones(2, 3, 2, requires_grad=True)
    terms = memory_losses(m, t, torch.tensor(0.25))
    assert terms["consistency"].item() == pytest.approx(1.0)
    terms["consistency"].backward()
    assert t.grad is None and m.grad is not None  # sg(T'): only the memory side learns


def test_training_losses_weights_and_link_reg_switch():
    B, N = 2, 4
    out = {
        "prior": torch.rand(N, 2),
        "keypoints": torch.full((B, N, 2), 1.5),
        "recon": torch.zeros(B, 3, 32, 32),
        "mem_keypoints": torch.zeros(B, N, 2),
        "commit_loss": torch.tensor(0.5),
    }
    image = torch.zeros(B, 3, 32, 32)
    cfg = TrainConfig(preset="tiny", w_consistency=100.0, w_boundary=2.0, w_commit=3.0)
    terms = training_losses(out, image, cfg, pixel_loss)
    assert "link_reg" not in terms  # official: eq. 6 off by default
    expected = terms["reconstruction"] + 2.0 * N * 1.5 + 100.0 * 1.5**2 + 3.0 * 0.5
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-5)
    cfg_link = TrainConfig(preset="tiny", w_link_reg=1.0)
    pairs = torch.triu_indices(N, N, 1).T
    terms = training_losses(out, image, cfg_link, pixel_loss, torch.full((len(pairs),), 0.1), pairs)
    assert "link_reg" in terms


def test_separation_loss_values_and_gradient():
    # All keypoints on one point: every pair scores exp(0) = 1.
    assert separation_loss(torch.zeros(2, 5, 2), 0.1).item() == pytest.approx(1.0)
    # Two keypoints 0.1 apart at σ = 0.1: exp(-0.01 / 0.02) for both ordered pairs.
    kpts = torch.tensor([[[0.0, 0.0], [0.1, 0.0]]], requires_grad=True)
    loss = separation_loss(kpts, 0.1)
    assert loss.item() == pytest.approx(math.exp(-0.5), rel=1e-5)
    loss.backward()
    # Descending the gradient pushes the two keypoints apart along x.
    assert kpts.grad[0, 0, 0] > 0 > kpts.grad[0, 1, 0]
    assert kpts.grad[0, :, 1].abs().max() < 1e-6
    far = torch.tensor([[[-0.9, -0.9], [0.9, 0.9], [0.9, -0.9]]])
    assert separation_loss(far, 0.1).item() < 1e-10


def test_training_losses_separation_term_only_when_weighted():
    B, N = 2, 3
    out = {
        "prior": torch.rand(N, 2),
        "keypoints": torch.zeros(B, N, 2),
        "recon": torch.zeros(B, 3, 32, 32),
        "mem_keypoints": torch.zeros(B, N, 2),
        "commit_loss": torch.tensor(0.0),
    }
    image = torch.zeros(B, 3, 32, 32)
    plain = training_losses(out, image, TrainConfig(preset="tiny"), pixel_loss)
    assert "separation" not in plain
    terms = training_losses(out, image, TrainConfig(preset="tiny", w_separation=4.0), pixel_loss)
    assert terms["separation"].item() == pytest.approx(1.0)  # coincident keypoints
    assert terms["total"].item() == pytest.approx(plain["total"].item() + 4.0, rel=1e-5)
    with pytest.raises(PplEdgeError, match="sep_sigma"):
        TrainConfig(preset="tiny", sep_sigma=0.0)


# --- VGG perceptual loss ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vgg16_file(tmp_path_factory):
    """A torchvision-layout VGG16 state dict (random values), with an extra classifier key."""
    torch.manual_seed(0)
    feats = vgg_features("vgg16")
    state = {f"features.{k}": v for k, v in feats.state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)
    path = tmp_path_factory.mktemp("vgg") / "vgg16-397923af.pth"
    torch.save(state, path)
    return path, state


def test_vgg_features_follow_torchvision_indices():
    feats = vgg_features("vgg16")
    assert len(feats) == SLICES["vgg16"][-1] == 23
    assert isinstance(feats[3], torch.nn.ReLU) and isinstance(feats[4], torch.nn.MaxPool2d)
    assert isinstance(feats[22], torch.nn.ReLU) and feats[21].out_channels == 512
    feats19 = vgg_features("vgg19")
    assert isinstance(feats19[24], torch.nn.ReLU) and isinstance(feats19[18], torch.nn.MaxPool2d)


def test_perceptual_loss_loads_torchvision_keys(vgg16_file):
    path, state = vgg16_file
    loss = PerceptualLoss(path, "vgg16", size=0)
    assert torch.equal(loss.blocks[0][0].weight, state["features.0.weight"])
    assert torch.equal(loss.blocks[3][-2].bias, state["features.21.bias"])
    assert not any(p.requires_grad for p in loss.parameters())
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0
    recon = (x + 0.2 * torch.randn_like(x)).requires_grad_(True)
    target = x.clone().requires_grad_(True)
    value = loss(recon, target)
    assert value.item() > 0
    value.backward()
    assert recon.grad is not None and recon.grad.abs().sum() > 0
    assert target.grad is None


def test_perceptual_loss_resizes_to_setting(vgg16_file):
    loss = PerceptualLoss(vgg16_file[0], "vgg16", size=48)
    seen = []
    loss.blocks[0].register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    loss(torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32))
    assert seen[0] == (1, 3, 48, 48)


def test_perceptual_loss_refuses_wrong_arch_and_pickles(vgg16_file, tmp_path):
    with pytest.raises(PplEdgeError, match="features.16.weight"):
        PerceptualLoss(vgg16_file[0], "vgg19")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "vgg16.pth"
    evil.write_bytes(pickle.dumps({"features.0.weight": Payload()}, protocol=2))
    with pytest.raises(PplEdgeError, match="weights-only"):
        PerceptualLoss(evil)
    assert not marker.exists()
    with pytest.raises(PplEdgeError, match="not found"):
        PerceptualLoss(tmp_path / "missing.pth")


def test_training_uses_the_perceptual_loss_when_weights_are_given(vgg16_file, tmp_path):
    from ppl_edge.train.loop import train

    cfg = TrainConfig(preset="tiny", data_length=8, batch_size=4, max_steps=1, num_workers=0,
                      vgg_weights=str(vgg16_file[0]), perceptual_size=0, out=str(tmp_path),
                      device="cpu")  # fmt: skip
    summary = train(cfg)
    assert summary["recon_loss"].startswith("perceptual (vgg16, native size")
    assert "l1" not in summary["losses"] and summary["losses"]["reconstruction"] > 0
