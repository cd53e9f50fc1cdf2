"""Command-line entry points for the REST service: ``shipyard serve`` and ``shipyard keys create|list|revoke``.

Thin: options -> one :class:`ServeSettings` (whose defaults the options show) -> :func:`shipyard.serve.workers.serve`.
Kept free of heavy imports at module level (FastAPI, uvicorn, torch load only when a command runs), so that
adding these commands to the main CLI costs nothing at start-up. The lead CLI wires them in with::

    from shipyard.cli.serve import keys_app, serve_command
    app.command("serve")(serve_command)
    app.add_typer(keys_app, name="keys")
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from shipyard.apps import AppContext, app_mounts
from shipyard.cli.errors import handle_errors
from shipyard.config.serve import ServeSettings
from shipyard.errors import ShipyardError
from shipyard.store.keys import KeyStore

log = logging.getLogger(__name__)
console = Console()
err_console = Console(stderr=True)

DEFAULT_STORE = Path("runs") / "shipyard.db"

keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys for `shipyard serve`.")


_errors = handle_errors  # one `error:` line and exit code 2, as in the main CLI


def parse_model_args(paths: list[str]) -> dict[str, Path]:
    """``[name=]path`` arguments -> {name: path}; the name defaults to the folder's name."""
    models: dict[str, Path] = {}
    for arg in paths:
        name, sep, rest = str(arg).partition("=")
        if sep and name and not Path(arg).exists():
            path = Path(rest)
        else:
            name, path = "", Path(arg)
        path = path.expanduser()
        if not name:
            resolved = path.resolve()
            name = resolved.parent.name if resolved.name == "model" else resolved.name
        if name in models:
            raise ShipyardError(f"two models are both named {name!r}", where=str(arg), hint="use name=path")
        models[name] = path
    if not models:
        raise ShipyardError("give at least one run or model folder to serve", where="PATHS")
    return models


LOG_HELP = "Log predictions of NAME (or *): NAME[=SAMPLE[:RETENTION_DAYS]], e.g. adult=0.1:30."


def _default(name: str) -> Any:
    """The option's default: ServeSettings' (the one place the server's defaults live)."""
    return ServeSettings.model_fields[name].default


def run_draining(config: Any, serve_state: Any) -> None:
    """Run one server process (tests replace this to stop before uvicorn starts)."""
    from shipyard.serve.workers import run_draining as run  # heavy (uvicorn, FastAPI): only when serving

    run(config, serve_state)


@_errors
def serve_command(
    paths: Annotated[
        list[str] | None, typer.Argument(help="Run or model folders to serve, as PATH or NAME=PATH.")
    ] = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = _default("host"),
    port: Annotated[int, typer.Option(help="Port to listen on.")] = _default("port"),
    workers: Annotated[int, typer.Option(help="Worker processes (each loads every model).")] = _default("workers"),
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve without API keys (anyone may predict and load models).")
    ] = False,
    store: Annotated[Path, typer.Option(help="Key store (SQLite file).")] = DEFAULT_STORE,
    max_batch_size: Annotated[int, typer.Option(help="Most instances per model batch.")] = _default("max_batch_size"),
    max_instances_per_request: Annotated[
        int | None, typer.Option(help="Most instances per request (default: --max-batch-size).")
    ] = None,
    max_wait_ms: Annotated[float, typer.Option(help="Longest wait to fill a batch.")] = _default("max_wait_ms"),
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body.")] = _default("max_body_bytes"),
    rate_limit: Annotated[float, typer.Option(help="Requests per second per key (0: no limit).")] = _default(
        "rate_limit_per_s"
    ),
    burst: Annotated[int, typer.Option(help="Requests a key may make at once above the rate.")] = _default("burst"),
    drain_seconds: Annotated[
        float, typer.Option(help="On shutdown, wait this long for requests in flight.")
    ] = _default("drain_timeout_s"),
    access_log: Annotated[
        bool, typer.Option(help="Log one line per request (key name, status, latency, body HMAC; never inputs).")
    ] = _default("access_log"),
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse to serve a model flagged needs_retraining (after an erasure).")
    ] = False,
    public_endpoints: Annotated[
        str, typer.Option(help="Which of docs,metrics answer without a key ('none': both need one).")
    ] = ",".join(_default("public_endpoints")),
    client_timeout: Annotated[
        float, typer.Option(help="Seconds a client may take to send a request's head, and its body.")
    ] = _default("client_timeout_s"),
    apps: Annotated[str, typer.Option(help="Applications to mount, comma-separated (see `shipyard app list`).")] = "",
    log_predictions: Annotated[list[str] | None, typer.Option(help=LOG_HELP)] = None,
    shadow: Annotated[list[str] | None, typer.Option(help="NAME=PATH: a challenger scored, never answering.")] = None,
    loop_config: Annotated[Path | None, typer.Option(help="YAML: loop settings (monitor, promotion).")] = None,
    ui: Annotated[bool, typer.Option("--ui/--no-ui", help="Serve the web dashboard at /ui.")] = True,
) -> None:
    """Serve models over HTTP (REST, JSON): /v1/models, /v1/models/NAME/predict, /healthz, /readyz, /metrics."""
    settings = ServeSettings.parse(
        {
            "host": host,
            "port": port,
            "workers": workers,
            "auth": not no_auth,
            "key_store_path": None if no_auth else store,
            "max_batch_size": max_batch_size,
            "max_instances_per_request": max_instances_per_request,
            "max_wait_ms": max_wait_ms,
            "max_body_bytes": max_body_bytes,
            "rate_limit_per_s": rate_limit,
            "burst": burst,
            "drain_timeout_s": drain_seconds,
            "access_log": access_log,
            "public_endpoints": public_endpoints,
            "client_timeout_s": client_timeout,
            "apps": [a.strip() for a in apps.split(",") if a.strip()],
            **loop_options(log_predictions, shadow, loop_config, ui),
        }
    )
    models = parse_model_args(paths or []) if paths or not settings.apps else {}  # --apps alone is fine
    from shipyard.serve.retraining import retraining_warning  # reads model folders: only when serving
    from shipyard.serve.workers import serve, warn_if_no_live_key  # heavy (uvicorn, FastAPI): only when serving

    for name, path in models.items():
        warning = retraining_warning(name, path, strict=strict)  # a wrong path fails here, before anything starts
        if warning:
            err_console.print(f"[bold red]WARNING[/]: {warning}")
    warn_if_no_live_key(settings)
    how = f"with {settings.workers} workers" if settings.workers > 1 else "(docs at /docs)"
    console.print(f"serving {', '.join(models)} on http://{settings.host}:{settings.port} {how}")
    serve(models, settings, run_one=run_draining, resolve_apps=resolve_apps, worker_factory=WORKER_FACTORY)


