"""``ppl-edge live`` and ``ppl-edge demo`` as a library call: :func:`run_live` builds the estimator,
the source and the sinks of :class:`LiveOptions`, runs the loop (``runtime/loop.py``) and always
closes its outputs, so every file it wrote is valid.

The loop's names (:func:`run_loop`, :class:`LiveLoop`, :class:`LiveSummary`) and the shipped model's
path (:func:`default_model_path`) are importable from here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.config import RuntimeConfig, runtime_settings
from ppl_edge.runtime.loop import LiveLoop, run_loop
from ppl_edge.runtime.manifest import SHIPPED_MODEL, default_model_path
from ppl_edge.runtime.sinks import JsonlSink, VideoSink, WindowSink
from ppl_edge.runtime.sources import Frame, FrameSource, open_source
from ppl_edge.runtime.stats import LiveSummary

__all__ = [
    "SHIPPED_MODEL",
    "LiveLoop",
    "LiveOptions",
    "LiveSummary",
    "build_estimator",
    "default_model_path",
    "run_live",
    "run_loop",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class LiveOptions(RuntimeConfig):
    """Everything ``ppl-edge live`` needs (see ``ppl_edge/cli/live.py`` for the flags): the
    estimator's settings (the fields of :class:`~ppl_edge.runtime.config.RuntimeConfig`, checked
    there) and the loop's.

    ``source`` is a camera index or a URI for :func:`open_source`; ``model`` None is the shipped
    model; ``smooth=True`` filters with ``min_cutoff`` and ``beta``.
    """

    source: int | str = 0
    model: str | None = None
    min_cutoff: float = 1.0  # One Euro defaults of runtime/smoothing.py (Casiez et al. 2012)
    beta: float = 0.05
    output: str | None = None
    jsonl: str | None = None
    headless: bool = False
    max_frames: int | None = None
    fps_every: float = 5.0
    realtime: bool = False
    retries: int = 5
    overlay: bool = True

    def __post_init__(self) -> None:
        if self.smooth is True:
            self._set("smooth", {"min_cutoff": self.min_cutoff, "beta": self.beta})
        super().__post_init__()
        if self.max_frames is not None and self.max_frames < 1:
            raise PplEdgeError(f"max-frames must be >= 1, got {self.max_frames}")
        if self.fps_every <= 0 or self.retries < 0:
            raise PplEdgeError(
                f"fps-every must be > 0 and retries >= 0, got {self.fps_every} and {self.retries}"
            )

    @classmethod
    def from_config(cls, config: RuntimeConfig, **loop: Any) -> LiveOptions:
        """The estimator settings of ``config`` with the loop settings ``loop``."""
        return cls(**runtime_settings(config), **loop)


def build_estimator(options: LiveOptions):
    """The :class:`~ppl_edge.runtime.Estimator` the options describe."""
    from ppl_edge.runtime.estimator import Estimator

    return Estimator(options.model or default_model_path(), config=options)


def run_live(
    options: LiveOptions,
    *,
    source: FrameSource | None = None,
    estimator: Any = None,
    callback: Callable[[Frame, list], bool | None] | None = None,
) -> LiveSummary:
    """Open the model, the source and the sinks of ``options``, run the loop, close everything.

    Args:
        options: what to run.
        source: use this source instead of opening ``options.source``.
        estimator: use this estimator instead of building one (it is not closed here).
        callback: see :func:`run_loop`.

    Raises:
        PplEdgeError: a model, source or output that cannot be opened.
    """
    with ExitStack() as stack:
        if estimator is None:
            estimator = build_estimator(options)
            if hasattr(estimator, "close"):
                stack.callback(estimator.close)
        if source is None:
            source = open_source(options.source, realtime=options.realtime, retries=options.retries)
        stack.callback(source.close)
        window = None if options.headless else stack.enter_context(WindowSink())
        video = jsonl = None
        if options.output:
            video = stack.enter_context(VideoSink(options.output, fps=source.fps or 30.0))
        if options.jsonl:
            jsonl = stack.enter_context(JsonlSink(options.jsonl))
        log.info(
            "running on %s%s", source.name, " (latest-frame capture)" if source.is_live else ""
        )
        return run_loop(
            estimator,
            source,
            window=window,
            video=video,
            jsonl=jsonl,
            callback=callback,
            max_frames=options.max_frames,
            fps_every=options.fps_every,
            overlay=options.overlay,
        )
