"""Mask supervision: distance maps, the skeleton-mask and attraction terms, the cascade stages."""

import pytest
import torch

from ppl_edge.errors import PplEdgeError
from ppl_edge.model.config import preset
from ppl_edge.model.links import Connectivity
from ppl_edge.model.ppl import PoseModel
from ppl_edge.train.config import TrainConfig
from ppl_edge.train.losses import (
    attraction_loss,
    coverage_loss,
    mask_distance_maps,
    mask_weight_map,
    pixel_loss,
    skeleton_mask_loss,
)
from ppl_edge.train.step import build_optimizer, random_hflip, train_step


def _box_mask(size=16, y0=4, y1=12, x0=6, x1=10) -> torch.Tensor:
    m = torch.zeros(1, 1, size, size)
    m[..., y0:y1, x0:x1] = 1.0
    return m


def test_outside_distance_is_the_chessboard_distance_to_the_figure():
    maps = mask_distance_maps(_box_mask())
    out = maps["outside"][0, 0]
    assert out[4:12, 6:10].eq(0).all()
    assert out[8, 5].item() == 1 and out[8, 3].item() == 3  # left of the box
    assert out[0, 0].item() == 6  # max(|0 - 6|, |0 - 4|) from the corner pixel (4, 6)
    assert out[15, 15].item() == 6


def test_inside_distance_is_geodesic_along_the_figure():
    # an L: a vertical bar and a foot to the right; the foot's tip is far along the figure
    m = torch.zeros(1, 1, 20, 20)
    m[..., 2:18, 4:6] = 1.0
    m[..., 16:18, 4:16] = 1.0
    inside = mask_distance_maps(m)["inside"][0, 0]
    assert inside[m[0, 0] == 0].eq(0).all()
    seed = (inside == 0) & (m[0, 0] > 0)
    assert seed.sum() == 1  # one seed, near the centroid
    assert inside[17, 15] > inside[2, 4]  # the foot tip is the farthest point along the figure
    assert inside[17, 15] >= 10


def test_weight_map_is_one_at_the_centre_and_grows_to_ends_and_far_background():
    m = _box_mask()
    maps = mask_distance_maps(m)
    g = mask_weight_map(maps, m > 0.5, bg_scale=1.0)
    assert g.min().item() == pytest.approx(1.0)
    assert g[0, 0, 4:12, 6:10].max().item() == pytest.approx(2.0)  # the farthest figure pixel
    assert g[0, 0, 8, 5].item() == pytest.approx(2.0)  # 1 px from the figure
    assert g[0, 0, 8, 3].item() == pytest.approx(4.0)  # 3 px
    assert g.max().item() == pytest.approx(5.0)  # capped far away


def test_skeleton_mask_loss_is_zero_for_a_perfect_drawing_and_scale_free():
    m = _box_mask()
    weights = torch.ones_like(m)
    assert skeleton_mask_loss(m * 0.3, torch.tensor(0.3), m, weights).item() == 0.0
    # a drawing at any global scale, divided by its peak, costs the same
    s = torch.rand_like(m)
    a = skeleton_mask_loss(s, s.amax(), m, weights)
    b = skeleton_mask_loss(s * 7.0, (s * 7.0).amax(), m, weights)
    assert a.item() == pytest.approx(b.item(), rel=1e-6) and a.item() > 0


def test_connectivity_normalised_drawing_peaks_at_one():
    cfg = preset("tiny", link_normalize=True)
    links = Connectivity(cfg)
    kpts = torch.rand(2, cfg.num_keypoints, 2) * 2 - 1
    s = links(kpts, 32)
    assert s.max().item() == pytest.approx(1.0, abs=0.05)
    assert links.peak().item() == pytest.approx(1.0)
    raw = Connectivity(preset("tiny"))
    assert raw.peak().item() == pytest.approx(raw.link_weights().max().item())


def test_attraction_is_zero_on_the_figure_and_pulls_towards_it():
    m = _box_mask(size=33, y0=10, y1=23, x0=14, x1=19)
    outside = mask_distance_maps(m)["outside"]
    on = torch.tensor([[[0.0, 0.0]]])  # the centre pixel (16, 16) is on the figure
    assert attraction_loss(on, outside).item() == 0.0
    off = torch.tensor([[[-0.8, 0.0]]], requires_grad=True)  # left of the figure
    loss = attraction_loss(off, outside)
    loss.backward()
    assert loss.item() > 0
    assert off.grad[0, 0, 0].item() < 0  # descending moves x to the right, towards the figure


