"""`task: retrieval`: pairs -> bi-encoder fine-tuned with the ranking loss through the shared Engine -> passage
index in the artefact -> held-out ranking metrics -> report and model card.

`pipeline.run_job` resolves the run folder (and checks a resume) as for every job, then hands over here; the
folder bookkeeping it shares (claiming the folder, the runs store) comes in as arguments, so this module does not
import the pipeline (no cycle).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.config.schema import Job
from shipyard.data.pairs import PairData, encode_texts, load_pairs, split_summary
from shipyard.data.rows import read_options
from shipyard.errors import ShipyardError
from shipyard.io import (
    INCOMPLETE,
    RUN_INFO,
    atomic_save_safetensors,
    atomic_write_json,
    atomic_write_parquet,
    atomic_write_text,
    storage_error,
)
from shipyard.models.biencoder import BiEncoder
from shipyard.models.search_index import PassageIndex
from shipyard.models.searcher import Searcher
from shipyard.pretrained import load_tokenizer, resolve_model_dir
from shipyard.run_folder import record_start
from shipyard.spec import InputSpec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
RANKINGS = ("dense", "bm25", "hybrid")


@dataclass
class _Arrays:
    inputs: dict[str, np.ndarray]
    target: np.ndarray


def _arrays(job: Job, tokenizer: Any, part: Any, groups: list[str], negatives: list[str] | None) -> _Arrays:
    params = job.model.params()
    qlen, plen = params.get("query_max_length", 32), params.get("passage_max_length", 128)
    inputs = encode_texts(tokenizer, part["query"].tolist(), qlen)
    inputs |= encode_texts(tokenizer, part["passage"].tolist(), plen, prefix="p_")
    if negatives is not None:
        inputs |= encode_texts(tokenizer, negatives, plen, prefix="n_")
    index = {g: i for i, g in enumerate(groups)}
    return _Arrays(inputs, np.array([index[g] for g in part["group"]], dtype=np.int64))


def mine_hard_negatives(data: PairData, train: Any) -> list[str]:
    """Per training query, the best BM25 passage of another group among the training passages (never a test
    passage); a query with none (tiny data) takes its own group's nothing-better fallback: a random other group's."""
    from shipyard.config.retrieval import IndexConfig

    pool = data.passages[data.passages["passage_id"].isin(train["passage_id"])]
    index = PassageIndex(dim=1, config=IndexConfig())
    index.passages = {int(r.passage_id): {"text": r.text, "group": r.group, "metadata": {}} for r in pool.itertuples()}
    found = index.bm25_search(train["query"].tolist(), 20)
    out = []
    rng = np.random.default_rng(0)
    for hits, group in zip(found, train["group"], strict=True):
        other = next((index.passages[pid]["text"] for pid, _ in hits if index.passages[pid]["group"] != group), None)
        if other is None:
            choices = pool[pool["group"] != group]["text"].tolist()
            other = choices[int(rng.integers(len(choices)))]
        out.append(other)
    return out


def evaluate_rankings(searcher: Searcher, part: Any, passages: Any, cutoffs: list[int]) -> dict[str, dict[str, float]]:
    """Each ranking's metrics for the held-out queries of ``part`` against the whole passage collection."""
    from shipyard.evaluation.retrieval import ranking_metrics

    if len(part) == 0:
        return {}
    counts = passages["group"].value_counts()
    n_relevant = part["group"].map(counts).fillna(0).to_numpy()
    depth = max(10, *cutoffs)
    out: dict[str, dict[str, float]] = {}
    queries = part["query"].tolist()
    for ranking in RANKINGS:
        found = searcher.search(queries, depth, ranking=ranking)
        hits = np.zeros((len(part), depth), dtype=bool)
        for qi, (row, group) in enumerate(zip(found, part["group"], strict=True)):
            for r, hit in enumerate(row):
                hits[qi, r] = hit["group"] == group
        out[ranking] = ranking_metrics(hits, n_relevant, cutoffs)
    return out


def _package(job: Job, run_dir: Path, model: BiEncoder, data: PairData, run_id: str) -> Searcher:
    """model/: weights, encoder config, tokenizer, the passage index and shipyard.json."""
    cfg = job.retrieval
    assert cfg is not None
    folder = run_dir / "model"
    folder.mkdir(parents=True, exist_ok=True)
    atomic_save_safetensors(folder / "model.safetensors", dict(model.state_dict()))
    model.save_extra(folder)
    meta = {
        "format_version": FORMAT_VERSION,
        "backend": "torch",
        "task": "retrieval",
        "model": {"type": "biencoder", "params": job.model.params()},
        "input": {"kind": "text", "n_features": 0, "image_shape": None, "n_outputs": 0},
        "features": [{"name": cfg.query_column, "type": "text"}],
        "target": cfg.group_column,
        "labels": data.groups,
        "retrieval": {"ranking": cfg.ranking, "rrf_k": cfg.rrf_k, "passage_column": cfg.passage_column},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "run_id": run_id,
        "read_options": read_options(job.data),
    }
    atomic_write_json(folder / "shipyard.json", meta)
    searcher = Searcher(folder, meta, model.eval(), PassageIndex(dim=model.dim, config=cfg.index))
    passages = data.passages
    log.info("indexing %d passages", len(passages))
    searcher.add([{"id": int(r.passage_id), "text": r.text, "group": r.group} for r in passages.itertuples()])
    searcher.save()
    return searcher


