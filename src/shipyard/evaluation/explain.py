"""Explanations for a trained model: feature attributions, permutation importance, saliency, token attributions.

- Tabular: Captum ``IntegratedGradients`` on the encoded inputs toward the predicted class (baseline: all zeros,
  i.e. every standardised numeric at its training mean and every one-hot group "unknown"), summed back to the
  original columns (a one-hot group is one column). Permutation importance over the test split: each original
  column's encoded block is shuffled across rows (seeded) and the drop in accuracy (classification) or R²
  (regression) is averaged over repeats.
- Images: ``Saliency`` (|d logit / d pixel|, max over channels) shown as heat maps.
- Text (the ``transformer`` family, explain_text.py): ``LayerIntegratedGradients`` on the encoder's input embeddings
  toward the predicted class, baseline = pad tokens with the special tokens kept, shown as highlighted text.

:func:`explain_run` is ``shipyard explain RUN --input FILE --n 10``; :func:`report_sections` adds a report section
for every run (sampled explanations; it never fails a run: an error becomes a note). :func:`faithfulness` is the
deletion check: setting the top-k attributed columns to the baseline should lower the predicted class's
probability more than setting k random columns; :func:`token_faithfulness` is the same check for text (the top-k
tokens masked to the baseline pad token, or removed, against k random tokens).
"""

from __future__ import annotations

import html
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from shipyard.artifact import Artifact
from shipyard.data.rows import read_rows
from shipyard.errors import ShipyardError
from shipyard.evaluation.explain_text import highlight_html, token_attributions, token_faithfulness
from shipyard.evaluation.report import ReportSection, figure_to_img_tag, new_figure, table_html
from shipyard.evaluation.tree_report import tree_attributions

log = logging.getLogger(__name__)

__all__ = [
    "column_groups",
    "explain_run",
    "faithfulness",
    "permutation_importance",
    "report_sections",
    "tabular_attributions",
    "token_attributions",
    "token_faithfulness",
]

IG_STEPS = 32
MAX_PERMUTATION_ROWS = 3000


# ------------------------------------------------------------------------------------------------ tabular


def column_groups(pre: Any) -> list[tuple[str, list[int]]]:
    """(original column, indices into the encoded vector) in encoding order: one-hot levels form one group."""
    groups: list[tuple[str, list[int]]] = []
    pos = 0
    for name in pre.features:
        if pre.column_types[name] == "numeric" or pre.cleaning.categorical_encoding == "ordinal":
            width = 1
        else:
            width = len(pre.categories[name]["levels"])
        groups.append((name, list(range(pos, pos + width))))
        pos += width
    return groups


def _forward(model: nn.Module) -> Any:
    def fn(x: torch.Tensor) -> torch.Tensor:
        out = model(x=x)
        return out if out.dim() == 2 else out.reshape(len(out), -1)

    return fn


def _predicted(model: nn.Module, x: torch.Tensor, task: str) -> torch.Tensor:
    with torch.no_grad():
        out = _forward(model)(x)
    return out.argmax(dim=1) if task == "classification" and out.shape[1] > 1 else torch.zeros(len(x), dtype=torch.long)


def tabular_attributions(
    model: nn.Module, x: np.ndarray, groups: list[tuple[str, list[int]]], task: str = "classification"
) -> tuple[np.ndarray, np.ndarray]:
    """Integrated-gradients attributions summed per column: (N, n_columns), and the explained class per row.
    A tree model (no gradients) gives its exact TreeSHAP values instead."""
    from captum.attr import IntegratedGradients  # heavy: Captum, only when explaining

    model.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    target = _predicted(model, xt, task)
    if hasattr(model, "contributions"):  # a tree model: LightGBM's own TreeSHAP (evaluation/tree_report.py)
        return tree_attributions(model, x, groups, target.numpy()), target.numpy()
    ig = IntegratedGradients(_forward(model))
    attr = ig.attribute(xt, baselines=torch.zeros_like(xt), target=target, n_steps=IG_STEPS).detach().numpy()
    cols = np.stack([attr[:, idx].sum(axis=1) for _, idx in groups], axis=1)
    return cols, target.numpy()


