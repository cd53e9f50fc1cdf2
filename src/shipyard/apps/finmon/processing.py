"""From a raw payload to a document ready to score: parsing (bad input becomes a dead letter with its reason),
language detection, normalisation, near-duplicate removal (MinHash LSH) and entity linking against the watch-list.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import unicodedata
import zlib
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from shipyard.apps.finmon.config import Entity, Processing


@dataclass
class Envelope:
    """One item as a source delivered it: ``payload`` is raw bytes (a file line, a stream field) or a mapping
    (already-parsed JSON from the HTTP endpoint); ``position`` is what the source needs to commit it."""

    source: str
    position: Any
    payload: bytes | dict[str, Any]
    received_at: float = field(default_factory=time.time)


@dataclass
class Document:
    id: str
    text: str
    ts: float  # event time (epoch seconds)
    source: str
    received_at: float
    lang: str = "und"
    normalized: str = ""
    dup_of: str | None = None
    entities: list[str] = field(default_factory=list)
    score: float | None = None  # document sentiment: p(positive) - p(negative), mean over sentences
    label: str | None = None
    entity_scores: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DeadLetter:
    source: str
    position: str
    reason: str
    raw: str  # the first bytes, for a person to look at


class Rejected(Exception):
    """A payload that cannot become a document; the message is the dead-letter reason."""


def _timestamp(value: Any, default: float) -> float:
    if value is None or value == "":
        return default
    if isinstance(value, int | float):
        return float(value) / (1000.0 if value > 1e11 else 1.0)  # milliseconds are common in feeds
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise Rejected(f"unreadable timestamp {str(value)[:40]!r}") from None


def parse_envelope(env: Envelope, settings: Processing) -> Document:
    """The document in ``env``; raises Rejected (bad JSON, wrong encoding, missing or oversized text)."""
    record = env.payload
    if isinstance(record, bytes):
        try:
            text = record.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Rejected(f"wrong encoding: not UTF-8 (byte {exc.start})") from None
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            raise Rejected(f"bad JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(record, dict):
        raise Rejected(f"expected a JSON object, got {type(record).__name__}")
    body = record.get("text")
    if not isinstance(body, str) or not body.strip():
        raise Rejected("missing text: the document has no non-empty `text` field")
    if len(body) > settings.max_text_chars:
        raise Rejected(f"text too long: {len(body):,} characters (at most {settings.max_text_chars:,})")
    ts = _timestamp(record.get("ts", record.get("timestamp")), env.received_at)
    doc_id = record.get("id")
    if doc_id is None or str(doc_id) == "":  # a stable id from the content: a resent copy is the same document
        doc_id = "sha1:" + hashlib.sha1(f"{ts}\x00{body}".encode()).hexdigest()
    meta = {k: v for k, v in record.items() if k in ("title", "url", "author", "kind") and isinstance(v, str)}
    return Document(id=str(doc_id)[:200], text=body, ts=ts, source=env.source, received_at=env.received_at, meta=meta)


# ------------------------------------------------------------------ normalisation and language
TAG = re.compile(r"<[^>]{0,200}>")
URL = re.compile(r"https?://\S+")
SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """NFKC (full-width letters, ligatures), no HTML tags or URLs, one space between words."""
    text = unicodedata.normalize("NFKC", text)
    text = URL.sub(" ", TAG.sub(" ", text))
    return SPACE.sub(" ", text).strip()


STOPWORDS = {
    "en": {"the", "and", "of", "to", "in", "is", "for", "on", "with", "that", "by", "its", "from", "as", "was", "will"},
    "de": {"der", "die", "und", "das", "ist", "nicht", "mit", "den", "von", "auf", "für", "sich", "ein", "eine"},
    "fr": {"le", "la", "les", "et", "des", "est", "une", "du", "pour", "dans", "que", "pas", "sur", "au"},
    "es": {"el", "los", "las", "y", "del", "es", "una", "por", "con", "para", "que", "se", "su", "al"},
    "fi": {"ja", "on", "oli", "että", "ei", "se", "joka", "mutta", "kun", "myös", "tai", "sekä"},
}
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
ASCII_LETTER = re.compile(r"[A-Za-z]")
STOPWORD_LANGUAGES: dict[str, tuple[str, ...]] = {}  # word -> the languages it is a function word of
for _lang, _words in STOPWORDS.items():
    for _word in _words:
        STOPWORD_LANGUAGES[_word] = (*STOPWORD_LANGUAGES.get(_word, ()), _lang)


def detect_language(text: str) -> str:
    """A small, dependency-free detector: the script for Chinese/Japanese/Korean/Cyrillic, then the share of
    common function words for Latin-script languages; ``und`` when too little evidence."""
    sample = text[:2000]
    if sample.isascii():  # the common case, without looking at the characters one by one
        return _by_function_words(sample, ascii_only=True) if ASCII_LETTER.search(sample) else "und"
    letters = [c for c in sample if c.isalpha()]
    if not letters:
        return "und"
    han = sum("\u4e00" <= c <= "\u9fff" for c in letters)
    kana = sum("\u3040" <= c <= "\u30ff" for c in letters)
    hangul = sum("\uac00" <= c <= "\ud7af" for c in letters)
    cyrillic = sum("\u0400" <= c <= "\u04ff" for c in letters)
    for lang, count in (("ja", kana), ("ko", hangul), ("zh", han), ("ru", cyrillic)):
        if count / len(letters) > 0.3:
            return lang
    return _by_function_words(sample, ascii_only=all(c.isascii() for c in letters))


def _by_function_words(sample: str, *, ascii_only: bool) -> str:
    words = WORD.findall(sample)
    if not words:
        return "und"
    hits = dict.fromkeys(STOPWORDS, 0)
    for word in words:  # one dict look-up per word, not one set test per word and language
        for lang in STOPWORD_LANGUAGES.get(word.lower(), ()):
            hits[lang] += 1
    best = max(hits, key=hits.__getitem__)
    if hits[best] == 0:  # headlines are mostly names, nouns and verbs: plain ASCII letters are taken as English
        return "en" if ascii_only else "und"
    return best


SENTENCE_END = re.compile(r"(?<=[.!?。！？])\s+(?=[A-Z0-9\"'“$\u4e00-\u9fff])|(?<=[。！？])")


def sentences(text: str, limit: int) -> list[str]:
    parts = [s.strip() for s in SENTENCE_END.split(text) if s and s.strip()]
    return parts[:limit] or [text[:2000]]


# ------------------------------------------------------------------ near duplicates
def shingles(text: str, size: int = 3) -> set[bytes]:
    words = WORD.findall(text.lower())
    if len(words) < size:
        return {" ".join(words).encode()}
    return {" ".join(gram).encode() for gram in zip(*(words[i:] for i in range(size)), strict=False)}


MERSENNE_PRIME = (1 << 61) - 1  # datasketch's "legacy" MinHash scheme: ((a * h + b) mod p) & (2^32 - 1)
MAX_HASH = (1 << 32) - 1
CHUNK_SHINGLES = 16_384  # shingles hashed and permuted at once: bounds the (shingles x num_perm) matrix


class NearDuplicates:
    """MinHash LSH over word 3-shingles: a story syndicated fifty times (new headline, a dateline, the same body)
    is stored fifty times but counted once. Remembers the last ``memory`` documents (oldest forgotten first).

    datasketch gives the scheme: its permutations (``MinHash(seed=1)``, legacy scheme) and its banding for the
    threshold (``MinHashLSH``'s b bands of r rows). The signatures of a whole micro-batch are computed at once in
    numpy (the arithmetic of ``MinHash.update_batch`` with ``hashfunc=zlib.crc32``: equal, the tests check) and
    the band tables are plain dicts keyed by each band folded into one number: per document, several times cheaper
    than a MinHash object, a query and an insert through datasketch (docs/benchmarks.md, the finmon profile).
    """

    def __init__(self, threshold: float, num_perm: int, memory: int) -> None:
        # datasketch pulls scipy in (seconds): imported when a monitor starts, not on every `shipyard` command
        from datasketch import MinHash, MinHashLSH

        self.threshold, self.num_perm, self.memory = threshold, num_perm, memory
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.bands, self.rows = int(lsh.b), int(lsh.r)
        a, b = MinHash(num_perm=num_perm, seed=1, scheme="legacy").permutations
        self.a, self.b = np.asarray(a, dtype=np.uint64)[None, :], np.asarray(b, dtype=np.uint64)[None, :]
        self.hash = zlib.crc32  # a 32-bit hash of each shingle's bytes (C speed; datasketch's default is SHA-1)
        # a band's key: its r values folded into one 64-bit number (wrapping multiply-add with fixed odd factors)
        self.fold = np.random.default_rng(7).integers(1, 2**63, size=(1, 1, self.rows), dtype=np.uint64) | np.uint64(1)
        self.tables: list[dict[int, set[str]]] = [{} for _ in range(self.bands)]
        self.keys: dict[str, list[int]] = {}
        self.remembered: dict[str, np.ndarray] = {}  # signatures (uint32): 512 bytes a document at 128 values
        self.order: deque[str] = deque()

    def signatures(self, texts: list[str]) -> np.ndarray:
        """(len(texts), num_perm) MinHash values of the texts' word 3-shingles."""
        out = np.empty((len(texts), self.num_perm), dtype=np.uint64)
        hashes: list[int] = []
        starts: list[int] = []
        first = 0
        for i, text in enumerate(texts):
            starts.append(len(hashes))
            hashes.extend(self.hash(s) for s in shingles(text))
            if len(hashes) >= CHUNK_SHINGLES or i == len(texts) - 1:
                column = np.asarray(hashes, dtype=np.uint64)[:, None]
                permuted = np.bitwise_and((column * self.a + self.b) % np.uint64(MERSENNE_PRIME), np.uint64(MAX_HASH))
                out[first : i + 1] = np.minimum.reduceat(permuted, starts, axis=0)
                hashes, starts, first = [], [], i + 1
        return out

    def check_batch(self, doc_ids: list[str], texts: list[str]) -> list[str | None]:
        """For each document in order: the id of an earlier near-duplicate (also earlier in the batch), or None
        (then it is remembered)."""
        if self.memory == 0 or not texts:
            return [None] * len(texts)
        signatures = self.signatures(texts).astype(np.uint32)  # the legacy scheme's values are 32-bit
        banded = signatures[:, : self.bands * self.rows].reshape(len(texts), self.bands, self.rows)
        with np.errstate(over="ignore"):
            band_keys = (banded.astype(np.uint64) * self.fold).sum(axis=2, dtype=np.uint64).tolist()
        out: list[str | None] = []
        for doc_id, keys, signature in zip(doc_ids, band_keys, signatures, strict=True):
            found: set[str] = set()
            for table, key in zip(self.tables, keys, strict=True):
                bucket = table.get(key)
                if bucket:
                    found.update(bucket)
            # a candidate counts when the signatures agree on at least `threshold` of their values (the Jaccard
            # estimate): two stories from one template can share a band without being copies
            copies = [c for c in found if float(np.mean(self.remembered[c] == signature)) >= self.threshold]
            if copies:
                out.append(min(copies))
                continue
            out.append(None)
            if doc_id in self.keys:
                continue
            for table, key in zip(self.tables, keys, strict=True):
                table.setdefault(key, set()).add(doc_id)
            self.keys[doc_id] = keys
            self.remembered[doc_id] = signature
            self.order.append(doc_id)
            while len(self.order) > self.memory:
                self._forget(self.order.popleft())
        return out

    def check_and_add(self, doc_id: str, text: str) -> str | None:
        """The id of an earlier near-duplicate of ``text``, or None (then ``text`` is remembered)."""
        return self.check_batch([doc_id], [text])[0]

    def _forget(self, doc_id: str) -> None:
        del self.remembered[doc_id]
        for table, key in zip(self.tables, self.keys.pop(doc_id), strict=True):
            bucket = table[key]
            bucket.discard(doc_id)
            if not bucket:
                del table[key]


# ------------------------------------------------------------------ entity linking
@dataclass(frozen=True)
class _Pattern:
    entity: str
    regex: re.Pattern[str]
    strong: bool  # counts on its own; a weak (ambiguous) match needs support
    needle: str  # lower-cased literal that must occur for the regex to match: a cheap test before the regex


def _word_regex(term: str, *, ignore_case: bool) -> re.Pattern[str]:
    # word boundaries that also hold for names ending in punctuation ("Nokia Oyj.", "AT&T"): no letter or digit
    # may touch the match on either side
    return re.compile(rf"(?<![\w$]){re.escape(term)}(?!\w)", 0 if not ignore_case else re.IGNORECASE)


class EntityLinker:
    """Finds watch-list entities in a text.

    Rules (each tested): names and aliases match case-insensitively on word boundaries (``Nokia`` in
    ``Nokia's``, not in ``Nokiaphone``); tickers match only upper-case (``IT`` the ticker, not ``it``); cashtags
    (``$AAPL``) match any case; Chinese names match as substrings (no spaces in Chinese); an ``ambiguous`` name
    needs its exact case and support in the same text (a strong mention of the same entity or a ``context``
    word); overlapping matches keep the longest (``Bank of America`` is not also ``America``).
    """

    def __init__(self, entities: list[Entity]) -> None:
        self.patterns: list[_Pattern] = []
        self.context: dict[str, re.Pattern[str] | None] = {}
        for ent in entities:
            ambiguous = set(ent.ambiguous)
            for term in [*ent.names, *ent.aliases]:
                if term in ambiguous:
                    continue
                self.patterns.append(_Pattern(ent.id, _word_regex(term, ignore_case=True), True, term.lower()))
            for term in ambiguous:
                self.patterns.append(_Pattern(ent.id, _word_regex(term, ignore_case=False), False, term.lower()))
            for ticker in ent.tickers:
                upper = _word_regex(ticker.upper(), ignore_case=False)
                self.patterns.append(_Pattern(ent.id, upper, ticker not in ambiguous, ticker.lower()))
            for tag in ent.cashtags:
                tag_regex = re.compile(rf"{re.escape(tag)}(?![A-Za-z0-9])", re.I)
                self.patterns.append(_Pattern(ent.id, tag_regex, True, tag.lower()))
            for name in ent.chinese_names:
                self.patterns.append(_Pattern(ent.id, re.compile(re.escape(name)), True, name.lower()))
            words = "|".join(re.escape(w) for w in ent.context)
            self.context[ent.id] = re.compile(rf"\b(?:{words})\b", re.IGNORECASE) if words else None

    def spans(self, text: str) -> list[tuple[int, int, str, bool]]:
        lower = text.lower()
        found = [
            (m.start(), m.end(), p.entity, p.strong)
            for p in self.patterns
            if p.needle in lower
            for m in p.regex.finditer(text)
        ]
        found.sort(key=lambda s: (s[0], -(s[1] - s[0])))
        kept: list[tuple[int, int, str, bool]] = []
        for span in found:  # the longest match at a place wins; a shorter one inside it is dropped
            if kept and span[0] < kept[-1][1]:
                continue
            kept.append(span)
        return kept

    def link(self, text: str) -> list[str]:
        spans = self.spans(text)
        strong = {s[2] for s in spans if s[3]}
        out = set(strong)
        for _start, _end, entity, is_strong in spans:
            if is_strong or entity in out:
                continue
            ctx = self.context.get(entity)
            if ctx is not None and ctx.search(text):
                out.add(entity)
        return sorted(out)

    def mentions_in(self, sentence: str) -> set[str]:
        return {s[2] for s in self.spans(sentence)}
