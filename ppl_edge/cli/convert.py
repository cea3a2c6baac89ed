"""Export a checkpoint to ONNX, a TensorRT engine or a Core ML package, with a manifest.

--target onnx writes keypoints.onnx (standard ONNX lookup), keypoints_trt.onnx (the lookup as one
NearestNeighborLookup node, with --nn plugin), refine.onnx (image-space refinement), memory.onnx
(one pass through the memory, for memory-mode refinement) and manifest.json. --target trt also
builds a TensorRT engine from the plugin graph (--nn plugin) or the portable one (--nn native); it
needs an NVIDIA GPU and TensorRT. --target coreml writes keypoints.mlpackage (mlprogram, iOS 16+).
Nothing is written unless the whole export succeeds; --verify checks the exported files against
PyTorch and prints the numbers.

examples:
  ppl-edge convert --checkpoint models/ppl-small-humanoid.safetensors --target onnx \\
      --out models/ppl-small-humanoid --verify
  ppl-edge convert --checkpoint CKPT --target trt --out DIR --fp16 --max-batch 8
  ppl-edge convert --checkpoint CKPT --target coreml --out DIR --verify
"""

from __future__ import annotations

import argparse

from ppl_edge.convert.config import DEFAULT_OPSET, NN_MODES
from ppl_edge.convert.targets import TARGETS
from ppl_edge.errors import PplEdgeError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge convert`` (TensorRT flags follow trtexec's names)."""
    parser.add_argument("--checkpoint", required=True, help="a ppl-edge .safetensors checkpoint")
    parser.add_argument(
        "--target", choices=TARGETS, default="onnx", help="what to build (default onnx)"
    )
    parser.add_argument("--out", required=True, help="output folder (created if its parent exists)")
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
    parser.add_argument("--verify", action="store_true", help="check the outputs against PyTorch")
    parser.add_argument("--verify-images", type=int, default=256, help="images for --verify")
    trt = parser.add_argument_group("TensorRT (--target trt)")
    trt.add_argument("--fp16", action="store_true", help="allow FP16 kernels")
    trt.add_argument("--int8", action="store_true", help="allow INT8 kernels (needs --calib-data)")
    trt.add_argument("--calib-data", metavar="DIR", help="folder of calibration images for --int8")
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


def check_flags(args: argparse.Namespace) -> None:
    """Refuse flag combinations that have no setting to check: TensorRT flags with another target,
    --int8 without --calib-data (the CLI has no flag for a calibration cache)."""
    if args.target != "trt":
        used = [
            f
            for f, on in (
                ("--fp16", args.fp16),
                ("--int8", args.int8),
                ("--calib-data", args.calib_data),
                ("--plugins", args.plugins),
            )
            if on
        ]
        if used:
            raise PplEdgeError(
                f"{', '.join(used)} apply to --target trt, not --target {args.target}"
            )
    if args.int8 and not args.calib_data:
        raise PplEdgeError("--int8 needs --calib-data DIR (a folder of calibration images)")


def export_config(args: argparse.Namespace):
    """The :class:`~ppl_edge.convert.ExportConfig` of the flags (validated on construction)."""
    from ppl_edge.convert import EngineConfig, ExportConfig

    engine = EngineConfig(
        precision="int8" if args.int8 else "fp16" if args.fp16 else "fp32",
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
    )
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
        engine=engine,
    )


def run(args: argparse.Namespace) -> int:
    """Export, optionally verify, print a summary (exit status 1 when a check fails)."""
    from ppl_edge.convert import export

    check_flags(args)
    report = export(args.checkpoint, export_config(args), echo=print)
    return 0 if report.passed else 1
