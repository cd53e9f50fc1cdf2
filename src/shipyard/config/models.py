"""The model section of a job: one parameter class per model family, picked by ``type``.

Each family's parameters are plain data here (the whole job schema lives in ``shipyard.config``); the family's
module in ``shipyard.models`` imports its class and registers a builder for it. ``ModelConfig`` is a pydantic
union discriminated on ``type``, so a misspelt parameter is reported with its YAML line and the nearest known key,
and an unknown type lists the known ones.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LinearParams(Params):
    bias: bool = True


class MLPParams(Params):
    hidden: list[int] = Field(default_factory=lambda: [128, 64], min_length=1)
    activation: Literal["relu", "gelu", "tanh", "silu"] = "relu"
    dropout: float = Field(default=0.0, ge=0, lt=1)
    batch_norm: bool = False


class CNNParams(Params):
    channels: list[int] = Field(default_factory=lambda: [32, 64], min_length=1)
    convs_per_block: int = Field(default=2, ge=1)
    kernel_size: int = Field(default=3, ge=1)
    batch_norm: bool = True
    pool: Literal["max", "avg", "none"] = "max"
    dropout: float = Field(default=0.25, ge=0, lt=1)
    head_hidden: int = Field(default=128, ge=0)  # 0: a single linear layer
    head_dropout: float = Field(default=0.3, ge=0, lt=1)
    global_pool: bool = False


class TransformerParams(Params):
    pretrained: str = "minilm"  # alias of the installed all-MiniLM-L6-v2, or a local Hugging Face model folder
    pooling: Literal["mean", "cls"] = "mean"
    dropout: float = Field(default=0.1, ge=0, lt=1)  # on the pooled vector (and inside an MLP head)
    mode: Literal["full", "frozen", "freeze_lower"] = "full"
    freeze_layers: int = Field(default=0, ge=0)  # freeze_lower: how many of the lowest layers stay fixed
    layer_lr_decay: float = Field(default=1.0, gt=0, le=1)
    head_hidden: int = Field(default=0, ge=0)  # 0: a linear head
    artifact_dir: str | None = None  # set by the artifact loader: build from the files saved there

    @model_validator(mode="after")
    def _modes(self) -> TransformerParams:
        if self.freeze_layers and self.mode != "freeze_lower":
            raise ValueError("freeze_layers only applies with mode: freeze_lower")
        return self


class BiEncoderParams(Params):
    """A bi-encoder for `task: retrieval`: one shared text encoder for queries and passages, mean pooled and
    L2-normalised, so a dot product is the cosine similarity."""

    pretrained: str = "minilm"
    query_max_length: int = Field(default=32, ge=4, le=512)
    passage_max_length: int = Field(default=128, ge=8, le=512)
    scale: float = Field(default=20.0, gt=0)  # similarity scale of the ranking loss (1 / temperature)
    artifact_dir: str | None = None  # set by the artifact loader: build from the files saved there


class LightGBMParams(Params):
    """Gradient-boosted trees (LightGBM). Training runs LightGBM's own booster, not the torch engine: the
    ``training`` section contributes its seed and ``num_threads`` only; ``epochs``, ``batch_size`` and the optimiser
    settings do not apply. Early stopping watches the validation split's loss."""

    # defaults: a lower rate with row and column subsampling and a longer patience, the usual stronger setting
    # than LightGBM's own (0.1, no subsampling); early stopping picks the number of rounds
    n_estimators: int = Field(default=5000, ge=1, le=100_000)  # boosting rounds at most (early stopping picks)
    learning_rate: float = Field(default=0.03, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2, le=131_072)
    max_depth: int = Field(default=-1, ge=-1)  # -1: no limit (num_leaves bounds the tree)
    min_child_samples: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_fraction: float = Field(default=0.8, gt=0, le=1)
    bagging_freq: int = Field(default=1, ge=0)  # 0: no bagging
    lambda_l1: float = Field(default=0.0, ge=0)
    lambda_l2: float = Field(default=0.0, ge=0)
    min_split_gain: float = Field(default=0.0, ge=0)
    max_bin: int = Field(default=255, ge=2, le=65_535)
    # native: LightGBM splits on category sets; ordinal: the category codes are treated as numbers
    categorical: Literal["native", "ordinal"] = "native"
    cat_smooth: float = Field(default=10.0, ge=0)
    max_cat_to_onehot: int = Field(default=4, ge=1)  # categories with at most this many levels split one-vs-rest
    # classification: "balanced" weighs each class by n / (k * count); a mapping gives a weight per class label
    class_weight: Literal["balanced"] | dict[str, float] | None = None
    early_stopping_rounds: int = Field(default=200, ge=0)  # 0: train every round

    @model_validator(mode="after")
    def _weights(self) -> LightGBMParams:
        if isinstance(self.class_weight, dict) and any(w <= 0 for w in self.class_weight.values()):
            raise ValueError("every class_weight must be > 0")
        return self


