"""Keypoints that move with the image (``w_flow``): the optical flow, the frames it comes from, the
term, its gradient and its wiring into a training step."""

import cv2
import numpy as np
import pytest
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.flow import dense_flow
from ppl_edge.model.ppl import PoseModel
from ppl_edge.synth.render import item_seed, render_pair, render_pair_near
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.data.common import flip_item, flow_to_tensor
from ppl_edge.train.data.synthetic import SyntheticDataset
from ppl_edge.train.losses import flow_loss, pixel_loss
from ppl_edge.train.step import build_optimizer, train_step


def _textured(size: int = 64, seed: int = 0) -> np.ndarray:
    """(size, size, 3) uint8 smooth random texture (DIS needs something to follow)."""
    noise = np.random.default_rng(seed).uniform(0, 255, (size // 4, size // 4, 3)).astype(np.uint8)
    return cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)


def _to_u8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) RGB in [-1, 1] -> (H, W, 3) uint8 BGR."""
    bgr = image.permute(1, 2, 0).numpy()[..., ::-1]
    return np.ascontiguousarray(((bgr + 1) * 127.5).round().astype(np.uint8))


def test_dense_flow_finds_a_shift_of_the_whole_frame():
    image = _textured(96)
    shifted = np.roll(image, (-2, 3), axis=(0, 1))  # content moves 3 px right, 2 px up
    flow = dense_flow(image, shifted)
    assert flow.shape == (96, 96, 2) and flow.dtype == np.float32
    centre = flow[24:72, 24:72].reshape(-1, 2)
    assert np.median(centre, axis=0) == pytest.approx([3.0, -2.0], abs=0.25)
    with pytest.raises(PplEdgeError, match="two uint8 frames of one shape"):
        dense_flow(image, shifted[:90])


def test_the_near_frame_comes_with_the_same_pair_and_the_flow_follows_the_joints():
    residual, motion = [], []
    for index in range(12):
        seed = item_seed("humanoid", "train", 0, index)
        pair = render_pair("humanoid", 64, seed, 32, 16, 4)
        frame, ref, near = render_pair_near("humanoid", 64, seed, 32, 16, 4, near_gap=2.0)
        assert np.array_equal(frame.image, pair[0].image)
        assert np.array_equal(ref.image, pair[1].image)
        flow = dense_flow(frame.image, near.image)
        moved = near.keypoints - frame.keypoints
        seen = frame.visible & near.visible
        x, y = np.clip(np.round(frame.keypoints).astype(int), 0, 63).T
        residual.append(np.linalg.norm(moved - flow[y, x], axis=1)[seen])
        motion.append(np.linalg.norm(moved, axis=1)[seen])
    residual, motion = np.concatenate(residual), np.concatenate(motion)
    # the joints move about 2 px in 2 frames; the flow predicts it to a fraction of a pixel
    assert np.mean(motion) > 1.0
    assert np.median(residual) < 0.5 < np.median(motion)
    with pytest.raises(PplEdgeError, match="near_gap must be in"):
        render_pair_near("humanoid", 64, 0, 32, 16, 4, near_gap=40.0)


def test_synthetic_items_carry_the_near_frame_and_the_flow_and_a_flip_mirrors_the_flow():
    data = SyntheticDataset(split="train", length=4, video=True, flow_gap=2.0)
    item = data[1]
    assert item["near"].shape == (3, 64, 64) and item["flow"].shape == (2, 64, 64)
    # the flow of the mirrored frames is the mirrored flow, its x negated
    flipped = flip_item(item)
    direct = flow_to_tensor(dense_flow(_to_u8(flipped["image"]), _to_u8(flipped["near"])), 64, 64)
    moving = item["flow"].norm(dim=0) > 0.02  # where something moves (in [-1, 1] units)
    assert moving.sum() > 20
    where = moving.flip(-1)
    agree = (direct - flipped["flow"]).norm(dim=0)[where]
    unsigned = item["flow"].flip(-1)  # mirrored without negating x
    wrong = (direct - unsigned).norm(dim=0)[where]
    assert agree.median().item() < 0.015  # half a pixel (DIS's patch grid is not symmetric)
    assert agree.median().item() < 0.5 * wrong.median().item()
    with pytest.raises(PplEdgeError, match="flow_gap needs video=true"):
        SyntheticDataset(split="train", length=4, flow_gap=2.0)


def test_a_keypoint_carried_by_the_flow_costs_nothing_one_that_stays_costs_the_motion():
    flow = torch.zeros(1, 2, 32, 32)
    flow[:, 0] = 0.1  # everything moves 0.1 to the right (in [-1, 1] units)
    kpts = torch.tensor([[[0.0, 0.0], [-0.5, 0.3]]])
    carried = kpts + torch.tensor([0.1, 0.0])
    assert flow_loss(kpts, carried, flow).item() == pytest.approx(0.0, abs=2e-3)
    stayed = kpts.clone()
    assert flow_loss(kpts, stayed, flow).item() == pytest.approx(0.1, abs=2e-3)
    # the gradient moves the nearby frame's keypoint along the flow, and the frame's against it
    near = stayed.clone().requires_grad_(True)
    here = kpts.clone().requires_grad_(True)
    flow_loss(here, near, flow).backward()
    assert (near.grad[0, :, 0] < 0).all() and (here.grad[0, :, 0] > 0).all()
    assert near.grad[0, :, 1].abs().max().item() < 1e-6


def _flow_batch(b: int = 4, size: int = 32) -> dict:
    torch.manual_seed(0)
    image = torch.rand(b, 3, size, size) * 2 - 1
    flow = torch.zeros(b, 2, size, size)
    flow[:, 0] = 2.0 / (size - 1)  # one pixel to the right
    return {"image": image, "near": image.roll(1, dims=-1), "flow": flow}


def test_train_step_adds_the_flow_term_with_its_own_encoder_pass():
    cfg = TrainConfig(preset="tiny", batch_size=4, w_equivariance=1.0, w_flow=3.0)
    torch.manual_seed(0)
    model = PoseModel(cfg.model_config())
    seen = []
    model.encoder.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    terms = train_step(
        model,
        _flow_batch(),
        build_optimizer(model, cfg),
        cfg,
        pixel_loss,
        torch.Generator().manual_seed(1),
    )
    assert seen[:2] == [4, 8]  # the frame, then the warped frames and the near frames together
    assert terms["flow"].item() > 0 and terms["equivariance"].item() > 0
    expected = (
        terms["reconstruction"]
        + terms["boundary"]
        + 100 * terms["consistency"]
        + terms["commit"]
        + 3.0 * terms["flow"]
        + terms["equivariance"]
    )
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_the_flow_term_is_refused_without_a_near_frame_and_with_a_negative_weight():
    cfg = TrainConfig(preset="tiny", batch_size=4, w_flow=1.0)
    model = PoseModel(cfg.model_config())
    with pytest.raises(PplEdgeError, match="w_flow > 0 needs a 'near' frame and its 'flow'"):
        train_step(
            model,
            {"image": _flow_batch()["image"]},
            build_optimizer(model, cfg),
            cfg,
            pixel_loss,
            torch.Generator().manual_seed(0),
        )
    with pytest.raises(PplEdgeError, match="w_flow must be >= 0"):
        TrainConfig(w_flow=-1.0)
