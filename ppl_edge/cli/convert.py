"""Export a checkpoint to ONNX, a TensorRT engine or a Core ML package, with a manifest.

--target onnx writes keypoints.onnx (standard ONNX lookup), keypoints_trt.onnx (the lookup as one
NearestNeighborLookup node, with --nn plugin), refine.onnx (image-space refinement), memory.onnx
(one pass through the memory, for memory-mode refinement) and manifest.json; with --fp16 also
each graph's float16 version (<graph>.fp16.onnx, the lookup kept FP32) for TensorRT 11's strongly
typed networks, and with --int8 keypoints.int8.onnx (ONNX Runtime static INT8 for CPUs without a
GPU; run it with --precision int8). --target trt also builds TensorRT engines of the keypoint
graph (the plugin graph with --nn plugin, the portable one with --nn native), refine.onnx and
memory.onnx; it needs an NVIDIA GPU and TensorRT (8.6 with --nn native, 10.x, 11). --from DIR
builds those engines from an existing export folder with TensorRT alone (no torch, no
onnxscript, no onnxsim) and adds them to its manifest. --target coreml writes
keypoints.mlpackage (mlprogram, iOS 16+). Nothing is written unless the whole export succeeds;
--verify checks the exported files against PyTorch and prints the numbers.

examples:
  ppl-edge convert --checkpoint models/ppl-small-humanoid.safetensors --target onnx \\
      --out models/ppl-small-humanoid --verify
  ppl-edge convert --checkpoint CKPT --target onnx --out DIR --int8   # + a CPU INT8 graph
  ppl-edge convert --checkpoint CKPT --target trt --out DIR --fp16 --max-batch 8
  ppl-edge convert --from DIR --target trt --fp16          # on the Jetson: TensorRT only
  ppl-edge convert --checkpoint CKPT --target coreml --out DIR --verify
"""

from __future__ import annotations

import argparse

