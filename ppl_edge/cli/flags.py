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
