"""Text features for transformer models: cleaning helpers and the `TextEncoder` that turns text into token ids.

The encoder wraps the model's own fast tokenizer, loaded from a local folder only (no hub access, ever). It pads
to the longest text of each call; the training engine trims every batch again to its own longest row (dynamic
padding) and groups rows of similar length (length bucketing), so padding costs little.

Saved layout (inside an artifact or preprocessor folder)::

    <folder>/tokenizer/           tokenizer.json, tokenizer_config.json (``save_pretrained``)
    <folder>/text_encoder.json    options: max_length, truncation, cleaning

Typical use (what the data layer's preprocessor does)::

    enc = TextEncoder(default_model_dir(), max_length=128)
    enc.fit(train_texts)                     # only records length statistics
    inputs = enc.transform(train_texts)      # {"input_ids": int64 (N, L), "attention_mask": int64 (N, L)}
    enc.save(folder); TextEncoder.load(folder)
"""

from __future__ import annotations

import html
import json
import logging
import math
import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.config.errors import validate_section
from shipyard.config.models import TransformerParams
from shipyard.data.lengths import length_summary
from shipyard.errors import ShipyardError
from shipyard.io import atomic_write_json
from shipyard.pretrained import (  # re-exported: the text data layer's view of the model folder
    TOKENIZER_DIR,
    default_model_dir,
    load_tokenizer,
    resolve_model_dir,
)

log = logging.getLogger(__name__)

ENCODER_FILE = "text_encoder.json"

# above this share of [UNK] tokens the encoder cannot read the text (another script or language): warn
UNKNOWN_TOKEN_WARN_RATE = 0.05

_TAG = re.compile(r"<[^>]{0,2000}>")
_SPACE = re.compile(r"\s+")


# ---------------------------------------------------------------------------------------------- cleaning helpers
def strip_html(text: str) -> str:
    """Remove tags (``<br/>`` becomes a space) and unescape entities (``&amp;`` -> ``&``)."""
    return html.unescape(_TAG.sub(" ", text))


def normalize_nfkc(text: str) -> str:
    """Unicode NFKC: full-width letters, ligatures and compatibility forms become their plain equivalents."""
    return unicodedata.normalize("NFKC", text)


def collapse_whitespace(text: str) -> str:
    """Runs of whitespace (tabs, newlines, non-breaking spaces) become one space; ends are trimmed."""
    return _SPACE.sub(" ", text).strip()


def lowercase(text: str) -> str:
    return text.lower()


# Penn-Treebank tokenisation, as in GLUE SST-2 and Financial PhraseBank, splits words the way no reader writes
# them: `does n't`, `it 's`, `-lrb-`, ``` `` ``` for an opening quote. A pretrained tokenizer cuts `does n't` into
# `does n ' t` but `doesn't` into `doesn ' t`, the pieces the encoder was pretrained on, so undoing the split gives
# negations the representation the model already has.
_PTB_BRACKETS = {"lrb": "(", "rrb": ")", "lsb": "[", "rsb": "]", "lcb": "{", "rcb": "}"}
_PTB_RULES: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"-(lrb|rrb|lsb|rsb|lcb|rcb)-", re.IGNORECASE), lambda m: _PTB_BRACKETS[m.group(1).lower()]),
    (re.compile(r"``|''"), '"'),
    (re.compile(r"(?<=\w) (n't)\b", re.IGNORECASE), r"\1"),
    (re.compile(r"(?<=\w) ('(?:s|re|ve|ll|d|m))\b", re.IGNORECASE), r"\1"),
    (re.compile(r"\b(gon|wan) (na)\b", re.IGNORECASE), r"\1\2"),
    (re.compile(r" ([.,;:!?%)\]}])"), r"\1"),
    (re.compile(r"([(\[{$]) "), r"\1"),
)


def detokenize_ptb(text: str) -> str:
    """Undo Penn-Treebank tokenisation: ``does n't`` -> ``doesn't``, ``it 's`` -> ``it's``, ``a , b`` -> ``a, b``,
    ``-lrb-`` -> ``(``, ``` `` ``` and ``''`` -> ``"``. Expects single spaces (run after `collapse_whitespace`)."""
    for pattern, repl in _PTB_RULES:
        text = pattern.sub(repl, text)
    return text


def clean_text(
    text: str,
    *,
    nfkc: bool = True,
    whitespace: bool = True,
    lower: bool = False,
    html_tags: bool = False,
    detokenize: bool = False,
) -> str:
    """Apply the chosen cleaning steps in a fixed order: HTML, NFKC, whitespace, PTB detokenisation, lowercase."""
    if html_tags:
        text = strip_html(text)
    if nfkc:
        text = normalize_nfkc(text)
    if whitespace:
        text = collapse_whitespace(text)
    if detokenize:
        text = detokenize_ptb(text if whitespace else collapse_whitespace(text))
    if lower:
        text = lowercase(text)
    return text