def loop_options(log: list[str] | None, shadow: list[str] | None, config: Path | None, ui: bool) -> dict[str, Any]:
    """The continuous-learning settings from `shipyard serve`'s options (docs/loop.md)."""
    return {
        "log_predictions": parse_log_options(log or []),
        "shadow": parse_shadow_options(shadow or []),
        "loop": _loop_settings(config),
        "ui": ui,
    }


def parse_log_options(values: list[str]) -> dict[str, dict[str, float]]:
    """``NAME[=SAMPLE[:DAYS]]`` -> {name: {"sample", "retention_days"}} (ServeSettings checks the ranges)."""
    out: dict[str, dict[str, float]] = {}
    for value in values:
        name, _, rest = value.partition("=")
        sample, _, days = rest.partition(":")
        entry: dict[str, float] = {}
        try:
            if sample.strip():
                entry["sample"] = float(sample)
            if days.strip():
                entry["retention_days"] = float(days)
        except ValueError:
            raise ShipyardError(
                f"not NAME=SAMPLE:DAYS: {value!r}", where="--log-predictions", hint="e.g. adult=0.1:30"
            ) from None
        if not name.strip():
            raise ShipyardError(f"no model name in {value!r}", where="--log-predictions", hint="NAME or *")
        out[name.strip()] = entry
    return out


def parse_shadow_options(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ShipyardError(f"not NAME=PATH: {value!r}", where="--shadow", hint="e.g. adult=runs/<challenger>")
        out[name.strip()] = str(Path(path.strip()).expanduser().resolve())
    return out


def _loop_settings(path: Path | None) -> Any:
    if path is None:
        return {}
    from shipyard.config.loop import load_loop_settings

    return load_loop_settings(path)


# worker processes rebuild the application routers themselves: serve cannot import shipyard.apps (it sits below)
WORKER_FACTORY = "shipyard.cli.serve:app_from_env"


def resolve_apps(names: Any) -> list[tuple[str, Any]]:
    """Application names -> (prefix, router) pairs for serve's ``extra_routers``: the API routers (``/v1/apps/...``)
    and the pages (``/ui/apps/...``, mounted behind the web dashboard's login)."""
    return list(app_mounts(list(names), AppContext()))


def app_from_env() -> Any:
    """uvicorn's factory in each worker process: the serve app with the named applications mounted."""
    from shipyard.serve.workers import app_from_env as build  # heavy (uvicorn, FastAPI): only when serving

    return build(resolve_apps=resolve_apps)


# ------------------------------------------------------------------------------------------------ keys
StoreOption = Annotated[Path, typer.Option("--store", help="Key store (SQLite file).")]


@keys_app.command("create")
@_errors
def keys_create(
    name: Annotated[str, typer.Option(help="A name for the key (who or what uses it).")],
    scope: Annotated[str, typer.Option(help="predict, or admin (may also load model versions).")] = "predict",
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Create an API key. The key is printed once and never stored in clear."""
    plaintext = KeyStore(store).create(name, scope)  # type: ignore[arg-type]
    err_console.print(f"created key {name!r} (scope {scope}). Copy it now: it is not shown again.")
    typer.echo(plaintext)


@keys_app.command("list")
@_errors
def keys_list(store: StoreOption = DEFAULT_STORE) -> None:
    """List API keys (names, prefixes, scopes; never the keys)."""
    table = Table(title="API keys")
    for col in ("name", "prefix", "scope", "created", "last used", "revoked"):
        table.add_column(col)
    for rec in KeyStore(store).list():
        fmt = lambda t: t.strftime("%Y-%m-%d %H:%M") if t else "-"  # noqa: E731
        table.add_row(rec.name, rec.prefix, rec.scope, fmt(rec.created_at), fmt(rec.last_used_at), fmt(rec.revoked_at))
    console.print(table)


@keys_app.command("revoke")
@_errors
def keys_revoke(
    name: Annotated[str, typer.Argument(help="Key name or prefix.")],
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Revoke an API key (running servers stop accepting it within their key-cache time, 30 s)."""
    rec = KeyStore(store).revoke(name)
    console.print(f"revoked key {rec.name!r} ({rec.prefix})")


__all__ = ["keys_app", "parse_model_args", "serve_command"]