def test_coverage_pulls_the_nearest_keypoint_to_uncovered_figure_from_afar():
    m = torch.zeros(1, 1, 33, 33)
    m[..., 16, 30:33] = 1.0  # a small blob at the right edge, far from both keypoints
    weights = torch.ones_like(m)
    kpts = torch.tensor([[[-0.9, 0.0], [0.0, 0.0]]], requires_grad=True)
    loss = coverage_loss(kpts, m, weights)
    # pixel x = 30, 31, 32 are at 0.875, 0.9375, 1.0; the nearest keypoint is at 0: mean 0.9375 / 2
    assert loss.item() == pytest.approx(0.9375 / 2, rel=1e-4)
    loss.backward()
    assert kpts.grad[0, 1, 0].item() < 0  # the nearer keypoint moves right, towards the blob
    assert kpts.grad[0, 0].abs().max().item() == 0  # the farther one is not pulled
    on = torch.tensor([[[0.9375, 0.0]]])
    assert coverage_loss(on, m, weights).item() == pytest.approx(0.0625 / 2 * 2 / 3, rel=1e-3)


def test_flip_moves_the_mask_with_its_image():
    image = torch.rand(8, 3, 6, 6)
    mask = image[:, :1].clone()
    flipped, ref, fmask = random_hflip(image, None, mask, gen=torch.Generator().manual_seed(0))
    assert ref is None
    assert torch.equal(fmask, flipped[:, :1])
    changed = (flipped != image).flatten(1).any(1)
    assert 0 < changed.sum() < 8  # some samples flipped, some not


def _batch(size=32, b=4):
    torch.manual_seed(0)
    mask = torch.zeros(b, 1, size, size)
    mask[..., 8:26, 12:20] = 1.0
    return {"image": torch.rand(b, 3, size, size) * 2 - 1, "mask": mask}


