"""Template priors: the shipped files, their names and mirror pairs, and a model built on one."""

from __future__ import annotations

import dataclasses

import pytest

from ppl_edge.errors import PplEdgeError
from ppl_edge.model.config import preset
from ppl_edge.synth.skeletons import CATEGORIES
from ppl_edge.templates import available, load_template, template_of


@pytest.mark.parametrize("name", ["humanoid", "quadruped", "bird"])
def test_each_category_has_a_template_of_its_own_joints(name):
    template = load_template(name)
    assert len(template.names) == 16 == len(template.points)
    assert set(template.names) <= set(CATEGORIES[name].joint_names)  # the renderer's names
    assert all(-1 <= v <= 1 for p in template.points for v in p)
    assert len(template.edges) == 15  # a tree over the 16 joints
    perm = template.swap_permutation()
    assert sorted(perm) == list(range(16)) and all(perm[perm[k]] == k for k in range(16))
    for i, j in template.swap_pairs:
        a, b = template.names[i], template.names[j]
        assert a[2:] == b[2:] and {a[:2], b[:2]} == {"l_", "r_"}
        ya, yb = template.points[i][1], template.points[j][1]
        assert abs(ya - yb) < 0.1  # mirror joints at about the same height


def test_the_humanoid_is_arms_down_and_faces_the_camera():
    t = load_template("humanoid")
    p = dict(zip(t.names, t.points))
    assert p["l_wrist"][1] > p["l_elbow"][1] > p["l_shoulder"][1]  # hanging arms
    assert p["r_wrist"][0] < 0 < p["l_wrist"][0]  # its right side on the image's left
    assert p["head"][1] < p["pelvis"][1] < p["l_ankle"][1]


def test_template_priors_are_chosen_through_the_model_config():
    torch = pytest.importorskip("torch")
    from ppl_edge.model.ppl import PoseModel

    cfg = dataclasses.replace(preset("tiny"), prior="template:bird")
    model = PoseModel(cfg)
    assert torch.equal(model.prior(), torch.tensor(load_template("bird").points))
    assert template_of("memory") is None and template_of("template:bird").name == "bird"
    assert available() == ["bird", "humanoid", "quadruped"]
    with pytest.raises(PplEdgeError, match="unknown template 'cat'; choose one of bird"):
        dataclasses.replace(preset("tiny"), prior="template:cat")
    with pytest.raises(PplEdgeError, match="unknown prior 'learned'"):
        dataclasses.replace(preset("tiny"), prior="learned")
    with pytest.raises(PplEdgeError, match="has 16 joints; the model has num_keypoints=10"):
        dataclasses.replace(preset("tiny"), prior="template:humanoid", num_keypoints=10)


def test_template_connectivity_draws_exactly_the_templates_skeleton():
    torch = pytest.importorskip("torch")
    from ppl_edge.model.ppl import PoseModel

    t = load_template("bird")
    cfg = dataclasses.replace(preset("tiny"), prior="template:bird", num_keypoints=len(t.names))
    cfg = dataclasses.replace(cfg, connectivity="template")
    model = PoseModel(cfg)
    w = model.connectivity.matrix()
    linked = {tuple(ij) for ij in torch.nonzero(torch.triu(w) > 0.5).tolist()}
    assert linked == {(i, j) for i, j in t.edges}
    assert torch.allclose(w[w > 0.5], torch.ones(())) and w[w <= 0.5].max() < 1e-9
    assert "connectivity.theta" not in dict(model.named_parameters())  # fixed, not learned
    with pytest.raises(PplEdgeError, match="connectivity=template draws the template prior's"):
        dataclasses.replace(preset("tiny"), connectivity="template")