def run_retrieval_job(  # long: a retrieval run's steps in order (pairs, bi-encoder, index, report)
    job: Job,
    *,
    base_dir: Path,
    run_id: str,
    run_dir: Path,
    resume: bool,
    show_progress: bool,
    claim: Callable[[Path, bool], None],
    store: Callable[[Path], Any],
    config_text: str,
) -> tuple[dict[str, Any], Path, Any]:
    """Train, index, evaluate and package; returns (metrics, report path, fit result)."""
    from shipyard.models.registry import build_for_task
    from shipyard.training.contrastive import ranking_loss
    from shipyard.training.engine import Engine, read_log, seed_everything

    cfg = job.retrieval
    assert cfg is not None
    data = load_pairs(job, base_dir=base_dir)
    tokenizer = load_tokenizer(resolve_model_dir(job.model.params().get("pretrained", "minilm")))
    train, val, test = data.split("train"), data.split("validation"), data.split("test")
    if len(train) < 2:
        raise ShipyardError("fewer than two training pairs after the split", where="retrieval.split")
    negatives = mine_hard_negatives(data, train) if cfg.hard_negatives else None
    train_arrays = _arrays(job, tokenizer, train, data.groups, negatives)
    val_arrays = _arrays(job, tokenizer, val, data.groups, None)
    seed_everything(job.training.seed)
    model = build_for_task("biencoder", job.model.params(), InputSpec(kind="text", n_outputs=0, task="retrieval"))
    from shipyard.evaluation.retrieval import in_split_metrics, report_section

    engine = Engine(
        job.training,
        "retrieval",
        labels=data.groups,
        show_progress=show_progress,
        loss_fn=ranking_loss(model.dim, float(job.model.params().get("scale", 20.0))),
        metrics_fn=in_split_metrics,
    )
    summary = split_summary(data) | {"held_out": cfg.split.held_out, "hard_negatives": cfg.hard_negatives}
    claim(run_dir, resume)
    runs = store(run_dir)
    if not resume:
        atomic_write_text(run_dir / "config.yaml", config_text)
        atomic_write_json(run_dir / RUN_INFO, {"run_id": run_id, "base_dir": str(base_dir.resolve())})
        atomic_write_json(run_dir / "data_summary.json", summary)
        for name in ("train", "validation", "test"):  # raw queries and passages: 0600, reachable by erasure
            atomic_write_parquet(run_dir / "splits" / f"{name}.parquet", data.split(name), private=True)
    record_start(runs, job, run_id, run_dir, resume=resume)
    started = time.perf_counter()
    try:
        fit = engine.fit(model, train_arrays, val_arrays if len(val) else None, run_dir, resume=resume)
        searcher = _package(job, run_dir, model, data, run_id)
        rankings = {
            name: evaluate_rankings(searcher, part, data.passages, cfg.cutoffs)
            for name, part in (("validation", val), ("test", test))
        }
        metrics: dict[str, Any] = {
            name: {**values[cfg.ranking], "ranking": cfg.ranking} for name, values in rankings.items() if values
        }
        metrics["retrieval"] = rankings
        metrics["training"] = fit.summary()
        atomic_write_json(run_dir / "metrics.json", metrics)
        meta_path = run_dir / "model" / "shipyard.json"
        import json

        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        meta["metrics"] = {k: metrics[k] for k in ("validation", "test") if k in metrics}
        atomic_write_json(meta_path, meta)
        report = _report(job, run_dir, metrics, summary, read_log(run_dir / "train_log.jsonl"), report_section)
        (run_dir / INCOMPLETE).unlink()
        runs.finish_run(run_id, status="finished", metrics=metrics, duration_s=time.perf_counter() - started)
    except BaseException as exc:
        reported = storage_error(exc)
        try:
            runs.finish_run(
                run_id,
                status="killed" if isinstance(exc, KeyboardInterrupt) else "failed",
                metrics={},
                duration_s=time.perf_counter() - started,
                error=str(reported or exc)[:500],
            )
        except ShipyardError:
            log.warning("could not record the failed run in the store")
        if reported is not None:
            raise reported from exc
        raise
    return metrics, report, fit


def _report(
    job: Job,
    run_dir: Path,
    metrics: dict[str, Any],
    summary: dict[str, Any],
    train_log: list,
    section: Callable[..., Any],
) -> Path:
    from shipyard.evaluation.model_card import write_model_card
    from shipyard.evaluation.report import write_report

    config = job.model_dump(mode="json")
    flat = {k: v for k, v in metrics.items() if k != "retrieval"}
    path = write_report(
        run_dir,
        job_config=config,
        metrics=flat,
        summary=summary,
        train_log=train_log,
        test_predictions=None,
        extra_sections=[section(metrics["retrieval"], summary)],
    )
    write_model_card(run_dir, job_config=config, metrics=flat, summary=summary)
    return path