def test_mask_stage_trains_without_the_decoder_then_the_full_stage_uses_it():
    cfg = TrainConfig(
        preset="tiny",
        batch_size=4,
        w_mask=1.0,
        w_mask_late=0.25,
        w_attraction=2.0,
        mask_warmup_steps=1,
        model_overrides={"link_normalize": True},
    )
    torch.manual_seed(0)
    model = PoseModel(cfg.model_config())
    opt = build_optimizer(model, cfg)
    dec0 = [p.detach().clone() for p in model.decoder.parameters()]
    enc0 = [p.detach().clone() for p in model.encoder.parameters()]
    batch = _batch()
    terms = train_step(model, batch, opt, cfg, pixel_loss, torch.Generator().manual_seed(1), step=0)
    assert "reconstruction" not in terms and terms["mask"].item() > 0
    expected = (
        terms["boundary"]
        + 100 * terms["consistency"]
        + terms["commit"]
        + terms["mask"]
        + 2.0 * terms["attraction"]
    )
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert all(torch.equal(a, b) for a, b in zip(dec0, model.decoder.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(enc0, model.encoder.parameters()))
    terms = train_step(model, batch, opt, cfg, pixel_loss, torch.Generator().manual_seed(2), step=1)
    assert "reconstruction" in terms
    expected = (
        terms["reconstruction"]
        + terms["boundary"]
        + 100 * terms["consistency"]
        + terms["commit"]
        + 0.25 * terms["mask"]
        + 2.0 * terms["attraction"]
    )
    assert terms["total"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert any(not torch.equal(a, b) for a, b in zip(dec0, model.decoder.parameters()))


def test_mask_supervision_refuses_batches_and_settings_without_masks():
    cfg = TrainConfig(preset="tiny", batch_size=4, w_mask=1.0)
    model = PoseModel(cfg.model_config())
    batch = {"image": _batch()["image"]}
    with pytest.raises(PplEdgeError, match="needs a 'mask' per item"):
        train_step(
            model,
            batch,
            build_optimizer(model, cfg),
            cfg,
            pixel_loss,
            torch.Generator().manual_seed(0),
        )
    with pytest.raises(PplEdgeError, match="mask_warmup_steps=10"):
        TrainConfig(mask_warmup_steps=10)
    assert TrainConfig(w_mask=2.0).stage(0) == "full"
    assert TrainConfig(w_mask=2.0, mask_warmup_steps=5).stage(4) == "mask"


def test_the_mask_recipe_trains_through_both_stages_and_resumes(tmp_path):
    from pathlib import Path

    from ppl_edge.train.config import replace, resolve_config
    from ppl_edge.train.loop import train
    from ppl_edge.train.run_files import MetricsLog

    recipe = Path(__file__).resolve().parents[2] / "configs" / "mask.yaml"
    cfg = resolve_config(recipe, ["preset=tiny"])
    assert cfg.reference == "frame" and cfg.uses_masks and cfg.model_config().link_normalize
    cfg = replace(
        cfg,
        data_length=16,
        batch_size=4,
        max_steps=4,
        mask_warmup_steps=2,
        num_workers=0,
        log_interval=1,
        ckpt_interval=2,
        prior_interval=0,
        out=str(tmp_path / "run"),
        device="cpu",
    )
    first = train(replace(cfg, max_steps=3))
    assert first["step"] == 3
    summary = train(cfg, resume_run=True)
    assert summary["step"] == 4
    rows = MetricsLog(tmp_path / "run", resume_step=4).rows
    stages = [("reconstruction" in r, "mask" in r) for r in rows]
    assert stages == [(False, True), (False, True), (True, True), (True, True)]


def test_resume_takes_overrides_that_need_the_stored_settings(tmp_path):
    """--set mask_warmup_steps on --resume is checked against the run's stored mask recipe, not
    against the defaults (where w_mask = 0 would refuse it)."""
    from pathlib import Path

    from ppl_edge.checkpoint import read_metadata
    from ppl_edge.cli import main

    recipe = Path(__file__).resolve().parents[2] / "configs" / "mask.yaml"
    out = tmp_path / "run"
    common = ["--preset", "tiny", "--batch-size", "4", "--num-workers", "0", "--threads", "1"]
    args = [
        "train",
        "--config",
        str(recipe),
        "--steps",
        "2",
        "--out",
        str(out),
        *common,
        "--set",
        "data_length=8",
        "--set",
        "mask_warmup_steps=1",
        "--prior-interval",
        "0",
    ]
    assert main(args) == 0
    resumed = [
        "train",
        "--out",
        str(out),
        "--resume",
        "--steps",
        "3",
        "--threads",
        "1",
        "--set",
        "mask_warmup_steps=5",
    ]
    assert main(resumed) == 0
    state = read_metadata(out / "latest.safetensors")["train_state"]
    assert state["step"] == 3
    assert state["train_config"]["mask_warmup_steps"] == 5
    assert state["train_config"]["w_mask"] == 1.0


def test_extremities_are_the_ends_of_the_figure_and_pull_the_nearest_keypoint():
    from ppl_edge.train.losses import extremity_loss, extremity_points

    mask = torch.zeros(1, 1, 33, 33)
    mask[..., 14:19, 2:31] = 1.0  # a plus: four arms of length 14 around the centre (16, 16)
    mask[..., 2:31, 14:19] = 1.0
    inside = mask_distance_maps(mask)["inside"]
    points = extremity_points(inside, 4, radius=8)
    px = ((points[0, :, :2] + 1) / 2 * 32).round()
    ends = {(float(x), float(y)) for x, y in px}
    assert len(ends) == 4 and all(v == 1 for v in points[0, :, 2].tolist())
    for x, y in ends:  # each end lies at the tip of one arm
        assert min(abs(x - 16), abs(y - 16)) <= 2 and max(abs(x - 16), abs(y - 16)) >= 13
    at_ends = points[:, :, :2].clone()
    assert float(extremity_loss(at_ends, points)) < 1e-3
    centre = torch.zeros(1, 4, 2, requires_grad=True)
    loss = extremity_loss(centre, points)
    loss.backward()
    assert float(loss.detach()) > 0.3 and centre.grad.abs().sum() > 0
    # a fifth extremity on a figure that has only four ends is flagged invalid once all is covered
    assert extremity_points(inside, 12, radius=40)[0, :, 2].sum() < 12


def test_the_full_stage_after_the_warm_up_runs_at_the_late_learning_rate():
    from ppl_edge.train.config import TrainConfig
    from ppl_edge.train.step import build_model, set_stage_lr

    cfg = TrainConfig(preset="tiny", w_mask=1.0, mask_warmup_steps=3, lr=1e-3, link_lr=2e-3,
                      lr_late_factor=0.1)  # fmt: skip
    optimizer = build_optimizer(build_model(cfg, "cpu"), cfg)
    set_stage_lr(optimizer, cfg, cfg.stage(2))
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3, 2e-3]
    set_stage_lr(optimizer, cfg, cfg.stage(3))
    assert [g["lr"] for g in optimizer.param_groups] == pytest.approx([1e-4, 2e-4])
    plain = TrainConfig(preset="tiny", lr=1e-3, lr_late_factor=0.1)  # no warm-up: no late stage
    set_stage_lr(optimizer, plain, plain.stage(10))
    assert optimizer.param_groups[0]["lr"] == 1e-3


def test_medial_axis_is_the_centre_line_of_each_bar():
    from ppl_edge.train.mask_losses import medial_axis_map

    bar = _box_mask(size=16, y0=2, y1=14, x0=3, x1=10)  # 7 px wide: centre column 6
    axis = medial_axis_map(bar, dilate=0)[0, 0]
    # the centre line, ending half a width (3 px, chessboard) from the short sides
    expected = torch.zeros(16, 16)
    expected[5:11, 6] = 1
    assert torch.equal(axis, expected)
    widened = medial_axis_map(bar, dilate=1)[0, 0]
    assert widened[5:11, 5:8].eq(1).all() and widened[5:11, [3, 9]].eq(0).all()
    cross = _box_mask(size=17, y0=2, y1=15, x0=7, x1=10)
    cross[..., 7:10, 2:15] = 1.0  # a plus sign, 3 px arms: the axis runs along both arms
    axis = medial_axis_map(cross, dilate=0)[0, 0]
    assert axis[3:14, 8].eq(1).all() and axis[8, 3:14].eq(1).all()
    assert medial_axis_map(torch.zeros(1, 1, 8, 8)).eq(0).all()
    cut = torch.zeros(1, 1, 8, 8)
    cut[..., 2:6] = 1.0  # a bar cut by the top and bottom of the frame: its axis runs to them
    axis = medial_axis_map(cut, dilate=0)[0, 0]
    assert axis[:, 3:5].eq(1).all() and axis.sum().item() == 16


def test_mask_target_medial_asks_the_link_map_for_the_axis_not_the_silhouette():
    from ppl_edge.train.mask_losses import mask_terms, medial_axis_map

    mask = _box_mask(size=16, y0=2, y1=14, x0=3, x1=10)
    kpts = torch.tensor([[[-0.3, -0.5], [-0.3, 0.5]]])
    for target in ("silhouette", "medial"):
        cfg = TrainConfig(preset="tiny", w_mask=1.0, mask_target=target)
        drawn = mask if target == "silhouette" else medial_axis_map(mask)
        terms = mask_terms({"links": drawn, "keypoints": kpts}, mask, torch.tensor(1.0), cfg)
        assert terms["mask"].item() == 0.0  # a link map that draws the target costs nothing
        other = medial_axis_map(mask) if target == "silhouette" else mask
        terms = mask_terms({"links": other, "keypoints": kpts}, mask, torch.tensor(1.0), cfg)
        assert terms["mask"].item() > 0.05
    with pytest.raises(PplEdgeError, match="mask_target"):
        TrainConfig(preset="tiny", mask_target="skeleton")


def test_coverage_in_colour_pulls_a_keypoint_onto_a_part_the_silhouette_hides():
    # one square figure: a red body with a blue bar across it (an arm in front of the torso)
    m = _box_mask(size=17, y0=2, y1=15, x0=2, x1=15)
    image = torch.zeros(1, 3, 17, 17)
    image[:, 0] = 1.0
    image[:, :, 7:10, 4:13] = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)
    weights = torch.ones_like(m)
    grid = torch.linspace(-1, 1, 17)
    corners = [(5, 4), (12, 4), (5, 12), (12, 12), (8, 3)]  # the last one is spare
    body = torch.tensor([[[grid[x], grid[y]] for x, y in corners]])
    on_bar = body.clone()
    on_bar[0, 4] = torch.stack([grid[8], grid[8]])  # the spare keypoint moved onto the bar
    plain = coverage_loss(body, m, weights)
    assert coverage_loss(body, m, weights, image, color_weight=0.0).item() == plain.item()
    # in position alone the bar is near keypoints already; in colour it is uncovered
    lam = 0.5
    gain_plain = plain - coverage_loss(on_bar, m, weights)
    gain_colour = coverage_loss(body, m, weights, image, lam) - coverage_loss(
        on_bar, m, weights, image, lam
    )
    assert gain_colour.item() > 0.02 and gain_colour.item() > 2 * gain_plain.item()
    kpts = body.clone().requires_grad_(True)
    coverage_loss(kpts, m, weights, image, lam).backward()
    assert kpts.grad[0, 4, 1].item() < 0  # the spare keypoint is pulled down towards the bar
    with pytest.raises(ValueError, match="needs the image"):
        coverage_loss(body, m, weights, None, color_weight=0.5)


