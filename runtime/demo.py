"""The demo: the shipped model on a generated synthetic humanoid clip (or any video), headless,
writing an annotated video and a JSONL file. Needs no torch, no camera and no download."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ppl_edge.errors import PplEdgeError
from ppl_edge.runtime.config import RuntimeConfig
from ppl_edge.runtime.live import LiveOptions, LiveSummary, default_model_path, run_live
from ppl_edge.runtime.sources import ArraySource, FrameSource, open_source

log = logging.getLogger(__name__)

DEMO_FPS = 25.0  # frame rate written for the synthetic clip
DEMO_SETTINGS = {"iterations": 1}  # refine="none" by default: the shipped model is best without


@dataclass(frozen=True)
class DemoOutputs:
    """What the demo wrote and measured."""

    video: Path
    jsonl: Path
    summary: LiveSummary


def demo_source(source: str | None, frames: int, size: int = 256, seed: int = 0) -> FrameSource:
    """A video / image source, or a synthetic humanoid clip of ``frames`` frames of ``size`` px."""
    if source is not None:
        return open_source(source)
    from ppl_edge.synth.render import render_clip

    clip, _, _ = render_clip("humanoid", frames, size, seed)  # (T, H, W, 3) uint8 BGR
    return ArraySource(clip, fps=DEMO_FPS, name=f"synthetic humanoid clip ({frames} frames)")


def run_demo(
    out_dir: str | Path = "out/demo",
    *,
    model: str | None = None,
    source: str | None = None,
    frames: int = 120,
    config: RuntimeConfig | None = None,
    **settings: Any,
) -> DemoOutputs:
    """Run the demo and return the paths it wrote.

    Args:
        out_dir: receives ``demo.mp4`` and ``demo.jsonl``.
        model: export folder or file; None is the shipped model.
        source: a video or image folder; None renders a synthetic clip.
        frames: length of the synthetic clip, or the most frames read from ``source``.
        config: the estimator's settings (backend, refinement, ...; see ``ppl-edge live``).
        **settings: :class:`RuntimeConfig` fields on top of ``config`` (default: a config of
            ``settings`` alone, with one refinement iteration, :data:`DEMO_SETTINGS`).

    Raises:
        PplEdgeError: bad arguments, a missing model or an unreadable source.
    """
    if config is None:
        config = RuntimeConfig(**{**DEMO_SETTINGS, **settings})
    elif settings:
        config = config.replace(**settings)
    if frames < 1:
        raise PplEdgeError(f"frames must be >= 1, got {frames}")
    from ppl_edge.runtime.manifest import resolve_model

    model = str(model or default_model_path())
    resolve_model(model)  # a missing or broken model fails before the clip is rendered
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    video, jsonl = out / "demo.mp4", out / "demo.jsonl"
    options = LiveOptions.from_config(
        config,
        model=model,
        output=str(video),
        jsonl=str(jsonl),
        headless=True,
        max_frames=frames,
    )
    src = demo_source(source, frames)
    log.info("demo on %s", src.name)
    summary = run_live(options, source=src)
    if summary.frames == 0:
        raise PplEdgeError(
            f"the demo processed no frame from {src.name} ({summary.bad_frames} bad frames)"
        )
    return DemoOutputs(video=video, jsonl=jsonl, summary=summary)
