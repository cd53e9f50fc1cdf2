"""Issue #12 item 14: an encoder that cannot read the language is reported (unknown-token rate) and warned about."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from shipyard.config.schema import Job
from shipyard.data.prepare import prepare_data
from shipyard.data.text import UNKNOWN_TOKEN_WARN_RATE, TextEncoder

CHINESE = [
    "我们前天在小镇的咖啡馆见面了",
    "这家银行的转账手续费太贵了",
    "请帮我查询一下账户余额",
    "我的信用卡被冻结了怎么办",
    "昨天晚上下了很大的雨",
    "周末我们一起去爬山吧",
] * 4
ENGLISH = [
    "we met at the small cafe in town the day before yesterday",
    "the transfer fee at this bank is far too high",
    "please check my account balance for me",
    "my credit card was frozen, what should I do",
    "it rained very heavily last night",
    "let us go hiking together at the weekend",
] * 4


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(max_length=64)


def _messages(caplog: pytest.LogCaptureFixture) -> str:
    return " ".join(r.getMessage() for r in caplog.records if r.name == "shipyard.data.text")


def test_text_the_tokenizer_cannot_read_is_measured_and_warned(
    encoder: TextEncoder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="shipyard.data.text")
    encoder.fit(CHINESE)
    rate = encoder.stats["unknown_token_rate"]
    assert rate > UNKNOWN_TOKEN_WARN_RATE
    text = _messages(caplog)
    assert "unknown to the tokenizer ([UNK]" in text and "model.pretrained" in text and "data.cleaning.text" in text


def test_text_the_tokenizer_reads_is_not_warned(encoder: TextEncoder, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="shipyard.data.text")
    encoder.fit(ENGLISH)
    assert encoder.stats["unknown_token_rate"] == 0.0
    assert "[UNK]" not in _messages(caplog)


def test_the_data_summary_reports_the_unknown_token_rate(tmp_path: Path, encoder: TextEncoder) -> None:
    csv = tmp_path / "zh.csv"
    pd.DataFrame({"text": CHINESE + ENGLISH[:6], "label": (["a", "b"] * 15)}).to_csv(csv, index=False)
    job = Job(
        task="classification",
        data={"source": {"path": str(csv)}, "features": [{"name": "text", "type": "text"}]},
        model={"type": "transformer"},
    )
    summary = prepare_data(job, base_dir=tmp_path, text_encoder=encoder).summary
    unknown = summary["unknown_tokens"]
    assert unknown["warning"] is True and unknown["train_rate"] > UNKNOWN_TOKEN_WARN_RATE
    assert summary["text_lengths"]["train"]["unknown_token_rate"] == unknown["train_rate"]