def test_mask_inner_weight_makes_a_link_across_the_figure_cheap_not_one_outside_it():
    from ppl_edge.train.mask_losses import mask_terms, medial_axis_map

    mask = _box_mask(size=16, y0=2, y1=14, x0=3, x1=10)
    kpts = torch.tensor([[[-0.3, -0.5], [-0.3, 0.5]]])
    axis = medial_axis_map(mask)
    across = axis.clone()
    across[..., 8, 3:10] = 1.0  # a link across the bar, inside the figure
    outside = axis.clone()
    outside[..., 8, 10:16] = 1.0  # a link leaving the figure
    peak = torch.tensor(1.0)
    costs = {}
    for inner in (1.0, 0.1):
        cfg = TrainConfig(preset="tiny", w_mask=1.0, mask_target="medial", mask_inner_weight=inner)
        costs[inner] = {
            name: mask_terms({"links": links, "keypoints": kpts}, mask, peak, cfg)["mask"].item()
            for name, links in (("axis", axis), ("across", across), ("outside", outside))
        }
    assert costs[1.0]["axis"] == costs[0.1]["axis"] == 0.0
    assert costs[0.1]["across"] == pytest.approx(0.1 * costs[1.0]["across"], rel=1e-5)
    assert costs[0.1]["outside"] == pytest.approx(costs[1.0]["outside"], rel=1e-5)
    with pytest.raises(PplEdgeError, match="mask_inner_weight"):
        TrainConfig(preset="tiny", mask_inner_weight=-1.0)


