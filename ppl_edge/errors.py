"""Exceptions a user can cause. The CLI prints them as one line and exits 1."""

from __future__ import annotations

import importlib
from types import ModuleType


class PplEdgeError(Exception):
    """Base class for every error caused by user input or the environment."""


class MissingDependencyError(PplEdgeError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""


def require(module: str, extra: str, what: str | None = None) -> ModuleType:
    """Import an optional dependency or raise an error that names the pip extra.

    Args:
        module: import name, e.g. "onnxruntime".
        extra: the ppl-edge extra that installs it, e.g. "onnxruntime".
        what: the feature that needs it, for the message.

    Raises:
        MissingDependencyError: when the import fails.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        feature = what or module
        raise MissingDependencyError(
            f"{feature} needs the Python package '{module}', which is not installed: "
            f"pip install 'ppl-edge[{extra}]'"
        ) from err


def check_choice(value, choices, what: str):
    """Return ``value`` if it is one of ``choices``, else raise the one-line error every option of
    ppl-edge uses: ``unknown <what> 'x'; choose one of a, b, c``.

    Args:
        value: what the user gave.
        choices: the allowed values (any iterable; shown in its order).
        what: the option's name in the message, e.g. "backend" or "refine mode".

    Raises:
        PplEdgeError: ``value`` is not a choice.
    """
    options = tuple(choices)
    if value not in options:
        raise PplEdgeError(
            f"unknown {what} {value!r}; choose one of {', '.join(str(c) for c in options)}"
        )
    return value
