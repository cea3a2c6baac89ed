"""Latency of the exported keypoint graph on ONNX Runtime (CPU) against PyTorch eager, per preset
and batch size, plus the sizes of the exported files.

    python bench/bench_export.py --presets tiny small base --batches 1 8 --runs 50 \\
        --json bench/results/export_cpu.json

Models are randomly initialised (speed does not depend on the weights). Each preset is exported with
``ppl_edge.convert.export_onnx`` (portable flavour, dynamic batch, onnxsim) into a temporary folder.
Both runtimes use the same thread count (default 2). Prints a Markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ppl_edge.convert import export_onnx
from ppl_edge.convert.verify import ort_session
from ppl_edge.model.config import preset
from ppl_edge.model.ppl import PoseModel, count_parameters

log = logging.getLogger("bench_export")


def timings(fn, warmup: int, runs: int) -> dict[str, float]:
    """Median and p90 wall time of ``fn()`` in milliseconds after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return {"median_ms": statistics.median(samples), "p90_ms": float(np.percentile(samples, 90))}


def bench_preset(
    name: str, batches: list[int], runs: int, warmup: int, threads: int, folder: Path
) -> list[dict]:
    """Export one preset and time ORT and torch eager at each batch size."""
    torch.manual_seed(0)
    model = PoseModel(preset(name)).eval()
    start = time.perf_counter()
    export_onnx(model, folder)
    export_s = time.perf_counter() - start
    sizes = {p.name: p.stat().st_size for p in folder.iterdir() if p.suffix == ".onnx"}
    prior = model.prior()
    images = {b: torch.rand(b, 3, model.cfg.img_size, model.cfg.img_size) * 2 - 1 for b in batches}
    torch_t = {}
    with torch.inference_mode():  # torch first: ORT's spinning worker threads would slow it down
        for batch, image in images.items():
            torch_t[batch] = timings(lambda x=image: model.keypoint_path(x, prior), warmup, runs)
    session = ort_session(folder / "keypoints.onnx", threads)
    rows = []
    for batch, image in images.items():
        feeds = {"image": image.numpy()}
        ort_t = timings(lambda f=feeds: session.run(None, f), warmup, runs)
        rows.append(
            {
                "preset": name,
                "img_size": model.cfg.img_size,
                "batch": batch,
                "params": count_parameters(model),
                "ort": ort_t,
                "torch": torch_t[batch],
                "keypoints_onnx_bytes": sizes["keypoints.onnx"],
                "refine_onnx_bytes": sizes["refine.onnx"],
                "memory_onnx_bytes": sizes["memory.onnx"],
                "export_s": export_s,
            }
        )
        log.info(
            "%s b=%d: ort %.2f ms, torch %.2f ms",
            name,
            batch,
            ort_t["median_ms"],
            torch_t[batch]["median_ms"],
        )
    return rows


def markdown(rows: list[dict]) -> str:
    """The README table."""
    lines = [
        (
            "| preset | input | batch | ORT CPU median / p90 (ms) | torch eager median / p90 (ms) "
            "| speed-up | keypoints.onnx | refine.onnx | memory.onnx |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        o, t = r["ort"], r["torch"]
        lines.append(
            f"| {r['preset']} | {r['img_size']}² | {r['batch']} | {o['median_ms']:.2f} / "
            f"{o['p90_ms']:.2f} | {t['median_ms']:.2f} / {t['p90_ms']:.2f} | "
            f"{t['median_ms'] / o['median_ms']:.1f}× | "
            f"{r['keypoints_onnx_bytes'] / 2**20:.1f} MiB | "
            f"{r['refine_onnx_bytes'] / 2**20:.1f} MiB | {r['memory_onnx_bytes'] / 2**20:.2f} MiB |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "base"])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--runs", type=int, default=50, help="timed runs per measurement")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2, help="threads for ORT and torch")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.presets:
            rows += bench_preset(
                name, args.batches, args.runs, args.warmup, args.threads, Path(tmp) / name
            )
    import onnxruntime

    report = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": args.threads,
        },
        "versions": {"torch": torch.__version__, "onnxruntime": onnxruntime.__version__},
        "runs": args.runs,
        "warmup": args.warmup,
        "results": rows,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
