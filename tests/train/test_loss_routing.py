"""Where each loss's gradient goes (ppl_official_code.md §2.5), checked on the tiny model."""

from __future__ import annotations

import pytest
import torch

from ppl_edge.model.config import preset
from ppl_edge.model.ppl import PoseModel
from ppl_edge.train.losses import boundary_loss, link_reg_loss, memory_losses, pixel_loss

pytestmark = pytest.mark.usefixtures("one_thread")


GROUPS = {
    "regressor": lambda n: n.startswith("encoder."),
    "links": lambda n: n == "connectivity.theta",
    "alpha": lambda n: n == "alpha",
    "decoder": lambda n: n.startswith("decoder."),
    "memory_encoder": lambda n: n.startswith("memory.enc_"),
    "memory_decoder": lambda n: n.startswith("memory.dec_"),
}

# term -> the parameter groups that must (and only they may) receive gradient
EXPECTED = {
    "reconstruction": {"regressor", "links", "alpha", "decoder"},
    "boundary": {"regressor"},
    "consistency": {"memory_encoder", "memory_decoder"},
    "commit": {"memory_encoder"},
    "link_reg": {"links"},
}


@pytest.fixture(scope="module")
def terms_and_model():
    torch.manual_seed(0)
    model = PoseModel(preset("tiny")).train()
    image = torch.rand(2, 3, 32, 32) * 2 - 1
    out = model(image, image * 0.5)
    links = model.connectivity
    terms = {
        "reconstruction": pixel_loss(out["recon"], image)["reconstruction"],
        **memory_losses(out["mem_keypoints"], out["keypoints"], out["commit_loss"]),
        "link_reg": link_reg_loss(
            out["prior"], out["keypoints"], links.link_weights(), links.pairs
        ),
    }
    # At init every keypoint lies inside the image, where the boundary loss is 0. A twin model with
    # its keypoints shifted right of the image makes the term active.
    torch.manual_seed(0)
    twin = PoseModel(preset("tiny")).train()
    with torch.no_grad():
        twin.encoder.predict[-1].bias[2] += 3.0  # x translation of every affine A_k
    terms["boundary"] = boundary_loss(twin(image, image * 0.5)["keypoints"])
    return terms, {"boundary": twin}, model


def _groups_with_grad(model: torch.nn.Module) -> set[str]:
    hit = set()
    for name, p in model.named_parameters():
        if p.grad is not None and p.grad.abs().sum() > 0:
            hit |= {g for g, match in GROUPS.items() if match(name)}
    return hit


@pytest.mark.parametrize("term", sorted(EXPECTED))
def test_gradient_routing(terms_and_model, term):
    terms, special, model = terms_and_model
    model = special.get(term, model)
    assert terms[term].item() > 0, f"{term} is 0: the check would be vacuous"
    model.zero_grad(set_to_none=True)
    terms[term].backward(retain_graph=True)
    assert _groups_with_grad(model) == EXPECTED[term]


def test_codebook_and_prior_never_get_gradients(terms_and_model):
    _, _, model = terms_and_model
    assert not model.memory.codebook.requires_grad
    assert not model.prior().requires_grad
