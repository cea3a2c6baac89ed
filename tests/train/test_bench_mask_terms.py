"""bench/bench_mask_terms.py: which layouts the mask terms prefer."""

import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_capsule_term_prefers_the_true_skeleton_to_the_same_joints_moved(bench_script):
    from ppl_edge.train.data.synthetic import SyntheticDataset
    from ppl_edge.train.mask_losses import mask_distance_maps, mask_weight_map

    bench = bench_script("bench_mask_terms")
    data = SyntheticDataset("humanoid", 32, "test", length=4)
    batch = torch.utils.data.default_collate([data[i] for i in range(4)])
    mask = batch["mask"]
    geodesic = mask_weight_map(mask_distance_maps(mask), mask > 0.5, 2.0, 3.0)
    edges = torch.tensor(data.edges)
    ones = torch.ones(len(edges))
    joints = batch["keypoints"]
    moved = joints + 0.12 * torch.randn(joints.shape, generator=torch.Generator().manual_seed(0))
    true = bench.score_layout(joints, ones, edges, mask, geodesic, 3e-4, 0.1, iters=40)
    other = bench.score_layout(moved, ones, edges, mask, geodesic, 3e-4, 0.1, iters=40)
    assert true["capsule"] < 0.6 * other["capsule"]
    assert true["coverage_medial"] < other["coverage_medial"]
    assert len(true["radii_px"]) == len(edges)
    # the fit lowers the term below the starting radii (2.5 px everywhere)
    start, _ = bench.fit_capsules(joints, ones, edges, mask, geodesic, iters=0)
    assert true["capsule"] < start