class ScratchTextParams(Params):
    """A text model trained from scratch on a vocabulary learnt from the training split (shipyard.data.vocab)."""

    tokenizer: Literal["char", "wordpiece", "unigram", "jieba"] = "char"
    tokenizer_vocab: int = Field(default=30_000, ge=100, le=1_000_000)  # units the tokenizer may learn
    ngram_range: tuple[int, int] = (1, 3)  # runs of consecutive units that become features
    max_features: int = Field(default=300_000, ge=10, le=5_000_000)  # the most frequent n-grams kept
    min_count: int = Field(default=2, ge=1)  # an n-gram seen fewer times in training is left out
    n_vocab: int | None = Field(default=None, ge=3)  # set from the fitted encoder; not for the job file

    @model_validator(mode="after")
    def _range(self) -> ScratchTextParams:
        lo, hi = self.ngram_range
        if not 1 <= lo <= hi <= 5:
            raise ValueError("ngram_range must be [low, high] with 1 <= low <= high <= 5")
        return self


class TextLinearParams(ScratchTextParams):
    sublinear_tf: bool = True  # 1 + log(tf), as TfidfVectorizer(sublinear_tf=True)


class TextBagParams(ScratchTextParams):
    dim: int = Field(default=64, ge=2, le=4096)
    hidden: int = Field(default=0, ge=0)  # 0: the averaged embedding feeds the output layer directly
    dropout: float = Field(default=0.0, ge=0, lt=1)
    weighting: Literal["mean", "tfidf"] = "mean"  # mean: fastText; tfidf: each n-gram by its TF-IDF weight


class TextCNNParams(ScratchTextParams):
    ngram_range: tuple[int, int] = (1, 1)  # the convolutions see runs of units themselves
    dim: int = Field(default=128, ge=2, le=4096)
    filters: int = Field(default=128, ge=1, le=4096)
    widths: list[int] = Field(default_factory=lambda: [2, 3, 4, 5], min_length=1)
    dropout: float = Field(default=0.5, ge=0, lt=1)


