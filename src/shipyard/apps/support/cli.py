"""`shipyard app support ...`: validate, set up (train the retrieval job, demo orders), serve, and the data
duties (export feedback for retraining, purge past retention, forget a conversation)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

support_cli = typer.Typer(no_args_is_help=True, help="The customer-service assistant (docs/support.md).")
ConfigArg = Annotated[Path, typer.Argument(help="The assistant's YAML file (e.g. examples/support/support.yaml).")]


@support_cli.command()
def validate(config: ConfigArg) -> None:
    """Check the config file (every problem, with its line)."""
    from shipyard.apps.support.config import load_support_config

    load_support_config(config)
    typer.echo(f"{config}: ok")


@support_cli.command()
def setup(config: ConfigArg, orders: Annotated[int, typer.Option(help="Demo orders to create.")] = 500) -> None:
    """Train the retrieval job, then the intent job, when their runs are missing, and create the demo orders table
    when it is missing."""
    from shipyard.apps.support.config import load_support_config, resolve
    from shipyard.apps.support.tools import demo_orders, write_orders

    cfg, base = load_support_config(config)
    _train_missing(config, resolve(base, cfg.retrieval_run), cfg.retrieval_job, base, "retrieval", "20 CPU-minutes")
    if cfg.intent.run is not None:  # after the retrieval run: the bundled intent job reads its stored splits
        _train_missing(config, resolve(base, cfg.intent.run), cfg.intent.job, base, "intent", "1 CPU-minute")
    if cfg.tools.order_status is not None:
        db = resolve(base, cfg.tools.order_status.db)
        if not db.exists():
            n = write_orders(db, demo_orders(orders))
            typer.echo(f"{n} demo orders in {db} (e.g. order {demo_orders(1)[0]['order_id']})")
    typer.echo("ready: shipyard app support serve " + str(config))


def _train_missing(config: Path, run: Path, job_file: str | None, base: Path, what: str, cost: str) -> None:
    """Train ``job_file`` into ``run`` unless the run has a model already."""
    import time

    from shipyard.apps.support.config import resolve
    from shipyard.config.schema import Job
    from shipyard.errors import ShipyardError
    from shipyard.pipeline import run_job

    if (run / "model" / "shipyard.json").is_file():
        return
    if job_file is None:
        key = "retrieval_job" if what == "retrieval" else "intent.job"
        raise ShipyardError(f"the {what} run {run} does not exist and no {key} trains it", where=str(config))
    job_path = resolve(base, job_file)
    typer.echo(f"training {job_path} into {run} (about {cost})")
    started = time.perf_counter()
    run_job(Job.from_yaml(job_path), base_dir=job_path.parent, run_dir=run)
    typer.echo(f"{what} run trained in {time.perf_counter() - started:.0f} s")


@support_cli.command()
def serve(
    config: ConfigArg,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    store: Annotated[Path, typer.Option(help="API key store (SQLite), as for shipyard serve.")] = Path(
        "runs/shipyard.db"
    ),
    no_auth: Annotated[bool, typer.Option("--no-auth", help="No API keys (a local demo only).")] = False,
) -> None:
    """Serve the assistant: API under /v1/apps/support, chat page at /ui/apps/support/, agents at .../agent."""
    import uvicorn

    from shipyard.apps.support.config import load_support_config
    from shipyard.apps.support.server import build_app

    cfg, base = load_support_config(config)
    settings = {"auth": not no_auth, "key_store_path": None if no_auth else store}
    app = build_app(cfg, base, config, **settings)
    typer.echo(f"chat: http://{host}:{port}/ui/apps/support/  agents: http://{host}:{port}/ui/apps/support/agent")
    uvicorn.run(app, host=host, port=port, log_level="warning")


@support_cli.command("export-feedback")
def export_feedback(config: ConfigArg, output: Annotated[Path, typer.Option(help="Folder for the CSV files.")]) -> None:
    """intents.csv and pairs.csv from helpful answers and agents' corrections (for retraining)."""
    from shipyard.apps.support.config import load_support_config, resolve
    from shipyard.apps.support.store import SupportStore

    cfg, base = load_support_config(config)
    counts = SupportStore(resolve(base, cfg.store.path)).export_feedback(output)
    typer.echo(f"{counts['intents']} intent rows, {counts['pairs']} query-passage pairs in {output}")


@support_cli.command()
def purge(config: ConfigArg) -> None:
    """Delete conversations idle longer than store.retention_days."""
    from shipyard.apps.support.config import load_support_config, resolve
    from shipyard.apps.support.store import SupportStore

    cfg, base = load_support_config(config)
    store = SupportStore(resolve(base, cfg.store.path), retention_days=cfg.store.retention_days)
    typer.echo(f"{store.purge()} conversation(s) deleted")


@support_cli.command()
def forget(config: ConfigArg, conversation: Annotated[str, typer.Option(help="The conversation id.")]) -> None:
    """Erase one conversation (its turns, feedback and tickets)."""
    from shipyard.apps.support.config import load_support_config, resolve
    from shipyard.apps.support.store import SupportStore
    from shipyard.errors import ShipyardError

    cfg, base = load_support_config(config)
    if not SupportStore(resolve(base, cfg.store.path)).forget(conversation):
        raise ShipyardError("no such conversation", where=conversation)
    typer.echo(f"conversation {conversation} erased")
