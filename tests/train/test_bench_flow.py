"""bench/bench_flow.py: what the flow term costs the ground-truth joints and other layouts."""

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_flow_term_costs_the_joints_less_than_keypoints_that_stay_or_swap(bench_script):
    bench = bench_script("bench_flow")
    data = bench.clips(8, 64, gap=2.0)
    assert (
        data["flow"].shape == (8, 2, 64, 64) and data["joints"].shape == data["joints_near"].shape
    )
    joints = bench.score(data["joints"], data["joints_near"], data["flow"], 64)
    stayed = bench.score(data["joints"], data["joints"], data["flow"], 64)
    # keypoints that trade places between the frames (each takes the next joint's place)
    swapped = bench.score(data["joints"], data["joints_near"].roll(1, dims=1), data["flow"], 64)
    assert 1.0 < joints["motion_px"] < 4.0 and stayed["motion_px"] == 0.0
    assert joints["flow_term_px"] < 0.7 * stayed["flow_term_px"]
    assert joints["flow_term_px"] < 0.3 * swapped["flow_term_px"]


def test_bone_midpoints_and_a_flow_measured_without_the_background(bench_script):
    bench = bench_script("bench_flow")
    joints = torch.tensor([[[0.0, 0.0], [0.5, 0.0], [0.0, 1.0]]]).expand(2, -1, -1)
    mids = bench.bone_midpoints(torch.zeros(2, 19, 2).index_copy(1, torch.arange(3), joints))
    assert mids.shape == (2, 18, 2)
    assert torch.allclose(mids[0, 0], torch.tensor([0.25, 0.0]))  # bone pelvis-spine
    assert torch.allclose(mids[0, 1], torch.tensor([0.25, 0.5]))  # bone spine-thorax
    plain = bench.clips(4, 64, gap=2.0)
    masked = bench.clips(4, 64, gap=2.0, mask_background=True)
    assert torch.equal(plain["image"], masked["image"])  # only the flow's input changes
    assert not torch.equal(plain["flow"], masked["flow"])
