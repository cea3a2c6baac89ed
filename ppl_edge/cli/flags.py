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
