"""``task: recommendation``: interactions -> split -> train through the engine -> ranking metrics -> model folder.

What a recommendation run leaves in its folder (beside the usual config.yaml, run.json, report.html):

- ``splits/{train,validation,test}.parquet``: the events of each split (user_id, item_id, rating, timestamp),
  0600, reached by `shipyard data forget`;
- ``train_log.jsonl`` and ``checkpoints/``: the engine's, so ``--resume`` continues a killed run exactly;
- ``metrics.json``: ``test`` holds RMSE / MAE (explicit models), full-catalogue HR / NDCG / MAP / recall@k, the
  sampled HR / NDCG@k (``sampled_*``, against ``evaluation.sampled_negatives`` items the user has not seen),
  coverage, novelty and popularity bias by user-activity bucket; ``baseline`` holds the popularity list's;
- ``data_summary.json``: events, users, items, duplicates, timestamps out of order, split sizes;
- ``model/``: the recommender's folder (`shipyard.artifact_recommend`), served by `shipyard serve`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.artifact_recommend import save_recommender
from shipyard.config.recommend import InteractionData, RecommendConfig
from shipyard.config.schema import TrainingConfig
from shipyard.data.interaction_splits import split_interactions
from shipyard.data.interactions import IdIndex, Interactions, check_interactions, read_movielens
from shipyard.errors import ShipyardError
from shipyard.evaluation.recommend_eval import evaluate, popularity_metrics
from shipyard.io import INCOMPLETE, RUN_INFO, atomic_write_json, atomic_write_parquet, atomic_write_text
from shipyard.models.recommend.factor import BPR, BiasedMF
from shipyard.models.recommend.two_tower import TwoTower, sequence_examples
from shipyard.settings import data_dir
from shipyard.training.engine import seed_everything
from shipyard.training.recommend import NegativeSampler, Split, fit_recommender

log = logging.getLogger(__name__)
SPLITS = ("train", "validation", "test")


# ---------------------------------------------------------------------------------------------- data
def _read_table(path: Path, fmt: str, field: str) -> pd.DataFrame:
    if not path.exists():
        raise ShipyardError("file not found", where=f"{field}: {path}")
    if fmt == "parquet" or path.suffix == ".parquet":
        return pd.read_parquet(path)
    try:
        return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
    except (UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise ShipyardError(f"cannot parse: {exc}", where=f"{field}: {path}") from None


def _meta_table(path: Path, fmt: str, field: str, id_col: str) -> pd.DataFrame:
    table = _read_table(path, fmt, field)
    if id_col not in table.columns:
        raise ShipyardError(f"no {id_col!r} column; columns: {list(table.columns)}", where=f"{field}: {path}")
    table = table.set_index(id_col)
    if "genres" in table.columns:  # "Action|Comedy" -> a list, the form the MovieLens reader gives
        table["genres"] = [str(g).split("|") if isinstance(g, str) else [] for g in table["genres"]]
    if "text" not in table.columns and "title" in table.columns:
        genres = table["genres"] if "genres" in table.columns else [[]] * len(table)
        table["text"] = [f"{t} | {', '.join(g)}" if g else str(t) for t, g in zip(table["title"], genres, strict=True)]
    return table


def load_interactions(cfg: InteractionData, base_dir: Path) -> Interactions:
    """The job's events (and metadata), checked; MovieLens folders through their own reader."""
    raw_path = cfg.path
    if "${SHIPYARD_DATA_DIR}" in raw_path:
        raw_path = raw_path.replace("${SHIPYARD_DATA_DIR}", str(data_dir()))
    path = Path(raw_path)
    path = path if path.is_absolute() else base_dir / path
    if cfg.format == "movielens":
        data = read_movielens(path)
        if cfg.duplicates != "keep" or cfg.implicit:
            frame, data.summary = check_interactions(
                data.frame, where=str(path), duplicates=cfg.duplicates, implicit=False
            )
            data.frame = frame
    else:
        c = cfg.columns
        raw = _read_table(path, cfg.format, "recommend.data.path")
        rename = {c.user_id: "user_id", c.item_id: "item_id", c.timestamp: "timestamp"}
        if c.rating and (not cfg.implicit or c.rating in raw.columns):  # implicit: kept for min_rating
            rename[c.rating] = "rating"
        missing = [k for k in rename if k not in raw.columns]
        if missing:
            raise ShipyardError(f"missing column(s) {missing}; columns: {list(raw.columns)}", where=str(path))
        raw = raw.rename(columns=rename)
        base = path.parent
        items = _meta_table(base / cfg.items, cfg.format, "recommend.data.items", "item_id") if cfg.items else None
        users = _meta_table(base / cfg.users, cfg.format, "recommend.data.users", "user_id") if cfg.users else None
        frame, summary = check_interactions(
            raw, where=str(path), items=items, users=users, duplicates=cfg.duplicates, implicit=cfg.implicit
        )
        data = Interactions(frame, items=items, users=users, source=str(path), summary=summary)
    if cfg.implicit:
        keep = data.frame["rating"] >= cfg.min_rating if cfg.min_rating is not None else None
        if keep is not None:
            data.summary["below_min_rating"] = int((~keep).sum())
            data.frame = data.frame.loc[keep].reset_index(drop=True)
        data.frame = data.frame.assign(rating=np.float32(1.0))
    return data


