"""The vocabulary encoder: units learnt with `tokenizers`, n-grams and idf from the training split only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.data.vocab import UNK, VocabEncoder
from shipyard.errors import ShipyardError


@pytest.fixture(scope="module")
def reviews(data_dir: Path) -> list[str]:
    frame = pd.read_csv(data_dir / "chnsenticorp" / "ChnSentiCorp_htl_all.csv", nrows=400)
    return [t for t in frame["review"].astype(str) if t.strip() and t != "nan"]


def test_char_ngrams_on_chinese_reviews(reviews: list[str], tmp_path: Path) -> None:
    enc = VocabEncoder(tokenizer="char", ngram_range=(1, 2), min_count=2, max_length=64).fit(reviews)
    assert enc.stats["unknown_token_rate"] < 0.05 and enc.stats["tokenizer"] == "char"
    out = enc.transform(reviews[:5])
    ids, mask = out["input_ids"], out["attention_mask"]
    assert ids.shape == mask.shape and ids.dtype == np.int64
    assert (ids[mask == 0] == 0).all() and (ids[mask == 1] > 0).all()
    row = enc.tokens(ids[0][mask[0] == 1])
    assert row[0] == reviews[0][0]  # unigram of the first character first, then the bigram starting there
    assert row[1] == reviews[0][:2] or row[1] == reviews[0][1]
    assert enc.idf.shape == (enc.vocab_size,) and enc.idf[0] == 0 and (enc.idf[2:] >= 1).all()
    enc.save(tmp_path)
    again = VocabEncoder.load(tmp_path)
    np.testing.assert_array_equal(again.transform(reviews[:5])["input_ids"], ids)


def test_unknown_characters_and_rare_ngrams(reviews: list[str]) -> None:
    enc = VocabEncoder(tokenizer="char", ngram_range=(1, 3), min_count=3).fit(reviews)
    ids = enc.transform(["☃☃☃"])["input_ids"][0]
    # unseen characters are the tokenizer's [UNK] unit (which the training split has too: its rarest characters)
    assert len(ids) >= 3 and all(t.replace("[UNK]", "") == "" for t in enc.tokens(ids))
    enc = VocabEncoder(tokenizer="char", ngram_range=(1, 2), min_count=1).fit(["ab", "ba"])
    assert list(enc.transform(["a☃"])["input_ids"][0]) == [enc.transform(["a"])["input_ids"][0][0], UNK]


@pytest.mark.parametrize("kind", ["wordpiece", "unigram"])
def test_subword_tokenizers_learn_from_the_split(kind: str, reviews: list[str]) -> None:
    enc = VocabEncoder(tokenizer=kind, tokenizer_vocab=800, ngram_range=(1, 1), min_count=1).fit(reviews)
    assert enc.stats["units"] > 100  # WordPiece keeps every character it saw on top of the 800 asked for
    out = enc.transform(reviews[:3])
    assert out["attention_mask"].sum() > 0


def test_max_features_keeps_the_most_frequent(reviews: list[str]) -> None:
    enc = VocabEncoder(tokenizer="char", ngram_range=(2, 2), max_features=50, min_count=1).fit(reviews)
    assert enc.vocab_size == 52


def test_empty_text_is_an_error_naming_the_row() -> None:
    enc = VocabEncoder().fit(["good hotel", "bad room"])
    with pytest.raises(ShipyardError, match="row 7"):
        enc.transform(["fine", "  "], rows=[3, 7], where="column 'review'")


def test_jieba_without_the_package_says_how_to_get_it() -> None:
    try:
        import jieba  # noqa: F401

        return  # installed: segmentation works, nothing to refuse
    except ImportError:
        pass
    with pytest.raises(ShipyardError, match="pip install jieba"):
        VocabEncoder(tokenizer="jieba").fit(["酒店很好"])