def test_capsule_term_is_met_by_keypoints_on_the_joints_not_elsewhere_on_the_axis():
    from ppl_edge.model.links import rasterize_capsules
    from ppl_edge.train.mask_losses import mask_terms

    size = 33
    px = 2.0 / (size - 1)
    pairs = torch.tensor([[0, 1], [1, 2]])
    radii = torch.tensor([[3 * px, 3 * px], [1.5 * px, 1.5 * px]])  # a thick and a thin limb
    joints = torch.tensor([[[-0.6, -0.5], [0.1, -0.5], [0.1, 0.5]]])  # shoulder, elbow, wrist
    drawn = rasterize_capsules(joints, torch.ones(2), pairs, radii, size, 0.05 * px)
    mask = (drawn > 0.5).float()  # an arm bent at the elbow
    cfg = TrainConfig(preset="tiny", w_mask=1.0, mask_target="medial")
    peak = torch.tensor(1.0)

    def cost(kpts):
        capsules = rasterize_capsules(kpts, torch.ones(2), pairs, radii, size, 0.5 * px)
        out = {"links": torch.zeros_like(mask), "keypoints": kpts, "capsules": capsules}
        return mask_terms(out, mask, peak, cfg)["capsule"].item()

    slid = joints.clone()
    slid[0, 1, 0] -= 4 * px  # the elbow 4 px back along the upper arm's axis
    slid[0, 2, 1] -= 6 * px  # the wrist 6 px up the forearm
    assert cost(joints) < 0.04 and cost(slid) > 2 * cost(joints)
    swapped = joints[:, [2, 1, 0]]  # the thin link's radii on the thick limb and back
    assert cost(swapped) > 2 * cost(joints)
    out = {"links": torch.zeros_like(mask), "keypoints": joints}
    assert "capsule" not in mask_terms(out, mask, peak, cfg)