def given_splits(cfg: RecommendConfig, data: Interactions, base_dir: Path) -> dict[str, pd.DataFrame]:
    """``split.method: given``: each split's events from its Parquet file, checked like the source's events."""
    out = {}
    for name in SPLITS:
        path = Path(getattr(cfg.split.files, name))
        path = path if path.is_absolute() else base_dir / path
        raw = _read_table(path, "parquet", f"recommend.split.files.{name}")
        # users: not checked against the users table, so users who arrived after training (served events) count
        out[name], summary = check_interactions(
            raw, where=str(path), items=data.items, duplicates=cfg.data.duplicates, implicit=cfg.data.implicit
        )
        data.summary[f"given_{name}"] = summary
    return out


# ---------------------------------------------------------------------------------------------- training
def _build(cfg: RecommendConfig, data: Interactions, users: IdIndex, items: IdIndex, train: pd.DataFrame) -> Any:
    m = cfg.model
    if m.type == "mf":
        mean = float(train.rating.mean())
        return BiasedMF(len(users), len(items), dim=m.dim, reg=m.regularisation(), global_mean=mean)
    if m.type == "bpr":
        return BPR(len(users), len(items), dim=m.dim, reg=m.regularisation())
    from shipyard.data.item_features import item_feature_matrix, user_feature_matrix  # MiniLM: two-tower only

    if data.items is None:
        raise ShipyardError("the two-tower model needs an items table", where="recommend.data.items")
    # text: false leaves MiniLM out altogether (zero embeddings stand in for the text columns, then are cut off)
    no_text = None if m.text else np.zeros((len(items), 384), np.float32)
    item_x = item_feature_matrix(data.items, items.to_list(), text_embeddings=no_text)
    if not m.text:
        item_x = item_x[:, 384:]
    user_x = user_feature_matrix(data.users, users.to_list()) if data.users is not None else None
    trainable = np.zeros(len(items), bool)
    trainable[items.encode(train.item_id, where="train")] = True
    return TwoTower(
        item_x, user_x, trainable=trainable, dim=m.dim, hidden=m.hidden, history=m.history,
        id_dropout=m.id_dropout, temperature=m.temperature,
    )  # fmt: skip


def _engine_inputs(kind: str, model: Any, u: np.ndarray, i: np.ndarray, frame: pd.DataFrame) -> tuple[Split, tuple]:
    if kind == "mf":
        return Split({"user": u, "item": i}, frame.rating.to_numpy(np.float32)), ()
    if kind == "bpr":
        return Split({"user": u, "item": i}, np.ones(len(u), np.float32)), (NegativeSampler(u, i, model.n_items),)
    uu, hist, target = sequence_examples(u, i, frame.timestamp.to_numpy(), model.history)
    return Split({"hist": hist, "uidx": uu}, target), ()


def train_recommender(
    cfg: RecommendConfig, training: TrainingConfig, run_dir: Path, *, base_dir: Path, resume: bool = False
) -> dict[str, Any]:
    """Everything of a recommendation run but the generic run-folder files; returns metrics and summary."""
    data = load_interactions(cfg.data, base_dir)
    s = cfg.split
    if s.files is not None:  # given splits: the events are the files' (the source gives the metadata only)
        splits = given_splits(cfg, data, base_dir)
        data.frame = pd.concat([splits[n] for n in SPLITS], ignore_index=True)
    frame = data.frame
    user_index = IdIndex(sorted(frame.user_id.unique()))
    item_ids = sorted(set(frame.item_id.unique()) | (set(data.items.index) if data.items is not None else set()))
    item_index = IdIndex(item_ids)
    if s.files is None:
        splits = split_interactions(
            frame, s.method, validation=s.validation, test=s.test, min_events=s.min_events, seed=s.seed
        )
    (run_dir / "splits").mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        atomic_write_parquet(run_dir / "splits" / f"{name}.parquet", splits[name].reset_index(drop=True), private=True)
    train = splits["train"]
    if train.empty:
        raise ShipyardError("no events left to train on", where="recommend.data", hint="check min_rating and the split")
    u, i = user_index.encode(train.user_id, where="train"), item_index.encode(train.item_id, where="train")
    seed_everything(training.seed)  # weight initialisation is part of what the seed fixes (as in run_job)
    model = _build(cfg, data, user_index, item_index, train)
    inputs, callbacks = _engine_inputs(cfg.model.type, model, u, i, train)
    task = "classification" if cfg.model.type == "two_tower" else "regression"
    fit = fit_recommender(model, inputs, training, run_dir, callbacks=callbacks, resume=resume, task=task)
    metrics = {
        "test": evaluate(cfg, model, splits, user_index, item_index, "test"),
        "validation": evaluate(cfg, model, splits, user_index, item_index, "validation"),
        "training": {"epochs": fit.epochs_run, "steps": fit.global_step, "seconds": fit.seconds},
    }
    metrics["baseline"] = {"popularity": popularity_metrics(cfg, splits, user_index, item_index)}
    summary = {**data.summary, "splits": {k: len(v) for k, v in splits.items()}, "split": s.model_dump()}
    atomic_write_json(run_dir / "data_summary.json", summary)
    item_meta = _item_meta(data, item_index)
    params = {**cfg.model.model_dump(), "reg": cfg.model.regularisation()}
    save_recommender(
        run_dir / "model", model=model, kind=cfg.model.type, params=params, user_ids=user_index.to_list(),
        item_ids=item_index.to_list(), interactions=frame, item_meta=item_meta, metrics=metrics["test"],
    )  # fmt: skip
    return {"metrics": metrics, "summary": summary}


