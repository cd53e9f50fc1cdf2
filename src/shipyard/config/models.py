"""The model section of a job: one parameter class per model family, picked by ``type``.

Each family's parameters are plain data here (the whole job schema lives in ``shipyard.config``); the family's
module in ``shipyard.models`` imports its class and registers a builder for it. ``ModelConfig`` is a pydantic
union discriminated on ``type``, so a misspelt parameter is reported with its YAML line and the nearest known key,
and an unknown type lists the known ones.
"""

from __future__ import annotations

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


# type name -> parameter class; shipyard.models registers a builder under each name
MODEL_PARAMS: dict[str, type[Params]] = {
    "linear": LinearParams,
    "mlp": MLPParams,
    "cnn": CNNParams,
    "transformer": TransformerParams,
    "biencoder": BiEncoderParams,
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


ModelConfig = Annotated[
    LinearModel | MLPModel | CNNModel | TransformerModel | BiEncoderModel, Field(discriminator="type")
]
