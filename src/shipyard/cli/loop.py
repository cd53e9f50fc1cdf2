"""The continuous-learning commands: `feedback import`, `label queue|export|import`, `monitor`, `retrain`,
`promote`, `rollback` (the loop itself is :mod:`shipyard.loop`; docs/loop.md walks through it).

They read and write the loop store: the run store's SQLite file (``<runs-root>/shipyard.db``), or the database
named by ``--database-url`` / ``SHIPYARD_LOOP_DATABASE_URL`` (any SQLAlchemy URL). `promote` and `rollback` switch a
running server through its admin route (``POST /v1/models/NAME/versions``) when given ``--url``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.cli.errors import handle_errors
from shipyard.cli.output import print_json

RunsRoot = Annotated[Path, typer.Option("--runs-root", help="Folder of the run store (shipyard.db).")]
DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", envvar="SHIPYARD_LOOP_DATABASE_URL", help="SQLAlchemy URL of the loop store."),
]
Actor = Annotated[str, typer.Option("--actor", help="Who does this (recorded).")]

feedback_app = typer.Typer(no_args_is_help=True, help="Feedback on logged predictions.")
label_app = typer.Typer(no_args_is_help=True, help="The labelling queue (active learning).")


def _store(runs_root: Path, database_url: str | None) -> Any:
    from shipyard.loop.store import LoopStore  # lazy: SQLAlchemy and pandas, too slow for `shipyard --help`

    return LoopStore.open(runs_root, database_url)


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("USER") or "shipyard-cli"


def _parse_window(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``7d`` or plain seconds -> seconds."""
    from shipyard.errors import ShipyardError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    raw = text.strip().lower()
    try:
        seconds = float(raw[:-1]) * units[raw[-1]] if raw and raw[-1] in units else float(raw)
    except ValueError:
        raise ShipyardError(f"not a duration: {text!r}", where="--window", hint="e.g. 30m, 1h, 7d") from None
    if seconds <= 0:
        raise ShipyardError(f"the window must be positive, got {text!r}", where="--window")
    return seconds


@feedback_app.command("import")
@handle_errors
def feedback_import(
    file: Annotated[
        Path, typer.Argument(help="CSV: prediction_id and label / value / rating / thumbs (+ correction).")
    ],
    runs_root: RunsRoot = Path("runs"),
    database_url: DatabaseUrl = None,
    actor: Actor = "",
) -> None:
    """Import feedback that arrived later, in bulk: every row is checked, then all are written, or none."""
    from shipyard.loop.feedback import import_feedback_csv

    print_json(import_feedback_csv(_store(runs_root, database_url), file, actor=_actor(actor)))


@label_app.command("queue")
@handle_errors
def label_queue(
    model: Annotated[str, typer.Argument(help="Served model name.")],
    n: Annotated[int, typer.Option("--n", min=1, help="How many inputs to queue.")] = 200,
    strategy: Annotated[
        str,
        typer.Option(
            help="margin | least_confidence | random | typical | badge | balanced | cold_start (docs/loop.md)."
        ),
    ] = "margin",
    export: Annotated[Path | None, typer.Option("--export", help="Also write the queue to this CSV.")] = None,
    runs_root: RunsRoot = Path("runs"),
    database_url: DatabaseUrl = None,
) -> None:
    """Queue the N logged inputs most worth labelling: the least certain, spread out (not N near-duplicates)."""
    from shipyard.loop.queue import build_queue, export_csv

    store = _store(runs_root, database_url)
    picked = build_queue(store, model, n, strategy=strategy)
    out: dict[str, Any] = {"model": model, "queued": len(picked)}
    if export is not None:
        out["exported"] = export_csv(store, model, export)
        out["file"] = str(export)
    print_json(out)


@label_app.command("export")
@handle_errors
def label_export(
    model: Annotated[str, typer.Argument(help="Served model name.")],
    file: Annotated[Path, typer.Argument(help="CSV to write (owner-only: it holds logged inputs).")],
    runs_root: RunsRoot = Path("runs"),
    database_url: DatabaseUrl = None,
) -> None:
    """Write the queue to a CSV with an empty `label` column to fill in."""
    from shipyard.loop.queue import export_csv

    print_json({"model": model, "exported": export_csv(_store(runs_root, database_url), model, file)})


@label_app.command("import")
@handle_errors
def label_import(
    model: Annotated[str, typer.Argument(help="Served model name.")],
    file: Annotated[Path, typer.Argument(help="The exported CSV with `label` filled in (blank: left queued).")],
    runs_root: RunsRoot = Path("runs"),
    database_url: DatabaseUrl = None,
    actor: Actor = "",
) -> None:
    """Import the labelled queue (all or nothing; a bad row is named)."""
    from shipyard.loop.queue import import_csv

    print_json(import_csv(_store(runs_root, database_url), model, file, actor=_actor(actor)))


