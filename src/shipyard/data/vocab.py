"""A text encoder that learns its own vocabulary from the training split, for any language or domain.

Two stages, both fitted on the training texts only:

1. **units**: a tokenizer trained with the ``tokenizers`` library: ``char`` (every non-space character; what
   Chinese, Japanese and Thai text reads best as without a segmenter), ``wordpiece`` (BERT-style subwords, CJK
   characters split apart) or ``unigram`` (SentencePiece-style pieces learnt from raw strings, so it also learns
   multi-character words of unsegmented text). ``jieba`` (optional, when the package is installed) segments
   Chinese into words first.
2. **n-grams**: runs of ``ngram_range`` consecutive units (e.g. characters 1-3), kept when seen at least
   ``min_count`` times, the ``max_features`` most frequent. Each gets an id and an inverse document frequency
   (smoothed, as scikit-learn's ``TfidfVectorizer``) for the TF-IDF model.

``transform`` gives ``{"input_ids", "attention_mask"}`` (int64, N x L): per text, its units' n-grams in order of
position (id 0 pads, 1 is a unit the tokenizer does not know; n-grams outside the vocabulary are left out), so
every model and export path that takes token ids takes these. N-gram keys are integers (unit ids in base B), so
lookups are vectorised with ``numpy.searchsorted``.

Saved as ``tokenizer.json`` (the tokenizers library's own JSON), ``vocab.safetensors`` (n-gram keys, idf) and
``vocab_encoder.json`` (options and statistics): nothing executable.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.data.lengths import length_summary
from shipyard.errors import ShipyardError
from shipyard.io import atomic_save_safetensors, atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

PAD, UNK = 0, 1
SPECIAL = ["[PAD]", "[UNK]"]
TOKENIZERS = ("char", "wordpiece", "unigram", "jieba")
OPTIONS_FILE = "vocab_encoder.json"
TOKENIZER_FILE = "tokenizer.json"
TABLES_FILE = "vocab.safetensors"
MAX_KEY = 2**62  # n-gram keys stay below this (int64, with room for the comparison)


def _train_units(kind: str, texts: Sequence[str], vocab_size: int, min_count: int) -> Any:
    """A ``tokenizers.Tokenizer`` of the given kind, trained on ``texts``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind in ("char", "jieba"):
        tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        pieces = [pre_tokenizers.WhitespaceSplit()]
        if kind == "char":  # every remaining character on its own
            pieces.append(pre_tokenizers.Split(Regex("."), behavior="isolated"))
        tok.pre_tokenizer = pre_tokenizers.Sequence(pieces)
        trainer: Any = trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=min_count, special_tokens=SPECIAL, show_progress=False
        )
    elif kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=False
        )
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, min_frequency=min_count, special_tokens=SPECIAL, show_progress=False
        )
    elif kind == "unigram":
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        # the unigram model must hold every character it saw: never ask for fewer pieces than that
        alphabet = len(set("".join(texts)))
        trainer = trainers.UnigramTrainer(
            vocab_size=max(vocab_size, alphabet + len(SPECIAL) + 1),
            special_tokens=SPECIAL,
            unk_token="[UNK]",
            show_progress=False,
        )
    else:
        raise ShipyardError(f"unknown tokenizer {kind!r}; expected one of {', '.join(TOKENIZERS)}", where="model")
    try:
        tok.train_from_iterator(list(texts), trainer=trainer, length=len(texts))
    except Exception as exc:  # the Rust trainer raises a plain Exception
        raise ShipyardError(f"the {kind} tokenizer could not be trained: {exc}", where="model.tokenizer") from None
    return tok


def _jieba() -> Any:
    try:
        import jieba  # optional: Chinese word segmentation
    except ImportError:
        raise ShipyardError(
            "tokenizer `jieba` needs the jieba package, which is not installed",
            where="model.tokenizer",
            hint="`pip install jieba`, or use `tokenizer: char` (characters) or `unigram` (learnt pieces)",
        ) from None
    jieba.setLogLevel(logging.WARNING)
    return jieba


