"""The job schema: one YAML file (or the same dict in Python) describes a whole run.

Every section is a strict pydantic model (unknown keys are errors), so a job is validated once, up front, before
any data is read, and ``shipyard validate`` reports every problem with its YAML line. The larger sections live
beside this file (``models``, ``privacy``, ``pii``, ``optimize``, ``evaluation``); running a job is
``shipyard.pipeline.run_job`` (or ``shipyard.run``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from shipyard.config.derive import check_derived_name, parse_expression
from shipyard.config.errors import ConfigError, problems_from, validate_section
from shipyard.config.evaluation import FairnessThresholds
from shipyard.config.models import ModelConfig, parse_duration
from shipyard.config.optimize import OptimizeConfig
from shipyard.config.pii import PIIConfig
from shipyard.config.privacy import PrivacyConfig
from shipyard.config.recommend import RecommendConfig
from shipyard.config.retrieval import RetrievalConfig
from shipyard.config.search import SearchConfig
from shipyard.config.yaml_file import read_yaml_file

SourceFormat = Literal[
    "csv", "tsv", "jsonl", "json", "parquet", "images", "text_folder", "idx", "sklearn_digits", "delimited_lines"
]
ColumnType = Literal["numeric", "categorical", "text", "image", "label"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    def with_changes(self, where: str = "", **changes: Any) -> Self:
        """A copy with ``changes`` applied and validated (``model_copy(update=...)`` would skip the checks);
        ``where`` names this section in the ConfigError a bad change raises (e.g. ``"training"``)."""
        return validate_section(type(self), {**self.model_dump(), **changes}, where=where)


class SourceConfig(Strict):
    """Where rows come from. ``path`` may start with ``${SHIPYARD_DATA_DIR}``; relative paths are relative to the
    config file's folder."""

    path: str | None = None
    format: SourceFormat | None = None  # inferred from the file name when left out
    encoding: str | None = None  # None means UTF-8, strictly: other bytes are an error naming the row
    delimiter: str | None = None
    header: bool = True
    column_names: list[str] | None = None  # for files without a header row (and JSON records that are arrays)
    # json: dotted path to the array of records inside the document (CLINC150's `train`); none: the top level
    records_path: str | None = None
    na_values: list[str] = Field(default_factory=list)
    skip_initial_space: bool = False
    strip_suffix: dict[str, str] = Field(default_factory=dict)  # column -> trailing text to remove (Adult's '.')
    # idx: the two files of an IDX pair; images: folder layout root/<label>/*.png
    images: str | None = None
    labels: str | None = None
    image_size: tuple[int, int] | None = None
    grayscale: bool = True
    # delimited_lines: one `text<sep>label` per line (Financial PhraseBank uses '@')
    line_separator: str | None = None
    limit: int | None = Field(default=None, gt=0)  # read only the first N rows (quick runs, tests)

    @model_validator(mode="after")
    def _needs_a_location(self) -> SourceConfig:
        if self.format == "sklearn_digits":
            return self
        if self.format == "idx":
            if not (self.images and self.labels):
                raise ValueError("an idx source needs both `images` and `labels` file paths")
            return self
        if self.path is None:
            raise ValueError("a source needs `path` (or `format: sklearn_digits`)")
        return self


class FeatureSpec(Strict):
    name: str
    type: ColumnType | None = None  # inferred when left out


class SplitConfig(Strict):
    method: Literal["random", "stratified", "kfold"] = "stratified"
    validation: float = Field(default=0.1, ge=0.0, lt=1.0)
    test: float = Field(default=0.1, ge=0.0, lt=1.0)
    folds: int = Field(default=5, ge=2)
    fold: int = Field(default=0, ge=0)
    seed: int | None = None  # defaults to training.seed

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.validation + self.test >= 1.0:
            raise ValueError("validation + test fractions must leave rows for training (sum < 1)")
        if self.fold >= self.folds:
            raise ValueError(f"fold must be below folds ({self.folds})")
        return self


class TextCleaning(Strict):
    nfkc: bool = True
    whitespace: bool = True
    lowercase: bool = False
    strip_html: bool = False
    # undo Penn-Treebank tokenisation (`does n't` -> `doesn't`, `it 's` -> `it's`), as in GLUE / SST data
    detokenize: bool = False


