"""The compute layer: one training engine for every model family."""

from shipyard.training.engine import Engine, FitResult, read_log

__all__ = ["Engine", "FitResult", "read_log"]
