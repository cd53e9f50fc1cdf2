"""Explanations for a trained model: feature attributions, permutation importance, saliency, token attributions.

- Tabular: Captum ``IntegratedGradients`` on the encoded inputs toward the predicted class (baseline: all zeros,
  i.e. every standardised numeric at its training mean and every one-hot group "unknown"), summed back to the
  original columns (a one-hot group is one column). Permutation importance over the test split: each original
  column's encoded block is shuffled across rows (seeded) and the drop in accuracy (classification) or R²
  (regression) is averaged over repeats.
- Images: ``Saliency`` (|d logit / d pixel|, max over channels) shown as heat maps.
- Text (the ``transformer`` family): ``LayerIntegratedGradients`` on the encoder's input embeddings toward the
  predicted class, baseline = pad tokens with the special tokens kept, shown as highlighted text.

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

from shipyard.data.rows import read_rows
from shipyard.errors import ShipyardError

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
TEXT_IG_STEPS = 16
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
    """Integrated-gradients attributions summed per column: (N, n_columns), and the explained class per row."""
    from captum.attr import IntegratedGradients

    model.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    target = _predicted(model, xt, task)
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
    from sklearn.metrics import accuracy_score, r2_score

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
    from captum.attr import Saliency

    model.eval()
    xt = torch.as_tensor(np.asarray(x, dtype=np.float32))
    target = _predicted(model, xt, task)
    xt.requires_grad_(True)  # what Saliency differentiates against (it would set this itself, with a warning)
    sal = Saliency(_forward(model)).attribute(xt, target=target, abs=True).detach().numpy()
    return sal.max(axis=1), target.numpy()


# ------------------------------------------------------------------------------------------------ text


def _token_tensors(inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """``input_ids`` / ``attention_mask`` as tensors, trimmed to the longest row (fewer positions to integrate)."""
    ids = torch.as_tensor(np.asarray(inputs["input_ids"]), dtype=torch.long)
    mask = torch.as_tensor(np.asarray(inputs["attention_mask"]), dtype=torch.long)
    width = max(1, int(mask.sum(dim=1).max())) if len(mask) else ids.shape[1]
    return ids[:, :width], mask[:, :width]


def _text_forward(model: nn.Module) -> Any:
    def fwd(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return model(input_ids=input_ids, attention_mask=attention_mask)

    return fwd


def _special_positions(ids: torch.Tensor, mask: torch.Tensor, tokenizer: Any) -> torch.Tensor:
    """True where a position is padding or a special token ([CLS], [SEP]): never attributed, masked or removed."""
    special = torch.zeros_like(ids, dtype=torch.bool)
    # [UNK] stands for a real (out-of-vocabulary) word, so it is attributed like any other
    fixed = set(getattr(tokenizer, "all_special_ids", []) or []) - {getattr(tokenizer, "unk_token_id", None)}
    for sid in fixed:
        special |= ids == int(sid)
    return special | (mask == 0)


def _pad_id(tokenizer: Any) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    return int(pad) if pad is not None else 0


def _token_scores(
    model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, tokenizer: Any
) -> tuple[np.ndarray, torch.Tensor]:
    """LayerIntegratedGradients on the input embeddings toward the predicted class: (N, L) scores, classes."""
    from captum.attr import LayerIntegratedGradients

    model.eval()
    encoder = getattr(model, "encoder", None)
    if encoder is None or not hasattr(encoder, "get_input_embeddings"):
        raise ShipyardError("token attributions need a transformer with input embeddings", where="model")
    fwd = _text_forward(model)
    with torch.no_grad():
        target = fwd(ids, mask).argmax(dim=1)
    # the baseline keeps [CLS] / [SEP] and the attention mask: only the words themselves are "absent"
    baseline = torch.where(_special_positions(ids, mask, tokenizer), ids, torch.full_like(ids, _pad_id(tokenizer)))
    lig = LayerIntegratedGradients(fwd, encoder.get_input_embeddings())
    # Captum's internal batch counts (row, step) pairs and must hold every row: 4 of the 16 steps per pass
    attr = lig.attribute(
        ids,
        baselines=baseline,
        additional_forward_args=(mask,),
        target=target,
        n_steps=TEXT_IG_STEPS,
        internal_batch_size=max(1, len(ids)) * 4,
    )
    return attr.sum(dim=-1).detach().float().numpy(), target


def token_attributions(model: nn.Module, inputs: dict[str, np.ndarray], tokenizer: Any) -> list[dict[str, Any]]:
    """LayerIntegratedGradients on the encoder's input embeddings: per row the explained class, its probability
    and one (token, attribution) pair per real token (positive: toward that class)."""
    ids, mask = _token_tensors(inputs)
    scores, target = _token_scores(model, ids, mask, tokenizer)
    with torch.no_grad():
        proba = torch.softmax(_text_forward(model)(ids, mask).float(), dim=1)
    out = []
    for i in range(ids.shape[0]):
        keep = mask[i].bool()
        toks = tokenizer.convert_ids_to_tokens(ids[i][keep].tolist())
        out.append(
            {
                "class": int(target[i]),
                "probability": float(proba[i, target[i]]),
                "tokens": [(t, float(s)) for t, s in zip(toks, scores[i][keep.numpy()], strict=True)],
            }
        )
    return out


def _delete_tokens(
    ids: torch.Tensor, mask: torch.Tensor, drop: list[list[int]], how: str, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copies of the rows with the positions in ``drop`` masked (set to the pad id, the attribution baseline) or
    removed (the sequence closes up, so the model sees a shorter sentence)."""
    if how == "mask":
        new_ids = ids.clone()
        for i, positions in enumerate(drop):
            new_ids[i, positions] = pad
        return new_ids, mask.clone()
    new_ids = torch.full_like(ids, pad)
    new_mask = torch.zeros_like(mask)
    for i, positions in enumerate(drop):
        keep = [j for j in range(ids.shape[1]) if mask[i, j] and j not in set(positions)]
        new_ids[i, : len(keep)] = ids[i, keep]
        new_mask[i, : len(keep)] = 1
    return new_ids, new_mask


