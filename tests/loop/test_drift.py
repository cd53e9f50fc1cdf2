"""Drift statistics on real data: Adult's under-40 slice against the whole population, SST-2 against PhraseBank."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.config.loop import DriftThresholds
from shipyard.loop.drift import (
    chi2_test,
    compare_frames,
    embed_texts,
    ks_test,
    mmd_test,
    psi_categorical,
    psi_numeric,
)

FEATURES = [
    {"name": "age", "type": "numeric"},
    {"name": "hours-per-week", "type": "numeric"},
    {"name": "marital-status", "type": "categorical"},
    {"name": "sex", "type": "categorical"},
]


def test_same_population_is_not_drift_and_a_shifted_one_is(adult_frame):
    young = adult_frame[adult_frame["age"] < 40]
    halves = young.sample(frac=1.0, random_state=1)
    a, b = halves.iloc[:2000], halves.iloc[2000:4000]
    assert psi_numeric(a["age"], b["age"]) < 0.02
    assert ks_test(a["age"], b["age"])[1] > 0.01
    same = compare_frames(a, b, FEATURES, DriftThresholds())
    assert not any(f.drifted for f in same)
    everyone = adult_frame.sample(n=2000, random_state=2)
    shifted = {f.name: f for f in compare_frames(a, everyone, FEATURES, DriftThresholds())}
    assert shifted["age"].drifted and shifted["age"].test == "ks" and shifted["age"].psi > 0.5
    assert shifted["marital-status"].drifted and shifted["marital-status"].test == "chi2"
    assert not shifted["sex"].drifted  # the same share of men and women in both
    assert psi_categorical(a["sex"], everyone["sex"]) < 0.01
    assert chi2_test(a["sex"], a["sex"])[1] == pytest.approx(1.0)


def test_mmd_on_sentence_embeddings_separates_film_reviews_from_financial_news(data_dir):
    sst = pd.read_csv(data_dir / "sst2" / "train.tsv", sep="\t")["sentence"].sample(n=120, random_state=0).tolist()
    lines = (data_dir / "financial_phrasebank" / "Sentences_50Agree.txt").read_text(encoding="latin-1").splitlines()
    fin = [line.rsplit("@", 1)[0] for line in lines[:60]]
    vectors = embed_texts(sst + fin)
    assert vectors.shape == (180, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    _, p_same = mmd_test(vectors[:60], vectors[60:120], permutations=100)
    statistic, p_shift = mmd_test(vectors[:60], vectors[120:], permutations=100)
    assert p_same > 0.05
    assert p_shift < 0.02 and statistic > 0
