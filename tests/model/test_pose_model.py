"""PoseModel contract (docs/contracts.md): shapes, memory side effects, exported paths agree."""

from __future__ import annotations

import pytest
import torch

from ppl_edge.model.config import ModelConfig, preset
from ppl_edge.model.nn_lookup import reference_lookup
from ppl_edge.model.ppl import PoseModel, count_parameters

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return PoseModel(preset("tiny"))


def _image(b=2, seed=0):
    return torch.rand(b, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_forward_shapes(model):
    cfg = model.cfg
    B, N, M = 2, cfg.num_keypoints, cfg.mem_banks
    model.eval()
    with torch.no_grad():
        out = model(_image(B), _image(B, 1))
    shapes = {
        "prior": (N, 2),
        "keypoints": (B, N, 2),
        "affine": (B, N, 2, 3),
        "confidence": (B, N),
        "recon": (B, 3, 32, 32),
        "links": (B, 1, 32, 32),
        "mem_keypoints": (B, N, 2),
        "mem_indices": (B, M),
        "mem_distances": (B, M),
        "commit_loss": (),
    }
    assert {k: tuple(out[k].shape) for k in shapes} == shapes
    assert out["mem_indices"].dtype == torch.int64
    assert torch.all((out["confidence"] >= 0) & (out["confidence"] <= 1))


def test_eval_forward_leaves_every_buffer_unchanged(model):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        model(_image(), _image(seed=1))
        model.keypoint_path(_image())
        model.iterative_inference(_image(), 2, "image")
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_training_forward_updates_memory_unless_frozen():
    torch.manual_seed(0)
    m = PoseModel(preset("tiny")).train()
    code = m.memory.codebook.clone()
    m(_image(), _image(seed=1))
    assert not torch.equal(code, m.memory.codebook)
    m.memory.frozen = True
    code = m.memory.codebook.clone()
    m(_image(), _image(seed=1))
    assert torch.equal(code, m.memory.codebook)


def test_keypoint_path_matches_forward_and_decode_indices(model):
    model.eval()
    image = _image()
    with torch.no_grad():
        out = model(image, image)
        kp = model.keypoint_path(image)
        refined = model.memory.decode_indices(kp["prototype_ids"])
    assert torch.allclose(kp["keypoints"], out["keypoints"], atol=1e-6)
    assert torch.equal(kp["prototype_ids"], out["mem_indices"])
    assert torch.allclose(kp["keypoints_refined"], out["mem_keypoints"], atol=1e-5)
    assert torch.allclose(refined, kp["keypoints_refined"], atol=1e-6)


def test_prior_is_detached_and_decoded_from_codebook_mean(model):
    prior = model.prior()
    assert prior.shape == (model.cfg.num_keypoints, 2) and not prior.requires_grad
    with torch.no_grad():
        direct = model.memory.decode(model.memory.codebook.mean(1, keepdim=False)[None])[0]
    assert torch.allclose(prior, direct)


def test_nearest_code_picks_lowest_index_on_ties():
    codebook = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [1.0, 0.0]]])  # (M=1, K=3, D=2)
    queries = torch.tensor([[[1.0, 0.0]], [[0.4, 0.0]]])  # (B=2, M=1, D=2)
    selected, idx, dist = reference_lookup(queries, codebook)
    assert idx.tolist() == [[1], [0]]
    assert torch.allclose(dist, torch.tensor([[0.0], [0.16]]))
    assert torch.equal(selected[0, 0], codebook[0, 1])


def test_iterative_inference_steps_and_modes(model):
    model.eval()
    steps = model.iterative_inference(_image(), 3, "image")
    assert len(steps) == 4 and torch.equal(steps[0]["input"], _image())
    assert not torch.equal(steps[1]["input"], steps[0]["input"])  # x_1 is a reconstruction
    mem = model.iterative_inference(_image(), 2, "memory")
    assert torch.allclose(mem[1]["keypoints"], mem[0]["keypoints_refined"])
    assert len(model.iterative_inference(_image(), 3, "none")) == 1
    with pytest.raises(ValueError):
        model.iterative_inference(_image(), -1)


def test_ablation_random_frozen_prior_and_links():
    cfg = ModelConfig(
        **{**preset("tiny").__dict__, "prior": "random_frozen", "connectivity": "random_frozen"}
    )
    m = PoseModel(cfg)
    assert torch.equal(m.prior(), PoseModel(cfg).prior())  # fixed by cfg.seed
    assert "connectivity.theta" not in dict(m.named_parameters())


@pytest.mark.parametrize(
    "name,expected", [("tiny", 452_820), ("small", 1_824_510), ("base", 28_167_070)]
)
def test_preset_parameter_counts(name, expected):
    # base = the official model: 7.79 M φ_enc + head, 17.97 M φ_dec, 2.41 M memory, 257 W + α.
    assert count_parameters(PoseModel(preset(name))) == expected


def test_encoder_skips_add_to_the_trunk_and_vanish_when_zeroed():
    """``enc_skips``: two 1x1 convolutions (H/8 and H/4) added into the up path; with their
    weights at zero the features are the plain trunk's, with them the attention grid changes."""
    torch.manual_seed(0)
    model = PoseModel(preset("tiny", enc_skips=True)).eval()
    enc = model.encoder
    w = model.cfg.enc_width
    extra = (4 * w) * (4 * w) + 4 * w + (2 * w) * model.cfg.feat_dim + model.cfg.feat_dim
    assert count_parameters(model) == count_parameters(PoseModel(preset("tiny"))) + extra
    image = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        with_skips = enc.features(image)
        for conv in enc.skips.values():
            conv.weight.zero_()
            conv.bias.zero_()
        assert torch.equal(enc.features(image), enc.trunk(image))
    assert with_skips.shape == (3, model.cfg.feat_dim, 8, 8)
    assert (with_skips - enc.trunk(image)).abs().max() > 1e-3


def test_checkpoint_without_enc_skips_loads_without_them(tmp_path):
    """Checkpoints written before ``enc_skips`` existed hold no such key: they load as before."""
    import dataclasses

    from ppl_edge.checkpoint import load_model, model_tensors, save_checkpoint

    model = PoseModel(preset("tiny")).eval()
    cfg = dataclasses.asdict(model.cfg)
    del cfg["enc_skips"]
    path = tmp_path / "old.safetensors"
    save_checkpoint(path, model_tensors(model), cfg)
    loaded, _ = load_model(path)
    assert loaded.cfg.enc_skips is False and loaded.encoder.skips is None


def test_confidence_is_finite_when_fp16_attention_underflows():
    """Issue: FP16 engines saw NaN confidence (0·log 0) where softmax entries underflow."""
    from ppl_edge.model.encoder import normalised_entropy

    prob = torch.zeros(1, 2, 256, dtype=torch.float16)
    prob[0, 0, 3] = 1.0  # one peak: the other 255 entries are exact zeros
    prob[0, 1] = 1.0 / 256  # uniform
    ent = normalised_entropy(prob)
    assert torch.isfinite(ent).all()
    assert ent[0, 0] == 0 and abs(float(ent[0, 1]) - 1.0) < 1e-2
    old = -(prob * torch.log(prob.clamp_min(1e-12))).sum(-1)  # the former formula
    assert torch.isnan(old[0, 0])
    model = PoseModel(preset("tiny")).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        full = model.keypoint_path(x)["confidence"]
        half = model.half().keypoint_path(x.half())["confidence"]
    assert torch.isfinite(half).all() and (half.float() - full).abs().max() < 5e-3
