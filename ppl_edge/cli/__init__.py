"""The ``ppl-edge`` command: one module per verb (house style 21).

Each verb module exposes ``add_arguments(parser)`` and ``run(args) -> int``; its docstring's first
paragraph is its ``--help`` text. Verb modules import heavy libraries only inside ``run``, so
``ppl-edge --help`` stays fast and never imports torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time

from ppl_edge import __version__
from ppl_edge.errors import PplEdgeError

# verb -> module under ppl_edge.cli
VERBS = {
    "train": "train",
    "eval": "evaluate",
    "prior": "prior",
    "name": "name",
    "distill": "distill",
    "data": "data",
    "convert": "convert",
    "bench": "bench",
    "live": "live",
    "demo": "demo",
    "info": "info",
}


# an optional package a verb may import -> the extra that installs it
EXTRAS = {
    "cv2": "opencv",
    "torch": "train",
    "safetensors": "train",
    "onnx": "convert",
    "onnxscript": "convert",
    "onnxsim": "convert",
    "onnxruntime": "onnxruntime",
    "coremltools": "coreml",
    "tensorrt": "trt",
    "pycuda": "trt",
}
EXTRA_HINTS = {
    "opencv": " (on a Jetson use JetPack's OpenCV instead: sudo apt install python3-opencv)",
}


def _load(verb: str):
    return importlib.import_module(f"ppl_edge.cli.{VERBS[verb]}")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per verb."""
    parser = argparse.ArgumentParser(
        prog="ppl-edge",
        description="Pose Prior Learner: train on unlabelled images, export to ONNX / TensorRT / "
        "Core ML, run live.",
    )
    parser.add_argument("--version", action="version", version=f"ppl-edge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for verb in VERBS:
        try:
            module = _load(verb)
        except ModuleNotFoundError as err:
            if err.name != f"ppl_edge.cli.{VERBS[verb]}":
                raise
            continue
        doc = (module.__doc__ or "").strip()
        summary = doc.split("\n\n")[0].replace("\n", " ")
        p = sub.add_parser(
            verb,
            help=summary,
            description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ppl-edge`` console script."""
    try:
        return _main(argv)
    except BrokenPipeError:  # output piped into e.g. `head`, which closed it: not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # no second BrokenPipeError at interpreter exit
        return 0


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    level = logging.DEBUG if args.debug else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    start = time.perf_counter()
    command = "ppl-edge " + " ".join(argv)
    try:
        code = int(args._module.run(args) or 0)
    except PplEdgeError as err:
        if args.debug:
            raise
        print(f"error: {err}", file=sys.stderr)
        print(f"FAILED | {time.perf_counter() - start:.1f} s | {command}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as err:
        extra = EXTRAS.get((err.name or "").split(".")[0])
        if extra is None or args.debug:
            raise
        hint = EXTRA_HINTS.get(extra, "")
        message = f"this needs the Python package '{err.name}', which is not installed"
        print(f"error: {message}: pip install 'ppl-edge[{extra}]'{hint}", file=sys.stderr)
        print(f"FAILED | {time.perf_counter() - start:.1f} s | {command}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"INTERRUPTED | {time.perf_counter() - start:.1f} s | {command}", file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") != "0":
        return code  # under torchrun only rank 0 reports
    status = {0: "OK", 130: "INTERRUPTED"}.get(code, "FAILED")
    print(f"{status} | {time.perf_counter() - start:.1f} s | {command}")
    return code


if __name__ == "__main__":
    sys.exit(main())