from ppl_edge.convert.config import DEFAULT_OPSET, NN_MODES
from ppl_edge.convert.targets import TARGETS
from ppl_edge.errors import PplEdgeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge convert`` (TensorRT flags follow trtexec's names)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a ppl-edge .safetensors checkpoint")
    source.add_argument(
        "--from",
        dest="from_dir",
        metavar="DIR",
        help="an export folder: build its TensorRT engines in place (--target trt; no torch)",
    )
    parser.add_argument(
        "--target", choices=TARGETS, default="onnx", help="what to build (default onnx)"
    )
    parser.add_argument("--out", help="output folder (created if its parent exists)")
    parser.add_argument("--name", help="model name in the manifest (default: checkpoint file stem)")
    parser.add_argument(
        "--opset",
        type=int,
        default=DEFAULT_OPSET,
        help=f"ONNX opset, 17.. (default {DEFAULT_OPSET})",
    )
    parser.add_argument("--static-batch", action="store_true", help="batch 1 instead of dynamic B")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    parser.add_argument(
        "--nn",
        choices=NN_MODES,
        default="plugin",
        help="memory lookup: one NearestNeighborLookup node for the TensorRT plugin "
        "(also writes keypoints_trt.onnx) or standard ONNX ops only (default plugin)",
    )
    parser.add_argument(
        "--data",
        help="dataset spec of the category, for the manifest's distance "
        "scale and --verify (default: from the checkpoint, else synthetic:humanoid)",
    )
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check the graphs against PyTorch, and engines against ONNX Runtime (on a GPU)",
    )
    parser.add_argument("--verify-images", type=int, default=256, help="images for --verify")
    trt = parser.add_argument_group("TensorRT (--target trt)")
    trt.add_argument(
        "--fp16",
        action="store_true",
        help="FP16 engine (--target trt); with --target onnx, also write <graph>.fp16.onnx",
    )
    trt.add_argument(
        "--int8",
        action="store_true",
        help="INT8 engine (--target trt, needs --calib-data); with --target onnx, also write "
        "keypoints.int8.onnx for CPUs (ONNX Runtime static INT8)",
    )
    trt.add_argument(
        "--calib-data",
        metavar="DIR",
        help="folder of calibration images for --int8 (--target onnx: default, frames rendered "
        "from a synthetic:<category> --data)",
    )
    trt.add_argument("--min-batch", type=int, default=1, help="optimisation profile minimum batch")
    trt.add_argument("--opt-batch", type=int, default=1, help="optimisation profile optimum batch")
    trt.add_argument("--max-batch", type=int, default=8, help="optimisation profile maximum batch")
    trt.add_argument(
        "--shapes",
        metavar="image:BxCxHxW",
        help="fixed input shape (sets min = opt = max batch), e.g. image:1x3x64x64",
    )
    trt.add_argument("--plugins", metavar="PATH", help="plugin library (libppl_edge_plugins.so)")
    trt.add_argument("--workspace", type=int, metavar="MiB", help="builder workspace limit in MiB")
    trt.add_argument("--timing-cache", metavar="PATH", help="TensorRT timing cache file")
    trt.add_argument("--force-rebuild", action="store_true", help="ignore a cached engine")
    trt.add_argument(
        "--strongly-typed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="strongly typed network: FP16 from <graph>.fp16.onnx, the lookup FP32 (default: "
        "on TensorRT 11+, off before; 10.x can)",
    )


def check_flags(args: argparse.Namespace) -> None:
    """Refuse flag combinations that have no setting to check: TensorRT flags with another target,
    --int8 without --calib-data (the CLI has no flag for a calibration cache), --from with a
    target other than trt or with --out, --checkpoint without --out."""
    if args.from_dir is not None:
        if args.target != "trt":
            raise PplEdgeError(
                f"--from builds TensorRT engines from an export folder: use --target trt, "
                f"not --target {args.target}"
            )
        if args.out is not None:
            raise PplEdgeError("--from writes the engines into that export folder: drop --out")
    elif args.out is None:
        raise PplEdgeError("--checkpoint needs --out DIR (the folder the export is written to)")
    if args.target != "trt":
        used = [
            f
            for f, on in (
                ("--fp16", args.fp16 and args.target != "onnx"),
                ("--strongly-typed", args.strongly_typed is not None),
                ("--int8", args.int8 and args.target != "onnx"),
                ("--calib-data", args.calib_data and not (args.int8 and args.target == "onnx")),
                ("--plugins", args.plugins),
            )
            if on
        ]
        if used:
            also = " (--fp16 and --int8 also to onnx)" if {"--fp16", "--int8"} & set(used) else ""
            raise PplEdgeError(
                f"{', '.join(used)} apply to --target trt{also}, not --target {args.target}"
            )
    if args.int8 and args.target == "trt" and not args.calib_data:
        raise PplEdgeError("--int8 needs --calib-data DIR (a folder of calibration images)")


def engine_config(args: argparse.Namespace):
    """The :class:`~ppl_edge.convert.EngineConfig` of the TensorRT flags."""
    from ppl_edge.convert.config import EngineConfig

    return EngineConfig(
        precision="int8" if args.int8 and args.target == "trt" else "fp16" if args.fp16 else "fp32",
        nn=args.nn,
        plugin_lib=args.plugins,
        min_batch=args.min_batch,
        opt_batch=args.opt_batch,
        max_batch=args.max_batch,
        shapes=args.shapes,
        calib_data=args.calib_data,
        workspace_mb=args.workspace,
        timing_cache=args.timing_cache,
        force_rebuild=args.force_rebuild,
        strongly_typed=args.strongly_typed,
    )


def export_config(args: argparse.Namespace):
    """The :class:`~ppl_edge.convert.ExportConfig` of the flags (validated on construction)."""
    from ppl_edge.convert import ExportConfig

    return ExportConfig(
        out=args.out,
        target=args.target,
        flavour="both" if args.nn == "plugin" else "portable",
        opset=args.opset,
        dynamic_batch=not args.static_batch,
        simplify=not args.no_simplify,
        name=args.name,
        data=args.data,
        verify=args.verify,
        verify_images=args.verify_images,
        engine=engine_config(args),
        fp16_graphs=args.fp16,
        int8_graphs=args.int8 and args.target == "onnx",
    )


def run(args: argparse.Namespace) -> int:
    """Export, optionally verify, print a summary (exit status 1 when a check fails)."""
    check_flags(args)
    if args.from_dir is not None:  # TensorRT, onnx and NumPy only: no torch on the device
        from ppl_edge.convert.engine_folder import build_folder

        config = engine_config(args)
        if config.shapes is not None:
            from ppl_edge.convert.trt_target import parse_shapes
            from ppl_edge.manifest import Manifest

            size = Manifest.load(args.from_dir).input.height
            config = config.with_batch(parse_shapes(config.shapes, 3, size))
        build_folder(args.from_dir, config, echo=print)
        return 0 if verify_engines(args, args.from_dir) else 1
    from ppl_edge.convert import export

    report = export(args.checkpoint, export_config(args), echo=print)
    engines_ok = verify_engines(args, args.out) if args.target == "trt" else True
    return 0 if report.passed and engines_ok else 1


def run_engine(path, batches: list[dict]) -> list[dict]:
    """Run a TensorRT engine on each feed dict of ``batches`` (the runtime's TensorRT backend)."""
    from ppl_edge.runtime.backends.tensorrt import TensorRTBackend

    with TensorRTBackend(path) as backend:
        return [backend.run(feeds) for feeds in batches]


def verify_engines(args: argparse.Namespace, folder) -> bool:
    """With --verify: every engine of ``folder`` against ONNX Runtime (skipped in one line without
    a GPU); True when all checks passed."""
    if not args.verify:
        return True
    from ppl_edge.convert.engine_verify import verify_engines as check

    return all(c.passed for c in check(folder, run_engine, args.verify_images, echo=print))