def parse_duration(value: Any, name: str = "time_budget") -> float:
    """Seconds from ``90``, ``"90s"``, ``"10m"`` or ``"1.5h"``; ``name`` is the field the errors name."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().lower()
        unit = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(text[-1])
        try:
            seconds = float(text[:-1]) * unit if unit else float(text)
        except ValueError:
            raise ValueError(f"{name} {value!r} is not a duration like 90s, 10m or 1h") from None
    else:
        raise ValueError(f"{name} {value!r} is not a duration like 90s, 10m or 1h")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{name} must be a positive, finite duration")
    return seconds


class AutoParams(Params):
    """``model: {type: auto}``: try the families that fit the data under a time budget, then ensemble the best
    (greedy ensemble selection on validation predictions, Caruana et al. 2004). Not a family of its own: the
    pipeline runs each candidate as a job (shipyard.auto)."""

    time_budget: float | str = "10m"  # the whole run, candidates, ensemble and report included
    # the families to try; None: the ones that fit the input kind (tabular: lightgbm, mlp, linear; text: the
    # from-scratch text models; images: cnn, mlp)
    families: list[str] | None = None
    # explicit candidate model sections instead of the built-in small search per family (each a `model:` section,
    # optionally with a `training:` mapping that overrides the job's training settings for that candidate alone)
    candidates: list[dict[str, Any]] | None = None
    ensemble_size: int = Field(default=25, ge=1, le=500)  # rounds of greedy selection (with replacement)
    prefer: Literal["accuracy", "speed"] = "accuracy"  # speed: the single best candidate, no ensemble
    # tabular data: each candidate is k models, one per fold of the train + validation rows, and the ensemble is
    # chosen on their out-of-fold predictions (AutoGluon's bagging); 0 (or prefer: speed): one model per
    # candidate, trained on the train split
    bag_folds: int = Field(default=5, ge=0, le=20)

    @model_validator(mode="after")
    def _budget(self) -> AutoParams:
        self.time_budget = parse_duration(self.time_budget)
        if self.bag_folds == 1:
            raise ValueError("bag_folds is 0 (no bagging) or at least 2")
        if self.families is not None and not self.families:
            raise ValueError("families must name at least one model type")
        for name in self.families or []:
            if name not in MODEL_PARAMS:
                raise ValueError(f"unknown model type {name!r} in families; known: {', '.join(sorted(MODEL_PARAMS))}")
        for c in self.candidates or []:
            if not isinstance(c, dict) or c.get("type") not in MODEL_PARAMS:
                raise ValueError(f"each candidate is a model section with a known `type`; got {c!r:.80}")
            if not isinstance(c.get("training", {}), dict):
                raise ValueError(f"a candidate's `training` is a mapping of training settings; got {c!r:.80}")
        return self

    @property
    def seconds(self) -> float:
        return parse_duration(self.time_budget)


# type name -> parameter class; shipyard.models registers a builder under each name
MODEL_PARAMS: dict[str, type[Params]] = {
    "linear": LinearParams,
    "mlp": MLPParams,
    "cnn": CNNParams,
    "transformer": TransformerParams,
    "biencoder": BiEncoderParams,
    "lightgbm": LightGBMParams,
    "text_linear": TextLinearParams,
    "text_bag": TextBagParams,
    "text_cnn": TextCNNParams,
}


class _ModelSection:
    """What every model section adds to its family's parameters: the parameters as a dict (`type` aside)."""

    def params(self) -> dict[str, Any]:
        """The parameters the job set (defaults left out), as JSON-ready values: what the artifact records."""
        assert isinstance(self, BaseModel)
        return self.model_dump(mode="json", exclude={"type"}, exclude_unset=True)


class LinearModel(_ModelSection, LinearParams):
    type: Literal["linear"]


class MLPModel(_ModelSection, MLPParams):
    type: Literal["mlp"]


class CNNModel(_ModelSection, CNNParams):
    type: Literal["cnn"]


class TransformerModel(_ModelSection, TransformerParams):
    type: Literal["transformer"]


class BiEncoderModel(_ModelSection, BiEncoderParams):
    type: Literal["biencoder"]


class LightGBMModel(_ModelSection, LightGBMParams):
    type: Literal["lightgbm"]


class TextLinearModel(_ModelSection, TextLinearParams):
    type: Literal["text_linear"]


class TextBagModel(_ModelSection, TextBagParams):
    type: Literal["text_bag"]


class TextCNNModel(_ModelSection, TextCNNParams):
    type: Literal["text_cnn"]


class AutoModel(_ModelSection, AutoParams):
    type: Literal["auto"]


ModelConfig = Annotated[
    LinearModel
    | MLPModel
    | CNNModel
    | TransformerModel
    | BiEncoderModel
    | LightGBMModel
    | TextLinearModel
    | TextBagModel
    | TextCNNModel
    | AutoModel,
    Field(discriminator="type"),
]