class OutlierClipping(Strict):
    method: Literal["iqr", "quantile"] = "iqr"
    factor: float = Field(default=3.0, gt=0)  # IQR multiple
    lower: float = Field(default=0.01, ge=0, lt=0.5)  # quantiles for method=quantile
    upper: float = Field(default=0.99, gt=0.5, le=1)


class CleaningConfig(Strict):
    drop_duplicates: bool = True
    missing: Literal["drop", "mean", "median", "most_frequent", "constant", "error"] = "median"
    categorical_missing: Literal["drop", "most_frequent", "constant", "error"] = "constant"
    text_missing: Literal["drop", "error"] = "error"  # an empty text is an error unless asked to drop the row
    fill_value: float | str | None = None
    scaling: Literal["standard", "minmax", "none"] = "standard"
    categorical_encoding: Literal["onehot", "ordinal"] = "onehot"
    unknown_category: Literal["ignore", "error"] = "ignore"  # ignore = all-zero one-hot / reserved ordinal 0
    max_categories: int = Field(default=50, ge=2)  # rarer levels fold into one "other" level
    text: TextCleaning = Field(default_factory=TextCleaning)
    clip_outliers: OutlierClipping | None = None


class AugmentationConfig(Strict):
    shift: float = Field(default=0.0, ge=0, lt=0.5)  # fraction of width/height
    rotation: float = Field(default=0.0, ge=0, le=180)  # degrees
    scale: float = Field(default=0.0, ge=0, lt=1)  # +- fraction

    @property
    def enabled(self) -> bool:
        return bool(self.shift or self.rotation or self.scale)


class TextConfig(Strict):
    """Tokenisation for text features (used by transformer models)."""

    max_length: int = Field(default=128, ge=8, le=4096)
    truncation: bool = True


def _check_expression(text: str) -> str:
    parse_expression(text)
    return text


DeriveExpression = Annotated[str, AfterValidator(_check_expression)]


class DataConfig(Strict):
    source: SourceConfig
    validation_source: SourceConfig | None = None
    test_source: SourceConfig | None = None
    target: str = "label"
    features: list[str | FeatureSpec] | None = None  # None: every column but the target
    drop_columns: list[str] = Field(default_factory=list)
    split: SplitConfig = Field(default_factory=SplitConfig)
    cleaning: CleaningConfig = Field(default_factory=CleaningConfig)
    augmentation: AugmentationConfig = Field(default_factory=AugmentationConfig)
    text: TextConfig = Field(default_factory=TextConfig)
    pii: PIIConfig | None = None  # personal-data step (shipyard.data.pii) when present
    # A record identifier (e.g. a user id) that is never a model input but is kept in the run's stored splits,
    # so erasure requests (`shipyard data forget RUN --where "user_id == 123"`) can find a person's rows.
    id_column: str | None = None
    # derived numeric features, `name: expression` over columns (config/derive.py has the grammar), computed in
    # the data stage for every split and, from the artefact, for every predict / serve request from raw columns
    derive: dict[str, DeriveExpression] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _derive_names(self) -> Self:
        taken = {self.target, self.id_column}
        named = [f if isinstance(f, str) else f.name for f in self.features or []]
        earlier: list[str] = []
        for name, text in self.derive.items():
            check_derived_name(name)
            if name in taken or name in named:
                raise ValueError(f"data.derive.{name}: the name is already a column (target, id or data.features)")
            if self.features is not None:  # the inputs are declared: each column read is known now
                unknown = [c for c in parse_expression(text)[1] if c not in named and c not in earlier]
                if unknown:
                    raise ValueError(
                        f"data.derive.{name} (`{text}`) reads column {unknown[0]!r}, which is neither in "
                        "data.features nor an earlier derived feature"
                    )
            earlier.append(name)
        return self

    @field_validator("id_column")
    @classmethod
    def _id_is_not_an_input(cls, v: str | None, info: Any) -> str | None:
        if v is None:
            return v
        if not v.strip():
            raise ValueError("data.id_column must name a column")
        if v == info.data.get("target"):
            raise ValueError(f"data.id_column {v!r} is also the target; an id column is never learnt from")
        named = [f if isinstance(f, str) else f.name for f in info.data.get("features") or []]
        if v in named:
            raise ValueError(
                f"data.id_column {v!r} is also listed in data.features; an id column is never a model input "
                "(remove it from data.features)"
            )
        return v

    def feature_specs(self) -> list[FeatureSpec] | None:
        if self.features is None:
            return None
        return [FeatureSpec(name=f) if isinstance(f, str) else f for f in self.features]


