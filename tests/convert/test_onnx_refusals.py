"""Malformed inputs to `ppl-edge convert` / `export_onnx` are refused with one clear line, and a
failed export leaves nothing behind."""

from __future__ import annotations

import dataclasses
import importlib.util

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

from ppl_edge.checkpoint import model_tensors, save_checkpoint
from ppl_edge.cli import main
from ppl_edge.convert import (
    export_onnx,
    onnx_export,
)
from ppl_edge.convert.manifest import staged_output
from ppl_edge.errors import PplEdgeError


@pytest.fixture()
def checkpoint(tmp_path, tiny_model):
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, model_tensors(tiny_model), dataclasses.asdict(tiny_model.cfg))
    return path


def run_cli(capsys, *argv) -> tuple[int, str]:
    code = main(["-q", "convert", *argv])
    err = capsys.readouterr().err
    return code, err


def test_checkpoint_of_another_format_is_refused(tmp_path, capsys):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign), metadata={"format": "pt"})
    code, err = run_cli(capsys, "--checkpoint", str(foreign), "--out", str(tmp_path / "o"))
    assert code == 1 and "not a ppl-edge checkpoint" in err
    pickled = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, pickled)
    code, err = run_cli(capsys, "--checkpoint", str(pickled), "--out", str(tmp_path / "o"))
    assert code == 1 and "is not a ppl-edge checkpoint" in err
    assert not (tmp_path / "o").exists()


def test_output_folder_whose_parent_is_missing_is_refused(tmp_path, checkpoint, capsys):
    out = tmp_path / "missing" / "out"
    code, err = run_cli(capsys, "--checkpoint", str(checkpoint), "--out", str(out))
    assert code == 1 and "parent of the output folder does not exist" in err
    assert not (tmp_path / "missing").exists()


def test_output_path_that_is_a_file_is_refused(tmp_path, tiny_model):
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(PplEdgeError, match="is a file"):
        export_onnx(tiny_model, target)


@pytest.mark.parametrize("opset", [16, 99])
def test_opset_outside_the_supported_range_is_refused(tmp_path, tiny_model, opset):
    with pytest.raises(PplEdgeError, match=f"opset {opset} is not supported: choose 17.."):
        export_onnx(tiny_model, tmp_path / "out", opset=opset)
    assert not (tmp_path / "out").exists()


def test_unknown_flavour_is_refused(tmp_path, tiny_model):
    with pytest.raises(PplEdgeError, match="unknown flavour 'tensorrt'"):
        export_onnx(tiny_model, tmp_path / "out", flavour="tensorrt")


def test_calibration_folder_without_images_is_refused(tmp_path, checkpoint, capsys):
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "notes.txt").write_text("no images here")
    code, err = run_cli(
        capsys,
        "--checkpoint",
        str(checkpoint),
        "--target",
        "trt",
        "--int8",
        "--calib-data",
        str(calib),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 1 and "holds no images" in err
    code, err = run_cli(
        capsys,
        "--checkpoint",
        str(checkpoint),
        "--target",
        "trt",
        "--int8",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 1 and "--int8 needs --calib-data" in err


def test_trt_flags_with_another_target_and_bad_batches_are_refused(tmp_path, checkpoint, capsys):
    code, err = run_cli(
        capsys,
        "--checkpoint",
        str(checkpoint),
        "--target",
        "coreml",
        "--fp16",
        "--out",
        str(tmp_path),
    )
    assert code == 1 and "--fp16 apply to --target trt (--fp16 and --int8 also to onnx)" in err
    code, err = run_cli(
        capsys,
        "--checkpoint",
        str(checkpoint),
        "--target",
        "coreml",
        "--int8",
        "--calib-data",
        ".",
        "--out",
        str(tmp_path),
    )
    assert code == 1 and "--int8, --calib-data apply to --target trt (--fp16 and --int8 also" in err
    code, err = run_cli(
        capsys, "--checkpoint", str(checkpoint), "--calib-data", ".", "--out", str(tmp_path)
    )
    assert code == 1 and "--calib-data apply to --target trt, not --target onnx" in err
    code, err = run_cli(
        capsys,
        "--checkpoint",
        str(checkpoint),
        "--target",
        "trt",
        "--min-batch",
        "4",
        "--max-batch",
        "2",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == 1 and "--min-batch <= --opt-batch <= --max-batch" in err


@pytest.mark.skipif(
    importlib.util.find_spec("tensorrt") is not None,
    reason="TensorRT is installed here, so --target trt can succeed",
)
def test_trt_target_without_tensorrt_fails_in_one_line_and_leaves_nothing(
    tmp_path, checkpoint, capsys
):
    out = tmp_path / "engine"
    code, err = run_cli(
        capsys, "--checkpoint", str(checkpoint), "--target", "trt", "--out", str(out)
    )
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1 and "tensorrt" in lines[0].lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.safetensors"]


def test_failure_mid_export_leaves_nothing_and_keeps_old_files(tmp_path, tiny_model, monkeypatch):
    def broken_refine(*args, **kwargs):
        raise PplEdgeError("refine export broke")

    monkeypatch.setattr(onnx_export, "build_refine_graph", broken_refine)
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keypoints.onnx").write_bytes(b"old")
    with pytest.raises(PplEdgeError, match="refine export broke"):  # after keypoints.onnx was made
        export_onnx(tiny_model, existing)
    assert [p.name for p in existing.iterdir()] == ["keypoints.onnx"]
    assert (existing / "keypoints.onnx").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing"]  # no staging leftovers


def test_staged_output_publishes_everything_or_nothing(tmp_path):
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "a.onnx").write_bytes(b"a")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []  # the folder it would have created is gone too
    with staged_output(out) as staging:
        (staging / "a.onnx").write_bytes(b"a")
        (staging / "pkg.mlpackage").mkdir()
        (staging / "pkg.mlpackage" / "w.bin").write_bytes(b"w")
        assert not out.exists()  # nothing visible before the end
    assert sorted(p.name for p in out.iterdir()) == ["a.onnx", "pkg.mlpackage"]
    with pytest.raises(RuntimeError), staged_output(out) as staging:
        (staging / "a.onnx").write_bytes(b"new")
        raise RuntimeError("boom")
    assert (out / "a.onnx").read_bytes() == b"a"
    with staged_output(out) as staging:  # replacing a package folder works too
        (staging / "pkg.mlpackage").mkdir()
        (staging / "pkg.mlpackage" / "v.bin").write_bytes(b"v")
    assert [p.name for p in (out / "pkg.mlpackage").iterdir()] == ["v.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