class VocabEncoder:
    """Text -> n-gram ids over a vocabulary learnt from the training split (see the module docstring)."""

    def __init__(
        self,
        *,
        tokenizer: str = "char",
        tokenizer_vocab: int = 30_000,
        ngram_range: tuple[int, int] = (1, 1),
        max_features: int = 200_000,
        min_count: int = 2,
        max_length: int = 512,
    ) -> None:
        if tokenizer not in TOKENIZERS:
            raise ShipyardError(
                f"unknown tokenizer {tokenizer!r}; expected one of {', '.join(TOKENIZERS)}", where="model.tokenizer"
            )
        lo, hi = int(ngram_range[0]), int(ngram_range[1])
        if not 1 <= lo <= hi <= 5:
            raise ShipyardError(f"ngram_range {list(ngram_range)} must be 1 <= low <= high <= 5", where="model")
        self.kind = tokenizer
        self.tokenizer_vocab = int(tokenizer_vocab)
        self.ngram_range = (lo, hi)
        self.max_features = int(max_features)
        self.min_count = int(min_count)
        self.max_length = int(max_length)
        self.units: Any = None  # tokenizers.Tokenizer
        self.base = 0
        self.keys = np.zeros(0, dtype=np.int64)  # sorted n-gram keys; id of keys[i] is ids[i]
        self.ids = np.zeros(0, dtype=np.int64)
        self.idf = np.zeros(2, dtype=np.float32)  # by id: 0 for padding
        self.stats: dict[str, Any] = {}

    # --------------------------------------------------------------------------------------------- units
    def _segment(self, texts: Sequence[str]) -> list[str]:
        if self.kind != "jieba":
            return list(texts)
        jieba = _jieba()
        return [" ".join(jieba.cut(t)) for t in texts]

    def _unit_ids(self, texts: Sequence[str]) -> list[np.ndarray]:
        encodings = self.units.encode_batch(self._segment(texts), add_special_tokens=False)
        return [np.asarray(e.ids, dtype=np.int64) for e in encodings]

    def _keys(self, units: np.ndarray) -> np.ndarray:
        """The n-gram keys of one text, in position order (for each start, n = low..high)."""
        u = units[: self.max_length] + 1  # 1-based, so n-grams of different lengths never share a key
        lo, hi = self.ngram_range
        m = len(u)
        out = np.full((m, hi - lo + 1), -1, dtype=np.int64)
        for col, n in enumerate(range(lo, hi + 1)):
            if m < n:
                continue
            key = np.zeros(m - n + 1, dtype=np.int64)
            for j in range(n):
                key = key * self.base + u[j : m - n + 1 + j]
            out[: m - n + 1, col] = key
        flat = out.reshape(-1)
        return flat[flat >= 0]

    # ----------------------------------------------------------------------------------------------- fit
    def fit(self, texts: Sequence[str], *, rows: Sequence[Any] | None = None, where: str | None = None) -> Any:
        texts = _checked(texts, rows, where)
        if not texts:
            raise ShipyardError("no training texts to learn a vocabulary from", where=where)
        self.units = _train_units(self.kind, self._segment(texts), self.tokenizer_vocab, self.min_count)
        self.base = int(self.units.get_vocab_size()) + 2
        if self.base ** self.ngram_range[1] >= MAX_KEY:
            raise ShipyardError(
                f"{self.base - 2} units and n-grams of {self.ngram_range[1]} do not fit the key space",
                where="model.ngram_range",
                hint="lower tokenizer_vocab or the n-gram length",
            )
        units = self._unit_ids(texts)
        per_doc = [np.unique(self._keys(u)) for u in units]
        all_keys, counts = np.unique(np.concatenate([self._keys(u) for u in units]), return_counts=True)
        doc_keys, doc_freq = np.unique(np.concatenate(per_doc), return_counts=True)
        keep = counts >= self.min_count
        if self.ngram_range[0] == 1:  # every known unit stays, however rare: a text of rare characters keeps them
            keep |= all_keys < self.base
        kept, kept_counts = all_keys[keep], counts[keep]
        if len(kept) > self.max_features:  # the most frequent (ties by key, deterministic)
            order = np.lexsort((kept, -kept_counts))[: self.max_features]
            kept = np.sort(kept[order])
        self.keys = kept
        self.ids = np.arange(2, len(kept) + 2, dtype=np.int64)
        df = doc_freq[np.searchsorted(doc_keys, kept)]
        n = len(texts)
        idf = np.log((1 + n) / (1 + df)) + 1.0  # scikit-learn's smoothed idf
        self.idf = np.concatenate([[0.0, math.log(1 + n) + 1.0], idf]).astype(np.float32)
        self.stats = self._length_stats(units)
        log.info(
            "vocabulary learnt: %d %s units, %d n-grams (%d-%d) from %d texts",
            self.base - 2,
            self.kind,
            len(kept),
            *self.ngram_range,
            n,
        )
        return self

    def _length_stats(self, units: list[np.ndarray]) -> dict[str, Any]:
        lengths = np.array([len(u) for u in units], dtype=np.int64)
        total = max(int(lengths.sum()), 1)
        unknown = sum(int((u == UNK).sum()) for u in units)
        return length_summary(lengths, self.max_length) | {
            "unknown_token_rate": round(unknown / total, 4),
            "tokenizer": self.kind,
            "units": self.base - 2,
            "ngrams": len(self.keys),
        }

    # ----------------------------------------------------------------------------------------- transform
    @property
    def vocab_size(self) -> int:
        """Ids 0 (padding), 1 (unknown unit) and one per kept n-gram."""
        return len(self.keys) + 2

    @property
    def pad_token_id(self) -> int:
        return PAD

    def _lookup(self, keys: np.ndarray) -> np.ndarray:
        if len(self.keys) == 0 or len(keys) == 0:
            return np.zeros(0, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        found = self.keys[pos] == keys
        ids = np.where(found, self.ids[pos], -1)
        if self.ngram_range[0] == 1:  # an unknown unit stays as [UNK]; unknown longer n-grams are left out
            ids = np.where((ids < 0) & (keys == UNK + 1), UNK, ids)
        return ids[ids >= 0]

    def transform(
        self, texts: Sequence[str], *, rows: Sequence[Any] | None = None, where: str | None = None
    ) -> dict[str, np.ndarray]:
        if self.units is None:
            raise ShipyardError("the vocabulary encoder is used before `fit`")
        texts = _checked(texts, rows, where)
        seqs = [self._lookup(self._keys(u)) for u in self._unit_ids(texts)] if texts else []
        width = max([1, *(len(s) for s in seqs)])
        ids = np.zeros((len(seqs), width), dtype=np.int64)
        mask = np.zeros((len(seqs), width), dtype=np.int64)
        for i, s in enumerate(seqs):
            if len(s) == 0:  # nothing known: one [UNK] so the row is not empty
                s = np.array([UNK], dtype=np.int64)
            ids[i, : len(s)] = s
            mask[i, : len(s)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def tokens(self, ids: Sequence[int]) -> list[str]:
        """Readable n-grams for ids (explanations)."""
        inv = {int(i): int(k) for i, k in zip(self.ids, self.keys, strict=True)}
        out = []
        for i in ids:
            if int(i) in (PAD, UNK):
                out.append(SPECIAL[int(i)])
                continue
            key, parts = inv[int(i)], []
            while key:
                key, unit = divmod(key, self.base)
                parts.append(self.units.id_to_token(int(unit) - 1) or "?")
            out.append("".join(reversed(parts)))
        return out

    def convert_ids_to_tokens(self, ids: Sequence[int]) -> list[str]:
        """The name explanations use (as a Hugging Face tokenizer's)."""
        return self.tokens(ids)

    # ------------------------------------------------------------------------------------------ save / load
    def options(self) -> dict[str, Any]:
        return {
            "tokenizer": self.kind,
            "tokenizer_vocab": self.tokenizer_vocab,
            "ngram_range": list(self.ngram_range),
            "max_features": self.max_features,
            "min_count": self.min_count,
            "max_length": self.max_length,
        }

    def save(self, folder: str | Path) -> Path:
        import torch

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / TOKENIZER_FILE, self.units.to_str())
        tables = {"keys": torch.from_numpy(self.keys), "idf": torch.from_numpy(self.idf)}
        atomic_save_safetensors(folder / TABLES_FILE, tables)
        meta = {"format": 1, **self.options(), "base": self.base, "stats": self.stats}
        atomic_write_json(folder / OPTIONS_FILE, meta)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> VocabEncoder:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        for name in (OPTIONS_FILE, TOKENIZER_FILE, TABLES_FILE):
            if not (folder / name).is_file():
                raise ShipyardError(f"the saved vocabulary encoder is missing {name}", where=str(folder))
        try:
            meta = json.loads((folder / OPTIONS_FILE).read_text(encoding="utf-8"))
            units = Tokenizer.from_str((folder / TOKENIZER_FILE).read_text(encoding="utf-8"))
            tables = load_file(str(folder / TABLES_FILE))
        except Exception as exc:  # JSON, tokenizer and safetensors parsers each raise their own type
            raise ShipyardError(f"cannot read the saved vocabulary encoder: {exc}", where=str(folder)) from None
        enc = cls(**{k: meta[k] for k in ("tokenizer", "tokenizer_vocab", "max_features", "min_count", "max_length")},
                  ngram_range=tuple(meta["ngram_range"]))  # fmt: skip
        enc.units, enc.base, enc.stats = units, int(meta["base"]), dict(meta.get("stats") or {})
        enc.keys = np.asarray(tables["keys"], dtype=np.int64)
        enc.ids = np.arange(2, len(enc.keys) + 2, dtype=np.int64)
        enc.idf = np.asarray(tables["idf"], dtype=np.float32)
        return enc


def _checked(texts: Sequence[Any], rows: Sequence[Any] | None, where: str | None) -> list[str]:
    out = []
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            row = rows[i] if rows is not None else i
            raise ShipyardError(
                "empty or missing text",
                where=f"{where}, row {row}" if where else f"row {row}",
                hint="drop empty rows (data.cleaning.text_missing: drop)",
            )
        out.append(text)
    return out
