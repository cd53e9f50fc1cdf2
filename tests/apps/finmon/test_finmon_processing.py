"""Parsing and dead-letter reasons, normalisation, language detection, near-duplicates and entity linking."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from finmon_helpers import WATCHLIST, config_dict

from shipyard.apps.finmon.config import Entity, Processing, load_config, validate_config
from shipyard.apps.finmon.processing import (
    EntityLinker,
    Envelope,
    NearDuplicates,
    Rejected,
    detect_language,
    normalize,
    parse_envelope,
    sentences,
    shingles,
)
from shipyard.config.errors import ConfigError

LINKER = EntityLinker([Entity.model_validate(e) for e in WATCHLIST])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Nokia's quarterly sales fell.", ["NOKIA"]),  # possessive: still a word boundary
        ("The Nokiaphone is a fan site.", []),  # no match inside a longer word
        ("NOKIA OYJ reported results", ["NOKIA"]),  # names match in any case
        ("$nok jumps premarket", ["NOKIA"]),  # cashtags in any case
        ("NOK rose 3% in Helsinki", ["NOKIA"]),  # an upper-case ticker
        ("we will nok it", []),  # ...but not a lower-case word that spells it
        ("诺基亚第三季度销售额下降", ["NOKIA"]),  # Chinese names: no spaces, substring match
        ("苹果公司发布新手机", ["AAPL"]),
        ("Apple shares rose after the iPhone launch", ["AAPL"]),  # ambiguous name with context words
        ("She baked an apple pie.", []),  # ambiguous name: wrong case, no context
        ("Apple harvest was early this year.", []),  # right case, but no support
        ("Apple Inc and Apple: a deal", ["AAPL"]),  # a strong mention supports the ambiguous one
        ("Bank of America cut its forecast", ["BAC"]),  # the longest match; 'America' alone is nothing
        ("BofA and Stora Enso signed", ["BAC", "STORA"]),  # several entities
        ("ALL of the banks fell", []),  # an ambiguous ticker without support
        ("The insurer ALL beat estimates", ["ALL"]),  # ... with its context word
        ("$AAPLX is another fund", []),  # a cashtag is a whole token
    ],
)
def test_entity_linking(text: str, expected: list[str]) -> None:
    assert LINKER.link(normalize(text)) == expected


def test_normalisation_and_sentences() -> None:
    assert normalize("<p>Ｎｏｋｉａ   profit\n up</p> https://x.example/a") == "Nokia profit up"
    assert sentences("Sales rose. Profit fell! Why? 3 new plants.", 8) == ["Sales rose.", "Profit fell!", "Why?",
                                                                           "3 new plants."]  # fmt: skip
    assert sentences("销售额下降。利润上升。", 8) == ["销售额下降。", "利润上升。"]
    assert len(sentences("A. B. C. D.", 2)) == 2


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("The company said that its profit for the year will rise", "en"),
        ("Der Umsatz ist nicht gestiegen und die Aktie fällt", "de"),
        ("Le chiffre d'affaires est en baisse pour la société", "fr"),
        ("诺基亚第三季度销售额下降", "zh"),
        ("Выручка компании снизилась", "ru"),
        ("12345 %%%", "und"),
        ("Nokia shares jump after upbeat guidance", "en"),  # a headline: no function words, plain ASCII
    ],
)
def test_language_detection(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_syndicated_story_counts_once() -> None:
    body = ("Nokia Oyj said on Thursday that its third-quarter net sales fell 12 percent to 6.5 billion euros, "
            "hit by weaker demand for network equipment in North America and price pressure in China.")  # fmt: skip
    copies = [body, f"HELSINKI (Reuters) - {body}", f"{body} Shares were down 3% in early trading.",
              f"UPDATE 1-{body}", body.replace("Thursday", "Thursday,")]  # fmt: skip
    settings = Processing()
    dedup = NearDuplicates(settings.dedup_threshold, settings.dedup_num_perm, memory=100)
    assert dedup.check_and_add("orig", normalize(copies[0])) is None
    assert [dedup.check_and_add(f"copy{i}", normalize(c)) for i, c in enumerate(copies[1:])] == ["orig"] * 4
    other = "Stora Enso will close its Kotka mill next year, cutting 300 jobs, the paper maker said on Friday."
    assert dedup.check_and_add("other", normalize(other)) is None


def test_near_duplicate_memory_is_bounded() -> None:
    dedup = NearDuplicates(threshold=0.8, num_perm=32, memory=2)
    texts = [f"story number {word} about many different things here" for word in ("alpha", "bravo", "charlie")]
    for i, text in enumerate(texts):
        dedup.check_and_add(str(i), text)
    assert list(dedup.keys) == ["1", "2"] and all("0" not in b for t in dedup.tables for b in t.values())


def test_batch_signatures_equal_datasketch_and_a_batch_sees_its_own_copies() -> None:
    from datasketch import MinHash

    dedup = NearDuplicates(threshold=0.7, num_perm=64, memory=100)
    texts = ["Nokia said its net sales fell 12 percent in the quarter", "short", "Stora Enso closes a mill " * 2000]
    for text, signature in zip(texts, dedup.signatures(texts), strict=True):  # the last one spans chunks
        reference = MinHash(num_perm=64, seed=1, scheme="legacy", hashfunc=zlib.crc32)
        reference.update_batch(list(shingles(text)))
        assert np.array_equal(signature, reference.hashvalues)
    body = "Nokia Oyj said on Thursday that its third-quarter net sales fell 12 percent to 6.5 billion euros"
    assert dedup.check_batch(["a", "b", "c"], [body, f"(Reuters) - {body}", "An unrelated note on paper"]) == [
        None, "a", None]  # fmt: skip


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"id": 1, "text": "Nokia up"', "bad JSON"),
        (b'{"id": 2, "title": "no body"}', "missing text"),
        (b'{"id": 3, "text": "   "}', "missing text"),
        (json.dumps({"id": 4, "text": "x" * 1_000_000}).encode(), "text too long"),
        ('{"id": 5, "text": "Nokia s\u00e4\u00e4"}'.encode("latin-1"), "wrong encoding"),
        (b"[1, 2]", "expected a JSON object"),
        (b'{"id": 6, "text": "ok", "ts": "yesterday"}', "unreadable timestamp"),
    ],
)
def test_malformed_documents_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(Rejected, match=reason):
        parse_envelope(Envelope("test", 0, payload), Processing())


def test_parse_fields_and_stable_ids() -> None:
    env = Envelope("t", 0, b'{"text": "Nokia up", "ts": "2024-01-02T03:04:05Z"}', received_at=10.0)
    doc = parse_envelope(env, Processing())
    assert doc.ts == 1704164645.0 and doc.id.startswith("sha1:")
    assert parse_envelope(env, Processing()).id == doc.id  # a resent copy is the same document
    assert parse_envelope(Envelope("t", 0, {"text": "x", "ts": 1704164645000}), Processing()).ts == 1704164645.0


def test_config_problems_have_path_line_and_suggestion(tmp_path: Path) -> None:
    path = tmp_path / "finmon.yaml"
    path.write_text("model: {run: r}\nwatchlist:\n  - id: A\n    names: [A]\n    tickrs: [A]\nalerts: {window: 5min}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert "watchlist.0.tickrs" in text and "did you mean `tickers`" in text and ":5" in text
    with pytest.raises(ConfigError, match="must be one of windows"):
        validate_config(config_dict(tmp_path, alerts={"window": "5min"}))
    with pytest.raises(ConfigError, match="unique"):
        validate_config(config_dict(tmp_path, watchlist=[WATCHLIST[0], WATCHLIST[0]]))
    good = validate_config(config_dict(tmp_path, sources=[{"type": "redis"}, {"type": "folder", "path": "in"}]))
    assert [s.type for s in good.sources] == ["redis", "folder"]
