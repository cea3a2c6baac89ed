"""The custom ``NearestNeighborLookup`` node: torch export, the model-local function under plain
ONNX Runtime, stripping for TensorRT, and the operator spec shared with the C++ plugin."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
yaml = pytest.importorskip("yaml")

from onnx import TensorProto, helper

from ppl_edge.convert import nn_plugin
from ppl_edge.model.nn_lookup import lookup_impl, nearest_code, reference_lookup

PLUGIN_DIR = Path(__file__).resolve().parents[2] / "convert" / "plugins" / "nearest_neighbor"
SPEC = yaml.safe_load((PLUGIN_DIR / "spec.yaml").read_text())
OPSET = 18


class Toy(torch.nn.Module):
    """Linear -> (B, M, D) queries -> lookup against a codebook buffer."""

    def __init__(self, m: int = 3, k: int = 5, d: int = 6):
        super().__init__()
        self.m, self.d = m, d
        self.proj = torch.nn.Linear(8, m * d)
        self.register_buffer("codebook", torch.randn(m, k, d))

    def forward(self, x):
        queries = self.proj(x).view(x.shape[0], self.m, self.d)
        return nearest_code(queries, self.codebook)


def export_toy(model, batch: int = 2):
    nn_plugin.register()
    with lookup_impl("plugin"), torch.no_grad():
        program = torch.onnx.export(
            model,
            (torch.randn(batch, 8),),
            dynamo=True,
            opset_version=OPSET,
            verbose=False,
            input_names=["x"],
            output_names=list(nn_plugin.OUTPUTS),
            dynamic_shapes={"x": {0: torch.export.Dim("B", min=1, max=16)}},
        )
    return program.model_proto


def session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def toy_export():
    torch.manual_seed(0)
    model = Toy().eval()
    return model, export_toy(model)


def test_export_emits_one_node_with_parser_attributes(toy_export):
    _, proto = toy_export
    nodes = nn_plugin.lookup_nodes(proto)
    assert len(nodes) == 1
    attrs = {a.name: helper.get_attribute_value(a) for a in nodes[0].attribute}
    assert attrs == {"plugin_version": b"1", "plugin_namespace": b""}
    assert list(nodes[0].input)[1] in {
        init.name for init in proto.graph.initializer
    }  # codebook constant
    assert ("ppl_edge", 1) in [(o.domain, o.version) for o in proto.opset_import]
    with pytest.raises(Exception, match="NearestNeighborLookup"):  # plain ORT needs the function
        session(proto)


def test_function_runs_in_plain_onnxruntime_like_the_reference(toy_export):
    model, proto = toy_export
    with_function = nn_plugin.attach_lookup_function(
        onnx.ModelProto.FromString(proto.SerializeToString())
    )
    onnx.checker.check_model(with_function, full_check=True)
    run = session(with_function)
    tol = SPEC["tolerances"]["float32"]
    for batch in (1, 2, 7):  # dynamic batch, including B = 1
        x = torch.randn(batch, 8)
        with torch.no_grad():
            selected, indices, distances = model(x)
        got = dict(zip(nn_plugin.OUTPUTS, run.run(None, {"x": x.numpy()})))
        np.testing.assert_array_equal(got["indices"], indices.numpy())
        assert got["indices"].dtype == np.int64  # the graph casts the node's int32 for the model
        np.testing.assert_allclose(
            got["selected"], selected.numpy(), rtol=0, atol=tol["selected_atol"]
        )
        np.testing.assert_allclose(
            got["distances"],
            distances.numpy(),
            rtol=tol["distance_rtol"],
            atol=tol["distance_atol"],
        )


def test_function_passes_onnxsim_and_keeps_the_node(toy_export):
    onnxsim = pytest.importorskip("onnxsim")
    _, proto = toy_export
    with_function = nn_plugin.attach_lookup_function(
        onnx.ModelProto.FromString(proto.SerializeToString())
    )
    simplified, ok = onnxsim.simplify(with_function)
    assert ok
    assert len(nn_plugin.lookup_nodes(simplified)) == 1
    assert [f.name for f in simplified.functions] == [nn_plugin.OP_TYPE]


def test_strip_keeps_node_and_attributes_and_drops_function(toy_export):
    _, proto = toy_export
    model = nn_plugin.attach_lookup_function(onnx.ModelProto.FromString(proto.SerializeToString()))
    nn_plugin.attach_lookup_function(model)  # attaching twice keeps one function
    assert len(model.functions) == 1
    stripped = nn_plugin.strip_lookup_function(model)
    assert len(stripped.functions) == 0
    (node,) = nn_plugin.lookup_nodes(stripped)
    assert {a.name: a.s for a in node.attribute} == {
        "plugin_version": b"1",
        "plugin_namespace": b"",
    }
    assert any(o.domain == "ppl_edge" for o in stripped.opset_import)


def test_eager_plugin_lookup_is_the_reference():
    nn_plugin.register()
    queries, codebook = torch.randn(2, 3, 4), torch.randn(3, 5, 4)
    with lookup_impl("plugin"):
        got = nearest_code(queries, codebook)
    for a, b in zip(got, reference_lookup(queries, codebook)):
        assert torch.equal(a, b)


def node_graph(dtype: int, m: int, k: int, d: int, codebook: np.ndarray):
    """One node graph: queries (B, M, D) -> NearestNeighborLookup(queries, codebook initializer)."""
    node = helper.make_node(
        nn_plugin.OP_TYPE,
        ["queries", "codebook"],
        list(nn_plugin.OUTPUTS),
        domain=nn_plugin.DOMAIN,
        **nn_plugin.ATTRIBUTES,
    )
    graph = helper.make_graph(
        [node],
        "lookup",
        [helper.make_tensor_value_info("queries", dtype, ["B", m, d])],
        [
            helper.make_tensor_value_info("selected", dtype, ["B", m, d]),
            helper.make_tensor_value_info("indices", TensorProto.INT32, ["B", m]),
            helper.make_tensor_value_info("distances", dtype, ["B", m]),
        ],
        [onnx.numpy_helper.from_array(codebook, "codebook")],
    )
    model = helper.make_model(
        graph,
        ir_version=9,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(nn_plugin.DOMAIN, 1)],
    )
    return nn_plugin.attach_lookup_function(model)


def brute_force(queries: np.ndarray, codebook: np.ndarray):
    """fp64 search, first minimum on ties."""
    dist = (
        (queries[:, :, None, :].astype(np.float64) - codebook[None].astype(np.float64)) ** 2
    ).sum(-1)
    idx = dist.argmin(-1)
    return idx, np.take_along_axis(dist, idx[..., None], -1)[..., 0]


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_function_matches_brute_force_with_ties(dtype):
    rng = np.random.default_rng(1)
    m, k, d = 34, 16, 64
    codebook = rng.standard_normal((m, k, d)).astype(dtype)
    codebook[0, 5] = codebook[0, 2]  # duplicate entries: a tie resolved to index 2
    codebook[1, :] = codebook[1, 0]  # every entry equal: index 0
    queries = rng.standard_normal((3, m, d)).astype(dtype)
    queries[1, 0] = codebook[0, 2]  # exact hit on the duplicated entry: distance 0
    got = dict(
        zip(
            nn_plugin.OUTPUTS,
            session(
                node_graph(onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), m, k, d, codebook)
            ).run(None, {"queries": queries}),
        )
    )
    idx, dist = brute_force(queries, codebook)
    assert got["indices"].dtype == np.int32 and got["selected"].dtype == np.dtype(dtype)
    assert got["distances"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got["indices"], idx)
    assert got["indices"][1, 0] == 2 and got["distances"][1, 0] == 0
    assert (got["indices"][:, 1] == 0).all()
    np.testing.assert_array_equal(got["selected"], codebook[np.arange(m)[None], idx])
    tol = SPEC["tolerances"][dtype]
    np.testing.assert_allclose(
        got["distances"].astype(np.float64),
        dist,
        rtol=tol["distance_rtol"],
        atol=tol["distance_atol"],
    )


def test_function_uses_the_model_opset():
    model = node_graph(TensorProto.FLOAT, 2, 3, 4, np.zeros((2, 3, 4), np.float32))
    (function,) = model.functions
    assert [(o.domain, o.version) for o in function.opset_import] == [("", OPSET)]
    with pytest.raises(ValueError, match="opset >= 15"):
        nn_plugin.lookup_function(14)


def test_spec_matches_python_and_cpp_constants():
    assert SPEC["name"] == nn_plugin.OP_TYPE
    assert (
        SPEC["version"] == nn_plugin.PLUGIN_VERSION
        and SPEC["namespace"] == nn_plugin.PLUGIN_NAMESPACE
    )
    assert SPEC["domain"] == nn_plugin.DOMAIN
    assert [i["name"] for i in SPEC["inputs"]] == list(nn_plugin.INPUTS)
    assert [o["name"] for o in SPEC["outputs"]] == list(nn_plugin.OUTPUTS)
    header = (PLUGIN_DIR / "memoryNNPlugin.h").read_text()
    constants = dict(re.findall(r'constexpr char const\* (kPLUGIN_\w+)\{"([^"]*)"\}', header))
    assert constants == {
        "kPLUGIN_NAME": SPEC["name"],
        "kPLUGIN_VERSION": SPEC["version"],
        "kPLUGIN_NAMESPACE": SPEC["namespace"],
    }
    reference = (PLUGIN_DIR / "memoryNNReference.h").read_text()
    assert f"kNearestNeighborThreads = {SPEC['kernel']['threads_per_block']};" in reference


def test_index_cast_pair_is_folded_into_the_node():
    """The export's int32 -> int64 -> int32 Casts after the node's indices go; outputs unchanged."""
    path = Path(__file__).resolve().parents[2] / "models" / "ppl-small-humanoid"
    model = onnx.load(str(path / "keypoints_trt.onnx"))
    image = np.random.default_rng(0).uniform(-1, 1, (2, 3, 64, 64)).astype(np.float32)
    before = ort.InferenceSession(model.SerializeToString()).run(None, {"image": image})
    nn_plugin.fold_index_casts(model)  # the shipped file may predate the fold
    assert not [n for n in model.graph.node if n.op_type == "Cast"]
    node = nn_plugin.lookup_nodes(model)[0]
    assert node.output[1] == "prototype_ids"
    onnx.checker.check_model(model, full_check=True)
    after = ort.InferenceSession(model.SerializeToString()).run(None, {"image": image})
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(before, after))