@handle_errors
def monitor(
    model: Annotated[str, typer.Argument(help="Served model name.")],
    window: Annotated[str, typer.Option("--window", help="How far back: 30m, 1h, 7d.")] = "1h",
    config: Annotated[Path | None, typer.Option("--config", help="YAML with the loop settings (thresholds).")] = None,
    runs_root: RunsRoot = Path("runs"),
    database_url: DatabaseUrl = None,
) -> None:
    """Drift (per feature, predictions) and accuracy on arrived feedback over the window; alerts if crossed."""
    from shipyard.loop.alerts import AlertSink
    from shipyard.loop.monitor import run_check
    from shipyard.loop.predlog import purge_expired

    settings = _loop_settings(config)
    store = _store(runs_root, database_url or settings.database_url)
    purge_expired(store)
    sink = AlertSink(webhook_url=str(settings.monitor.webhook_url) if settings.monitor.webhook_url else None)
    report = run_check(
        store,
        model,
        window_s=_parse_window(window),
        thresholds=settings.monitor.thresholds,
        sink=sink,
        actor=_actor(""),
    )
    print_json(report.summary())
    if report.alerts:
        raise typer.Exit(3)  # scripts and cron can tell "drift" from "fine" (0) and "error" (2)


def _loop_settings(config: Path | None) -> Any:
    from shipyard.config.loop import LoopSettings, load_loop_settings

    return LoopSettings() if config is None else load_loop_settings(config)


@handle_errors
def retrain(
    run: Annotated[Path, typer.Argument(help="The champion's run folder.")],
    with_feedback: Annotated[bool, typer.Option("--with-feedback/--without-feedback")] = True,
    since: Annotated[str | None, typer.Option("--since", help="Only feedback from this date (ISO).")] = None,
    model: Annotated[str | None, typer.Option("--model", help="Feedback of this served name only.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Train a challenger: the run's own job + accepted feedback rows; a new run, linked to its parent."""
    from shipyard.loop.retrain import parse_since
    from shipyard.loop.retrain import retrain as run_retrain

    store = _store(run.resolve().parent, database_url) if with_feedback else None
    result = run_retrain(run, store=store, with_feedback=with_feedback, since=parse_since(since), model=model)
    print_json({k: v for k, v in result.items() if k != "metrics"} | {"test": result["metrics"].get("test", {})})


@handle_errors
def promote(
    model: Annotated[str, typer.Argument(help="Served model name.")],
    challenger: Annotated[Path, typer.Argument(help="Challenger run or model folder.")],
    champion: Annotated[Path | None, typer.Option("--champion", help="Default: the last promoted version.")] = None,
    url: Annotated[str | None, typer.Option("--url", help="The running server, e.g. http://127.0.0.1:8000.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="SHIPYARD_API_KEY", help="An admin key.")] = None,
    why: Annotated[str, typer.Option("--why", help="Why (recorded with the decision).")] = "",
    config: Annotated[Path | None, typer.Option("--config", help="YAML with the loop settings (margin).")] = None,
    runs_root: RunsRoot = Path("runs"),
    database_url: DatabaseUrl = None,
    actor: Actor = "",
) -> None:
    """Compare the challenger with the champion (holdout + feedback, significance test); switch only if better."""
    from shipyard.errors import ShipyardError
    from shipyard.loop.compare_retrieval import compare_for_promotion  # by ranking for retrieval runs
    from shipyard.loop.versions import champion_path, switch_version
    from shipyard.loop.versions import promote as do_promote

    settings = _loop_settings(config)
    store = _store(runs_root, database_url or settings.database_url)
    current = str(champion) if champion else champion_path(store, model)
    if current is None:
        raise ShipyardError(
            f"no champion recorded for {model!r}", where="--champion", hint="name the served run with --champion"
        )
    decision = compare_for_promotion(store, model, current, challenger, settings.promotion)
    switch = (lambda path: switch_version(url, api_key, model, path)) if url else None
    print_json(
        do_promote(
            store,
            model,
            champion=current,
            challenger=str(challenger.resolve()),
            decision=decision,
            actor=_actor(actor),
            why=why,
            switch=switch,
        )
    )


@handle_errors
def rollback(
    model: Annotated[str, typer.Argument(help="Served model name.")],
    why: Annotated[str, typer.Option("--why", help="Why (recorded).")] = "",
    url: Annotated[str | None, typer.Option("--url", help="The running server.")] = None,
    api_key: Annotated[str | None, typer.Option("--api-key", envvar="SHIPYARD_API_KEY", help="An admin key.")] = None,
    runs_root: RunsRoot = Path("runs"),
    database_url: DatabaseUrl = None,
    actor: Actor = "",
) -> None:
    """Return to the version before the last promotion."""
    from shipyard.loop.versions import rollback as do_rollback
    from shipyard.loop.versions import switch_version

    store = _store(runs_root, database_url)
    switch = (lambda path: switch_version(url, api_key, model, path)) if url else None
    print_json(do_rollback(store, model, actor=_actor(actor), why=why, switch=switch))
