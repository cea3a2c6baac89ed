"""``ppl-edge distill``: a narrower decoder, every other tensor copied (keypoints bit-identical)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from ppl_edge.checkpoint import load_model, model_tensors, save_checkpoint
from ppl_edge.cli import main
from ppl_edge.config_utils import to_dict
from ppl_edge.errors import PplEdgeError
from ppl_edge.train.distill import DistillConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def test_distilled_model_keeps_the_keypoints_and_shrinks_the_decoder(tiny_model, tmp_path):
    src, out = tmp_path / "tiny.safetensors", tmp_path / "small_dec.safetensors"
    save_checkpoint(src, model_tensors(tiny_model), to_dict(tiny_model.cfg))
    args = ["distill", "--checkpoint", str(src), "--out", str(out), "--dec-width", "4"]
    args += ["--dec-max-width", "16", "--steps", "2", "--batch-size", "2", "--threads", "1"]
    assert main(args + ["--link-tolerance", "0.05", "--occlusion-weight", "4"]) == 0
    student, meta = load_model(out)
    assert (student.cfg.dec_width, student.cfg.dec_max_width) == (4, 16)
    assert student.cfg.refine_link_tolerance == 0.05
    assert meta["train_state"]["decoder_distill"]["steps"] == 2
    teacher_params = sum(p.numel() for p in tiny_model.decoder.parameters())
    assert sum(p.numel() for p in student.decoder.parameters()) < teacher_params
    image = torch.rand(3, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        want, got = tiny_model.keypoint_path(image), student.keypoint_path(image)
    assert all(torch.equal(want[k], got[k]) for k in want)
    again = tmp_path / "again.safetensors"  # a warm start from the distilled decoder
    assert main(args[:4] + [str(again), *args[5:], "--init", str(out)]) == 0
    assert load_model(again)[0].cfg.dec_width == 4


def test_bad_settings_are_refused():
    with pytest.raises(PplEdgeError):
        DistillConfig(dec_width=8, dec_max_width=4)
    with pytest.raises(PplEdgeError):
        DistillConfig(link_tolerance=1.0)
    with pytest.raises(PplEdgeError):
        DistillConfig(keypoint_weight=-1.0)


def test_keypoint_consistency_trains_only_the_decoder(tiny_model, tmp_path):
    from ppl_edge.train.distill import distill_decoder

    src, out = tmp_path / "tiny.safetensors", tmp_path / "kd.safetensors"
    save_checkpoint(src, model_tensors(tiny_model), to_dict(tiny_model.cfg))
    cfg = DistillConfig(dec_width=4, dec_max_width=16, steps=3, batch_size=2, keypoint_weight=5.0,
                        data="synthetic:humanoid", threads=1)  # fmt: skip
    report = distill_decoder(src, out, cfg)
    assert report["consistency_last"] > 0  # the term ran and was measured
    student, meta = load_model(out)
    assert meta["train_state"]["decoder_distill"]["keypoint_weight"] == 5.0
    teacher = tiny_model.state_dict()
    for name, value in student.state_dict().items():  # the encoder the gradient passed is unchanged
        if not name.startswith("decoder."):
            assert torch.equal(value, teacher[name]), name
    plain = distill_decoder(src, tmp_path / "plain.safetensors", DistillConfig(
        dec_width=4, dec_max_width=16, steps=3, batch_size=2, threads=1))  # fmt: skip
    assert plain["consistency_last"] == 0.0