def _item_meta(data: Interactions, items: IdIndex) -> dict[str, list[Any]]:
    if data.items is None:
        return {}
    rows = data.items.reindex(items.to_list())
    meta: dict[str, list[Any]] = {}
    if "title" in rows.columns:
        titles = zip(rows["title"], items.ids, strict=True)
        meta["title"] = [str(t) if isinstance(t, str) else str(i) for t, i in titles]
    if "genres" in rows.columns:
        meta["genres"] = [list(g) if isinstance(g, list | tuple | np.ndarray) else [] for g in rows["genres"]]
    return meta


# ---------------------------------------------------------------------------------------------- the run
def run_recommendation_job(
    job: Any,
    *,
    base_dir: Path | None = None,
    run_dir: Path | None = None,
    resume: bool = False,
    show_progress: bool = True,
) -> Any:
    """`shipyard.run` for ``task: recommendation``: the same run folder, store record, report and resume as every
    other job; the data, model and metrics are this module's."""
    from shipyard import pipeline as p  # the run-folder helpers (one direction: the pipeline never imports this)
    from shipyard.evaluation.model_card import write_model_card
    from shipyard.evaluation.ranking_report import ranking_sections
    from shipyard.evaluation.report import write_report
    from shipyard.training.engine import read_log

    base_dir = Path(base_dir or Path.cwd())
    if resume:
        if run_dir is None or not (Path(run_dir) / "checkpoints").is_dir():
            raise ShipyardError("nothing to resume: the folder has no checkpoints/", where=str(run_dir))
        run_id, run_dir = Path(run_dir).name, Path(run_dir)
        p._check_resume_config(job, run_dir)
    else:
        run_id, run_dir = p.resolve_run_dir(job, base_dir, run_dir)
        if run_dir.exists() and any(run_dir.iterdir()):
            raise ShipyardError("run folder already exists and is not empty", where=str(run_dir))
    p._claim(run_dir, resume)
    store = p._store_for(run_dir)
    if not resume:
        atomic_write_text(run_dir / "config.yaml", p.dump_config(job))
        atomic_write_json(run_dir / RUN_INFO, {"run_id": run_id, "base_dir": str(base_dir.resolve())})
    if resume and _in_store(store, run_id):
        store.reopen_run(run_id)
    else:
        store.start_run(
            run_id, run_dir, name=job.name or run_id, task=job.task, model_type=job.recommend.model.type,
            config=job.model_dump(mode="json"), config_hash=p.config_hash(job), seed=job.training.seed,
        )  # fmt: skip
    started = time.perf_counter()
    try:
        out = train_recommender(job.recommend, job.training, run_dir, base_dir=base_dir, resume=resume)
        metrics = out["metrics"]
        atomic_write_json(run_dir / "metrics.json", metrics)
        config = job.model_dump(mode="json")
        report = write_report(
            run_dir, job_config=config, metrics=metrics, summary=out["summary"],
            train_log=read_log(run_dir / "train_log.jsonl"), test_predictions=None,
            extra_sections=ranking_sections(metrics, job.recommend.evaluation.k),
        )  # fmt: skip
        write_model_card(run_dir, job_config=config, metrics=metrics, summary=out["summary"], extra={})
        (run_dir / INCOMPLETE).unlink()
        store.finish_run(run_id, status="finished", metrics=metrics, duration_s=time.perf_counter() - started)
    except BaseException as exc:
        status = "killed" if isinstance(exc, KeyboardInterrupt) else "failed"
        try:
            store.finish_run(run_id, status=status, metrics={}, duration_s=time.perf_counter() - started,
                             error=str(exc)[:500])  # fmt: skip
        except ShipyardError:
            log.warning("could not record the failed run in the store")
        raise
    return p.RunResult(run_id=run_id, run_dir=run_dir, metrics=metrics, report=report)


def _in_store(store: Any, run_id: str) -> bool:
    try:
        store.get(run_id)
    except ShipyardError:
        return False
    return True