def _probabilities(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = _forward(model)(torch.as_tensor(np.asarray(x, dtype=np.float32)))
    return torch.softmax(out.float(), dim=1).numpy()


def faithfulness(
    model: nn.Module, x: np.ndarray, groups: list[tuple[str, list[int]]], k: int = 3, seed: int = 0
) -> dict[str, float]:
    """Deletion check on a classification sample: mean drop in the predicted class's probability when the top-k
    attributed columns are set to the baseline (0) versus k random columns."""
    attr, target = tabular_attributions(model, x, groups)
    base_p = _probabilities(model, x)[np.arange(len(x)), target]
    rng = np.random.default_rng(seed)
    top_x, rnd_x = np.array(x, dtype=np.float32), np.array(x, dtype=np.float32)
    k = min(k, len(groups))
    for i in range(len(x)):
        for j in np.argsort(-attr[i])[:k]:
            top_x[i, groups[j][1]] = 0.0
        for j in rng.choice(len(groups), size=k, replace=False):
            rnd_x[i, groups[j][1]] = 0.0
    top_p = _probabilities(model, top_x)[np.arange(len(x)), target]
    rnd_p = _probabilities(model, rnd_x)[np.arange(len(x)), target]
    return {"k": k, "top_k_drop": float((base_p - top_p).mean()), "random_drop": float((base_p - rnd_p).mean())}


def permutation_importance(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    groups: list[tuple[str, list[int]]],
    task: str,
    *,
    repeats: int = 3,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Score drop per original column when its encoded block is shuffled across rows (sorted, largest first)."""
    from sklearn.metrics import accuracy_score, r2_score  # scikit-learn's metrics: only here

    rng = np.random.default_rng(seed)
    if len(x) > MAX_PERMUTATION_ROWS:
        keep = rng.choice(len(x), MAX_PERMUTATION_ROWS, replace=False)
        x, y = x[keep], y[keep]
    x = np.asarray(x, dtype=np.float32)

    def score(data: np.ndarray) -> float:
        with torch.no_grad():
            out = _forward(model)(torch.as_tensor(data)).numpy()
        if task == "classification":
            return float(accuracy_score(y, out.argmax(axis=1)))
        return float(r2_score(y, out.reshape(len(out), -1)[:, 0]))

    base = score(x)
    rows = []
    for name, idx in groups:
        drops = []
        for _ in range(repeats):
            shuffled = x.copy()
            shuffled[:, idx] = x[rng.permutation(len(x))][:, idx]
            drops.append(base - score(shuffled))
        rows.append({"column": name, "importance": float(np.mean(drops)), "std": float(np.std(drops))})
    return sorted(rows, key=lambda r: -r["importance"])


# ------------------------------------------------------------------------------------------------ images


def image_saliency(model: nn.Module, x: np.ndarray, task: str = "classification") -> tuple[np.ndarray, np.ndarray]:
    """|gradient| of the predicted class's logit per pixel (max over channels): (N, H, W), and the classes."""
    from captum.attr import Saliency  # heavy: Captum, only when explaining

    model.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    target = _predicted(model, xt, task)
    xt.requires_grad_(True)  # what Saliency differentiates against (it would set this itself, with a warning)
    sal = Saliency(_forward(model)).attribute(xt, target=target, abs=True).detach().numpy()
    return sal.max(axis=1), target.numpy()


# ------------------------------------------------------------------------------------------------ runs


def _tokenizer(pre: Any) -> Any:
    enc = getattr(pre, "text_encoder", None)
    return getattr(enc, "tokenizer", enc)


def _explain_inputs(art: Any, inputs: dict[str, np.ndarray], n: int) -> list[dict[str, Any]]:
    pre, model, task = art.preprocessor, art.model, art.task
    labels = art.labels or []
    kind = pre.kind
    values = None  # regression: the predicted value is what the attributions explain, so it is shown with them
    if task == "regression":
        values = art.outputs_to_predictions(art.raw_outputs({k: v[:n] for k, v in inputs.items()}))["value"]

    def predicted(i: int, cls: int) -> Any:
        if values is not None:
            return round(float(values[i]), 6)
        return labels[cls] if labels else None

    if kind == "tabular":
        groups = column_groups(pre)
        attr, target = tabular_attributions(model, inputs["x"][:n], groups, task)
        proba = _probabilities(model, inputs["x"][:n]) if task == "classification" else None
        rows = []
        for i in range(len(attr)):
            order = np.argsort(-np.abs(attr[i]))
            rows.append(
                {
                    "row": i,
                    "prediction": predicted(i, int(target[i])),
                    "probability": float(proba[i, target[i]]) if proba is not None else None,
                    "attributions": {groups[j][0]: round(float(attr[i, j]), 6) for j in order},
                }
            )
        return rows
    if kind == "image":
        sal, target = image_saliency(model, inputs["x"][:n], task)
        return [
            {
                "row": i,
                "prediction": predicted(i, int(target[i])),
                "saliency": np.round(sal[i] / (sal[i].max() or 1.0), 4).tolist(),
            }
            for i in range(len(sal))
        ]
    if kind == "text":
        part = {k: v[:n] for k, v in inputs.items()}
        res = token_attributions(model, part, _tokenizer(pre))
        return [
            {
                "row": i,
                "prediction": predicted(i, int(r["class"])),
                "probability": r["probability"],
                "tokens": r["tokens"],
            }
            for i, r in enumerate(res)
        ]
    raise ShipyardError(f"no explanation method for {kind} inputs", where="model")


def explain_run(run_dir: str | Path, input_file: str | Path, n: int = 10) -> list[dict[str, Any]]:
    """Explain the first ``n`` rows of ``input_file`` (CSV / JSONL / Parquet) with the run's model."""
    if n < 1:
        raise ShipyardError("--n must be at least 1", where="--n")
    run_dir = Path(run_dir)
    art = Artifact.load(run_dir)
    if art.model is None:
        raise ShipyardError("explanations need the torch model (this folder holds only ONNX)", where=str(run_dir))
    frame = read_rows(Path(input_file), art.read_options, art.text_features).head(n)
    if len(frame) == 0:
        raise ShipyardError("no rows to explain", where=str(input_file))
    return _explain_inputs(art, art.preprocessor.transform(frame), n)


def report_sections(*, job: Any, run_dir: Any, metrics: dict[str, Any], prepared: Any, predictions: Any) -> list[Any]:
    """The report's "Explanations" section: sampled explanations of test rows (+ permutation importance)."""
    try:
        body = _report_body(job, Path(run_dir), prepared)
    except Exception as exc:  # an explanation must never cost a run its report
        log.warning("explanations skipped: %s: %s", type(exc).__name__, exc)
        body = f"<p>Explanations unavailable: {html.escape(type(exc).__name__)}: {html.escape(str(exc)[:300])}</p>"
    return [ReportSection("Explanations", body)] if body else []


def _report_body(job: Any, run_dir: Path, prepared: Any) -> str:
    split = prepared.splits["test"] if len(prepared.splits["test"]) else prepared.splits["validation"]
    if len(split) == 0 or not (run_dir / "model").is_dir():
        return ""
    art = Artifact.load(run_dir / "model", allow_incomplete=True)  # the report is written before the run is complete
    if art.model is None:
        return ""
    kind = art.preprocessor.kind
    rng = np.random.default_rng(int(job.training.seed))
    sample = np.sort(rng.choice(len(split), size=min(5 if kind != "text" else 3, len(split)), replace=False))
    inputs = {k: v[sample] for k, v in split.inputs.items()}
    parts: list[str] = []
    if kind == "tabular":
        groups = column_groups(art.preprocessor)
        imp = permutation_importance(
            art.model, split.inputs["x"], split.target, groups, art.task, seed=int(job.training.seed)
        )
        fig = new_figure(6.4, max(2.5, 0.28 * len(imp) + 1))
        ax = fig.add_subplot(1, 1, 1)
        ax.barh(
            [r["column"].replace("$", r"\$")[:24] for r in imp][::-1],
            [r["importance"] for r in imp][::-1],
            xerr=[r["std"] for r in imp][::-1],
        )
        ax.set_xlabel("score drop when shuffled (" + ("accuracy" if art.task == "classification" else "R²") + ")")
        parts.append(
            "<h3>Permutation importance (test split)</h3>" + figure_to_img_tag(fig, alt="permutation importance")
        )
        rows = _explain_inputs(art, inputs, len(sample))
        table = []
        for r, i in zip(rows, sample, strict=False):
            top = list(r["attributions"].items())[:5]
            table.append(
                {
                    "test row": int(i),
                    "prediction": r["prediction"],
                    "probability": r["probability"],
                    "top attributions": ", ".join(f"{c}: {v:+.3f}" for c, v in top),
                }
            )
        method = "TreeSHAP" if hasattr(art.model, "contributions") else "integrated gradients"
        parts.append(f"<h3>Sampled explanations ({method}, per original column)</h3>" + table_html(table))
    elif kind == "image":
        rows = _explain_inputs(art, inputs, len(sample))
        fig = new_figure(2.2 * len(rows), 4.4)
        for j, r in enumerate(rows):
            img = inputs["x"][j]
            ax = fig.add_subplot(2, len(rows), j + 1)
            ax.imshow(img.transpose(1, 2, 0).squeeze(), cmap="gray")
            ax.set_title(f"pred {r['prediction']}".replace("$", r"\$")[:20], fontsize=8)
            ax.axis("off")
            ax = fig.add_subplot(2, len(rows), len(rows) + j + 1)
            ax.imshow(np.asarray(r["saliency"]), cmap="hot")
            ax.axis("off")
        parts.append("<h3>Saliency maps (|∂ logit / ∂ pixel|)</h3>" + figure_to_img_tag(fig, alt="saliency maps"))
    elif kind == "text":
        rows = _explain_inputs(art, inputs, len(sample))
        parts.append("<h3>Token attributions (layer integrated gradients on the embeddings)</h3>")
        parts.append("<p>Green tokens push toward the predicted class, red ones away from it.</p>")
        for r, i in zip(rows, sample, strict=False):
            parts.append(f"<p><b>test row {int(i)}</b>, predicted {html.escape(str(r['prediction']))}:</p>")
            parts.append(highlight_html(r["tokens"]))
    return "".join(parts)
