"""Responsible AI for text models: DP-SGD on a MiniLM transformer through `shipyard train` (freeze_lower end to end,
full fine-tuning with exact per-example gradients) and token attributions (`shipyard explain`, the report's
highlighted text, a deletion faithfulness check).

One small DP run (SST-2, 300 sentences, 1 epoch, max_length 32) is shared by the module."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import shipyard
from shipyard.errors import ShipyardError

TARGET_EPSILON = 8.0

JOB = """task: classification
data:
  source: {{path: "{sst2}/train.tsv", format: tsv, limit: 300}}
  target: label
  features: [{{name: sentence, type: text}}]
  split: {{method: stratified, validation: 0.1, test: 0.2}}
  text: {{max_length: 32}}
model: {{type: transformer, pretrained: minilm, mode: freeze_lower, freeze_layers: 5}}
training: {{batch_size: 32, epochs: 1, learning_rate: 0.001, seed: 0, num_threads: 1}}
privacy:
  differential_privacy: {{target_epsilon: {eps}, target_delta: 1.0e-5, max_grad_norm: 1.0}}
"""

SENTENCES = [
    "a gorgeous , witty , seductive movie .",
    "the plot is nothing but boilerplate .",
    "an utterly charming and hilarious film .",
    "dull , lifeless and badly acted .",
]

runner = CliRunner()


@pytest.fixture(scope="module")
def text_dp_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    from shipyard.cli import app

    tmp = tmp_path_factory.mktemp("rai_text")
    job = tmp / "sst2_dp.yaml"
    job.write_text(JOB.format(sst2=data_dir / "sst2", eps=TARGET_EPSILON))
    run_dir = tmp / "runs" / "dp_minilm"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = runner.invoke(app, ["train", str(job), "--run-dir", str(run_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    return run_dir


@pytest.fixture(scope="module")
def sentences_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rai_text_in") / "rows.csv"
    pd.DataFrame({"sentence": SENTENCES}).to_csv(path, index=False)
    return path


def _pretrained() -> torch.nn.Module:
    from shipyard.models.transformer import TransformerParams, load_encoder

    return load_encoder(TransformerParams())[0]


# ------------------------------------------------------------------------------------------------ DP-SGD


def test_dp_transformer_freeze_lower_end_to_end(text_dp_run: Path) -> None:
    from shipyard.artifact import Artifact

    metrics = json.loads((text_dp_run / "metrics.json").read_text())
    info = metrics["privacy"]
    assert 0 < info["epsilon"] <= TARGET_EPSILON and info["delta"] == 1e-5 and info["max_grad_norm"] == 1.0
    assert info["steps"] == info["planned_steps"] == metrics["training"]["steps"] > 0
    report = (text_dp_run / "report.html").read_text()
    privacy = report.split('<section id="privacy">')[1].split("</section>")[0]
    assert f"ε = {info['epsilon']}" in privacy
    card = (text_dp_run / "model_card.md").read_text()
    assert "Differentially private training" in card and f"ε = {info['epsilon']}" in card

    art = Artifact.load(text_dp_run)
    pred = art.predict_frame(pd.DataFrame({"sentence": SENTENCES}))
    assert set(pred["label"]) <= set(art.labels) and len(pred["label"]) == len(SENTENCES)
    assert pred["probabilities"].shape == (len(SENTENCES), 2)
    assert torch.allclose(torch.as_tensor(pred["probabilities"]).sum(dim=1), torch.ones(len(SENTENCES)), atol=1e-5)

    # freeze_lower: the embeddings and layers 1-5 are exactly the pretrained ones; the top layer trained privately
    trained = art.model.encoder.state_dict()
    base = _pretrained().state_dict()
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.4.output.dense.weight"):
        assert torch.equal(trained[name], base[name]), name
    assert not torch.equal(trained["encoder.layer.5.output.dense.weight"], base["encoder.layer.5.output.dense.weight"])


def test_full_mode_per_example_gradients_are_exact() -> None:
    """Under Opacus every trainable weight, the position table included, gets each example's own gradient."""
    from opacus import GradSampleModule

    from shipyard.models.transformer import TransformerClassifier, TransformerParams, load_encoder

    params = TransformerParams(mode="full", dropout=0.0)
    encoder, source = load_encoder(params)
    model = TransformerClassifier(encoder, 2, params, source)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0  # per-example and single-example passes must be the same function
    model.train()
    model.per_example_positions = True  # what DPSession.wrap sets
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 2000, (3, 10), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum")
        gsm(input_ids=ids, attention_mask=mask)[:, 0].sum().backward()
    per_example = {n: p.grad_sample.clone() for n, p in model.named_parameters()}
    gsm._close()
    assert per_example["encoder.embeddings.position_embeddings.weight"].shape[0] == 3
    for i in range(3):
        model.zero_grad()
        model(input_ids=ids[i : i + 1], attention_mask=mask[i : i + 1])[:, 0].sum().backward()
        for name, p in model.named_parameters():
            err = (per_example[name][i] - p.grad).norm() / (p.grad.norm() + 1e-3)
            assert err < 1e-3, (name, i, float(err))


