"""How close ONNX Runtime runs a keypoint graph to the MAC-bound of its shapes on this CPU.

    python bench/bench_macbound.py --preset base --threads 1 --runs 20

The preset's keypoint graph (random weights, portable flavour, as ``ppl-edge convert`` writes it)
is profiled on ONNX Runtime: time per operator type and the shapes of every Conv, ConvTranspose,
MatMul and Gemm node. Each of those nodes is then rewritten as the plain GEMM that computes it
(a convolution as its im2col product: M = C_out / groups, K = C_in / groups · k_h · k_w,
N = B · H_out · W_out, repeated per group; a MatMul with its batch dims as a batched GEMM), and
every GEMM is timed on its own with NumPy (``a @ b``, float32, on preallocated operands) and with
a one-node ONNX Runtime MatMul graph, at the same thread count. The sum over nodes is the
MAC-bound: what the graph's products cost at this CPU's GEMM rate with no data movement, im2col,
layout change or elementwise work. The report gives the graph's median latency, the two bounds
and the ratio (latency / fastest bound), and the per-operator shares; graph and GEMMs are timed in
alternating rounds (``--rounds``), and the medians over rounds are reported.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

PRODUCT_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "FusedConv", "FusedMatMul", "FusedGemm")


def export_graph(preset_name: str, folder: Path) -> Path:
    """keypoints.onnx of a random-init preset (the exporter's own path), in ``folder``."""
    import torch

    from ppl_edge.convert.onnx_export import build_keypoint_graph, save_proto
    from ppl_edge.model.config import preset
    from ppl_edge.model.ppl import PoseModel

    torch.manual_seed(0)
    model = PoseModel(preset(preset_name)).eval()
    with torch.no_grad():
        proto, _ = build_keypoint_graph(model, "portable", 18, True)
    return save_proto(proto, folder / "keypoints.onnx")


def session(path, threads: int, profile: str | None = None, level: str = "all"):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }[level]
    if profile:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile
    src = path if isinstance(path, (str, Path)) else path.SerializeToString()
    return ort.InferenceSession(str(src) if isinstance(src, Path) else src, opts,
                                providers=["CPUExecutionProvider"])  # fmt: skip


