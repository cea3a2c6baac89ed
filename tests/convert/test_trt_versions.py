"""The TensorRT version table (convert/trt_versions.py): which flags, lookup and graph each release
gets, and the one-line refusals, driven by fake ``tensorrt`` modules (a real build needs a GPU)."""

from __future__ import annotations

import types

import pytest

from ppl_edge.convert import trt_versions as tv
from ppl_edge.errors import PplEdgeError


def fake_trt(version: str):
    """A stand-in ``tensorrt`` module: a version and the creation flags' enum values."""
    flags = types.SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=1)
    return types.SimpleNamespace(__version__=version, NetworkDefinitionCreationFlag=flags)


@pytest.mark.parametrize(
    ("version", "expected"),
    [("8.6.2.3", (8, 6)), ("10.3.0.30", (10, 3)), ("11.0.0.114", (11, 0)), ("10.16", (10, 16))],
)
def test_parse_version(version, expected):
    assert tv.parse_version(version) == expected


def test_parse_version_refuses_garbage():
    with pytest.raises(PplEdgeError, match="cannot read the TensorRT version 'x'"):
        tv.parse_version("x")


def test_older_than_8_6_is_refused():
    with pytest.raises(PplEdgeError, match=r"TensorRT 8\.5\.3 is too old.*8\.6\+"):
        tv.support(fake_trt("8.5.3"))


# version, precision, nn -> (network flags, builder flags, strongly typed, fp16 graph)
TABLE = [
    ("8.6.2", "fp32", "native", ("EXPLICIT_BATCH",), (), False, False),
    ("8.6.2", "fp16", "native", ("EXPLICIT_BATCH",), ("FP16",), False, False),
    ("8.6.2", "int8", "native", ("EXPLICIT_BATCH",), ("FP16", "INT8"), False, False),
    ("10.3.0", "fp32", "plugin", (), (), False, False),
    ("10.3.0", "fp16", "plugin", (), ("FP16",), False, False),
    ("10.3.0", "int8", "plugin", (), ("FP16", "INT8"), False, False),
    ("10.8.0", "fp16", "native", (), ("FP16",), False, False),
    ("11.0.0", "fp32", "plugin", ("STRONGLY_TYPED",), (), True, False),
    ("11.0.0", "fp16", "plugin", ("STRONGLY_TYPED",), (), True, True),
    ("11.1.0", "fp16", "native", ("STRONGLY_TYPED",), (), True, True),
]


@pytest.mark.parametrize(("version", "precision", "nn", "net", "builder", "strong", "half"), TABLE)
def test_plan_table(version, precision, nn, net, builder, strong, half):
    plan = tv.plan_build(tv.support(fake_trt(version)), precision, nn, opset=17)
    assert (plan.network_flags, plan.builder_flags) == (net, builder)
    assert (plan.strongly_typed, plan.fp16_graph) == (strong, half)
    assert plan.calibrate == (precision == "int8")


def test_strong_typing_on_request_for_10x():
    plan = tv.plan_build(tv.support("10.3.0"), "fp16", "plugin", strongly_typed=True)
    assert plan.network_flags == ("STRONGLY_TYPED",) and plan.fp16_graph
    assert plan.builder_flags == ()


def test_network_flags_value():
    trt = fake_trt("8.6.1")
    plan = tv.plan_build(tv.support(trt), "fp32", "native")
    assert tv.network_flags(trt, plan) == 1  # 1 << EXPLICIT_BATCH (0)
    trt = fake_trt("11.0")
    assert tv.network_flags(trt, tv.plan_build(tv.support(trt), "fp16", "plugin")) == 2
    trt = fake_trt("10.3")
    assert tv.network_flags(trt, tv.plan_build(tv.support(trt), "fp16", "plugin")) == 0


@pytest.mark.parametrize(
    ("version", "kwargs", "message"),
    [
        ("8.6.1", {"nn": "plugin"}, r"TensorRT 8\.6\.1 cannot load .*IPluginV3.*--nn native"),
        ("8.6.1", {"opset": 18}, r"opsets up to 17, keypoints\.onnx has opset 18.*--opset 17"),
        ("8.6.1", {"strongly_typed": True}, r"no strongly typed networks"),
        ("11.0.0", {"precision": "int8"}, r"removed the INT8 calibrator.*--fp16 or fp32"),
        ("11.0.0", {"strongly_typed": False}, r"no FP16 builder flag"),
        ("10.3.0", {"precision": "int8", "strongly_typed": True}, r"Q/DQ"),
    ],
)
def test_refusals_are_one_line(version, kwargs, message):
    args = {"precision": "fp16", "nn": "native", "graph": "keypoints.onnx", **kwargs}
    with pytest.raises(PplEdgeError, match=message) as err:
        tv.plan_build(tv.support(version), **args)
    assert "\n" not in str(err.value)


def test_table_facts():
    assert tv.support("10.6.0").inlines_local_functions
    assert not tv.support("10.7.0").inlines_local_functions
    assert tv.support("8.6.1").max_opset == 17 and tv.support("10.0.1").max_opset is None
    assert not tv.support("8.6.1").plugin and tv.support("10.0.1").plugin
    assert tv.support("10.16").precision_flags and not tv.support("11.1").precision_flags
