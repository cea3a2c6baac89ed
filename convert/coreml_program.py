"""An FP16 Core ML mlprogram whose memory lookup stays FP32: the one conversion recipe of the
keypoint package (:mod:`.coreml`) and the memory package (:mod:`.coreml_memory`).

FP16 distances would tie codebook entries that FP32 separates, so the ops between the stored
codebook constant and the gather of the chosen prototype keep FP32 (``lookup_op_selector``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ppl_edge.errors import PplEdgeError, require


def import_coremltools():
    """``import coremltools`` without its untested-torch and Linux notices (or the pip extra)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        return require("coremltools", "coreml", "Core ML export")


def _inputs(op) -> list:
    """Input Vars of a MIL op (list-valued inputs flattened)."""
    out = []
    for value in op.inputs.values():
        out.extend(value if isinstance(value, (list, tuple)) else [value])
    return out


def lookup_op_selector(codebook: np.ndarray) -> Callable[[Any], bool]:
    """``op_selector`` for ``ct.transform.FP16ComputePrecision``: False (keep FP32) for lookup ops.

    A lookup op descends from the codebook constant (found by value, since coremltools renames
    constants) and leads to a gather; everything else, including the memory decoder after the
    gathers, runs in FP16.
    """
    codebook = np.asarray(codebook, dtype=np.float32)
    from_codebook: dict[int, bool] = {}
    to_gather: dict[int, bool] = {}

    def is_codebook(op) -> bool:
        val = op.outputs[0].val if op.op_type == "const" else None
        return (
            isinstance(val, np.ndarray)
            and val.size == codebook.size
            and np.allclose(val.astype(np.float32).reshape(codebook.shape), codebook, atol=1e-3)
        )

    def descends(op) -> bool:
        if op is None:
            return False
        if id(op) not in from_codebook:
            from_codebook[id(op)] = False  # cycle guard
            from_codebook[id(op)] = is_codebook(op) or any(descends(v.op) for v in _inputs(op))
        return from_codebook[id(op)]

    def leads_to_gather(op) -> bool:
        if id(op) not in to_gather:
            to_gather[id(op)] = False
            to_gather[id(op)] = op.op_type.startswith("gather") or any(
                leads_to_gather(child) for out in op.outputs for child in out.child_ops
            )
        return to_gather[id(op)]

    def select_fp16(op) -> bool:
        return not (descends(op) and leads_to_gather(op))

    return select_fp16


def to_mlprogram(traced, inputs: list, outputs: list, model, what: str):
    """``ct.convert`` a traced graph to an iOS 16 mlprogram in FP16, with the memory lookup of
    ``model``'s codebook kept in FP32 (:func:`lookup_op_selector`); authored "ppl-edge".

    Raises:
        PplEdgeError: coremltools failed (``what`` names the graph in the message).
    """
    ct = import_coremltools()
    precision = ct.transform.FP16ComputePrecision(
        op_selector=lookup_op_selector(model.memory.codebook.detach().cpu().numpy())
    )
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # coremltools' per-pass progress bars
            mlmodel = ct.convert(
                traced,
                inputs=inputs,
                outputs=outputs,
                convert_to="mlprogram",
                minimum_deployment_target=ct.target.iOS16,
                compute_precision=precision,
            )
    except Exception as err:
        raise PplEdgeError(f"coremltools could not convert {what}: {err}") from err
    mlmodel.author = "ppl-edge"
    return mlmodel
