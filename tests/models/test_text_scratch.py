"""From-scratch text models: the TF-IDF inside `text_linear` is scikit-learn's, and every family trains."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from shipyard.config.models import TextLinearParams
from shipyard.config.schema import TrainingConfig
from shipyard.data.vocab import VocabEncoder
from shipyard.errors import ShipyardError
from shipyard.models.registry import build_for_task
from shipyard.models.text_scratch import data_params, tfidf_weights
from shipyard.spec import InputSpec
from shipyard.training.engine import Engine


@pytest.fixture(scope="module")
def reviews(data_dir: Path) -> pd.DataFrame:
    frame = pd.read_csv(data_dir / "chnsenticorp" / "ChnSentiCorp_htl_all.csv")
    frame = frame[frame["review"].astype(str).str.strip().ne("") & frame["review"].notna()]
    return frame.sample(900, random_state=0).reset_index(drop=True)


def test_tfidf_in_the_model_equals_scikit_learn(reviews: pd.DataFrame) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = reviews["review"].astype(str).tolist()[:300]
    enc = VocabEncoder(tokenizer="char", ngram_range=(1, 2), min_count=1, max_length=10_000).fit(texts)
    # the same features in scikit-learn: characters (no spaces) and their bigrams, smoothed idf, sublinear tf
    vec = TfidfVectorizer(analyzer=lambda t: _char_ngrams(t), sublinear_tf=True).fit(texts)
    dense = vec.transform(texts[:20]).toarray()
    out = enc.transform(texts[:20])
    ids, w = tfidf_weights(
        torch.from_numpy(out["input_ids"]),
        torch.from_numpy(out["attention_mask"]),
        torch.from_numpy(enc.idf),
        True,
    )
    names = {n: j for j, n in enumerate(vec.get_feature_names_out())}
    for r in range(20):
        ours: dict[str, float] = {}
        for token, weight in zip(enc.tokens(ids[r].tolist()), w[r].tolist(), strict=True):
            if weight:
                ours[token] = ours.get(token, 0.0) + weight
        theirs = {n: dense[r, j] for n, j in names.items() if dense[r, j]}
        assert ours.keys() == theirs.keys()
        np.testing.assert_allclose([ours[k] for k in theirs], list(theirs.values()), rtol=1e-4)


def _char_ngrams(text: str) -> list[str]:
    chars = [c for c in text if not c.isspace()]
    return chars + ["".join(chars[i : i + 2]) for i in range(len(chars) - 1)]


def _prepared(reviews: pd.DataFrame, params: object) -> SimpleNamespace:
    enc = VocabEncoder(
        tokenizer=params.tokenizer,
        ngram_range=tuple(params.ngram_range),
        max_features=params.max_features,
        min_count=params.min_count,
        max_length=96,
    )
    texts = reviews["review"].astype(str).tolist()
    y = reviews["label"].to_numpy(np.int64)
    enc.fit(texts[:700])
    split = lambda a, b: SimpleNamespace(inputs=enc.transform(texts[a:b]), target=y[a:b])  # noqa: E731
    return SimpleNamespace(encoder=enc, train=split(0, 700), test=split(700, 900))


@pytest.mark.parametrize(
    ("family", "extra", "lr"),
    [
        ("text_linear", {}, 0.05),
        ("text_bag", {"dim": 16, "weighting": "tfidf"}, 0.02),
        ("text_cnn", {"dim": 32, "filters": 32, "widths": [2, 3], "dropout": 0.1}, 0.01),
    ],
)
def test_each_family_learns_sentiment(
    family: str, extra: dict, lr: float, reviews: pd.DataFrame, tmp_path: Path
) -> None:
    from shipyard.config.models import MODEL_PARAMS

    params = MODEL_PARAMS[family].model_validate({"max_features": 20_000, **extra})
    data = _prepared(reviews, params)
    pre = SimpleNamespace(text_encoder=data.encoder)
    spec = InputSpec(kind="text", n_outputs=2, task="classification")
    model = build_for_task(family, {**params.model_dump(), **data_params(pre)}, spec)
    model.adapt(pre)
    cfg = TrainingConfig(
        epochs=8 if family == "text_cnn" else 4, batch_size=32, learning_rate=lr, seed=0, num_threads=1
    )
    engine = Engine(cfg, "classification", labels=["0", "1"], show_progress=False)
    engine.fit(model, data.train, None, tmp_path)
    accuracy = float((engine.predict(model, data.test.inputs).argmax(1) == data.test.target).mean())
    assert accuracy > 0.75, (family, accuracy)


def test_model_needs_the_fitted_vocabulary() -> None:
    spec = InputSpec(kind="text", n_outputs=2, task="classification")
    with pytest.raises(ShipyardError, match="n_vocab"):
        build_for_task("text_linear", TextLinearParams().model_dump(), spec)
    with pytest.raises(ShipyardError, match="vocabulary encoder"):
        data_params(SimpleNamespace(text_encoder=None))