def test_capsule_training_learns_the_radii_and_weighs_the_term_by_stage():
    with pytest.raises(PplEdgeError, match="link_capsules"):
        TrainConfig(preset="tiny", w_mask=1.0, w_capsule=1.0)
    with pytest.raises(PplEdgeError, match="capsule_softness"):
        TrainConfig(preset="tiny", capsule_softness=0.0)
    cfg = TrainConfig(
        preset="tiny",
        batch_size=4,
        w_mask=2.0,
        w_mask_late=0.5,
        w_capsule=3.0,
        mask_warmup_steps=1,
        model_overrides={"link_normalize": True, "link_capsules": True},
    )
    alone = TrainConfig(preset="tiny", w_capsule=1.0, model_overrides={"link_capsules": True})
    assert alone.uses_masks
    torch.manual_seed(0)
    model = PoseModel(cfg.model_config())
    opt = build_optimizer(model, cfg)
    radius0 = model.connectivity.log_radius.detach().clone()
    batch = _batch()
    for step, weight in ((0, 3.0), (1, 0.75)):  # after the warm-up: 3 · 0.5 / 2
        gen = torch.Generator().manual_seed(1)
        terms = train_step(model, batch, opt, cfg, pixel_loss, gen, step=step)
        base = terms["boundary"] + 100 * terms["consistency"] + terms["commit"]
        base = base + (2.0 if step == 0 else 0.5) * terms["mask"] + terms.get("reconstruction", 0)
        assert terms["capsule"].item() > 0
        expected = base + weight * terms["capsule"]
        assert terms["total"].item() == pytest.approx(float(expected), rel=1e-5)
    assert not torch.equal(radius0, model.connectivity.log_radius.detach())


def test_capsule_edges_soften_at_the_start_and_sharpen_over_the_warm_up():
    caps = {"w_capsule": 1.0, "model_overrides": {"link_capsules": True}}
    fixed = TrainConfig(preset="tiny", capsule_softness=0.5, mask_warmup_steps=100, **caps)
    assert fixed.capsule_softness_at(0) == fixed.capsule_softness_at(500) == 0.5
    cfg = TrainConfig(preset="tiny", capsule_softness_start=2.0, mask_warmup_steps=100, **caps)
    assert [cfg.capsule_softness_at(s) for s in (0, 50, 100, 900)] == [2.0, 1.25, 0.5, 0.5]
    with pytest.raises(PplEdgeError, match="capsule_softness_start"):
        TrainConfig(preset="tiny", capsule_softness_start=-1.0)


def test_the_training_capsules_are_joined_as_the_config_says():
    from ppl_edge.train.step import capsule_map

    with pytest.raises(PplEdgeError, match="capsule_union"):
        TrainConfig(preset="tiny", capsule_union="mean")
    caps = {"w_capsule": 1.0, "model_overrides": {"link_capsules": True, "link_normalize": True}}
    torch.manual_seed(0)
    model = PoseModel(TrainConfig(preset="tiny", **caps).model_config())
    kpts = torch.rand(2, model.cfg.num_keypoints, 2) * 1.2 - 0.6
    drawn = {}
    for union in ("max", "soft"):
        cfg = TrainConfig(preset="tiny", capsule_union=union, **caps)
        drawn[union] = capsule_map(model.connectivity, kpts, 16, cfg, step=0)
    # overlapping capsules add up in the soft union, never beyond 1
    assert (drawn["soft"] >= drawn["max"] - 1e-6).all() and drawn["soft"].max() <= 1
    assert (drawn["soft"] - drawn["max"]).max() > 0.05


def test_coverage_of_the_medial_axis_asks_for_a_keypoint_on_a_thin_limb():
    from ppl_edge.train.mask_losses import mask_terms

    size = 33
    mask = _box_mask(size=size, y0=4, y1=29, x0=4, x1=16)  # a torso
    mask[..., 8:10, 16:31] = 1.0  # and a thin arm held out to the side
    grid = torch.linspace(-1, 1, size)

    def points(cells):
        return torch.tensor([[[grid[x], grid[y]] for x, y in cells]])

    torso = [(7, 9), (13, 9), (7, 23), (13, 23)]
    on_torso = points(torso + [(10, 16)])
    on_arm = points(torso + [(26, 9)])  # the spare keypoint on the arm instead of the torso
    costs = {}
    for target in ("silhouette", "medial"):
        cfg = TrainConfig(preset="tiny", w_mask=1.0, w_coverage=1.0, coverage_target=target)
        costs[target] = [
            mask_terms({"links": mask, "keypoints": k}, mask, torch.tensor(1.0), cfg)["coverage"]
            for k in (on_torso, on_arm)
        ]
    # the arm holds few of the figure's pixels but a third of its axis
    assert costs["silhouette"][1] < costs["silhouette"][0]
    gain = {t: (c[0] - c[1]).item() / c[0].item() for t, c in costs.items()}
    assert gain["medial"] > 1.5 * gain["silhouette"]
    with pytest.raises(PplEdgeError, match="coverage_target"):
        TrainConfig(preset="tiny", coverage_target="skeleton")
