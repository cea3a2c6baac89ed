"""The PPL model. Modules here import torch; this package file does not."""

from ppl_edge.model.config import PRESETS, ModelConfig, preset

__all__ = ["ModelConfig", "PRESETS", "preset"]
