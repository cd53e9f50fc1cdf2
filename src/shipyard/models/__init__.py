"""Model families. Importing this package registers every built-in family with the registry."""

from shipyard.models import biencoder, cnn, linear, mlp, text_scratch, transformer, trees  # noqa: F401
from shipyard.models.registry import build_model, families
from shipyard.spec import InputSpec

__all__ = ["InputSpec", "build_model", "families"]