def token_faithfulness(
    model: nn.Module,
    inputs: dict[str, np.ndarray],
    tokenizer: Any,
    k: int = 2,
    *,
    how: str = "mask",
    repeats: int = 5,
    seed: int = 0,
) -> dict[str, Any]:
    """Deletion check for token attributions: mean drop in the predicted class's probability when the k tokens
    attributed most toward it are masked / removed, versus k random (non-special) tokens (``repeats`` draws).

    Rows with fewer than k + 1 real tokens are skipped: deleting all of them says nothing about the ranking."""
    if how not in ("mask", "remove"):
        raise ShipyardError(f"unknown deletion {how!r}: use mask or remove", where="how")
    ids, mask = _token_tensors(inputs)
    scores, target = _token_scores(model, ids, mask, tokenizer)
    special = _special_positions(ids, mask, tokenizer).numpy()
    rows = [i for i in range(len(ids)) if int((~special[i]).sum()) > k]
    if not rows:
        raise ShipyardError(f"no row has more than k={k} real tokens", where="inputs")
    ids, mask, scores, special, target = ids[rows], mask[rows], scores[rows], special[rows], target[rows]
    fwd, pad = _text_forward(model), _pad_id(tokenizer)
    picked = torch.arange(len(rows))

    def prob(i: torch.Tensor, m: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return torch.softmax(fwd(i, m).float(), dim=1)[picked, target].numpy()

    base = prob(ids, mask)
    top = [[int(j) for j in np.argsort(-np.where(special[r], -np.inf, scores[r]))[:k]] for r in range(len(rows))]
    top_p = prob(*_delete_tokens(ids, mask, top, how, pad))
    rng = np.random.default_rng(seed)
    random_drops = []
    for _ in range(repeats):
        rnd = [
            [int(j) for j in rng.choice(np.flatnonzero(~special[r]), size=k, replace=False)] for r in range(len(rows))
        ]
        random_drops.append(float((base - prob(*_delete_tokens(ids, mask, rnd, how, pad))).mean()))
    return {
        "k": k,
        "how": how,
        "rows": len(rows),
        "top_k_drop": float((base - top_p).mean()),
        "random_drop": float(np.mean(random_drops)),
    }


def _highlight(tokens: list[tuple[str, float]]) -> str:
    peak = max((abs(s) for _, s in tokens), default=1.0) or 1.0
    spans = []
    for tok, s in tokens:
        alpha = min(1.0, abs(s) / peak)
        color = f"rgba(0,160,0,{alpha:.2f})" if s >= 0 else f"rgba(220,0,0,{alpha:.2f})"
        spans.append(
            f'<span class="token-attr" style="background:{color};padding:1px" title="{s:.4f}">{html.escape(tok)}</span>'
        )
    return "<p>" + " ".join(spans) + "</p>"


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
    from shipyard.artifact import Artifact

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
    from shipyard.evaluation.report import ReportSection

    try:
        body = _report_body(job, Path(run_dir), prepared)
    except Exception as exc:  # an explanation must never cost a run its report
        log.warning("explanations skipped: %s: %s", type(exc).__name__, exc)
        body = f"<p>Explanations unavailable: {html.escape(type(exc).__name__)}: {html.escape(str(exc)[:300])}</p>"
    return [ReportSection("Explanations", body)] if body else []


def _report_body(job: Any, run_dir: Path, prepared: Any) -> str:
    from shipyard.artifact import Artifact
    from shipyard.evaluation.report import figure_to_img_tag, new_figure, table_html

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
                    "top attributions (IG)": ", ".join(f"{c}: {v:+.3f}" for c, v in top),
                }
            )
        parts.append("<h3>Sampled explanations (integrated gradients, per original column)</h3>" + table_html(table))
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
            parts.append(_highlight(r["tokens"]))
    return "".join(parts)
