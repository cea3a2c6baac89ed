"""Flags that several verbs share, declared once (a helper module, not a verb: the dispatcher loads
only the modules named in ``VERBS``)."""

from __future__ import annotations

import argparse


def add_checkpoint(parser: argparse.ArgumentParser) -> None:
    """``--checkpoint CKPT`` (required): the .safetensors checkpoint a verb reads."""
    parser.add_argument(
        "--checkpoint", required=True, metavar="CKPT", help="a .safetensors checkpoint"
    )


def add_out_folder(parser: argparse.ArgumentParser) -> None:
    """``--out DIR`` (required): the folder a verb writes its files into."""
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")


def add_data_options(parser: argparse.ArgumentParser, flag: str = "--opt") -> None:
    """``--opt KEY=VALUE`` (repeatable, under ``flag``): a dataset loader option (see
    :func:`parse_options`); the list lands in ``args.<flag without dashes>``."""
    parser.add_argument(
        flag,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="dataset loader option (repeatable), e.g. crops=motion, max_gap=4",
    )


def parse_options(pairs: list[str], flag: str = "--opt") -> dict:
    """``KEY=VALUE`` strings -> a dict of loader options, each value read as YAML (``4`` -> 4,
    ``true`` -> True, ``motion`` -> "motion").

    Raises:
        PplEdgeError: a pair without ``=`` or without a key.
    """
    import yaml

    from ppl_edge.errors import PplEdgeError

    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise PplEdgeError(f"{flag} expects KEY=VALUE, got {pair!r}")
        options[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return options


def add_runtime_flags(
    parser: argparse.ArgumentParser, *, iterations: int = 0, lists: bool = False
) -> None:
    """``--model``, ``--no-verify``, ``--backend``, ``--refine``, ``--iterations``: the model and
    how it runs, for the runtime verbs (live, demo, bench). Read them back with
    :func:`runtime_settings`.

    Args:
        parser: the verb's parser.
        iterations: the default of ``--iterations``.
        lists: take comma-separated lists instead (``bench``: ``--backend`` may be "all",
            ``--iterations`` a range such as 0-4); the values stay text for the verb to parse.
    """
    from ppl_edge.runtime.backends import BACKENDS, backend_choices
    from ppl_edge.runtime.refine import REFINE_MODES

    parser.add_argument(
        "--model",
        help="export folder, manifest.json, .onnx, .engine or .mlpackage (default: the shipped "
        "models/ppl-small-humanoid)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "fp16", "int8"),
        help="ONNX Runtime keypoint graph: fp32, or the fp16 / int8 graph that 'ppl-edge convert "
        "--target onnx --fp16 / --int8' wrote (default fp32)",
    )
    parser.add_argument(
        "--no-verify",
        action="store_true",
        help="skip checking each model file against the sha256 in its manifest (a faster start; "
        "by default a changed or unlisted file is refused)",
    )
    if lists:
        parser.add_argument(
            "--backend",
            default="auto",
            help=f"comma-separated backends: auto, {', '.join(BACKENDS)}, or 'all' for every "
            "usable one",
        )
        parser.add_argument(
            "--refine",
            default="none",
            help=f"comma-separated modes: {', '.join(REFINE_MODES)} (default none)",
        )
        parser.add_argument(
            "--iterations", default=str(iterations), help="iteration counts, e.g. 0-4 or 0,2"
        )
        return
    parser.add_argument("--backend", default="auto", choices=backend_choices())
    parser.add_argument(
        "--refine",
        default="none",
        choices=REFINE_MODES,
        help="iterative refinement (paper §3.4; default none)",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=iterations,
        metavar="N",
        help=f"refinement iterations (default {iterations})",
    )


def add_threads(parser: argparse.ArgumentParser) -> None:
    """``--threads N``: CPU threads of the ONNX Runtime sessions and of OpenCV."""
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="CPU threads of ONNX Runtime and OpenCV (default: one per core)",
    )


def runtime_settings(args: argparse.Namespace) -> dict:
    """The :class:`~ppl_edge.runtime.RuntimeConfig` fields of :func:`add_runtime_flags` (and of
    :func:`add_threads` where the verb has it), as keyword arguments."""
    settings = {
        "backend": args.backend,
        "refine": args.refine,
        "iterations": args.iterations,
        "verify": not args.no_verify,
        "precision": args.precision,
    }
    if hasattr(args, "threads"):
        settings["threads"] = args.threads
    return settings
