"""The nearest-neighbour operator of the memory lookup (architecture.md, "The nearest-neighbour
operator"): one function, ``nearest_code``, whose implementation is chosen by ``lookup_impl``.

- ``reference``: torch ops, used in training and eval. Exactly the ONNX-portable decomposition
  (squared difference -> sum -> argmin -> gather), so it also exports as standard ONNX ops and
  converts to Core ML (no ``cdist`` / ``take_along_dim``, toolchain.md §2).
- ``plugin``: while exporting to ONNX, emits one ``NearestNeighborLookup`` node for the TensorRT
  plugin (registered by :mod:`ppl_edge.convert`); eager calls fall back to the reference.

Ties pick the lowest index (``argmin`` semantics), in every implementation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

LookupFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]

_IMPLS: dict[str, LookupFn] = {}
_active = "reference"


def reference_lookup(
    queries: torch.Tensor, codebook: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Nearest code per bank.

    Args:
        queries: (B, M, D) float.
        codebook: (M, K, D) float.

    Returns:
        selected: (B, M, D) the nearest code vectors.
        indices: (B, M) int64, lowest index on ties.
        distances: (B, M) squared L2 distance to the selected code.
    """
    diff = queries.unsqueeze(2) - codebook.unsqueeze(0)  # (B, M, K, D)
    dist = (diff * diff).sum(-1)  # (B, M, K)
    indices = dist.argmin(dim=-1)  # (B, M)
    distances = dist.gather(-1, indices.unsqueeze(-1)).squeeze(-1)  # (B, M)
    D = codebook.shape[-1]
    expanded = codebook.unsqueeze(0).expand(queries.shape[0], -1, -1, -1)  # (B, M, K, D)
    gather_idx = indices.view(*indices.shape, 1, 1).expand(-1, -1, 1, D)  # (B, M, 1, D)
    selected = expanded.gather(2, gather_idx).squeeze(2)  # (B, M, D)
    return selected, indices, distances


_IMPLS["reference"] = reference_lookup


def register_lookup(name: str, fn: LookupFn) -> None:
    """Register another implementation (the convert package adds ``plugin``)."""
    _IMPLS[name] = fn


def available() -> list[str]:
    """Names of the registered implementations."""
    return sorted(_IMPLS)


@contextlib.contextmanager
def lookup_impl(name: str) -> Iterator[None]:
    """Use implementation ``name`` inside the ``with`` block."""
    global _active
    if name not in _IMPLS:
        raise ValueError(f"unknown lookup implementation {name!r}; registered: {available()}")
    previous, _active = _active, name
    try:
        yield
    finally:
        _active = previous


def nearest_code(
    queries: torch.Tensor, codebook: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Dispatch to the active implementation; see :func:`reference_lookup` for shapes."""
    return _IMPLS[_active](queries, codebook)
