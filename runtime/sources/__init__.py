"""Frame sources for the live loop: cameras, video files, image folders and globs, network streams,
GStreamer pipelines (Jetson CSI cameras) and in-memory frames.

Live sources (cameras, URLs, pipelines) are read by a background thread that keeps only the newest
frame, so latency never grows when inference is slower than the camera; the frames it overwrites
are counted as dropped. Files are read in order with no drops, unless ``realtime=True`` paces them
at the file's frame rate through the same latest-frame reader. A live stream whose read fails is
reopened with exponential back-off, within one budget of attempts for the whole stream, then ends
cleanly; a video file over HTTP (it reports a frame count) is read like a file and resumes after
its last delivered frame, so no frame is delivered twice. Sources hand frames over as read; the live
loop validates them with :func:`sanitize_frame`, which fixes what it can and rejects the rest.
"""

from ppl_edge.runtime.sources.base import (
    MAX_PIXELS,
    MAX_SIDE,
    STREAM_SCHEMES,
    ArraySource,
    Capture,
    Frame,
    FrameSource,
    ImageSequenceSource,
    SourceStats,
    sanitize_frame,
)
from ppl_edge.runtime.sources.capture import CaptureSource
from ppl_edge.runtime.sources.open import OPENERS, OpenOptions, csi_pipeline, open_source

__all__ = [
    "MAX_PIXELS",
    "MAX_SIDE",
    "OPENERS",
    "STREAM_SCHEMES",
    "ArraySource",
    "Capture",
    "CaptureSource",
    "Frame",
    "FrameSource",
    "ImageSequenceSource",
    "OpenOptions",
    "SourceStats",
    "csi_pipeline",
    "open_source",
    "sanitize_frame",
]
