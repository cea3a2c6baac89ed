"""Export a checkpoint to ONNX, a TensorRT engine or a Core ML package, with a manifest.

--target onnx writes keypoints.onnx (standard ONNX lookup), keypoints_trt.onnx (the lookup as one
NearestNeighborLookup node, with --nn plugin), refine.onnx (image-space refinement), memory.onnx (one
pass through the memory, for memory-mode refinement) and manifest.json. --target trt also builds
a TensorRT engine from the plugin graph (--nn plugin) or the portable one (--nn native); it needs an
NVIDIA GPU and TensorRT. --target coreml writes keypoints.mlpackage (mlprogram, iOS 16+).
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
import re
from pathlib import Path

from ppl_edge.errors import PplEdgeError
from ppl_edge.fileio import IMAGE_SUFFIXES

TARGETS = ("onnx", "trt", "coreml")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``ppl-edge convert`` (TensorRT flags follow trtexec's names)."""
    parser.add_argument("--checkpoint", required=True, help="a ppl-edge .safetensors checkpoint")
    parser.add_argument(
        "--target", choices=TARGETS, default="onnx", help="what to build (default onnx)"
    )
    parser.add_argument("--out", required=True, help="output folder (created if its parent exists)")
    parser.add_argument("--name", help="model name in the manifest (default: checkpoint file stem)")
    parser.add_argument("--opset", type=int, default=18, help="ONNX opset, 17.. (default 18)")
    parser.add_argument("--static-batch", action="store_true", help="batch 1 instead of dynamic B")
    parser.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    parser.add_argument(
        "--nn",
        choices=("plugin", "native"),
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


def parse_shapes(text: str, channels: int, size: int) -> int:
    """Batch of ``--shapes image:BxCxHxW``, checked against the model's input."""
    match = re.fullmatch(r"image:(\d+)x(\d+)x(\d+)x(\d+)", text.strip())
    if not match:
        raise PplEdgeError(
            f"--shapes {text!r} is not of the form image:BxCxHxW (e.g. image:1x3x{size}x{size})"
        )
    b, c, h, w = (int(v) for v in match.groups())
    if (c, h, w) != (channels, size, size):
        raise PplEdgeError(f"--shapes gives {c}x{h}x{w}, the model takes {channels}x{size}x{size}")
    return b


def check_calibration(folder: str) -> Path:
    """A calibration folder must exist and hold at least one image."""
    path = Path(folder)
    if not path.is_dir():
        raise PplEdgeError(f"--calib-data {folder} is not a folder")
    if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*") if p.is_file()):
        raise PplEdgeError(
            f"--calib-data {folder} holds no images (expected "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} files)"
        )
    return path


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse flag combinations that cannot work, before anything is loaded."""
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
    if args.calib_data:
        check_calibration(args.calib_data)
    if not 1 <= args.min_batch <= args.opt_batch <= args.max_batch:
        raise PplEdgeError(
            f"batches must satisfy 1 <= --min-batch <= --opt-batch <= --max-batch, got "
            f"{args.min_batch}, {args.opt_batch}, {args.max_batch}"
        )
    if args.verify_images < 1:
        raise PplEdgeError(f"--verify-images must be >= 1, got {args.verify_images}")
    if args.plugins and not Path(args.plugins).is_file():
        raise PplEdgeError(f"--plugins {args.plugins} does not exist")


def check_tensorrt(args: argparse.Namespace):
    """``build_engine`` once the GPU, TensorRT and (for --nn plugin) the plugin library are found;
    otherwise a one-line PplEdgeError naming the first one missing."""
    try:
        from ppl_edge.convert.tensorrt_build import build_engine, check_prerequisites
    except ImportError as err:
        raise PplEdgeError(
            f"--target trt needs ppl_edge.convert.tensorrt_build, which failed to import: {err}"
        ) from err
    check_prerequisites(nn=args.nn, plugin_lib=args.plugins)
    return build_engine


def engine_builder(args: argparse.Namespace, source, build_engine):
    """The ``after`` step of the ONNX export that builds the TensorRT engine inside the staging folder."""
    batches = (args.min_batch, args.opt_batch, args.max_batch)
    if args.shapes:
        batch = parse_shapes(args.shapes, 3, source.model.cfg.img_size)
        batches = (batch, batch, batch)
    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"

    def build(staging: Path, paths: dict, manifest: dict) -> dict:
        onnx_path = paths["keypoints_trt" if args.nn == "plugin" else "keypoints"]
        engine = build_engine(
            onnx_path,
            staging,
            precision=precision,
            nn=args.nn,
            plugin_lib=args.plugins,
            min_batch=batches[0],
            opt_batch=batches[1],
            max_batch=batches[2],
            calib_data=args.calib_data,
            workspace_mb=args.workspace,
            timing_cache=args.timing_cache,
            force_rebuild=args.force_rebuild,
            manifest=manifest,
        )
        manifest["precision"] = precision
        return {"engine": Path(engine)}

    return build


def run(args: argparse.Namespace) -> int:
    """Export, optionally verify, print a summary."""
    check_arguments(args)
    from ppl_edge.convert import export_onnx_folder, load_source
    from ppl_edge.convert.manifest import check_output_folder
    from ppl_edge.convert.onnx_export import check_opset

    out = check_output_folder(args.out)
    if args.target != "coreml":
        check_opset(args.opset)
    # Fail fast on a machine without TensorRT, before anything is loaded or exported.
    build_engine = check_tensorrt(args) if args.target == "trt" else None
    source = load_source(args.checkpoint, name=args.name, data=args.data)
    if args.target == "coreml":
        from ppl_edge.convert.coreml import export_coreml

        manifest = export_coreml(source, out)
        stats = {}
    else:
        after = engine_builder(args, source, build_engine) if args.target == "trt" else None
        flavour = "both" if args.nn == "plugin" else "portable"
        manifest, stats = export_onnx_folder(
            source,
            out,
            flavour,
            args.opset,
            not args.static_batch,
            not args.no_simplify,
            after=after,
        )
    for role, counts in stats.items():
        print(
            f"{role}: {counts['nodes_exported']} nodes exported, {counts['nodes_simplified']} after "
            f"onnxsim"
        )
    print(f"wrote {manifest}")
    if args.verify:
        return verify(args, source, out)
    return 0


def verify(args: argparse.Namespace, source, out: Path) -> int:
    """Run the parity checks that apply to ``--target`` and print one line per check."""
    from ppl_edge.convert.verify import sample_images

    images = sample_images(source.data, source.model.cfg.img_size, args.verify_images)
    if args.target == "coreml":
        from ppl_edge.convert.coreml import verify_coreml

        checks = verify_coreml(source.model, out, images)
    else:
        from ppl_edge.convert.verify import verify_onnx

        checks = verify_onnx(source.model, out, images)
    for check in checks:
        print(check.line())
    return 0 if all(c.passed for c in checks) else 1
