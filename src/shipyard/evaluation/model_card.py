"""The model card: ``run_dir/model_card.md``, a short Markdown account of what a model is for and how far to trust it.

It follows the usual model-card headings (intended use, data, metrics, privacy, personal data, fairness,
limitations, training) and is written for a reader who never saw the run: every claim comes from the config, the
data summary, the metrics or what later layers pass in ``extra``. Where nothing was measured the card says so
instead of staying silent, because "not assessed" is itself important to a reader.

User strings are HTML-escaped and table cells have ``|`` escaped, since Markdown renderers pass raw HTML through.
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
import platform
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from shipyard.evaluation._common import format_value, is_number, plain
from shipyard.evaluation.splits import metric_names, metric_splits
from shipyard.io import atomic_write_text

log = logging.getLogger(__name__)

__all__ = ["config_hash", "library_versions", "write_model_card"]

# distribution names as pip knows them (scikit-learn, not sklearn)
_LIBRARIES = ("torch", "numpy", "scikit-learn", "transformers")
# beyond this depth a nested summary is shown as JSON: deeper bullet lists stop being readable
_MAX_DEPTH = 3
# ECE above this is worth a warning: a 5-point gap between confidence and accuracy matters for thresholding
_ECE_WARN = 0.05
_F1_WARN = 0.5
_SMALL_TEST = 1000


def config_hash(job_config: Mapping[str, Any]) -> str:
    """sha256 of the config's canonical JSON (sorted keys, no whitespace, UTF-8), so two runs with the same
    settings share a hash whatever the key order or YAML formatting was."""
    canonical = json.dumps(plain(job_config), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def library_versions() -> dict[str, str]:
    """Python and the main libraries' installed versions (read from package metadata, without importing them)."""
    versions = {"python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _md(text: Any) -> str:
    """Escape user text for Markdown prose: no raw HTML, one line."""
    return html.escape(" ".join(str(text).split()))


def _code(text: Any) -> str:
    """User text as an inline code span. CommonMark shows span content literally (no HTML), so only a backtick,
    which would close the span early, needs replacing."""
    return "`" + " ".join(str(text).split()).replace("`", "'") + "`"


def _cell(value: Any) -> str:
    text = format_value(value) if not isinstance(value, Mapping | list) else json.dumps(plain(value))
    return _md(text).replace("|", "\\|")


def _get(node: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    return node


def _bullets(value: Any, depth: int = 0) -> list[str]:
    """A nested dict/list as an indented bullet list; deep or long structures collapse to inline JSON."""
    value = plain(value)
    pad = "  " * depth
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item and depth < _MAX_DEPTH and not _is_flat_list(item):
                lines.append(f"{pad}- **{_md(key)}**:")
                lines.extend(_bullets(item, depth + 1))
            else:
                lines.append(f"{pad}- **{_md(key)}**: {_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list) and depth < _MAX_DEPTH:
                lines.append(f"{pad}-")
                lines.extend(_bullets(item, depth + 1))
            else:
                lines.append(f"{pad}- {_inline(item)}")
    else:
        lines.append(f"{pad}- {_inline(value)}")
    return lines


def _is_flat_list(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(v, dict | list) for v in value)


def _inline(value: Any) -> str:
    if isinstance(value, list) and _is_flat_list(value):
        shown = ", ".join(format_value(v) for v in value[:30])
        return _md(shown + (f" … (+{len(value) - 30} more)" if len(value) > 30 else "")) or "(none)"
    if isinstance(value, dict | list):
        # escaped prose, not a code span: a backtick in user data could otherwise break out of the span
        return _md(json.dumps(value, default=str, ensure_ascii=False)) if value else "(none)"
    return _md(format_value(value))


def _metrics_section(splits: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names = metric_names(splits)
    if not names:
        return ["No metrics were recorded."]
    cols = list(splits)
    lines = ["| metric | " + " | ".join(_md(c) for c in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for name in names:
        lines.append(f"| {_md(name)} | " + " | ".join(_cell(splits[c].get(name)) for c in cols) + " |")
    return lines


def _privacy_section(job_config: Mapping[str, Any], extra: Mapping[str, Any]) -> list[str]:
    privacy = extra.get("privacy") if isinstance(extra.get("privacy"), Mapping) else {}
    epsilon = privacy.get("epsilon", extra.get("epsilon"))
    delta = privacy.get("delta", extra.get("delta"))
    if epsilon is None:
        configured = " (differential privacy was configured but no ε was reported)" if job_config.get("privacy") else ""
        return [
            f"**Guarantee: none.**{configured} The model was trained without differential privacy, so it may "
            "memorise and reveal individual training records."
        ]
    lines = [
        f"**Differentially private training:** (ε = {_md(format_value(epsilon))}, "
        f"δ = {_md(format_value(delta))})."
        " The guarantee covers the training records only, at record level, under the accounting reported below."
    ]
    details = {k: v for k, v in privacy.items() if k not in ("epsilon", "delta")}
    if details:
        lines += ["", *_bullets(details)]
    return lines


def _personal_data_section(job_config: Mapping[str, Any], summary: Mapping[str, Any]) -> list[str]:
    info = next((summary[k] for k in ("pii", "personal_data") if summary.get(k)), None)
    if info:
        return ["Personal-data handling recorded by the data stage:", "", *_bullets(info)]
    if _get(job_config, "data", "pii"):
        return ["A personal-data policy was configured (`data.pii`):", "", *_bullets(_get(job_config, "data", "pii"))]
    return [
        "No personal-data scan or handling was recorded for this run. Check the source data before sharing the "
        "model or its outputs."
    ]


def _fairness_section(job_config: Mapping[str, Any], extra: Mapping[str, Any]) -> list[str]:
    fairness = extra.get("fairness")
    if fairness:
        return _bullets(fairness)
    sensitive = _get(job_config, "evaluation", "sensitive_features")
    if sensitive:
        return [f"Sensitive features were named ({_inline(list(sensitive))}) but no fairness results were recorded."]
    return ["Not assessed: no sensitive features were configured, so group-level performance is unknown."]


def _limitations(
    job_config: Mapping[str, Any], splits: Mapping[str, Mapping[str, Any]], extra: Mapping[str, Any]
) -> list[str]:
    notes = [
        "Measured only on held-out data from the same source as the training data; performance on data from "
        "another population, time period or collection process is unknown."
    ]
    test = splits.get("test") or {}
    n = test.get("n")
    if is_number(n) and n < _SMALL_TEST:
        notes.append(f"The test split has only {int(n)} rows, so the metrics above carry wide uncertainty.")
    task = str(job_config.get("task") or "").lower()
    if task == "classification":
        ece = test.get("ece")
        if is_number(ece) and ece > _ECE_WARN:
            notes.append(
                f"Probabilities are not well calibrated (ECE {format_value(ece)}); do not read them as exact "
                "likelihoods without recalibration."
            )
        per_class = test.get("per_class")
        if isinstance(per_class, Mapping):
            weak = [
                name
                for name, v in per_class.items()
                if isinstance(v, Mapping) and v.get("support") and is_number(v.get("f1")) and v["f1"] < _F1_WARN
            ]
            absent = [name for name, v in per_class.items() if isinstance(v, Mapping) and not v.get("support")]
            # notes are escaped once, below, so class names are joined raw here
            if weak:
                notes.append(f"Weak classes (test F1 below {_F1_WARN}): {', '.join(map(str, weak))}.")
            if absent:
                notes.append(f"Classes absent from the test split, so unmeasured: {', '.join(map(str, absent))}.")
    elif task == "regression":
        r2 = test.get("r2")
        if is_number(r2) and r2 < 0.5:
            notes.append(f"The model explains little of the target's variance (test R² {format_value(r2)}).")
    if not extra.get("fairness"):
        notes.append("No fairness assessment across groups was made.")
    for item in extra.get("limitations") or []:
        notes.append(str(item))
    return [f"- {_md(note)}" for note in notes]


def write_model_card(  # long: the card's sections in the order a reader meets them
    run_dir: Path,
    *,
    job_config: Mapping[str, Any],
    metrics: Mapping[str, Any],
    summary: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``run_dir/model_card.md`` atomically and return its path.

    ``extra`` carries what later layers measured: ``privacy`` ({epsilon, delta, ...}) or top-level ``epsilon`` /
    ``delta``, ``fairness`` (any nested dict), ``limitations`` (list of strings) and ``intended_use`` (text).
    """
    run_dir = Path(run_dir)
    extra = dict(extra or {})
    summary = summary or {}
    task = str(job_config.get("task") or "unknown").lower()
    name = str(job_config.get("name") or _get(job_config, "output", "name") or run_dir.name)
    model_type = str(_get(job_config, "model", "type") or "unknown")
    target = _get(job_config, "data", "target") or summary.get("target") or "unspecified"
    splits = metric_splits(metrics)

    source = _get(job_config, "data", "source") or {}
    source_desc = source.get("path") or source.get("images") or source.get("format") or "unspecified"

    intended = extra.get("intended_use") or (
        f"A {task} model ({_code(model_type)}) that predicts {_code(target)}, trained for the job "
        f"“{_md(name)}”. "
        "It is meant for the population and use the training data represent; validate it on your own data "
        "before any decision that affects people."
    )

    model_params = {k: v for k, v in (job_config.get("model") or {}).items() if k != "type"}
    training = job_config.get("training") or {}
    versions = library_versions()

    lines: list[str] = [
        f"# Model card: {_md(name)}",
        "",
        "## Intended use",
        "",
        _md(intended) if extra.get("intended_use") else intended,
        "",
        "## Data",
        "",
        f"- **Source**: {_code(source_desc)}",
        f"- **Target**: {_code(target)}",
        f"- **Task**: {_md(task)}",
    ]
    for key in ("validation_source", "test_source"):
        other = _get(job_config, "data", key)
        if isinstance(other, Mapping):
            where = other.get("path") or other.get("format")
            lines.append(f"- **{key.replace('_', ' ').capitalize()}**: {_code(where)}")
    if summary:
        lines += [
            "",
            "### Data summary",
            "",
            *_bullets({k: v for k, v in summary.items() if k not in ("pii", "personal_data")}),
        ]
    lines += ["", "## Metrics", "", *_metrics_section(splits)]
    lines += ["", "## Privacy", "", *_privacy_section(job_config, extra)]
    lines += ["", "## Personal data", "", *_personal_data_section(job_config, summary)]
    lines += ["", "## Fairness", "", *_fairness_section(job_config, extra)]
    lines += ["", "## Known limitations", "", *_limitations(job_config, splits, extra)]
    lines += [
        "",
        "## How it was trained",
        "",
        f"- **Config hash** (sha256 of canonical JSON): `{config_hash(job_config)}`",
        f"- **Seed**: {_inline(training.get('seed'))}",
        f"- **Model**: {_code(model_type)}" + (f" with {_inline(model_params)}" if model_params else ""),
    ]
    for key in ("optimizer", "learning_rate", "batch_size", "epochs", "precision"):
        if key in training:
            lines.append(f"- **{key.replace('_', ' ').capitalize()}**: {_inline(training[key])}")
    lines.append("- **Library versions**: " + ", ".join(f"{k} {_md(v)}" for k, v in versions.items()))
    text = "\n".join(lines).rstrip() + "\n"
    path = atomic_write_text(run_dir / "model_card.md", text)
    log.info("wrote model card %s", path)
    return path
