"""One typed job: every section of a job file is a pydantic model, so `shipyard validate` catches a misspelt key
in any of them, with its YAML line and the nearest known key; one formatter turns every pydantic error into a
ShipyardError (config/errors.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from shipyard.cli import app
from shipyard.config import ConfigError, Job, load_job
from shipyard.config.schema import TrainingConfig

runner = CliRunner()

# every section present, so a misspelt key can be put into each
FULL_JOB = """\
task: classification
data:
  source:
    path: d.csv
  split:
    validation: 0.2
  cleaning:
    scaling: standard
    text:
      lowercase: false
  augmentation:
    shift: 0.0
  text:
    max_length: 64
  pii:
    action: redact
model:
  type: mlp
  hidden: [4]
training:
  epochs: 1
  schedule:
    name: constant
  early_stopping:
    patience: 2
  soup:
    ingredients: 2
evaluation:
  sensitive_features: [sex]
  fairness_thresholds:
    accuracy_gap: 0.05
optimize:
  methods: [onnx]
privacy:
  differential_privacy:
    target_epsilon: 8
output:
  runs_root: runs
"""

# (the line after which the bad key goes, its indentation, the bad key, the key it should suggest, its path)
SECTIONS = [
    ("data:", "  ", "targt", "target", "data.targt"),
    ("  source:", "    ", "delimter", "delimiter", "data.source.delimter"),
    ("  split:", "    ", "valdation", "validation", "data.split.valdation"),
    ("  cleaning:", "    ", "scalng", "scaling", "data.cleaning.scalng"),
    ("    text:", "      ", "lowercse", "lowercase", "data.cleaning.text.lowercse"),
    ("  augmentation:", "    ", "rotaton", "rotation", "data.augmentation.rotaton"),
    ("  text:", "    ", "max_lenght", "max_length", "data.text.max_lenght"),
    ("  pii:", "    ", "acton", "action", "data.pii.acton"),
    ("model:", "  ", "hiden", "hidden", "model.hiden"),
    ("training:", "  ", "learning_rat", "learning_rate", "training.learning_rat"),
    ("  schedule:", "    ", "warmup_step", "warmup_steps", "training.schedule.warmup_step"),
    ("  early_stopping:", "    ", "patiense", "patience", "training.early_stopping.patiense"),
    ("  soup:", "    ", "ingredient", "ingredients", "training.soup.ingredient"),
    ("evaluation:", "  ", "sensitive_feature", "sensitive_features", "evaluation.sensitive_feature"),
    ("  fairness_thresholds:", "    ", "accuracy_gapp", "accuracy_gap", "evaluation.fairness_thresholds.accuracy_gapp"),
    ("optimize:", "  ", "sparsty", "sparsity", "optimize.sparsty"),
    ("privacy:", "  ", "diferential_privacy", "differential_privacy", "privacy.diferential_privacy"),
    ("  differential_privacy:", "    ", "target_detla", "target_delta", "privacy.differential_privacy.target_detla"),
    ("output:", "  ", "runs_rot", "runs_root", "output.runs_rot"),
    ("task: classification", "", "nmae", "name", "nmae"),
]

MODELS = [
    ("linear", "bais: false", "bias"),
    ("mlp", "hiden: [4]", "hidden"),
    ("cnn", "chanels: [4]", "channels"),
    ("transformer", "poling: mean", "pooling"),
]


def _insert_after(text: str, anchor: str, new_line: str) -> tuple[str, int]:
    lines = text.splitlines()
    at = lines.index(anchor) + 1
    return "\n".join([*lines[:at], new_line, *lines[at:]]) + "\n", at + 1


def _validate(tmp_path: Path, text: str) -> tuple[int, str, Path]:
    cfg = tmp_path / "job.yaml"
    cfg.write_text(text)
    # validate also reads a sample of the data (the target's class count): a small real file beside the job
    (tmp_path / "d.csv").write_text("x,sex,label\n" + "".join(f"{i},{'mf'[i % 2]},{i % 2}\n" for i in range(20)))
    result = runner.invoke(app, ["validate", str(cfg)])
    return result.exit_code, result.output, cfg


def test_the_full_job_is_valid(tmp_path: Path) -> None:
    code, out, _ = _validate(tmp_path, FULL_JOB)
    assert code == 0, out
    job = load_job(tmp_path / "job.yaml")
    # the sections that used to be plain dicts are typed models now
    assert job.data.pii is not None and job.data.pii.action == "redact"
    assert job.privacy is not None and job.privacy.differential_privacy is not None
    assert job.privacy.differential_privacy.target_epsilon == 8
    assert job.optimize is not None and job.optimize.methods == ["onnx"]
    assert job.evaluation.fairness_thresholds is not None and job.evaluation.fairness_thresholds.accuracy_gap == 0.05
    assert job.model.type == "mlp" and job.model.hidden == [4] and job.model.params() == {"hidden": [4]}


@pytest.mark.parametrize(("anchor", "indent", "bad", "good", "path"), SECTIONS, ids=[s[4] for s in SECTIONS])
def test_a_misspelt_key_in_every_section_is_caught_with_its_line(
    tmp_path: Path, anchor: str, indent: str, bad: str, good: str, path: str
) -> None:
    text, line = _insert_after(FULL_JOB, anchor, f"{indent}{bad}: 1")
    code, out, cfg = _validate(tmp_path, text)
    assert code == 2, out
    assert f"{cfg}:{line} {path}: unknown key `{bad}`; did you mean `{good}`?" in out
    assert "1 problem(s)" in out


@pytest.mark.parametrize(("family", "bad_line", "good"), MODELS, ids=[m[0] for m in MODELS])
def test_a_misspelt_model_parameter_is_caught_for_every_family(
    tmp_path: Path, family: str, bad_line: str, good: str
) -> None:
    text = FULL_JOB.replace("  type: mlp\n  hidden: [4]\n", f"  type: {family}\n  {bad_line}\n")
    code, out, cfg = _validate(tmp_path, text)
    bad = bad_line.split(":")[0]
    line = text.splitlines().index(f"  {bad_line}") + 1
    assert code == 2, out
    assert f"{cfg}:{line} model.{bad}: unknown key `{bad}`; did you mean `{good}`?" in out


def test_a_bad_value_in_a_typed_section_names_its_line(tmp_path: Path) -> None:
    text = FULL_JOB.replace("    target_epsilon: 8", "    target_epsilon: -1").replace(
        "action: redact", "action: delete"
    )
    code, out, cfg = _validate(tmp_path, text)
    assert code == 2, out
    lines = text.splitlines()
    assert f"{cfg}:{lines.index('    target_epsilon: -1') + 1} privacy.differential_privacy.target_epsilon" in out
    assert f"{cfg}:{lines.index('    action: delete') + 1} data.pii.action" in out


def test_an_unknown_model_type_lists_or_suggests_the_known_types(tmp_path: Path) -> None:
    code, out, cfg = _validate(tmp_path, FULL_JOB.replace("type: mlp", "type: mlpp"))
    assert code == 2 and f"{cfg}:18 model.type: unknown type `mlpp`; did you mean `mlp`?" in out
    code, out, _ = _validate(tmp_path, FULL_JOB.replace("type: mlp", "type: forest"))
    assert code == 2 and "known types: linear, mlp, cnn, transformer" in out


def test_a_misspelt_choice_suggests_the_nearest_value(tmp_path: Path) -> None:
    code, out, cfg = _validate(tmp_path, FULL_JOB.replace("methods: [onnx]", "methods: [onxx]"))
    assert code == 2 and f"{cfg}:33 optimize.methods.0:" in out and "did you mean `onnx`?" in out


def test_every_section_parser_raises_the_same_config_error() -> None:
    from shipyard.data.pii import PIIConfig
    from shipyard.evaluation.fairness import parse_thresholds
    from shipyard.models.registry import validate_params
    from shipyard.optimize import parse_config
    from shipyard.training.privacy import parse_privacy

    cases = [
        (lambda: parse_privacy({"differential_privacy": {"target_epsilon": 1, "target_detla": 1}}), "privacy."),
        (lambda: PIIConfig.from_mapping({"acton": "redact"}), "data.pii.acton"),
        (lambda: parse_config({"sparsty": 0.5}), "optimize.sparsty"),
        (lambda: parse_thresholds({"accuracy_gapp": 0.1}), "evaluation.fairness_thresholds.accuracy_gapp"),
        (lambda: validate_params("mlp", {"hiden": [4]}), "model.hiden"),
    ]
    for call, path in cases:
        with pytest.raises(ConfigError) as err:
            call()
        problem = err.value.problems[0]
        assert problem.path.startswith(path) and "unknown key" in problem.message and "did you mean" in problem.message


def test_learning_rate_rewrites_are_validated() -> None:
    from shipyard.config.errors import ConfigError as Err
    from shipyard.optimize.context import make_engine

    cfg = TrainingConfig()
    assert cfg.with_changes("training", learning_rate=0.5).learning_rate == 0.5
    with pytest.raises(Err, match=r"training\.learning_rate"):
        cfg.with_changes("training", learning_rate=-1.0)
    job = Job(task="classification", data={"source": {"format": "sklearn_digits"}}, model={"type": "mlp"})
    with pytest.raises(Err, match=r"training\.learning_rate"):  # a fine-tune at a negative rate is refused
        make_engine(SimpleNamespace(job=job), epochs=1, lr_scale=-1.0)


def test_soup_ingredients_are_validated_configs() -> None:
    from shipyard.training.soup import ingredient_configs

    cfg = TrainingConfig(learning_rate=0.01, soup={"ingredients": 3, "learning_rates": [0.1, 0.2]})
    rates = [c.learning_rate for c in ingredient_configs(cfg)]
    assert rates == [0.1, 0.2, 0.1] and all(c.soup is None for c in ingredient_configs(cfg))
    object.__setattr__(cfg.soup, "learning_rates", [-0.1])  # bypasses the soup's own check
    with pytest.raises(ConfigError, match=r"training\.learning_rate"):
        ingredient_configs(cfg)


def test_job_is_data_and_config_imports_no_later_layer() -> None:
    assert not hasattr(Job, "run")
    code = (
        "import sys, shipyard.config, shipyard.config.serve\n"
        "print(sorted(m for m in sys.modules if m.startswith('shipyard')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    loaded = eval(out)  # a printed list of module names
    allowed = ("shipyard.config", "shipyard.errors", "shipyard.io", "shipyard.settings")
    assert loaded and all(m == "shipyard" or m.startswith(allowed) for m in loaded), loaded
