"""Appearance identity across frames (``w_appearance``): the term, its gradient, its wiring; and the
wiring of both two-frame terms (``w_appearance``, ``w_rigid``) into a training step."""

import pytest
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.model.ppl import PoseModel
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.losses import appearance_loss, pixel_loss, smoothed_colors
from ppl_edge.train.step import build_optimizer, train_step


def _frame(size: int, x0: int, colour=(1.0, -1.0, 0.0)) -> torch.Tensor:
    """(1, 3, size, size): a grey frame with a coloured 8-px square whose left edge is at x0."""
    img = torch.zeros(1, 3, size, size)
    img[0, :, 8:16, x0 : x0 + 8] = torch.tensor(colour).view(3, 1, 1)
    return img


def _xy(px: float, py: float, size: int) -> list[float]:
    return [px / (size - 1) * 2 - 1, py / (size - 1) * 2 - 1]


def test_a_keypoint_that_follows_its_part_costs_nothing_one_that_leaves_it_costs():
    size = 32
    a, b = _frame(size, 4), _frame(size, 18)  # the square moved 14 px to the right
    on_a = torch.tensor([[_xy(7.5, 11.5, size)]])
    on_b = torch.tensor([[_xy(21.5, 11.5, size)]])
    stayed = torch.tensor([[_xy(7.5, 11.5, size)]])  # where the square was: grey in frame b
    assert appearance_loss(a, on_a, b, on_b).item() == pytest.approx(0.0, abs=1e-6)
    assert appearance_loss(a, on_a, b, stayed).item() > 0.3
    # the colours are those of the square (smoothed over 3 and 7 px: 6 channels)
    colours = smoothed_colors(a, on_a)
    assert colours.shape == (1, 6, 1)
    assert colours[0, :3, 0].tolist() == pytest.approx([1.0, -1.0, 0.0], abs=1e-6)


def test_the_gradient_moves_a_keypoint_back_onto_its_part():
    size = 32
    a, b = _frame(size, 4), _frame(size, 18)
    on_a = torch.tensor([[_xy(7.5, 11.5, size)]])
    near = torch.tensor([[_xy(27.0, 11.5, size)]], requires_grad=True)  # 2 px right of the square
    appearance_loss(a, on_a, b, near).backward()
    assert near.grad[0, 0, 0].item() > 0  # descending moves x left, onto the square
    assert abs(near.grad[0, 0, 1].item()) < 1e-6  # nothing pulls it up or down


def _clip_batch(b: int = 4, size: int = 32) -> dict:
    torch.manual_seed(0)
    image = torch.rand(b, 3, size, size) * 2 - 1
    return {"image": image, "reference": image.roll(3, dims=-1)}


@pytest.mark.parametrize("term", ["appearance", "rigid"])
def test_train_step_adds_a_two_frame_term_and_keeps_the_equivariance_pairs(term):
    cfg = TrainConfig(preset="tiny", batch_size=4, w_equivariance=1.0, **{f"w_{term}": 2.0})
    torch.manual_seed(0)
    model = PoseModel(cfg.model_config())
    terms = train_step(
        model,
        _clip_batch(),
        build_optimizer(model, cfg),
        cfg,
        pixel_loss,
        torch.Generator().manual_seed(1),
    )
    assert terms[term].item() > 0 and terms["equivariance"].item() > 0
    expected = (
        terms["reconstruction"]
        + terms["boundary"]
        + 100 * terms["consistency"]
        + terms["commit"]
        + 2.0 * terms[term]
        + terms["equivariance"]
    )
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("term", ["appearance", "rigid"])
def test_a_two_frame_term_is_refused_without_a_reference_frame_and_with_a_negative_weight(term):
    cfg = TrainConfig(preset="tiny", batch_size=4, **{f"w_{term}": 1.0})
    model = PoseModel(cfg.model_config())
    with pytest.raises(PplEdgeError, match=f"w_{term} > 0 .* no 'reference' frame per item"):
        train_step(
            model,
            {"image": _clip_batch()["image"]},
            build_optimizer(model, cfg),
            cfg,
            pixel_loss,
            torch.Generator().manual_seed(0),
        )
    with pytest.raises(PplEdgeError, match=f"w_{term} must be >= 0"):
        TrainConfig(**{f"w_{term}": -1.0})


def test_with_a_mask_a_keypoint_on_the_unchanging_background_costs_a_full_mismatch():
    size = 32
    a, b = _frame(size, 4), _frame(size, 18)
    mask = (a.abs().sum(1, keepdim=True) > 0).float()  # the square of frame a
    background = torch.tensor([[_xy(28.0, 28.0, size)]])  # grey in both frames
    on_a = torch.tensor([[_xy(7.5, 11.5, size)]])
    on_b = torch.tensor([[_xy(21.5, 11.5, size)]])
    assert appearance_loss(a, background, b, background).item() == pytest.approx(0.0, abs=1e-6)
    gated = appearance_loss(a, background, b, background, mask, off_figure=0.7)
    assert gated.item() == pytest.approx(0.7)
    assert appearance_loss(a, on_a, b, on_b, mask).item() == pytest.approx(0.0, abs=1e-6)
    # one pixel off the square (inside the 1-px dilation) is still on the figure
    edge = torch.tensor([[_xy(12.0, 11.5, size)]])
    assert appearance_loss(a, edge, a, edge, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_the_training_objective_gates_the_term_with_the_frame_mask_unless_told_not_to():
    from ppl_edge.train.losses import training_losses

    size = 32
    a, b = _frame(size, 4), _frame(size, 18)
    mask = (a.abs().sum(1, keepdim=True) > 0).float()
    background = torch.tensor([[_xy(28.0, 28.0, size)]])
    out = {
        "keypoints": background,
        "keypoints_ref": background,
        "mem_keypoints": background,
        "commit_loss": torch.zeros(()),
    }
    for gate, expected in ((True, 1.0), (False, 0.0)):
        cfg = TrainConfig(preset="tiny", w_appearance=1.0, appearance_gate=gate)
        terms = training_losses(out, a, cfg, pixel_loss, mask=mask, stage="mask", reference=b)
        assert terms["appearance"].item() == pytest.approx(expected, abs=1e-6)
