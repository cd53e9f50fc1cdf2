"""``shipyard app finmon``: run the monitor, replay a file through it, backtest sentiment against prices, serve
the API and dashboard. (Until the platform's app registry is merged: ``python -m shipyard.apps.finmon.cli``.)"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import typer
from prometheus_client import start_http_server

from shipyard.apps.finmon.config import FolderSource, load_config
from shipyard.apps.finmon.store import Store
from shipyard.errors import ShipyardError

cli = typer.Typer(help="Financial news sentiment monitor: a stream in, sentiment per company, alerts out.")
ConfigArg = typer.Argument(..., exists=True, dir_okay=False, help="the monitor's YAML file")


def _logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(name)s %(message)s")


def _fail(exc: ShipyardError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@cli.command()
def run(
    config: Path = ConfigArg,
    until_idle: bool = typer.Option(False, help="stop once every source has nothing new (a replay)"),
    max_seconds: float | None = typer.Option(None, help="stop after this many seconds"),
    metrics_port: int | None = typer.Option(None, help="serve the Prometheus counters on this port"),
    quiet: bool = typer.Option(False),
) -> None:
    """Run the monitor on its configured sources until stopped (Ctrl-C / SIGTERM stop it gracefully)."""
    _logging(quiet)
    from shipyard.apps.finmon.runner import Monitor  # heavy (torch, through the model): not on every `shipyard`

    try:
        monitor = Monitor(load_config(config))
    except ShipyardError as exc:
        _fail(exc)
    if metrics_port is not None:
        start_http_server(metrics_port, addr="127.0.0.1", registry=monitor.metrics.registry)
    try:
        stats = monitor.run(until_idle=until_idle, max_seconds=max_seconds)
    finally:
        monitor.close()
    typer.echo(f"{stats.documents} documents, {stats.duplicates} near-duplicates, {stats.dead} dead letters, "
               f"{stats.alerts} alerts in {stats.seconds:.1f}s")  # fmt: skip


@cli.command()
def replay(
    config: Path = ConfigArg,
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a JSONL or CSV file of documents"),
    quiet: bool = typer.Option(False),
) -> None:
    """Feed one file through the monitor (in place of its configured sources) and stop when it is done."""
    _logging(quiet)
    from shipyard.apps.finmon.runner import Monitor  # heavy (torch, through the model): not on every `shipyard`

    try:
        settings = load_config(config)
        source = FolderSource(name=f"replay:{file.name}", path=str(file.resolve().parent), patterns=[file.name])
        monitor = Monitor(settings.model_copy(update={"sources": [source]}))
    except ShipyardError as exc:
        _fail(exc)
    try:
        stats = monitor.run(until_idle=True)
        alerts = monitor.store.alerts(limit=1000)
    finally:
        monitor.close()
    for alert in reversed(alerts):
        typer.echo(f"alert {alert['id']}: {alert['entity']} {alert['direction']} at bucket {alert['bucket']} "
                   f"({', '.join(alert['rules'])})")  # fmt: skip
    typer.echo(f"{stats.documents} documents, {stats.duplicates} near-duplicates, {stats.dead} dead letters, "
               f"{stats.alerts} alerts in {stats.seconds:.1f}s")  # fmt: skip


@cli.command()
def backtest(
    config: Path = ConfigArg,
    prices: Path = typer.Option(..., exists=True, dir_okay=False, help="CSV: date (or ts), entity, close"),
    window: str = typer.Option("1d", help="the aggregate window to read sentiment from"),
    max_lag: int = typer.Option(5, min=0, max=60),
    method: str = typer.Option("fisher", help="confidence intervals: fisher or bootstrap"),
) -> None:
    """Lead-lag correlation of each entity's sentiment with its next-period returns (not a trading signal)."""
    # heavy (pandas, scipy): only this command needs them, not every `shipyard` start
    from shipyard.apps.finmon.backtest import lead_lag, read_prices, report, sentiment_from_store

    try:
        settings = load_config(config)
        store = Store(settings.resolve(settings.store), settings.windows)
        sentiment = sentiment_from_store(store.db, window)
        store.close()
        results = lead_lag(sentiment, read_prices(prices), max_lag=max_lag, method=method)
    except ShipyardError as exc:
        _fail(exc)
    typer.echo(report(results))


@cli.command()
def corrections(config: Path = ConfigArg, output: Path = typer.Option(..., help="CSV to write")) -> None:
    """Write analysts' sentiment corrections as a text,label CSV: new training rows for `shipyard retrain`."""
    settings = load_config(config)
    store = Store(settings.resolve(settings.store), settings.windows)
    rows = store.db.execute("SELECT text, label FROM corrections ORDER BY corrected_at").fetchall()
    store.close()
    with open(output, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    typer.echo(f"{len(rows)} corrections written to {output}")


@cli.command()
def serve(config: Path = ConfigArg, host: str = "127.0.0.1", port: int = 8080) -> None:
    """The API under /v1/apps/finmon and the dashboard under /apps/finmon (until serve mounts apps itself)."""
    import uvicorn  # optional heavy dependency: only this command serves
    from fastapi import FastAPI

    from shipyard.apps.finmon.api import FinmonContext, api_router
    from shipyard.apps.finmon.pages import pages_router

    context = FinmonContext.from_config(load_config(config))
    app = FastAPI(title="finmon")
    app.include_router(api_router(context), prefix="/v1/apps/finmon")
    app.include_router(pages_router(context), prefix="/apps/finmon")
    uvicorn.run(app, host=host, port=port)


if __name__ == "__main__":
    cli()