def cleaning_options(cfg: Any) -> dict[str, bool]:
    """Options for `clean_text` from a `TextCleaning` config (or a dict with its field names)."""
    get = cfg.get if isinstance(cfg, dict) else lambda k, d: getattr(cfg, k, d)
    return {
        "nfkc": bool(get("nfkc", True)),
        "whitespace": bool(get("whitespace", True)),
        "lower": bool(get("lowercase", False)),
        "html_tags": bool(get("strip_html", False)),
        "detokenize": bool(get("detokenize", False)),
    }


# ---------------------------------------------------------------------------------------------- the encoder
class TextEncoder:
    """Text -> ``{"input_ids", "attention_mask"}`` with the model's own tokenizer.

    ``cleaning`` (the `clean_text` options, or None for none) is saved with the encoder, so serving cleans text
    exactly as training did. With ``truncation=False`` a text longer than ``max_length`` tokens is an error naming
    its row instead of being cut.
    """

    def __init__(
        self,
        model_dir: str | Path | None = None,
        *,
        max_length: int = 128,
        truncation: bool = True,
        cleaning: dict[str, bool] | None = None,
        tokenizer: Any = None,
    ) -> None:
        if max_length < 2:
            raise ShipyardError("max_length must be at least 2 tokens", where="data.text.max_length")
        self.tokenizer = tokenizer if tokenizer is not None else load_tokenizer(model_dir or default_model_dir())
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < max_length:
            raise ShipyardError(
                f"max_length {max_length} is above the model's limit of {limit} tokens", where="data.text.max_length"
            )
        self.max_length = int(max_length)
        self.truncation = bool(truncation)
        self.cleaning = dict(cleaning) if cleaning else None
        self.stats: dict[str, Any] = {}

    # ------------------------------------------------------------------ text checks
    def _prepare(self, texts: Sequence[Any], rows: Sequence[Any] | None, where: str | None) -> list[str]:
        out: list[str] = []
        for i, text in enumerate(texts):
            row = rows[i] if rows is not None else i
            if text is None or (isinstance(text, float) and math.isnan(text)):
                raise ShipyardError("missing text", where=_where(where, row), hint="drop or fill empty rows first")
            if not isinstance(text, str):
                raise ShipyardError(f"expected text, got {type(text).__name__} {text!r:.40}", where=_where(where, row))
            if self.cleaning is not None:
                text = clean_text(text, **self.cleaning)
            if not text.strip():
                raise ShipyardError("empty text", where=_where(where, row), hint="drop or fill empty rows first")
            out.append(text)
        return out

    def _token_ids(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)["input_ids"]

    def _lengths(self, texts: list[str]) -> np.ndarray:
        return np.fromiter((len(ids) for ids in self._token_ids(texts)), dtype=np.int64, count=len(texts))

    def _unknown_rate(self, token_ids: list[list[int]]) -> float:
        """Share of the real tokens (special ones aside, [UNK] counted) that the vocabulary has no piece for."""
        unk = getattr(self.tokenizer, "unk_token_id", None)
        if unk is None:  # byte-level tokenizers (GPT-2 style) read every text
            return 0.0
        special = set(getattr(self.tokenizer, "all_special_ids", [])) - {unk}
        real = unknown = 0
        for ids in token_ids:
            for token in ids:
                if token not in special:
                    real += 1
                    unknown += token == unk
        return unknown / real if real else 0.0

    # ------------------------------------------------------------------ public API
    def fit(self, texts: Sequence[str], *, rows: Sequence[Any] | None = None, where: str | None = None) -> TextEncoder:
        """Nothing to learn (the vocabulary is the model's); records length statistics for the data summary."""
        self.stats = self.length_stats(texts, rows=rows, where=where)
        if self.stats.get("truncated_fraction", 0.0) > 0.05 and self.truncation:
            log.warning(
                "%.1f%% of texts are longer than max_length=%d tokens and will be truncated",
                100 * self.stats["truncated_fraction"],
                self.max_length,
            )
        rate = self.stats.get("unknown_token_rate", 0.0)
        if rate > UNKNOWN_TOKEN_WARN_RATE:
            log.warning(
                "%.1f%% of the training text's tokens are unknown to the tokenizer ([UNK], above %.0f%%): the model "
                "cannot read much of this text (another language or script?). Use a model that learns its own "
                "vocabulary from the training split (model type text_linear, text_bag or text_cnn), set "
                "model.pretrained to a local model folder whose tokenizer covers the language (e.g. a multilingual "
                "BERT saved with save_pretrained), or clean the text (data.cleaning.text) if the unknown pieces are "
                "markup or symbols",
                100 * rate,
                100 * UNKNOWN_TOKEN_WARN_RATE,
            )
        return self

    def transform(
        self, texts: Sequence[str], *, rows: Sequence[Any] | None = None, where: str | None = None
    ) -> dict[str, np.ndarray]:
        """Token ids and mask, int64 (N, L), padded to the longest text of this call (at most max_length).

        ``rows`` names each text in error messages (default: its position); ``where`` prefixes them (a file)."""
        clean = self._prepare(texts, rows, where)
        if not clean:
            empty = np.zeros((0, 1), dtype=np.int64)
            return {"input_ids": empty, "attention_mask": empty.copy()}
        if not self.truncation:
            lengths = self._lengths(clean)
            too_long = np.flatnonzero(lengths > self.max_length)
            if len(too_long):
                i = int(too_long[0])
                raise ShipyardError(
                    f"text is {int(lengths[i])} tokens, above max_length={self.max_length} "
                    f"({len(too_long)} rows are too long)",
                    where=_where(where, rows[i] if rows is not None else i),
                    hint="raise data.text.max_length or set data.text.truncation: true",
                )
        enc = self.tokenizer(
            clean,
            padding="longest",
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=True,
            return_token_type_ids=False,
            return_tensors="np",
        )
        return {
            "input_ids": np.ascontiguousarray(enc["input_ids"], dtype=np.int64),
            "attention_mask": np.ascontiguousarray(enc["attention_mask"], dtype=np.int64),
        }

    def length_stats(
        self, texts: Sequence[str], *, rows: Sequence[Any] | None = None, where: str | None = None
    ) -> dict[str, Any]:
        """Token lengths (with special tokens, before truncation): mean, p50, p95, max and the truncated share."""
        clean = self._prepare(texts, rows, where)
        if not clean:
            return {"count": 0, "mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0, "truncated_fraction": 0.0}
        token_ids = self._token_ids(clean)
        lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(clean))
        return length_summary(lengths, self.max_length) | {
            "unknown_token_rate": round(self._unknown_rate(token_ids), 4),
        }

    @property
    def pad_token_id(self) -> int:
        return int(self.tokenizer.pad_token_id or 0)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def options(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "truncation": self.truncation, "cleaning": self.cleaning}

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        """Write ``folder/tokenizer/`` (tokenizer files) and ``folder/text_encoder.json`` (options)."""
        folder = Path(folder)
        target = folder / TOKENIZER_DIR
        target.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(target))
        atomic_write_json(folder / ENCODER_FILE, {"format": 1, **self.options(), "stats": self.stats})
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> TextEncoder:
        folder = Path(folder)
        meta_path = folder / ENCODER_FILE
        if not meta_path.is_file():
            raise ShipyardError(f"no {ENCODER_FILE}: not a saved text encoder", where=str(folder))
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ShipyardError(f"{ENCODER_FILE} is not valid JSON ({exc.msg})", where=str(meta_path)) from None
        tokenizer = load_tokenizer(folder / TOKENIZER_DIR)
        enc = cls(
            max_length=int(meta["max_length"]),
            truncation=bool(meta["truncation"]),
            cleaning=meta.get("cleaning"),
            tokenizer=tokenizer,
        )
        enc.stats = dict(meta.get("stats") or {})
        return enc


def _where(where: str | None, row: Any) -> str:
    return f"{where}, row {row}" if where else f"row {row}"


def make_text_encoder(params: dict[str, Any] | TransformerParams, text_cfg: Any = None) -> TextEncoder:
    """The `TextEncoder` that matches a transformer job: the model's own tokenizer with ``data.text`` options.

    Text cleaning is left to the preprocessor (it applies ``data.cleaning.text`` at training and serving time)."""
    p = validate_section(TransformerParams, params, where="model")
    if p.artifact_dir:
        art = Path(p.artifact_dir)
        folder = art / TOKENIZER_DIR if (art / TOKENIZER_DIR).is_dir() else art / "text_encoder" / TOKENIZER_DIR
    else:
        folder = resolve_model_dir(p.pretrained)
    return TextEncoder(
        folder,
        max_length=int(getattr(text_cfg, "max_length", 128)),
        truncation=bool(getattr(text_cfg, "truncation", True)),
    )