def test_dp_transformer_full_mode_runs(data_dir: Path, tmp_path: Path) -> None:
    from shipyard.artifact import Artifact
    from shipyard.config.schema import Job

    raw: dict[str, Any] = {
        "task": "classification",
        "data": {
            "source": {"path": str(data_dir / "sst2" / "train.tsv"), "format": "tsv", "limit": 60},
            "features": [{"name": "sentence", "type": "text"}],
            "split": {"method": "stratified", "validation": 0.0, "test": 0.2},
            "text": {"max_length": 16},
        },
        "model": {"type": "transformer", "pretrained": "minilm", "mode": "full"},
        "training": {"batch_size": 8, "epochs": 1, "max_steps": 2, "learning_rate": 0.001, "num_threads": 1},
        "privacy": {"differential_privacy": {"target_epsilon": TARGET_EPSILON}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = shipyard.run(Job.model_validate(raw), run_dir=tmp_path / "full")
    info = result.metrics["privacy"]
    assert 0 < info["epsilon"] <= TARGET_EPSILON and info["steps"] == 2
    art = Artifact.load(result.run_dir)
    assert art.model.per_example_positions is False  # back to the shared lookup once DP training ended
    name = "embeddings.position_embeddings.weight"
    assert not torch.equal(art.model.encoder.state_dict()[name], _pretrained().state_dict()[name])


def test_full_mode_refused_when_positions_are_shared() -> None:
    """An encoder that cannot take per-example positions would get wrong per-example gradients: refused, naming
    the mode that works."""
    from shipyard.training.privacy import check_model

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.position_embeddings = torch.nn.Embedding(8, 4)

    class Model(torch.nn.Module):
        per_example_positions = False
        takes_position_ids = False

        def __init__(self) -> None:
            super().__init__()
            self.encoder = Encoder()
            self.head = torch.nn.Linear(4, 2)

    with pytest.raises(ShipyardError) as err:
        check_model(Model(), "transformer")
    assert err.value.where == "model.mode" and "freeze_lower" in str(err.value)
    frozen = Model()
    frozen.encoder.position_embeddings.weight.requires_grad_(False)
    check_model(frozen, "transformer")  # the position table stays fixed: nothing to refuse


# ------------------------------------------------------------------------------------------------ explanations


def test_explain_cli_gives_token_attributions(text_dp_run: Path, sentences_csv: Path) -> None:
    from shipyard.artifact import Artifact
    from shipyard.cli import app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = runner.invoke(app, ["explain", str(text_dp_run), "--input", str(sentences_csv), "--n", "3"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert len(rows) == 3
    tokenizer = Artifact.load(text_dp_run).preprocessor.text_encoder.tokenizer
    for row, sentence in zip(rows, SENTENCES, strict=False):
        tokens = [t for t, _ in row["tokens"]]
        assert tokens == ["[CLS]", *tokenizer.tokenize(sentence), "[SEP]"]
        scores = [s for _, s in row["tokens"]]
        assert all(math.isfinite(s) for s in scores) and any(abs(s) > 1e-6 for s in scores[1:-1])
        assert scores[0] == scores[-1] == 0.0  # [CLS] / [SEP] are in the baseline too
        assert row["prediction"] in ("0", "1") and 0.5 <= row["probability"] <= 1.0

    report = (text_dp_run / "report.html").read_text()
    section = report.split('<section id="explanations">')[1].split("</section>")[0]
    assert "Token attributions" in section and "Explanations unavailable" not in section
    assert section.count('class="token-attr"') >= 3 * 3  # three sampled sentences, highlighted token by token
    assert 'title="-' in section or "rgba(220,0,0" in section or "rgba(0,160,0" in section


@pytest.mark.parametrize("how", ["mask", "remove"])
def test_token_attributions_are_faithful(text_dp_run: Path, how: str) -> None:
    from shipyard.artifact import Artifact
    from shipyard.evaluation.explain import token_faithfulness

    art = Artifact.load(text_dp_run)
    test = pd.read_parquet(text_dp_run / "splits" / "test.parquet").head(24)
    inputs = art.preprocessor.transform(test)
    tokenizer = art.preprocessor.text_encoder.tokenizer
    res = token_faithfulness(art.model, inputs, tokenizer, k=2, how=how, seed=0)
    assert res["rows"] >= 15
    assert res["top_k_drop"] > 0 and res["top_k_drop"] > 1.5 * res["random_drop"], res


def test_frozen_transformer_has_token_attributions() -> None:
    """A frozen encoder skips autograd while training, but explanations (eval mode) still need its gradients."""
    from shipyard.data.text import load_tokenizer, resolve_model_dir
    from shipyard.evaluation.explain import token_attributions
    from shipyard.models.transformer import TransformerClassifier, TransformerParams, load_encoder

    params = TransformerParams(mode="frozen")
    encoder, source = load_encoder(params)
    torch.manual_seed(0)
    model = TransformerClassifier(encoder, 2, params, source)
    tokenizer = load_tokenizer(resolve_model_dir("minilm"))
    enc = tokenizer(SENTENCES[:2], padding=True, return_tensors="np")
    rows = token_attributions(
        model, {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}, tokenizer
    )
    assert all(any(abs(s) > 1e-6 for _, s in r["tokens"]) for r in rows)