class ScheduleConfig(Strict):
    name: Literal["constant", "step", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(default=0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    step_size: int = Field(default=1, ge=1)  # epochs, for name=step
    gamma: float = Field(default=0.1, gt=0, le=1)
    min_lr_ratio: float = Field(default=0.0, ge=0, le=1)


class EarlyStoppingConfig(Strict):
    metric: str = "loss"
    mode: Literal["min", "max", "auto"] = "auto"
    patience: int = Field(default=3, ge=1)
    min_delta: float = Field(default=0.0, ge=0)
    restore_best: bool = True


class SoupConfig(Strict):
    """A model soup (Wortsman et al., 2022): fine-tune the same starting weights several times, average the weights.

    Ingredients differ in seed (data order, dropout) and, when ``learning_rates`` is given, in learning rate (taken
    in turn). ``uniform`` averages all of them; ``greedy`` adds them best-first and keeps one only when the soup's
    validation score does not drop (it needs a validation split; a small one makes the choice noisy)."""

    ingredients: int = Field(default=3, ge=2, le=32)
    method: Literal["uniform", "greedy"] = "uniform"
    learning_rates: list[float] | None = Field(default=None, min_length=1)
    metric: str | None = None  # greedy: the validation metric (default: early_stopping.metric, else accuracy/loss)

    @field_validator("learning_rates")
    @classmethod
    def _positive(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and any(v <= 0 for v in value):
            raise ValueError("every learning rate must be > 0")
        return value


class TrainingConfig(Strict):
    optimizer: Literal["sgd", "adam", "adamw"] = "adamw"
    learning_rate: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    batch_size: int = Field(default=64, ge=1)
    eval_batch_size: int | None = Field(default=None, ge=1)
    epochs: int = Field(default=10, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    early_stopping: EarlyStoppingConfig | None = None
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "fp32"
    gradient_accumulation: int = Field(default=1, ge=1)
    clip_grad_norm: float | None = Field(default=None, gt=0)
    checkpoint_every_steps: int = Field(default=0, ge=0)  # 0: only at each epoch's end
    keep_checkpoints: int = Field(default=2, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int | None = Field(default=None, ge=1)
    length_bucketing: bool = True  # text: batches of similar length, random batch order
    # torch.compile the training forward/backward (dynamic shapes). Off by default: measured on 2 CPU cores it
    # cost ~41 s of compilation and gave MiniLM no speed-up (docs/benchmarks.md); on a GPU it often pays.
    compile: bool = False
    # decay of an exponential moving average of the weights (e.g. 0.999); the average is what gets evaluated,
    # early-stopped on and saved (shipyard.training.ema). None: the last step's weights.
    ema: float | None = Field(default=None, gt=0, lt=1)
    # classification: spread this much of each target's probability over the other classes in the training loss
    # (validation / test losses stay plain cross-entropy); a known remedy for noisily labelled data
    label_smoothing: float = Field(default=0.0, ge=0, lt=1)
    # several fine-tuning runs from the same start, weight-averaged into one model (shipyard.training.soup)
    soup: SoupConfig | None = None
    log_every_steps: int = Field(default=50, ge=1)
    # stop training after this long (90s, 10m, 1h), evaluate where it stopped and keep the best weights seen so
    # far, like an early stop; `shipyard train --resume` goes on from there. `auto` gives each candidate one.
    max_time: float | str | None = None

    @field_validator("max_time")
    @classmethod
    def _max_time(cls, value: float | str | None) -> float | None:
        return None if value is None else parse_duration(value, "max_time")

    @model_validator(mode="after")
    def _max_time_alone(self) -> Self:
        if self.max_time is not None and self.soup is not None:
            raise ValueError(
                "max_time does not apply to a soup, whose ingredients each train in full: "
                "drop max_time, or lower soup.ingredients or epochs to fit the time you have"
            )
        return self


class AbstainConfig(Strict):
    """Out-of-scope rejection (shipyard.evaluation.abstain): below a max-probability threshold, answer ``label``."""

    target_precision: float = Field(default=0.95, gt=0, le=1)  # accuracy wanted on kept validation predictions
    threshold: float | None = Field(default=None, gt=0, lt=1)  # a fixed threshold instead of calibrating one
    label: str = "oos"  # the answer when abstaining; also an explicit out-of-scope class when the data has one


class EvaluationConfig(Strict):
    metrics: list[str] = Field(default_factory=list)  # extra emphasis; the full set is always computed
    sensitive_features: list[str] = Field(default_factory=list)
    # responsible AI: limits that flag a fairness gap (shipyard.evaluation.fairness; None: defaults)
    fairness_thresholds: FairnessThresholds | None = None
    abstain: AbstainConfig | None = None  # classification: reject out-of-scope inputs (None: always answer)


class OutputConfig(Strict):
    runs_root: str = "runs"
    run_dir: str | None = None
    name: str | None = None


class Job(Strict):
    """A whole job (data only; run it with ``shipyard.run(job)``). Build it from YAML with ``Job.from_yaml(path)``
    or directly in Python:

    >>> job = Job(task="classification", data={"source": {"format": "sklearn_digits"}},
    ...           model={"type": "mlp", "hidden": [64]}, training={"epochs": 2})
    >>> job.model.type
    'mlp'
    """

    _base_dir: Path | None = PrivateAttr(default=None)

    task: Literal["classification", "regression", "recommendation", "retrieval"]
    name: str | None = None
    data: DataConfig | None = None  # required by classification / regression (see _sections_for_task)
    model: ModelConfig | None = None
    # task: recommendation reads its events, model and evaluation from here instead (shipyard.pipeline_recommend)
    recommend: RecommendConfig | None = None
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    optimize: OptimizeConfig | None = None  # run by shipyard.optimize when present
    privacy: PrivacyConfig | None = None  # DP-SGD (shipyard.training.privacy) when present
    search: SearchConfig | None = None  # ranges for `shipyard tune` (shipyard.tune); training ignores it
    retrieval: RetrievalConfig | None = None  # task: retrieval (shipyard.pipeline_retrieval)

    @property
    def base_dir(self) -> Path | None:
        """The folder of the YAML file the job came from (relative data paths start there); None when built in
        Python."""
        return self._base_dir

    @classmethod
    def from_yaml(cls, path: str | Path) -> Job:
        """Read and validate a job file (every problem reported at once, with lines)."""
        data, lines = read_yaml_file(path)
        job = cls.from_dict(data, str(path), lines)
        job._base_dir = Path(path).resolve().parent
        return job

    @classmethod
    def from_dict(cls, data: dict[str, Any], file: str = "<config>", lines: dict | None = None) -> Job:
        """Validate a parsed job; ConfigError lists every problem (with the line of each, given ``lines``)."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(problems_from(exc, cls, file=file, lines=lines)) from None

    @field_validator("task", mode="before")
    @classmethod
    def _lower(cls, v: Any) -> Any:
        return v.lower() if isinstance(v, str) else v

    @model_validator(mode="after")
    def _sections_for_task(self) -> Job:
        if self.task == "recommendation":
            if self.recommend is None:
                raise ValueError("task recommendation needs a `recommend` section (recommend.data.path at least)")
            if self.data is not None or self.model is not None:
                raise ValueError("task recommendation takes its data and model from `recommend`, not `data`/`model`")
            if self.optimize is not None or self.privacy is not None:
                raise ValueError("optimize and privacy are not available for task recommendation yet")
        else:
            missing = [name for name in ("data", "model") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"task {self.task} needs the section(s) {', '.join(missing)}")
            if self.recommend is not None:
                raise ValueError("the `recommend` section belongs to task: recommendation")
        return self

    @model_validator(mode="after")
    def _smoothing_needs_classes(self) -> Job:
        if self.task == "regression" and self.training.label_smoothing:
            raise ValueError("training.label_smoothing applies to classification only")
        if self.task == "regression" and self.evaluation.abstain is not None:
            raise ValueError("evaluation.abstain applies to classification only")
        if self.model is not None and (self.task == "retrieval") != (self.model.type == "biencoder"):
            raise ValueError("task: retrieval trains model type `biencoder`, and a biencoder only that task")
        if self.task == "retrieval" and self.retrieval is None:
            raise ValueError("task: retrieval needs a `retrieval:` section (query, passage and group columns)")
        if self.task == "retrieval" and (self.privacy or self.training.soup or self.optimize):
            raise ValueError("task: retrieval supports neither privacy, training.soup nor optimize yet")
        return self
