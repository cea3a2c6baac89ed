"""FP32 against INT8 keypoint graphs on ONNX Runtime CPU: latency per image and the synthetic
Human3.6M-style error of each, on the same images.

    python bench/bench_int8.py --model models/ppl-small-humanoid --threads 1 --out runs/int8

Runs the export's ``keypoints.int8.onnx`` (``ppl-edge convert --target onnx --int8``), or when it
has none writes one to ``<out>/keypoints_int8.onnx``; prints one Markdown table (``--json`` for a
file).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _keypoints(session, images: np.ndarray, batch: int = 32) -> np.ndarray:
    name = session.get_inputs()[0].name
    out = [session.run(["keypoints"], {name: images[i : i + batch]})[0]
           for i in range(0, len(images), batch)]  # fmt: skip
    return np.concatenate(out)


def _latency(session, image: np.ndarray, repeats: int) -> tuple[float, float]:
    name = session.get_inputs()[0].name
    for _ in range(10):
        session.run(None, {name: image})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        session.run(None, {name: image})
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 90))


def _split(category: str, size: int, count: int, split: str, spec):
    """Preprocessed images (runtime pipeline) and ground truth in [0, 1] of one synthetic split."""
    from ppl_edge.preprocess import preprocess
    from ppl_edge.synth.render import item_seed, render_sample

    images, gt = [], []
    for i in range(count):
        s = render_sample(category, size, item_seed(category, split, 0, i))
        box = [(0, 0, size, size)]
        images.append(preprocess(s.image, box, spec)[0][0])
        gt.append(s.keypoints / (size - 1))  # pixel centres at 0 .. size-1 -> [0, 1], as eval
    return np.stack(images), np.stack(gt).astype(np.float64)


def main() -> None:
    from ppl_edge.convert.ort_int8 import calibration_inputs, quantize_keypoints
    from ppl_edge.manifest import Manifest
    from ppl_edge.synth.render import get_category
    from ppl_edge.train.evaluate import fit_h36m, score_h36m

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/ppl-small-humanoid")
    parser.add_argument("--category", default="humanoid")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n-fit", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--calib", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--out", default="runs/int8")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    manifest = Manifest.load(args.model)
    spec, fp32 = manifest.input, manifest.artifact_path("keypoints")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    int8 = manifest.artifact_path("keypoints_int8")  # what convert --target onnx --int8 wrote
    if int8 is None or not int8.exists():
        int8 = quantize_keypoints(fp32, out / "keypoints_int8.onnx",
                                  calibration_inputs(spec, args.calib, args.category))  # fmt: skip
    fit_x, fit_gt = _split(args.category, spec.height, args.n_fit, "train_reg", spec)
    test_x, test_gt = _split(args.category, spec.height, args.n_test, "test", spec)
    pairs = get_category(args.category).swap_pairs
    rows = []
    for label, path in (("fp32", fp32), ("int8", int8)):
        session = _session(path, args.threads)
        fit_kp = _keypoints(session, fit_x) * 0.5 + 0.5
        test_kp = _keypoints(session, test_x) * 0.5 + 0.5
        fit = fit_h36m(fit_kp, fit_gt, pairs)
        error = score_h36m(fit, test_kp, test_gt, pairs).error
        median, p90 = _latency(session, test_x[:1], args.repeats)
        rows.append({"graph": label, "error": round(100 * error, 3), "median_ms": round(median, 3),
                     "p90_ms": round(p90, 3), "bytes": path.stat().st_size})  # fmt: skip
    print(f"| graph | error (x100) | median ms | p90 ms | size |  ({args.threads} thread(s))")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['graph']} | {r['error']:.2f} | {r['median_ms']:.2f} | {r['p90_ms']:.2f} | "
              f"{r['bytes'] / 2**20:.2f} MiB |")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