def median_ms(fn, runs: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def gemm_of(op: str, inputs: list[list[int]], output: list[int], attrs: dict) -> list[tuple]:
    """The plain GEMMs (batch, M, K, N) a product node computes, from its profiled shapes."""
    if op in ("Conv", "FusedConv", "ConvTranspose"):
        x, w = inputs[0], inputs[1]
        groups = attrs.get("group", 1)
        if op == "ConvTranspose":  # the same MACs as the forward conv it transposes
            return [
                (groups, w[1], w[0] // groups * int(np.prod(w[2:])), int(np.prod(x[:1] + x[2:])))
            ]
        return [
            (
                groups,
                w[0] // groups,
                w[1] * int(np.prod(w[2:])),
                output[0] * int(np.prod(output[2:])),
            )
        ]
    a, b = inputs[0], inputs[1]
    if op in ("Gemm", "FusedGemm"):
        m, k = (a[1], a[0]) if attrs.get("transA") else (a[0], a[1])
        n = b[0] if attrs.get("transB") else b[1]
        return [(1, m, k, n)]
    batch = int(np.prod(output[:-2])) if len(output) > 2 else 1
    if len(b) == 2:  # (.., M, K) @ (K, N): one GEMM over the flattened rows
        return [(1, int(np.prod(a[:-1])), a[-1], b[-1])]
    return [(batch, a[-2], a[-1], b[-1])]


def graph_gemms(path: Path) -> list[tuple]:
    """The GEMMs (batch, M, K, N) of every Conv / ConvTranspose / MatMul / Gemm node of the graph
    at batch 1, from ONNX shape inference (before ONNX Runtime fuses or re-lays anything)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for value in list(model.graph.input) + list(model.graph.output):
        dim = value.type.tensor_type.shape.dim
        if dim and not dim[0].dim_value:
            dim[0].dim_value = 1
    model = onnx.shape_inference.infer_shapes(model, data_prop=True)
    shapes = {i.name: list(numpy_helper.to_array(i).shape) for i in model.graph.initializer}
    for value in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        shapes.setdefault(value.name, [d.dim_value for d in dims])
    gemms = []
    for node in model.graph.node:
        if node.op_type not in PRODUCT_OPS:
            continue
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        ins = [shapes.get(n, []) for n in node.input[:2]]
        out = shapes.get(node.output[0], [])
        if not all(ins) or not out or 0 in out:
            raise SystemExit(f"no static shape for {node.op_type} node {node.name}")
        gemms += gemm_of(node.op_type, ins, out, attrs)
    return gemms


def profile_ops(path: Path, feeds: dict, threads: int, runs: int) -> dict:
    """ms per run of each operator type, from ONNX Runtime's profiler."""
    with tempfile.TemporaryDirectory() as tmp:
        sess = session(path, threads, profile=os.path.join(tmp, "prof"))
        for _ in range(runs):
            sess.run(None, feeds)
        events = json.loads(Path(sess.end_profiling()).read_text())
    per_op = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"] / 1e3 / runs
    return dict(per_op)


def gemm_times(gemms: list[tuple], threads: int, runs: int) -> tuple[float, float, float]:
    """(NumPy ms, ORT MatMul ms, GMACs) summed over the GEMMs, each timed on its own."""
    from onnx import TensorProto, helper

    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    total_np = total_ort = macs = 0.0
    rng = np.random.default_rng(0)
    for shape, count in collections.Counter(gemms).items():
        batch, m, k, n = shape
        a = rng.standard_normal((batch, m, k), dtype=np.float32)
        b = rng.standard_normal((batch, k, n), dtype=np.float32)
        out = np.empty((batch, m, n), np.float32)
        total_np += count * median_ms(lambda a=a, b=b, out=out: np.matmul(a, b, out=out), runs)
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
            [helper.make_tensor_value_info("a", TensorProto.FLOAT, [batch, m, k]),
             helper.make_tensor_value_info("b", TensorProto.FLOAT, [batch, k, n])],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [batch, m, n])],
        )  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
        model.ir_version = 9
        sess = session(model, threads)
        feeds = {"a": a, "b": b}
        total_ort += count * median_ms(lambda s=sess, f=feeds: s.run(None, f), runs)
        macs += count * batch * m * k * n
    return total_np, total_ort, macs / 1e9


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="base")
    ap.add_argument("--model", default=None, help="a keypoints.onnx instead of exporting --preset")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3, help="graph / GEMM rounds (medians)")
    ap.add_argument("--level", default="all", choices=["basic", "extended", "all"])
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.model) if args.model else export_graph(args.preset, Path(tmp))
        import onnx

        dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
        size = dims[-1].dim_value
        feeds = {"image": np.random.default_rng(0).uniform(-1, 1, (1, 3, size, size))}
        feeds["image"] = feeds["image"].astype(np.float32)
        sess = session(path, args.threads, level=args.level)
        per_op = profile_ops(path, feeds, args.threads, args.runs)
        gemms = graph_gemms(path)
        rounds = []  # graph and GEMMs alternate, so a busy CPU slows both alike
        for _ in range(args.rounds):
            latency = median_ms(lambda: sess.run(None, feeds), args.runs)
            rounds.append((latency, *gemm_times(gemms, args.threads, args.runs)))
    latency, np_ms, ort_ms, gmacs = (statistics.median(col) for col in zip(*rounds))
    bound = min(np_ms, ort_ms)
    total = sum(per_op.values())
    report = {
        "preset": args.preset if not args.model else args.model,
        "threads": args.threads,
        "latency_ms": round(latency, 3),
        "gemm_gmacs": round(gmacs, 3),
        "bound_numpy_ms": round(np_ms, 3),
        "bound_ort_ms": round(ort_ms, 3),
        "ratio": round(latency / bound, 2),
        "ratio_per_round": [round(r[0] / min(r[1], r[2]), 2) for r in rounds],
        "gemm_rate_gmac_s": round(gmacs / bound * 1e3, 1),
        "graph_rate_gmac_s": round(gmacs / latency * 1e3, 1),
        "per_op_pct": {
            k: round(100 * v / total, 1) for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])
        },
    }
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
